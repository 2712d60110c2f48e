// The policy as operators live with it: audit events for every decision, edits applied to the
// next message of an open session, broken edits refused, /whoami, /metrics, SDK step-up.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { followToRedirectUri } from '../helpers/oauth-flow.js'
import { memoryProvider, REDIRECT } from '../helpers/oauth-provider.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const _ACCEPT = 'application/json, text/event-stream'
const INIT = initBody()

let stack: Stack
before(async () => {
  // Two dev users: logins show "Sign in as", so a step-up can be tried as either.
  stack = await startStack({
    users: [
      { sub: 'dev-user', roles: ['mcp-user', 'mcp-developer'] },
      { sub: 'ada', roles: ['mcp-admin'] },
    ],
  })
})
after(() => stack.close())

/** POSTs to `server`'s MCP endpoint on the stack. */
const post = (server: string, body: unknown, headers: Record<string, string> = {}) =>
  postMcp(stack.local(server), body, headers)

async function session(server: string, token: string) {
  const res = await post(server, INIT, { authorization: `Bearer ${token}` })
  assert.equal(res.status, 200)
  const sid = res.headers['mcp-session-id'] as string
  const call = (id: number, name: string, args: Record<string, unknown> = {}) =>
    post(
      server,
      { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
  return { sid, call }
}

const reloads = async (result: 'ok' | 'failed') => {
  const metric = await stack.gateway.metrics.policyReloads.get()
  return metric.values.find((v) => v.labels.result === result)?.value ?? 0
}

describe('audit events', () => {
  it('record allowed calls with rule, duration and outcome, and refusals', async () => {
    const token = await stack.token('alice', { server: 'notes' })
    const s = await session('notes', token)
    assert.equal((await s.call(2, 'read_note', { name: 'welcome' })).status, 200)
    assert.equal((await s.call(3, 'write_note', { name: 'x', text: 'y' })).status, 403)
    await post(
      'notes',
      { jsonrpc: '2.0', id: 4, method: 'tools/list' },
      { authorization: `Bearer ${token}`, 'mcp-session-id': s.sid },
    )
    const events = stack.audit().filter((e) => e.sub === 'alice' && e.server === 'notes')
    const read = events.find((e) => e.name === 'read_note')!
    assert.equal(read.decision, 'allow')
    assert.equal(read.method, 'tools/call')
    assert.equal(read.clientId, 'alice')
    assert.equal(read.outcome, 'ok')
    assert.match(String(read.rule), /policy\.yaml:\d+ scopes held for rule read_note/)
    assert.equal(typeof read.durationMs, 'number')
    const write = events.find((e) => e.name === 'write_note')!
    assert.deepEqual([write.decision, write.outcome], ['challenge', 'refused'])
    assert.match(String(write.rule), /missing scope mcp:write for rule write_note/)
    const list = events.find((e) => e.method === 'tools/list')!
    assert.deepEqual([list.decision, list.outcome], ['filter', 'kept 2 of 4'])
    const init = events.find((e) => e.method === 'initialize')!
    assert.equal(init.decision, 'allow')
    for (const e of events) assert.equal(e.log, 'audit')
  })
})

describe('live reload', () => {
  const file = () => join(stack.dir, 'policy.yaml')
  after(() => writeFileSync(file(), TEST_POLICY))

  it('an edit applies to the next message of an open session, without reconnecting', async () => {
    const s = await session('notes', await stack.token('alice', { server: 'notes' }))
    assert.equal((await s.call(2, 'write_note', { name: 'a', text: 'b' })).status, 403)
    const ok = await reloads('ok')
    writeFileSync(
      file(),
      readFileSync(file(), 'utf8').replace('write_note: ["mcp:write"]', 'write_note: ["mcp:read"]'),
    )
    await waitFor(async () => (await reloads('ok')) > ok, 'the reload')
    const res = await s.call(3, 'write_note', { name: 'a', text: 'b' })
    assert.equal(res.status, 200)
    assert.equal(res.json().result.content[0].text, 'saved a')
  })

  it('a broken edit is refused: the last good policy stays, readyz and the metric report it', async () => {
    const s = await session('notes', await stack.token('alice', { server: 'notes' }))
    const failed = await reloads('failed')
    const before = readFileSync(file(), 'utf8')
    writeFileSync(file(), `${before}\n  oops: [unclosed\n`)
    await waitFor(async () => (await reloads('failed')) > failed, 'the refused reload')
    assert.equal(
      (await s.call(2, 'read_note', { name: 'welcome' })).status,
      200,
      'the old policy still decides',
    )
    const ready = await request(`${stack.url}/readyz`)
    assert.equal(ready.statusCode, 200)
    const body = (await ready.body.json()) as { warnings: string[] }
    assert.match(
      body.warnings[0]!,
      /policy reload failed, the previous policy is in force: .*policy\.yaml:\d+:\d+: /,
    )
    assert.ok(
      stack.logLines.some((l) =>
        /policy reload refused; the last good policy stays in force/.test(l),
      ),
    )
    writeFileSync(file(), before)
    await waitFor(
      async () =>
        ((await (await request(`${stack.url}/readyz`)).body.json()) as { warnings: string[] })
          .warnings.length === 0,
      'the warning to clear',
    )
  })

  it('reloads under load lose no request and never apply half a policy', async () => {
    const token = await stack.token('alice', { server: 'notes' })
    const s = await session('notes', token)
    const original = readFileSync(file(), 'utf8')
    // Version A allows read_note and denies list_notes; version B the other way round. A message
    // decided by half of each would be allowed or denied on both, which neither version does.
    const a = original.replace('list_notes: ["mcp:read"]', 'list_notes: deny')
    const b = original.replace('read_note: ["mcp:read"]', 'read_note: deny')
    let flips = 0
    const flipper = setInterval(() => {
      writeFileSync(file(), flips++ % 2 === 0 ? a : b)
      stack.gateway.reloadPolicy()
    }, 5)
    try {
      const calls = Array.from({ length: 300 }, (_, i) =>
        s.call(
          100 + i,
          i % 2 === 0 ? 'read_note' : 'list_notes',
          i % 2 === 0 ? { name: 'welcome' } : {},
        ),
      )
      const results = await Promise.all(calls)
      assert.equal(results.length, 300)
      for (const r of results) {
        assert.equal(r.status, 200, r.text)
        const body = r.json()
        assert.ok(body.result !== undefined || body.error?.code === -32010, r.text)
      }
      assert.ok(flips > 3, `the policy flipped ${flips} times during the calls`)
    } finally {
      clearInterval(flipper)
      writeFileSync(file(), original)
      stack.gateway.reloadPolicy()
    }
  })

  it('reloadPolicy (SIGHUP) reloads on demand and reports problems', () => {
    assert.deepEqual(stack.gateway.reloadPolicy(), { ok: true, files: [file()] })
  })
})

describe('/whoami', () => {
  it('shows subject, client, roles, expanded scopes and each rule as it applies', async () => {
    const res = await request(`${stack.url}/whoami`, {
      headers: { authorization: `Bearer ${await stack.token('dev', { server: 'notes' })}` },
    })
    assert.equal(res.statusCode, 200)
    const me = (await res.body.json()) as Record<string, any>
    assert.equal(me.sub, 'dora')
    assert.equal(me.clientId, 'dev')
    assert.deepEqual(me.roles, ['mcp-developer'])
    assert.deepEqual(me.grantedScopes, ['mcp:read', 'mcp:write'])
    assert.equal(me.servers.notes.access, 'allow')
    assert.deepEqual(me.servers.notes.tools, [
      { pattern: 'list_notes', effect: 'allow' },
      { pattern: 'read_note', effect: 'allow' },
      { pattern: 'write_note', effect: 'allow' },
      { pattern: 'delete_note', effect: 'challenge', missing: ['mcp:admin'] },
    ])
    assert.equal(JSON.stringify(me).includes('eyJ'), false)
  })

  it('needs a token', async () => {
    const res = await request(`${stack.url}/whoami`)
    assert.equal(res.statusCode, 401)
    assert.match(res.headers['www-authenticate'] as string, /^Bearer /)
    await res.body.dump()
  })
})

describe('/metrics', () => {
  it('exposes decisions, auth failures, reloads and sessions in Prometheus text', async () => {
    await post('echo', INIT, { authorization: 'Bearer nope.nope.nope' })
    const res = await request(`${stack.url}/metrics`)
    assert.equal(res.statusCode, 200)
    const text = await res.body.text()
    assert.match(text, /^mcp_edge_policy_decisions_total\{server="notes",decision="allow"\} \d+/m)
    assert.match(text, /^mcp_edge_auth_failures_total\{code="malformed_token"\} [1-9]/m)
    assert.match(text, /^mcp_edge_sessions\{kind="server"\} [1-9]/m)
    assert.match(text, /^mcp_edge_jwks_fetches_total\{result="ok"\} [1-9]/m)
  })
})

describe('step-up with the SDK client', () => {
  it('a 403 insufficient_scope leads the client to ask again: granted within the roles, refused beyond them, granted for an admin', async () => {
    const { provider, saved } = memoryProvider('step-up')
    const url = new URL(stack.local('notes'))
    const jar = new Map<string, string>() // one browser for every login
    const authorize = async (transport: StreamableHTTPClientTransport, user: string) => {
      const callback = await followToRedirectUri(provider.authorizationUrl!.href, REDIRECT, {
        user,
        jar,
      })
      await transport.finishAuth(callback.searchParams)
    }
    const client = new Client({ name: 'step-up', version: '0' })
    let transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
    await assert.rejects(client.connect(transport), UnauthorizedError)
    await authorize(transport, 'dev-user')
    transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
    await client.connect(transport)
    const scopeOf = () =>
      String(
        JSON.parse(
          Buffer.from(
            (saved.tokens as { access_token: string }).access_token.split('.')[1]!,
            'base64url',
          ).toString(),
        ).scope ?? '',
      )
    assert.doesNotMatch(scopeOf(), /mcp:write/)
    // write_note needs mcp:write, which the token lacks but dev-user's roles allow: 403 with
    // scope="mcp:read mcp:write", a new authorization, and the retried call succeeds.
    await assert.rejects(
      client.callTool({ name: 'write_note', arguments: { name: 'stepped', text: 'up' } }),
      UnauthorizedError,
    )
    assert.match(
      provider.authorizationUrl!.searchParams.get('scope') ?? '',
      /mcp:write/,
      'the client asked for the challenged scope',
    )
    await authorize(transport, 'dev-user')
    assert.match(scopeOf(), /mcp:write/)
    const written = await client.callTool({
      name: 'write_note',
      arguments: { name: 'stepped', text: 'up' },
    })
    assert.match((written.content as { text: string }[])[0]!.text, /stepped/)
    const deleteNote = () =>
      client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } })
    // delete_note needs mcp:admin: the gateway answers 403 with scope="mcp:read mcp:admin".
    await assert.rejects(deleteNote(), UnauthorizedError)
    assert.match(
      provider.authorizationUrl!.searchParams.get('scope') ?? '',
      /mcp:admin/,
      'the client asked for the challenged scope',
    )
    // Signed in as dev-user again: the IdP leaves mcp:admin out, the policy holds.
    await authorize(transport, 'dev-user')
    assert.doesNotMatch(scopeOf(), /mcp:admin/)
    await assert.rejects(
      deleteNote(),
      (err: Error) =>
        err instanceof UnauthorizedError || /403 insufficient_scope/.test(err.message),
      'still refused',
    )
    // Signed in as the admin: the step-up succeeds, in a new session (the open one is bound
    // to dev-user, so ada's token gets 404 there, as for any other subject).
    await authorize(transport, 'ada')
    assert.match(scopeOf(), /mcp:admin/)
    await assert.rejects(deleteNote(), /session not found/)
    await client.close()
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }))
    const result = await deleteNote()
    assert.equal((result.content as { text: string }[])[0]!.text, 'deleted welcome')
    await client.close()
  })
})
