// The OAuth test helpers never wait on a silent server for undici's 300 s (node --test's file
// timeout in CI, which fails the file with no message): they fail the test, naming the URL.
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { after, before, it } from 'node:test'
import { request } from '../helpers/oauth-flow.js'

const held = new Set<Socket>()
// Accepts connections and reads requests, never answers.
const silent = createServer((socket) => {
  held.add(socket)
  socket.on('error', () => {})
})
let url: string
before(async () => {
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/.well-known/openid-configuration`
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
