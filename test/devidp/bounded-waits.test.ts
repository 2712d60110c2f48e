// The OAuth test helpers never wait on a silent server for undici's 300 s (node --test's file
// timeout in CI, which fails the file with no message): they fail the test, naming the URL.
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { after, before, it } from 'node:test'
import { request } from '../helpers/oauth-flow.js'

const held = new Set<Socket>()
// Accepts connections and reads requests, never answers; on /partial, answers headers and the
// first bytes of a body that never ends.
const silent = createServer((socket) => {
  held.add(socket)
  socket.on('error', () => {})
  socket.once('data', (head) => {
    if (head.toString().includes(' /partial '))
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\nabc')
  })
})
let url: string
let partial: string
before(async () => {
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`
  url = `${origin}/.well-known/openid-configuration`
  partial = `${origin}/partial`
})
after(async () => {
  for (const s of held) s.destroy()
  await new Promise<void>((resolve) => silent.close(() => resolve()))
})

it('a request a server never answers fails with its method and URL', async () => {
  await assert.rejects(request(url, { headersTimeout: 200 }), {
    message: `GET ${url}: no answer within 200 ms`,
  })
  await assert.rejects(request(url, { method: 'POST', body: 'x', headersTimeout: 200 }), {
    message: `POST ${url}: no answer within 200 ms`,
  })
  assert.equal(held.size, 2, 'both requests reached the server')
})

it('the whole request is bounded: the wait for its headers and its body, each naming the URL', async () => {
  await assert.rejects(request(url, {}, 200), {
    message: `GET ${url}: no answer within 200 ms`,
  })
  // The headers came; the body stalls after three bytes, well within undici's idle timeout.
  const res = await request(partial, { method: 'POST', body: 'x', bodyTimeout: 60_000 }, 300)
  assert.equal(res.statusCode, 200)
  await assert.rejects(res.body.text(), {
    message: `POST ${partial}: no answer within 300 ms`,
  })
})
