// The walking gateway end to end: a real IdP, the real gateway, real stdio processes, the SDK
// client over real HTTP. Every refusal asserts its status, its header and that no process saw it.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { authorizationCodeFlow, registerPublicClient } from '../helpers/oauth-flow.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ACCEPT = 'application/json, text/event-stream'
const INIT = initBody()

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

async function connect(
  server: string,
  token: string,
  o: { capabilities?: Record<string, unknown>; setup?: (c: Client) => void } = {},
) {
  const client = new Client({ name: 'test', version: '0' }, { capabilities: o.capabilities ?? {} })
  o.setup?.(client)
  const transport = new StreamableHTTPClientTransport(new URL(stack.local(server)), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  })
  await client.connect(transport)
  return { client, transport }
}

function textOf(result: unknown): string {
  const content = (result as { content: { type: string; text: string }[] }).content
  return content.map((c) => c.text).join('')
}

/** POSTs to `server`'s MCP endpoint on the stack. */
const post = (server: string, body: unknown, headers: Record<string, string> = {}) =>
  postMcp(stack.local(server), body, headers)

async function openSession(server: string, token: string): Promise<string> {
  const res = await post(server, INIT, { authorization: `Bearer ${token}` })
  assert.equal(res.status, 200, res.text)
  const sid = res.headers['mcp-session-id'] as string
  await post(
    server,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
  )
  return sid
}

async function gone(pid: number): Promise<boolean> {
  const alive = () => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  await waitFor(() => !alive(), `process ${pid} ended`)
  return true
}

function recorded(): { method?: string; params?: { name?: string } }[] {
  const file = join(stack.dir, 'fixture-record.jsonl')
  try {
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  } catch {
    return []
  }
}

describe('MCP through the gateway with the SDK client', () => {
  it('initialize → tools/list → tools/call on echo', async () => {
    const { client } = await connect('echo', await stack.token('alice'))
    try {
      assert.equal(client.getServerVersion()?.name, 'echo')
      const { tools } = await client.listTools()
      assert.deepEqual(
        tools.map((t) => t.name),
        ['echo'],
      )
      assert.equal(
        textOf(await client.callTool({ name: 'echo', arguments: { text: 'hi there' } })),
        'hi there',
      )
    } finally {
      await client.close()
    }
  })

  it('initialize → tools/list → tools/call on notes, filtered per role', async () => {
    const cases = [
      { client: 'alice', tools: ['list_notes', 'read_note'] },
      { client: 'dev', tools: ['list_notes', 'read_note', 'write_note'] },
      { client: 'admin', tools: ['delete_note', 'list_notes', 'read_note', 'write_note'] },
    ]
    for (const c of cases) {
      const { client } = await connect('notes', await stack.token(c.client, { server: 'notes' }))
      try {
        const { tools } = await client.listTools()
        assert.deepEqual(tools.map((t) => t.name).sort(), c.tools, c.client)
        assert.match(
          textOf(await client.callTool({ name: 'read_note', arguments: { name: 'welcome' } })),
          /./,
        )
      } finally {
        await client.close()
      }
    }
  })

  it('relays notifications and progress of a call, and a server→client request round trip', async () => {
    const logs: unknown[] = []
    const { client } = await connect('fixture', await stack.token('alice', { server: 'fixture' }), {
      capabilities: { sampling: {} },
      setup: (c) => {
        c.setNotificationHandler('notifications/message', (n) => void logs.push(n.params))
        c.setRequestHandler('sampling/createMessage', (req) => {
          const content = req.params.messages[0]?.content as { text?: string }
          return {
            role: 'assistant',
            model: 'm',
            content: { type: 'text', text: `re: ${content.text}` },
          }
        })
      },
    })
    try {
      const progress: number[] = []
      const result = await client.callTool(
        { name: 'notify', arguments: { count: 3 } },
        { onprogress: (p) => void progress.push(p.progress) },
      )
      assert.equal(textOf(result), 'notified 3')
      assert.deepEqual(progress, [1, 2, 3])
      assert.equal(logs.length, 3)
      assert.equal(
        textOf(await client.callTool({ name: 'sample', arguments: { prompt: 'ping' } })),
        're: ping',
      )
    } finally {
      await client.close()
    }
  })

  it("a client in 'auto' version negotiation finds 2026-07-28 by server/discover and uses it", async () => {
    const client = new Client(
      { name: 'auto', version: '0' },
      { versionNegotiation: { mode: 'auto' } },
    )
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.local('echo')), {
        requestInit: { headers: { authorization: `Bearer ${await stack.token('alice')}` } },
      }),
    )
    try {
      assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28')
      assert.equal(
        textOf(await client.callTool({ name: 'echo', arguments: { text: 'auto' } })),
        'auto',
      )
    } finally {
      await client.close()
    }
  })

  it('an authorization-code + PKCE token from the dev user works at the gateway', async () => {
    const redirectUri = 'http://127.0.0.1:9/callback'
    const clientId = await registerPublicClient(stack.idp.issuer, redirectUri)
    const { access_token } = await authorizationCodeFlow({
      issuer: stack.idp.issuer,
      clientId,
      redirectUri,
      resource: stack.endpoint('echo'),
      scope: 'mcp:read',
    })
    const { client } = await connect('echo', access_token)
    try {
      assert.equal(
        textOf(await client.callTool({ name: 'echo', arguments: { text: 'pkce' } })),
        'pkce',
      )
    } finally {
      await client.close()
    }
  })
})

