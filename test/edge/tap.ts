// A TCP relay between nginx and a gateway replica that passes every byte through untouched
// and records the head of each request nginx sent: what the replica received, exactly.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

/** One request as nginx sent it upstream. */
export interface Tapped {
  method: string
  target: string
  /** The Host header's value, as sent (undefined when absent). */
  host: string | undefined
}

/** A running relay. */
export interface Tap {
  /** 127.0.0.1:port, to list in REPLICAS instead of the replica's own address. */
  address: string
  /** Every request head seen so far, in order of arrival. */
  seen: Tapped[]
  close(): Promise<void>
}

/**
 * Relays 127.0.0.1:0 to `target` (host:port). Request bodies are skipped by their
 * Content-Length: nginx buffers a client's body and always sends its length upstream; a
 * chunked request body stops the recording of that connection (recorded as method "?").
 */
export async function startTap(target: string): Promise<Tap> {
  const to = new URL(`http://${target}`)
  const seen: Tapped[] = []
  const sockets = new Set<Socket>()
  const track = (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  }
  const server = createServer((client) => {
    const upstream = connect(Number(to.port), to.hostname)
    track(client)
    track(upstream)
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => b.destroy())
      a.on('close', () => b.destroy())
    }
    upstream.pipe(client)
    let buffer = Buffer.alloc(0)
    let skip = 0
    let lost = false
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk)
      if (lost) return
      buffer = Buffer.concat([buffer, chunk])
      for (;;) {
        const skipped = Math.min(skip, buffer.length)
        buffer = buffer.subarray(skipped)
        skip -= skipped
        const end = skip > 0 ? -1 : buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        const [line = '', ...fields] = buffer.subarray(0, end).toString('latin1').split('\r\n')
        const header = (name: string) =>
          fields
            .find((f) => f.toLowerCase().startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trim()
        const [method = '', path = ''] = line.split(' ')
        buffer = buffer.subarray(end + 4)
        if (header('transfer-encoding') !== undefined) {
          seen.push({ method: '?', target: path, host: header('host') })
          lost = true
          return
        }
        seen.push({ method, target: path, host: header('host') })
        skip = Number(header('content-length') ?? 0)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    address: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      }),
  }
}
