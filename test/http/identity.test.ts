// Who a token names and what it may do, end to end with real tokens: `sub` must be a non-empty
// string, roles come only from the configured claim paths in the configured form, and a
// token's scopes count only within what the user's roles allow.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { sseData } from '../helpers/sse.js'
import { startStack, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'id', version: '0' },
  },
}

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

async function post(server: string, token: string, body: unknown, sid?: string) {
  const res = await request(stack.local(server), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      ...(sid ? { 'mcp-session-id': sid } : {}),
    },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  const data = sseData(text)
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: data.length
      ? JSON.parse(data.at(-1)!)
      : text.startsWith('{')
        ? JSON.parse(text)
        : undefined,
  }
}

async function session(server: string, token: string): Promise<string> {
  const res = await post(server, token, INIT)
  assert.equal(res.status, 200, res.text)
  const sid = res.headers['mcp-session-id'] as string
  await post(server, token, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
  return sid
}

async function whoami(token: string) {
  const res = await request(`${stack.url}/whoami`, {
    headers: { authorization: `Bearer ${token}` },
  })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, any> }
}

describe('sub must be a non-empty string', () => {
  const subs: [string, unknown][] = [
    ['an empty string', ''],
    ['a number', 7],
    ['zero', 0],
    ['a list holding the user', ['alice']],
    ['an empty list', []],
    ['an object', { sub: 'alice' }],
    ['another object', {}],
    ['true', true],
    ['false', false],
    ['null', null],
  ]
  for (const [what, sub] of subs) {
    it(`sub as ${what} is 401 invalid_token, on the MCP endpoint and on /whoami`, async () => {
      const token = await stack.forge({ sub: sub as string })
      const res = await post('echo', token, INIT)
      assert.equal(res.status, 401, res.text)
      assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/)
      assert.match(res.json.error.message, /sub claim must be a non-empty string/)
      assert.equal((await whoami(token)).status, 401)
    })
  }

  it('a token whose sub is ["alice"] cannot reach alice\'s session (control: alice can)', async () => {
    const alice = await stack.forge({ sub: 'alice' })
    const sid = await session('echo', alice)
    const ping = { jsonrpc: '2.0', id: 2, method: 'ping' }
    assert.equal((await post('echo', alice, ping, sid)).status, 200)
    const lookalike = await post('echo', await stack.forge({ sub: ['alice'] as never }), ping, sid)
    assert.equal(lookalike.status, 401)
  })
})

describe('roles come from the configured claim paths, in the configured form', () => {
  // The default roleClaims: realm_access.roles and resource_access.mcp-edge.roles.
  const lookalikes: [string, Record<string, unknown>][] = [
    ['a top-level claim named realm_access.roles', { 'realm_access.roles': ['mcp-admin'] }],
    ['a client named "mcp-edge.roles"', { resource_access: { 'mcp-edge.roles': ['mcp-admin'] } }],
    ['realm roles as a string', { realm_access: { roles: 'mcp-admin' } }],
    ['realm roles as a space-separated string', { realm_access: { roles: 'mcp-user mcp-admin' } }],
    [
      'realm roles mixing strings and other values',
      { realm_access: { roles: ['mcp-admin', { x: 1 }] } },
    ],
    ['realm roles nested one level too deep', { realm_access: { roles: [['mcp-admin']] } }],
    ["an unrelated client's roles", { resource_access: { other: { roles: ['mcp-admin'] } } }],
    ['a roles claim the config does not name', { roles: ['mcp-admin'], groups: ['mcp-admin'] }],
  ]
  for (const [what, claims] of lookalikes) {
    it(`${what}: no role, no access (control: the real claim gives the role)`, async () => {
      const token = await stack.forge({
        aud: stack.endpoint('notes'),
        realm_access: undefined,
        ...claims,
      })
      const me = await whoami(token)
      assert.equal(me.status, 200)
      assert.deepEqual(me.body.roles, [])
      assert.equal(me.body.servers.notes.access, 'challenge')
      const res = await post('notes', token, INIT)
      assert.equal(res.status, 403, res.text)
    })
  }

  it('control: realm_access.roles as a list of strings gives the role', async () => {
    const me = await whoami(await stack.forge({ realm_access: { roles: ['mcp-admin'] } }))
    assert.deepEqual(me.body.roles, ['mcp-admin'])
    assert.equal(me.body.servers.notes.access, 'allow')
  })
})