describe('401 and 400 from authentication', () => {
  const md = () => `resource_metadata="${stack.url}/.well-known/oauth-protected-resource/mcp/echo"`
  const cases: {
    name: string
    auth: () => Promise<string | undefined>
    status: number
    challenge: RegExp
  }[] = [
    {
      name: 'no Authorization header',
      auth: async () => undefined,
      status: 401,
      challenge: /^Bearer scope="mcp:read", resource_metadata="[^"]+"$/,
    },
    {
      name: 'another scheme',
      auth: async () => 'Basic dTpw',
      status: 401,
      challenge: /^Bearer scope="mcp:read", resource_metadata=/,
    },
    {
      name: 'two bearer headers',
      auth: async () => 'Bearer a, Bearer b',
      status: 400,
      challenge: /^Bearer error="invalid_request", error_description="[^"]+", /,
    },
    {
      name: 'not a JWT',
      auth: async () => 'Bearer abc.def',
      status: 401,
      challenge: /error="invalid_token", error_description="the access token is not a signed JWT"/,
    },
    {
      name: 'expired',
      auth: async () => `Bearer ${await stack.forge({ exp: Math.floor(Date.now() / 1000) - 300 })}`,
      status: 401,
      challenge: /error="invalid_token", error_description="the access token has expired"/,
    },
    {
      name: 'not yet valid',
      auth: async () => `Bearer ${await stack.forge({ nbf: Math.floor(Date.now() / 1000) + 600 })}`,
      status: 401,
      challenge: /error_description="the access token is not valid yet"/,
    },
    {
      name: 'wrong issuer',
      auth: async () => `Bearer ${await stack.forge({ iss: 'https://other.example' })}`,
      status: 401,
      challenge: /error_description="the token was issued by another issuer"/,
    },
    {
      name: 'wrong audience (another server)',
      auth: async () => `Bearer ${await stack.forge({ aud: stack.endpoint('notes') })}`,
      status: 401,
      challenge: /error_description="the token was issued for another resource"/,
    },
    {
      name: 'no audience',
      auth: async () => `Bearer ${await stack.forge({ aud: undefined })}`,
      status: 401,
      challenge: /error_description="the token has no audience"/,
    },
    {
      name: 'unknown key',
      auth: async () => `Bearer ${await stack.forge({}, { kid: 'nope' })}`,
      status: 401,
      challenge: /error_description="the token was signed with an unknown key"/,
    },
    {
      name: 'bad signature',
      auth: async () => `Bearer ${flip(await stack.forge({}))}`,
      status: 401,
      challenge: /error_description="the token signature is invalid"/,
    },
    {
      name: 'alg none',
      auth: async () => `Bearer ${unsecured()}`,
      status: 401,
      challenge: /error_description="the signing algorithm none is not accepted"/,
    },
    {
      name: 'HS256 (key confusion)',
      auth: async () => `Bearer ${hs256()}`,
      status: 401,
      challenge: /error_description="the signing algorithm HS256 is not accepted"/,
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const before = recorded().length
      const sessions = stack.gateway.registry.size
      const auth = await c.auth()
      const res = await post('echo', INIT, auth === undefined ? {} : { authorization: auth })
      assert.equal(res.status, c.status, res.text)
      const challenge = res.headers['www-authenticate'] as string
      assert.match(challenge, c.challenge)
      assert.ok(challenge.includes(md()), challenge)
      assert.equal(res.headers['mcp-session-id'], undefined)
      assert.equal(res.json().error.code < 0, true)
      assert.equal(stack.gateway.registry.size, sessions)
      assert.equal(recorded().length, before)
    })
  }

  it('401 bodies say Unauthorized (MCP Inspector 0.17 starts OAuth only on that word)', async () => {
    const res = await post('echo', INIT)
    assert.deepEqual(res.json(), {
      jsonrpc: '2.0',
      error: { code: -32001, message: 'Unauthorized: authentication required' },
      id: null,
    })
  })

  it('metadata answers browser preflights and carries CORS headers, misses included', async () => {
    const pre = await request(`${stack.url}/.well-known/oauth-protected-resource/mcp/echo`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:6274',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'mcp-protocol-version',
      },
    })
    assert.equal(pre.statusCode, 204)
    assert.equal(pre.headers['access-control-allow-origin'], '*')
    await pre.body.dump()
    const miss = await request(`${stack.url}/.well-known/openid-configuration`, {
      headers: { origin: 'http://localhost:6274' },
    })
    assert.equal(miss.statusCode, 404)
    assert.equal(miss.headers['access-control-allow-origin'], '*')
    await miss.body.dump()
  })

  it('the token in a query string is ignored (treated as no credentials)', async () => {
    const token = await stack.token('alice')
    const res = await request(`${stack.endpoint('echo')}?access_token=${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT },
      body: JSON.stringify(INIT),
    })
    assert.equal(res.statusCode, 401)
    assert.doesNotMatch(res.headers['www-authenticate'] as string, /error=/)
    await res.body.dump()
  })

  it('GET and DELETE need a token too', async () => {
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await request(stack.endpoint('echo'), {
        method,
        headers: { accept: 'text/event-stream', 'mcp-session-id': 'x' },
      })
      assert.equal(res.statusCode, 401, method)
      assert.match(res.headers['www-authenticate'] as string, /resource_metadata=/)
      await res.body.dump()
    }
  })

  it('no log line holds a token', async () => {
    const token = await stack.token('alice')
    await post('echo', INIT, { authorization: `Bearer ${flip(token)}` })
    const logs = stack.logLines.join('')
    assert.equal(logs.includes(token.slice(0, 40)), false)
    assert.doesNotMatch(logs, /eyJ[A-Za-z0-9_-]{20,}\.eyJ/)
  })
})

describe('protected resource metadata (RFC 9728)', () => {
  it('per server, resource exactly the endpoint URL, cacheable, public', async () => {
    for (const server of ['echo', 'notes', 'fixture']) {
      const res = await request(`${stack.url}/.well-known/oauth-protected-resource/mcp/${server}`)
      assert.equal(res.statusCode, 200)
      assert.match(res.headers['content-type'] as string, /^application\/json/)
      assert.match(res.headers['cache-control'] as string, /max-age=\d+/)
      const doc = (await res.body.json()) as Record<string, unknown>
      assert.equal(doc.resource, stack.endpoint(server))
      assert.deepEqual(doc.authorization_servers, [stack.idp.issuer])
      assert.deepEqual(doc.bearer_methods_supported, ['header'])
      assert.deepEqual(doc.scopes_supported, ['mcp:read'])
      assert.equal(typeof doc.resource_name, 'string')
      for (const v of Object.values(doc))
        assert.ok(v !== null && v !== '' && !(Array.isArray(v) && v.length === 0))
    }
  })

  it('unknown server and the root form (no gateway-wide audience) are 404', async () => {
    for (const path of [
      '/.well-known/oauth-protected-resource/mcp/zzz',
      '/.well-known/oauth-protected-resource',
    ]) {
      const res = await request(`${stack.url}${path}`)
      assert.equal(res.statusCode, 404, path)
      await res.body.dump()
    }
  })

  it('refuses a foreign Host; follows only which loopback name the client used', async () => {
    const path = '/.well-known/oauth-protected-resource/mcp/echo'
    const evil = await request(`${stack.url}${path}`, { headers: { host: 'evil.example' } })
    assert.equal(evil.statusCode, 403)
    assert.match(await evil.body.text(), /host not allowed/)
    const port = new URL(stack.url).port
    for (const name of ['127.0.0.1', 'localhost', 'LOCALHOST', '[::1]']) {
      const res = await request(`${stack.url}${path}`, { headers: { host: `${name}:${port}` } })
      const doc = (await res.body.json()) as { resource: string }
      assert.equal(doc.resource, `http://${name.toLowerCase()}:${port}/mcp/echo`, name)
    }
  })
})

