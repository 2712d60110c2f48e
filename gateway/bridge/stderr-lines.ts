import { StringDecoder } from 'node:string_decoder'

/**
 * Splits a byte stream into lines where readline does (`\n`, `\r\n`, `\r`, a `\r\n` split
 * between chunks counted once), keeping at most `keep` characters of each line and dropping the
 * rest as it arrives. readline holds a whole line until its end comes, so a process that wrote
 * stderr without a newline grew the gateway's memory for as long as it wrote. Of a line cut so,
 * its last `tail` characters are kept too and handed over with it (the redactor joins a line's
 * end to the next line: a value split over the two). Linear in what it reads; holds at most
 * `keep` characters, twice `tail` and one chunk.
 */
export class LineSplitter {
  private line = ''
  /** The last characters past the cut of a line longer than `keep` (between `tail` and twice it). */
  private last = ''
  private cut = false
  /** The last chunk ended in `\r`: a `\n` opening the next one ends no second line. */
  private afterCr = false
  private readonly decoder = new StringDecoder('utf8')

  constructor(
    private readonly keep: number,
    /** A line, its first `keep` characters; `end`: its last `tail` ones, when it was longer. */
    private readonly online: (line: string, end?: string) => void,
    private readonly tail = 0,
  ) {}

  /** Characters held of the line not ended yet (never more than `keep` and twice `tail`). */
  get held(): number {
    return this.line.length + this.last.length
  }

  write(chunk: Buffer): void {
    this.text(this.decoder.write(chunk))
  }

  /** The stream ended: a last line without its newline is a line, as readline has it. */
  end(): void {
    this.text(this.decoder.end())
    if (this.line.length > 0) this.emit()
  }

  private text(s: string): void {
    let i = 0
    if (this.afterCr && s.charCodeAt(0) === 10) i = 1
    if (s.length > 0) this.afterCr = false
    // Each index is searched again only once passed: one read of the chunk, however many lines.
    let lf = s.indexOf('\n', i)
    let cr = s.indexOf('\r', i)
    while (i < s.length) {
      if (lf !== -1 && lf < i) lf = s.indexOf('\n', i)
      if (cr !== -1 && cr < i) cr = s.indexOf('\r', i)
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr)
      if (end === -1) {
        this.add(s, i, s.length)
        return
      }
      this.add(s, i, end)
      this.emit()
      i = end + 1
      if (s.charCodeAt(end) === 13) {
        if (i === s.length) this.afterCr = true
        else if (s.charCodeAt(i) === 10) i++
      }
    }
  }

  private add(s: string, from: number, to: number): void {
    const room = this.keep - this.line.length
    if (room > 0 && to > from) this.line += s.slice(from, Math.min(to, from + room))
    const past = from + Math.max(0, room)
    if (to <= past) return
    this.cut = true
    if (this.tail === 0) return
    // Trimmed once it holds twice what is kept: each character is copied a bounded number of
    // times, however small the chunks.
    this.last += s.slice(Math.max(past, to - this.tail), to)
    if (this.last.length > 2 * this.tail) this.last = this.last.slice(-this.tail)
  }

  private emit(): void {
    const line = this.line
    // Its end as written: what was kept of it, then what came past the cut (all of it while
    // that is shorter than `tail`: only trimmed past twice that).
    const end = this.cut ? (this.line + this.last).slice(-this.tail) : undefined
    this.line = ''
    this.last = ''
    this.cut = false
    this.online(line, end)
  }
}
