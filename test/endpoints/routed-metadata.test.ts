// On a routed host, only its `/mcp` is the routed resource: every other path of that host
// (`/mcp/<server>`, an endpoint's own path) names its own resource, as on the public URL, in its
// metadata and in its 401 challenge. A client checks that the metadata's `resource` is the URL it
// used (RFC 9728 §3.3), so naming the host's `/mcp` there would fail it.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { startStack, type Stack } from '../helpers/stack.js'

const TOOLS = 'tools.example.test'
const NOTES = 'notes.example.test'

let stack: Stack
let port: string
before(async () => {
  stack = await startStack({
    config: {
      endpoints: { all: { servers: '*' } },
      hosts: { [TOOLS]: { endpoint: 'all' }, [NOTES]: { server: 'notes' } },
    },
  })
  port = new URL(stack.url).port
})
after(() => stack.close())

async function prm(host: string, path: string): Promise<string> {
  const res = await request(`${stack.url}/.well-known/oauth-protected-resource${path}`, {
    headers: { host },
  })
  assert.equal(res.statusCode, 200, `${host}${path}`)
  return ((await res.body.json()) as { resource: string }).resource
}

async function challenge(host: string, path: string): Promise<string> {
  const res = await request(`${stack.url}${path}`, {
    method: 'POST',
    headers: {
      host,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: '{}',
  })
  await res.body.dump()
  assert.equal(res.statusCode, 401)
  return /resource_metadata="([^"]+)"/.exec(String(res.headers['www-authenticate']))![1]!
}

describe('metadata on a routed host', () => {
  const cases: { host: string; path: string; resource: (p: string) => string }[] = [
    { host: TOOLS, path: '/mcp', resource: (p) => `http://${TOOLS}:${p}/mcp` },
    { host: NOTES, path: '/mcp', resource: (p) => `http://${NOTES}:${p}/mcp` },
    // Other paths of a routed host are the public URL's resources (here, loopback's).
    { host: TOOLS, path: '/mcp/all', resource: (p) => `http://127.0.0.1:${p}/mcp/all` },
    { host: NOTES, path: '/mcp/notes', resource: (p) => `http://127.0.0.1:${p}/mcp/notes` },
    { host: TOOLS, path: '/mcp/notes', resource: (p) => `http://127.0.0.1:${p}/mcp/notes` },
  ]
  for (const c of cases) {
    it(`${c.host}${c.path}: metadata and challenge name ${c.resource('<port>')}`, async () => {
      const resource = c.resource(port)
      assert.equal(await prm(c.host, c.path), resource)
      const meta = await challenge(c.host, c.path)
      assert.equal(
        meta,
        `${new URL(resource).origin}/.well-known/oauth-protected-resource${new URL(resource).pathname}`,
      )
    })
  }
})