describe('sessions', () => {
  it('are bound to the subject: another user gets 404, the owner keeps working', async () => {
    const alice = await stack.token('alice')
    const sid = await openSession('echo', alice)
    const call = {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'x' } },
    }
    const bob = await post('echo', call, {
      authorization: `Bearer ${await stack.token('bob')}`,
      'mcp-session-id': sid,
    })
    assert.equal(bob.status, 404)
    const again = await post('echo', call, {
      authorization: `Bearer ${await stack.token('alice')}`,
      'mcp-session-id': sid,
    })
    assert.equal(again.status, 200)
    assert.equal(again.json().result.content[0].text, 'x')
  })

  it('MCP-Protocol-Version: the negotiated one or none is served; another, even a supported one, is 400', async () => {
    const token = await stack.token('alice')
    const sid = await openSession('echo', token)
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
    const h = { authorization: `Bearer ${token}`, 'mcp-session-id': sid }
    assert.equal(
      (await post('echo', list, { ...h, 'mcp-protocol-version': '2025-11-25' })).status,
      200,
    )
    assert.equal((await post('echo', list, h)).status, 200)
    const other = await post('echo', list, { ...h, 'mcp-protocol-version': '2025-06-18' })
    assert.equal(other.status, 400)
    assert.match(other.text, /not the version negotiated for this session \(2025-11-25\)/)
    assert.equal(
      (await post('echo', list, { ...h, 'mcp-protocol-version': '1999-01-01' })).status,
      400,
    )
  })

  it('a token for the same subject with another audience cannot use the session', async () => {
    const sid = await openSession('echo', await stack.token('alice'))
    const res = await post(
      'echo',
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      {
        authorization: `Bearer ${await stack.token('alice', { server: 'notes' })}`,
        'mcp-session-id': sid,
      },
    )
    assert.equal(res.status, 401)
  })

  it('ids are long, random and visible ASCII', async () => {
    const token = await stack.token('alice')
    const ids = new Set<string>()
    for (let i = 0; i < 5; i++) ids.add(await openSession('echo', token))
    assert.equal(ids.size, 5)
    for (const id of ids) assert.match(id, /^[\x21-\x7E]{32,}$/)
  })

  const token = () => stack.token('alice')
  const cases: { name: string; headers: Record<string, string>; status: number }[] = [
    { name: 'missing session id on a non-initialize request → 400', headers: {}, status: 400 },
    {
      name: 'unknown session id → 404',
      headers: { 'mcp-session-id': 'no-such-session' },
      status: 404,
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const res = await post(
        'echo',
        { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        { authorization: `Bearer ${await token()}`, ...c.headers },
      )
      assert.equal(res.status, c.status)
      assert.equal(res.json().id, null)
    })
  }

  it('DELETE ends the session and its process', async () => {
    const { client, transport } = await connect(
      'fixture',
      await stack.token('alice', { server: 'fixture' }),
    )
    const pid = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })))
    const sid = transport.sessionId!
    await transport.terminateSession()
    assert.equal(await gone(pid), true)
    const res = await post(
      'fixture',
      { jsonrpc: '2.0', id: 9, method: 'tools/list' },
      {
        authorization: `Bearer ${await stack.token('alice', { server: 'fixture' })}`,
        'mcp-session-id': sid,
      },
    )
    assert.equal(res.status, 404)
    await client.close()
  })

  it('a crashing process fails its in-flight call and ends the session', async () => {
    const policy = readFileSync(join(stack.dir, 'policy.yaml'), 'utf8')
    assert.match(policy, /crash: deny/)
    const { client, transport } = await connect(
      'fixture',
      await stack.token('alice', { server: 'fixture' }),
    )
    const pid = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })))
    process.kill(pid, 'SIGKILL')
    assert.equal(await gone(pid), true)
    const res = await post(
      'fixture',
      { jsonrpc: '2.0', id: 9, method: 'tools/list' },
      {
        authorization: `Bearer ${await stack.token('alice', { server: 'fixture' })}`,
        'mcp-session-id': transport.sessionId!,
      },
    )
    assert.equal(res.status, 404)
    await client.close()
  })

  it('a process that dies mid-call fails that call with a JSON-RPC error', async () => {
    const { client } = await connect('fixture', await stack.token('alice', { server: 'fixture' }))
    try {
      const pid = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })))
      const slows = () => recorded().filter((m) => JSON.stringify(m).includes('"ms":30000')).length
      const before = slows()
      const pending = client.callTool({ name: 'slow', arguments: { ms: 30_000 } })
      await waitFor(() => slows() > before, 'the call reached the process')
      process.kill(pid, 'SIGKILL')
      await assert.rejects(
        pending,
        (err: Error & { code?: number }) =>
          err.code === -32000 && /the MCP server process exited/.test(err.message),
      )
    } finally {
      await client.close()
    }
  })

  it('a call the process never answers fails after requestTimeout, and the session goes on', async (t) => {
    const { client } = await connect(
      'impatient',
      await stack.token('alice', { server: 'impatient' }),
    )
    try {
      // The cut, on the real clock: the process answers in 30 s, the gateway's 1.5 s runs out.
      await assert.rejects(
        client.callTool({ name: 'slow', arguments: { ms: 30_000 } }, { timeout: 10_000 }),
        (err: Error & { code?: number }) =>
          err.code === -32001 && /did not answer in time/.test(err.message),
      )
      // The follow-up's own 1.5 s would race a busy machine: its timer stays on a clock that
      // does not move, so only the process's answer can end it (the process's 1 ms is real).
      t.mock.timers.enable({ apis: ['setTimeout'] })
      try {
        assert.equal(textOf(await client.callTool({ name: 'slow', arguments: { ms: 1 } })), 'done')
      } finally {
        t.mock.timers.reset()
      }
    } finally {
      await client.close()
    }
  })

  it('never hands the token to the process (environment, argv, tool output)', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const { client } = await connect('fixture', token)
    try {
      const out = textOf(await client.callTool({ name: 'env', arguments: {} }))
      const info = JSON.parse(out) as { pid: number; env: Record<string, string> }
      assert.equal(out.includes(token), false)
      assert.doesNotMatch(out, /eyJ/)
      assert.deepEqual(
        Object.keys(info.env).filter((k) => /TOKEN|SECRET|AUTH/i.test(k)),
        [],
      )
      assert.equal(readFileSync(`/proc/${info.pid}/environ`, 'latin1').includes(token), false)
      assert.equal(readFileSync(`/proc/${info.pid}/cmdline`, 'latin1').includes(token), false)
      assert.equal(JSON.stringify(recorded()).includes(token), false)
    } finally {
      await client.close()
    }
  })
})

