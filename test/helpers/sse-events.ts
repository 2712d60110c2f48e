// Reading a session-era SSE response event by event, as it arrives: ids, data and retry hints,
// so tests can resume a stream (Last-Event-ID) from exactly the event they saw last.
import assert from 'node:assert/strict'

/** One server-sent event: the fields the tests look at. */
export interface Sse {
  id?: string
  data: string
  retry?: number
}

/** Reads an event stream as it arrives; comments (keep-alives) are skipped. */
export class Events {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>
  private readonly decoder = new TextDecoder()
  private buffer = ''
  readonly seen: Sse[] = []

  constructor(res: Response) {
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
    this.reader = res.body!.getReader()
  }

  /** The next event, or undefined when the stream has ended. */
  async next(): Promise<Sse | undefined> {
    for (;;) {
      const end = this.buffer.indexOf('\n\n')
      if (end !== -1) {
        const block = this.buffer.slice(0, end)
        this.buffer = this.buffer.slice(end + 2)
        const event = parse(block)
        if (event) {
          this.seen.push(event)
          return event
        }
        continue
      }
      const { value, done } = await this.reader.read()
      if (done) return undefined
      this.buffer += this.decoder.decode(value, { stream: true })
    }
  }

  /** Every event until the stream ends. */
  async rest(): Promise<Sse[]> {
    const out: Sse[] = []
    for (let e = await this.next(); e !== undefined; e = await this.next()) out.push(e)
    return out
  }

  /** Stops reading: the client goes away. */
  cancel(): Promise<void> {
    return this.reader.cancel()
  }

  /** Reads until an event matches. */
  async until(match: (e: Sse) => boolean): Promise<Sse> {
    for (let e = await this.next(); e !== undefined; e = await this.next()) if (match(e)) return e
    throw new Error(`stream ended first; saw ${JSON.stringify(this.seen)}`)
  }
}

function parse(block: string): Sse | undefined {
  const e: Sse = { data: '' }
  const data: string[] = []
  let any = false
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
    any = true
    if (field === 'id') e.id = value
    else if (field === 'data') data.push(value)
    else if (field === 'retry') e.retry = Number(value)
  }
  e.data = data.join('\n')
  return any ? e : undefined
}
