// Server, endpoint and host names come from request paths and Host headers, and are looked up in
// the configuration: names of Object.prototype's members must find nothing, on every route, even
// with a token the gateway accepts everywhere (a gateway-wide audience).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { startStack, type Stack } from '../helpers/stack.js'

const NAMES = [
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'isPrototypeOf',
  '__defineGetter__',
  'propertyIsEnumerable',
]
const AUDIENCE = 'https://gateway-wide.example'

let stack: Stack
before(async () => {
  stack = await startStack({
    auth: { audience: AUDIENCE },
    config: { endpoints: { all: { path: '/mcp', servers: '*' } } },
  })
})
after(() => stack.close())

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'x', version: '0' },
  },
})

describe('names of Object.prototype members are no server, endpoint or host', () => {
  for (const name of NAMES) {
    it(`${name}: metadata, both transports and the legacy POST answer 404, and nothing starts`, async () => {
      const token = await stack.forge({ aud: AUDIENCE })
      const headers = {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      }
      const cases: [string, string, string | undefined][] = [
        ['GET', `/.well-known/oauth-protected-resource/mcp/${name}`, undefined],
        ['GET', `/.well-known/oauth-protected-resource/sse/${name}`, undefined],
        ['POST', `/mcp/${name}`, initialize],
        ['GET', `/sse/${name}`, undefined],
        ['POST', `/messages/${name}?sessionId=x`, initialize],
      ]
      for (const [method, path, body] of cases) {
        const res = await request(`${stack.url}${path}`, { method, headers, body })
        const text = await res.body.text()
        assert.equal(res.statusCode, 404, `${method} ${path}: ${res.statusCode} ${text}`)
        assert.match(text, /"code":-32001/, `${method} ${path}`)
      }
      // As a Host name: refused before anything else.
      const res = await request(`${stack.url}/mcp`, {
        method: 'POST',
        headers: { ...headers, host: name },
        body: initialize,
      })
      await res.body.dump()
      assert.equal(res.statusCode, 403)
    })
  }

  it('no log line says a request failed inside the gateway', () => {
    assert.ok(
      !stack.logLines.some((l) => /"level":50/.test(l)),
      stack.logLines.filter((l) => /"level":50/.test(l)).join('\n'),
    )
  })
})