describe('policy on every message', () => {
  it('a call without the scope is a 403 step-up challenge, and the process never sees it', async () => {
    const token = await stack.token('alice', { server: 'notes' })
    const sid = await openSession('notes', token)
    const res = await post(
      'notes',
      {
        jsonrpc: '2.0',
        id: 5,
        method: 'tools/call',
        params: { name: 'write_note', arguments: { name: 'a', text: 'b' } },
      },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    assert.equal(res.status, 403)
    assert.equal(
      res.headers['www-authenticate'],
      `Bearer error="insufficient_scope", error_description="this operation needs scope mcp:write", scope="mcp:read mcp:write", resource_metadata="${stack.url}/.well-known/oauth-protected-resource/mcp/notes"`,
    )
  })

  it('an explicit deny is a JSON-RPC error on 200 and never reaches the process', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const sid = await openSession('fixture', token)
    const res = await post(
      'fixture',
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'crash', arguments: {} } },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    assert.equal(res.status, 200)
    assert.deepEqual(res.json(), {
      jsonrpc: '2.0',
      id: 7,
      error: { code: -32010, message: 'denied by policy' },
    })
    assert.equal(
      recorded().some((m) => m.method === 'tools/call' && m.params?.name === 'crash'),
      false,
    )
    assert.ok(
      recorded().some((m) => m.method === 'initialize'),
      'the record file works',
    )
  })
})