describe("a token's scopes count only within the user's roles", () => {
  const call = (name: string, id: number) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: { name: 'x', text: 'y' } },
  })

  it("a developer's read-only token calls only read tools; write_note is listed for a step-up (-32011), delete_note hidden", async () => {
    const token = await stack.token('dev', { server: 'notes', scope: 'mcp:read' })
    const me = await whoami(token)
    assert.deepEqual(me.body.grantedScopes, ['mcp:read'])
    assert.equal(me.body.scopeBasis, 'scopes within roles')
    const sid = await session('notes', token)
    const list = await post('notes', token, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, sid)
    // write_note stays listed, marked as needing a step-up the roles allow; delete_note (admin) is hidden.
    const tools = list.json.result.tools as { name: string; _meta?: Record<string, unknown> }[]
    assert.deepEqual(tools.map((t) => t.name).sort(), ['list_notes', 'read_note', 'write_note'])
    assert.deepEqual(tools.find((t) => t.name === 'write_note')!._meta?.['mcp-edge/stepUp'], {
      scopes: ['mcp:read', 'mcp:write'],
    })
    assert.equal(tools.find((t) => t.name === 'read_note')!._meta?.['mcp-edge/stepUp'], undefined)
    const write = await post('notes', token, call('write_note', 3), sid)
    assert.equal(write.status, 403, write.text)
    assert.match(
      String(write.headers['www-authenticate']),
      /error="insufficient_scope", error_description="[^"]*", scope="mcp:read mcp:write"/,
    )
    assert.equal(write.json.error.code, -32011)
    assert.equal(write.json.id, 3, 'the step-up body names the request')
  })

  it('the same developer with no scope claim: the roles decide, and write_note runs', async () => {
    const token = await stack.token('dev', { server: 'notes' })
    assert.equal((await whoami(token)).body.scopeBasis, 'roles')
    const sid = await session('notes', token)
    const write = await post('notes', token, call('write_note', 3), sid)
    assert.equal(write.status, 200, write.text)
    assert.ok(write.json.result, write.text)
  })

  it('a token carrying mcp:admin without the role gets nothing for it', async () => {
    const token = await stack.token('alice', {
      server: 'notes',
      scope: 'mcp:read mcp:write mcp:admin',
    })
    const me = await whoami(token)
    assert.deepEqual(me.body.grantedScopes, ['mcp:read'])
    const sid = await session('notes', token)
    for (const [i, tool] of ['write_note', 'delete_note'].entries()) {
      const res = await post('notes', token, call(tool, 10 + i), sid)
      assert.equal(res.status, 403, `${tool}: ${res.text}`)
      assert.equal(res.json.error.code, -32011)
    }
    const forged = await stack.forge({
      scope: 'mcp:read mcp:admin',
      realm_access: { roles: ['mcp-user'] },
    })
    assert.deepEqual((await whoami(forged)).body.grantedScopes, ['mcp:read'])
  })

  it('2026-07-28 requests follow the same rule', async () => {
    const token = await stack.token('dev', { server: 'notes', scope: 'mcp:read' })
    const res = await request(stack.local('notes'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'write_note',
      },
      body: JSON.stringify({
        ...call('write_note', 5),
        params: {
          name: 'write_note',
          arguments: { name: 'x', text: 'y' },
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    })
    const body = (await res.body.json()) as { id: number; error: { code: number } }
    assert.equal(res.statusCode, 403)
    assert.equal(body.id, 5)
    assert.equal(body.error.code, -32011)
  })
})
