// One raw HTTP/1.1 exchange over a socket, for requests no client library sends as written
// (hostile Host headers, absolute-form targets, duplicate headers).
import { connect } from 'node:net'

/**
 * Sends `text` to 127.0.0.1:`port`; resolves the answer's status code and body once the
 * connection closes (send `Connection: close`), or what came before an error.
 */
export function rawHttp(port: number, text: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(text))
    let out = ''
    s.on('data', (d) => (out += d))
    const done = () =>
      resolve({
        status: Number(out.split(' ')[1] ?? 0),
        body: out.split('\r\n\r\n').slice(1).join('\r\n\r\n'),
      })
    s.on('close', done)
    s.on('error', done)
  })
}