describe('edge checks', () => {
  it('a foreign Origin is 403 before authentication', async () => {
    const res = await post('echo', INIT, { origin: 'https://evil.example' })
    assert.equal(res.status, 403)
    assert.equal(res.headers['www-authenticate'], undefined)
  })

  it('a loopback Origin gets CORS headers exposing the challenge', async () => {
    const res = await post('echo', INIT, { origin: 'http://localhost:6274' })
    assert.equal(res.status, 401)
    assert.equal(res.headers['access-control-allow-origin'], 'http://localhost:6274')
    assert.match(res.headers['access-control-expose-headers'] as string, /www-authenticate/)
    assert.match(res.headers['access-control-expose-headers'] as string, /mcp-session-id/)
  })

  it('a foreign Host is 403 on a loopback gateway (DNS rebinding)', async () => {
    const res = await post('echo', INIT, { host: 'evil.example' })
    assert.equal(res.status, 403)
  })

  it('an oversized body is 413, declared or streamed', async () => {
    const token = await stack.token('alice')
    const big = JSON.stringify({
      ...INIT,
      params: { ...INIT.params, pad: 'x'.repeat(2 * 1024 * 1024) },
    })
    const declared = await post('echo', big, { authorization: `Bearer ${token}` })
    assert.equal(declared.status, 413)
    const streamed = await request(stack.endpoint('echo'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${token}`,
      },
      body: Readable.from(
        (async function* () {
          for (let i = 0; i < 40; i++) yield Buffer.alloc(64 * 1024, 0x20)
        })(),
      ),
    })
    assert.equal(streamed.statusCode, 413)
    await streamed.body.dump()
  })

  it('malformed JSON and malformed JSON-RPC are 400 with a JSON-RPC error', async () => {
    const token = await stack.token('alice')
    const sid = await openSession('echo', token)
    const cases = [
      { body: '{not json', code: -32700 },
      { body: '{"jsonrpc":"2.0","method":42}', code: undefined },
    ]
    for (const c of cases) {
      const res = await post('echo', c.body, {
        authorization: `Bearer ${token}`,
        'mcp-session-id': sid,
      })
      assert.equal(res.status, 400, c.body)
      const json = res.json()
      assert.equal(json.id, null)
      if (c.code !== undefined) assert.equal(json.error.code, c.code)
    }
  })

  it('unknown server is 404 and spawns nothing', async () => {
    const res = await post('nope', INIT, { authorization: `Bearer ${await stack.token('alice')}` })
    assert.equal(res.status, 404)
  })

  it('notifications get 202 with no body', async () => {
    const token = await stack.token('alice')
    const sid = await openSession('echo', token)
    const res = await post(
      'echo',
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    assert.equal(res.status, 202)
    assert.equal(res.text, '')
  })
})

describe('operations', () => {
  it('responses: json answers a call with one JSON body', async () => {
    const token = await stack.token('alice', { server: 'echojson' })
    const sid = await openSession('echojson', token)
    const res = await post(
      'echojson',
      {
        jsonrpc: '2.0',
        id: 3,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'j' } },
      },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    assert.equal(res.status, 200)
    assert.match(res.headers['content-type'] as string, /^application\/json/)
    assert.deepEqual(JSON.parse(res.text), {
      jsonrpc: '2.0',
      id: 3,
      result: { content: [{ type: 'text', text: 'j' }] },
    })
  })

  // Before the broken server below: its failed start is a readyz warning for a while.
  it('healthz and readyz', async () => {
    for (const [path, body] of [
      ['/healthz', { status: 'ok' }],
      ['/readyz', { status: 'ready', problems: [], warnings: [] }],
    ] as const) {
      const res = await request(`${stack.url}${path}`)
      assert.equal(res.statusCode, 200, path)
      assert.deepEqual(await res.body.json(), body)
    }
  })

  it('a server whose command cannot start is 502, and the gateway goes on', async () => {
    const sessions = stack.gateway.registry.size
    const res = await post('broken', INIT, {
      authorization: `Bearer ${await stack.token('alice', { server: 'broken' })}`,
    })
    assert.equal(res.status, 502)
    assert.equal(res.json().error.message, 'the MCP server could not be started')
    assert.equal(stack.gateway.registry.size, sessions)
    assert.ok(
      stack.logLines.some((l) => /server process failed to start/.test(l) && /ENOENT/.test(l)),
    )
    // Still ready: one server that cannot start is a warning, never a 503.
    const ready = await request(`${stack.url}/readyz`)
    assert.equal(ready.statusCode, 200)
    assert.equal(((await ready.body.json()) as { status: string }).status, 'ready')
  })

  it('every log line of a request carries its request id, echoed as X-Request-Id', async () => {
    const res = await post('echo', INIT, { authorization: `Bearer ${await stack.token('alice')}` })
    const id = res.headers['x-request-id'] as string
    assert.match(id, /^[0-9a-f-]{36}$/)
    const lines = stack.logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.req === id)
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['session opened', 'request'],
    )
    assert.equal(lines[0]!.server, 'echo')
  })

  it("a child's stderr is logged with server, session and pid", async () => {
    const { client } = await connect('fixture', await stack.token('alice', { server: 'fixture' }))
    try {
      await client.callTool({ name: 'stderr', arguments: { text: 'hello from stderr' } })
      const pid = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })))
      const line = stack.logLines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.stderr === 'hello from stderr')
      assert.ok(line, 'the stderr line was logged')
      assert.equal(line.server, 'fixture')
      assert.equal(line.pid, pid)
      assert.match(String(line.session), /^[\w-]{8}$/)
    } finally {
      await client.close()
    }
  })
})

describe('key rotation at the IdP', () => {
  it('a token signed with the new key is accepted without a restart', async () => {
    const before = await stack.token('alice')
    await stack.rotateKeys()
    const after = await stack.token('alice')
    assert.notEqual(
      JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid,
      JSON.parse(Buffer.from(before.split('.')[0]!, 'base64url').toString()).kid,
    )
    const { client } = await connect('echo', after)
    try {
      assert.equal(
        textOf(await client.callTool({ name: 'echo', arguments: { text: 'rotated' } })),
        'rotated',
      )
    } finally {
      await client.close()
    }
  })
})

function flip(token: string): string {
  const [h, p, s] = token.split('.')
  const sig = Buffer.from(s!, 'base64url')
  sig[10]! ^= 1
  return `${h}.${p}.${sig.toString('base64url')}`
}

function b64(o: unknown): string {
  return Buffer.from(JSON.stringify(o)).toString('base64url')
}

function claims() {
  const now = Math.floor(Date.now() / 1000)
  return {
    iss: stack.idp.issuer,
    sub: 'alice',
    aud: stack.endpoint('echo'),
    iat: now,
    exp: now + 300,
  }
}

function unsecured(): string {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`
}

function hs256(): string {
  // The classic confusion: HMAC keyed with a public key. Refused by the allow-list before any key is used.
  const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: stack.kid })}.${b64(claims())}`
  return `${input}.${createHmac('sha256', 'public-key-bytes').update(input).digest('base64url')}`
}
