// A gateway behind a proxy: resource ids, audiences and metadata come from publicUrl, never
// from the request's Host (checklist A3, A5, C4).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { startStack, type Stack } from '../helpers/stack.js'

const PUBLIC = 'https://MCP.example.com/edge'.replace('MCP', 'mcp')
const INIT = initBody()

let stack: Stack
before(async () => {
  stack = await startStack({ publicUrl: PUBLIC })
})
after(() => stack.close())

async function init(path: string, token: string) {
  const res = await request(`${stack.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify(INIT),
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

describe('publicUrl with a path', () => {
  it('metadata lives at the RFC 9728 path for the public resource, and at the stripped path', async () => {
    for (const path of [
      '/.well-known/oauth-protected-resource/edge/mcp/echo',
      '/.well-known/oauth-protected-resource/mcp/echo',
    ]) {
      // The public name or a loopback one: the resource is the public URL's either way.
      for (const host of ['mcp.example.com', 'localhost']) {
        const res = await request(`${stack.url}${path}`, { headers: { host } })
        assert.equal(res.statusCode, 200, path)
        const doc = (await res.body.json()) as { resource: string }
        assert.equal(doc.resource, `${PUBLIC}/mcp/echo`)
      }
      const evil = await request(`${stack.url}${path}`, { headers: { host: 'evil.example' } })
      assert.equal(evil.statusCode, 403, `${path}: a foreign Host is refused on metadata too`)
      await evil.body.dump()
    }
  })

  it('Host is checked by name: the public name passes with or without a port, others get 403', async () => {
    const cases = [
      { host: 'mcp.example.com', status: 401 },
      { host: 'mcp.example.com:8443', status: 401 },
      { host: 'evil.example', status: 403 },
    ]
    for (const c of cases) {
      const res = await request(`${stack.url}/mcp/echo`, {
        method: 'POST',
        headers: { host: c.host },
      })
      assert.equal(res.statusCode, c.status, c.host)
      await res.body.dump()
    }
  })

  it('the challenge points at the public metadata URL', async () => {
    const res = await request(`${stack.url}/mcp/echo`, { method: 'POST' })
    assert.equal(res.statusCode, 401)
    assert.match(
      res.headers['www-authenticate'] as string,
      /resource_metadata="https:\/\/mcp\.example\.com\/\.well-known\/oauth-protected-resource\/edge\/mcp\/echo"/,
    )
    await res.body.dump()
  })

  it('a token for the public resource works with and without the base path; one for the local address does not', async () => {
    const token = await stack.token('alice')
    for (const path of ['/mcp/echo', '/edge/mcp/echo']) {
      const res = await init(path, token)
      assert.equal(res.status, 200, `${path} ${res.text}`)
    }
    const upper = await stack.forge({ aud: `HTTPS://MCP.EXAMPLE.COM/edge/mcp/echo` })
    assert.equal(
      (await init('/mcp/echo', upper)).status,
      200,
      'scheme and host compare case-insensitively',
    )
    for (const aud of [`${stack.url}/mcp/echo`, `${PUBLIC}/mcp/echo/`, `${PUBLIC}/MCP/echo`]) {
      const res = await init('/mcp/echo', await stack.forge({ aud }))
      assert.equal(res.status, 401, aud)
    }
  })
})
