// An HTTP client on a bare socket that can stop reading an event stream: what a stalled or
// malicious client does. HTTP/1.0, so the body is the bytes until the server closes (no chunked
// framing to undo) and the server's writes meet the socket's own backpressure.
import { connect, type Socket } from 'node:net'

/** One server-sent event: the fields the tests look at. */
export interface Sse {
  id?: string
  event?: string
  data: string
}

export class RawSse {
  status = 0
  readonly headers: Record<string, string> = {}
  /** Every event read so far, in order. */
  readonly events: Sse[] = []
  private buffer = ''
  private head = true
  private ended = false
  private check: () => void = () => {}
  /** The messages of `events` before `parsedUpTo`, parsed (see {@link messages}). */
  private readonly parsed: Record<string, any>[] = []
  private parsedUpTo = 0

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => this.onData(text))
    socket.on('close', () => {
      this.ended = true
      this.check()
    })
    socket.on('error', () => {})
  }

  /**
   * Sends one request and reads its response until `until` holds (by default: the headers
   * arrived), then stops reading: the socket is paused, and what the server writes next waits
   * in the kernel's buffers, then in the server.
   */
  static async open(
    url: string,
    o: { method?: string; headers: Record<string, string>; body?: unknown },
    until: (s: RawSse) => boolean = () => true,
  ): Promise<RawSse> {
    const { hostname, port, pathname, search } = new URL(url)
    const socket = connect(Number(port), hostname)
    await new Promise<void>((resolve, reject) =>
      socket.once('connect', resolve).once('error', reject),
    )
    const raw = new RawSse(socket)
    const body = o.body === undefined ? '' : JSON.stringify(o.body)
    const headers = {
      host: `${hostname}:${port}`,
      ...o.headers,
      ...(o.body === undefined
        ? {}
        : {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(body)),
          }),
    }
    socket.write(
      `${o.method ?? 'GET'} ${pathname}${search} HTTP/1.0\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n${body}`,
    )
    await raw.until((s) => !s.head && until(s))
    socket.pause()
    return raw
  }

  /** Reads on until `done` holds (or the stream ends). */
  async until(done: (s: RawSse) => boolean): Promise<this> {
    this.socket.resume()
    await new Promise<void>((resolve) => {
      this.check = () => {
        if (this.ended || done(this)) resolve()
      }
      this.check()
    })
    return this
  }

  /** Reads on to the end of the response. */
  async rest(): Promise<Sse[]> {
    await this.until(() => false)
    return this.events
  }

  /** Stops reading again. */
  pause(): void {
    this.socket.pause()
  }

  /** The client goes away. */
  destroy(): void {
    this.socket.destroy()
  }

  /**
   * The JSON-RPC messages among the events read. Each event is parsed once: a test waits with
   * `until(() => s.messages()...)`, asked again at every chunk of a flood of thousands.
   */
  messages(): Record<string, any>[] {
    for (; this.parsedUpTo < this.events.length; this.parsedUpTo++) {
      const e = this.events[this.parsedUpTo]!
      if (e.data !== '' && (e.event === undefined || e.event === 'message'))
        this.parsed.push(JSON.parse(e.data))
    }
    return [...this.parsed]
  }

  private onData(text: string): void {
    this.buffer += text
    if (this.head) {
      const end = this.buffer.indexOf('\r\n\r\n')
      if (end === -1) return
      const [status, ...lines] = this.buffer.slice(0, end).split('\r\n')
      this.status = Number(status!.split(' ')[1])
      for (const line of lines) {
        const colon = line.indexOf(':')
        this.headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
      }
      this.buffer = this.buffer.slice(end + 4)
      this.head = false
    }
    for (let end = this.buffer.indexOf('\n\n'); end !== -1; end = this.buffer.indexOf('\n\n')) {
      const event = parse(this.buffer.slice(0, end))
      this.buffer = this.buffer.slice(end + 2)
      if (event) this.events.push(event)
    }
    this.check()
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
    else if (field === 'event') e.event = value
    else if (field === 'data') data.push(value)
  }
  e.data = data.join('\n')
  return any ? e : undefined
}
