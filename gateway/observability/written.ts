// Bytes given to a sonic-boom stream and not yet written out. sonic-boom says a flush is done
// (or, without `minLength`, says so at once) while lines given during a write in flight are
// still in memory; the log's exit flush (logger.ts) waits for this count instead (the audit
// file counts its lines itself: audit-sink.ts).

/** What of a sonic-boom stream the count needs: each write's byte count, told when it lands. */
interface Writes {
  on(event: 'write', listener: (n: number) => void): unknown
}

/** The count of one stream, and who waits for its next write to land. */
export interface Written {
  /** Bytes given and not yet written out. */
  readonly outstanding: number
  /** Counts a chunk of `bytes` handed to the stream. */
  given(bytes: number): void
  /** Calls `fn` once, when the next write lands (or {@link wake} is called). */
  afterNextWrite(fn: () => void): void
  /** Calls the waiters now (a write failed: they look again, and give up). */
  wake(): void
  /** Resolves once every byte given so far is written out. */
  drained(): Promise<void> | undefined
}

/** Counts `stream`'s bytes from its own 'write' events. */
export function countWritten(stream: Writes): Written {
  let outstanding = 0
  let waiting: (() => void)[] = []
  const wake = () => {
    const next = waiting
    waiting = []
    for (const fn of next) fn()
  }
  stream.on('write', (n) => {
    outstanding -= n
    wake()
  })
  const afterNextWrite = (fn: () => void) => void waiting.push(fn)
  return {
    get outstanding() {
      return outstanding
    },
    given: (bytes) => void (outstanding += bytes),
    afterNextWrite,
    wake,
    drained: () => {
      if (outstanding <= 0) return undefined
      return new Promise<void>((resolve) => {
        const look = () => (outstanding <= 0 ? resolve() : afterNextWrite(look))
        afterNextWrite(look)
      })
    },
  }
}
