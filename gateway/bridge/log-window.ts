/**
 * A budget of log lines per window, for the lines one process's output causes (its stderr, the
 * warnings about what it wrote on stdout): a process writing a million bad lines must not
 * write a million log lines. The first `linesPerWindow` lines of a window are written; the rest
 * are counted, and the count is handed over once, when the window ends (its timer, or `end()`
 * when the stream does). A window starts with the first line after the last one ended.
 */
export class LogWindow {
  private start: number | undefined
  private lines = 0
  private suppressed = 0
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly o: {
      linesPerWindow: number
      /** The window, in ms. */
      window: number
      /** The lines suppressed in a window that ended (more than none). */
      ended: (suppressed: number) => void
      /** The clock windows are measured with (ms); default: Date.now. */
      now?: () => number
    },
  ) {}

  /** Whether a line may be written now; if not, it is counted as suppressed. */
  admit(): boolean {
    const now = (this.o.now ?? Date.now)()
    if (this.start !== undefined && now - this.start >= this.o.window) this.end()
    this.start ??= now
    if (++this.lines <= this.o.linesPerWindow) return true
    this.suppressed++
    // The count is told when the window ends, not when the next line comes (one may never come).
    this.timer ??= setTimeout(() => this.end(), this.start + this.o.window - now).unref()
    return false
  }

  /** Ends the window now (the stream ended): its count, if any, is handed over. */
  end(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.start = undefined
    this.lines = 0
    const suppressed = this.suppressed
    this.suppressed = 0
    if (suppressed > 0) this.o.ended(suppressed)
  }
}
