// Review (issue 10, claims 7 and 8): Host handling, on raw sockets. What held is asserted as
// such; two informational gaps fail:
// - an absolute-form request target (RFC 9112 §3.2.2: its authority replaces Host) naming a
//   foreign host passes the guard, which reads only the Host header;
// - a loopback Host other than the three loopback names (127.9.9.9) makes the metadata name a
//   resource that no token can carry: neither the gateway nor the dev IdP knows it.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { rawHttp } from '../helpers/raw-http.js'
import { startStack, type Stack } from '../helpers/stack.js'

let stack: Stack
let port: number
before(async () => {
  stack = await startStack({})
  port = Number(new URL(stack.url).port)
})
after(() => stack.close())

/** Sends raw bytes, returns the status line's code and the body. */
const raw = (text: string) => rawHttp(port, text)

const get = (target: string, headers: string[]) =>
  raw(
    `GET ${target} HTTP/1.1\r\n${headers.map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n`,
  )

describe('review: Host variants (held)', () => {
  it('duplicate Host headers, either order, are refused', async () => {
    assert.equal((await get('/whoami', ['Host: evil.example', 'Host: localhost'])).status, 403)
    assert.equal((await get('/whoami', ['Host: localhost', 'Host: evil.example'])).status, 403)
  })

  it('a trailing dot, an IP literal off the probe paths, a missing Host, user-info tricks: refused', async () => {
    assert.equal((await get('/whoami', ['Host: localhost.'])).status, 403)
    assert.equal((await get('/whoami', ['Host: 10.0.0.1'])).status, 403)
    assert.equal(
      (await get('/.well-known/oauth-protected-resource/mcp/echo', ['Host: 10.0.0.1'])).status,
      403,
    )
    assert.equal((await get('/metrics/../whoami', ['Host: 10.0.0.1'])).status, 403)
    assert.equal((await get('/metrics/%2e%2e/whoami', ['Host: 10.0.0.1'])).status, 403)
    assert.equal((await raw('GET /whoami HTTP/1.0\r\n\r\n')).status, 400)
    assert.ok(
      [400, 403].includes((await get('/whoami', ['Host: localhost:80@evil.example'])).status),
    )
    assert.equal((await get('http://localhost/whoami', ['Host: evil.example'])).status, 403)
  })
})

describe('review: Host variants (informational gaps)', () => {
  it('an absolute-form target naming a foreign host is refused like that Host would be', async () => {
    const res = await get('http://evil.example/whoami', ['Host: localhost'])
    assert.equal(
      res.status,
      403,
      `GET http://evil.example/whoami passed the host guard: ${res.status} ${res.body.slice(0, 100)}`,
    )
  })

  it('metadata never names a resource the gateway does not accept as an audience', async () => {
    const res = await get('/.well-known/oauth-protected-resource/mcp/echo', ['Host: 127.9.9.9'])
    assert.equal(res.status, 200)
    const { resource } = JSON.parse(res.body) as { resource: string }
    const accepted =
      stack.gateway.publicUrl === stack.url
        ? [
            `http://127.0.0.1:${port}/mcp/echo`,
            `http://localhost:${port}/mcp/echo`,
            `http://[::1]:${port}/mcp/echo`,
          ]
        : []
    assert.ok(accepted.includes(resource), `metadata names ${resource}, which no token can carry`)
  })
})
