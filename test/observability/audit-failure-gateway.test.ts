// A real gateway whose audit file cannot be written (/dev/full: ENOSPC on every write; a
// directory: EISDIR at open): it keeps running. `continue` serves and counts the events lost;
// `refuse` answers what would be audited with 503 while health, metrics and metadata are
// served, and serves again once the file can be written. Waits are for log lines, not time.
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'
import { freePort } from '../helpers/ports.js'
import { startStack, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const INIT = initBody()
const CALL = {
  jsonrpc: '2.0',
  id: 2,
  method: 'tools/call',
  params: { name: 'pid', arguments: {} },
}
const NOT_WRITABLE = /^audit log not writable: /
const WRITABLE_AGAIN = /^audit log writable again$/

/** A stack whose main log lines are waited for by message. */
async function stackWith(log: Record<string, unknown>) {
  const msgs: string[] = []
  let waiters: { match: RegExp; n: number; resolve: () => void }[] = []
  const count = (match: RegExp) => msgs.filter((m) => match.test(m)).length
  const stack = await startStack({
    realAudit: true,
    config: { log: { level: 'debug', auditRetry: 10, ...log } },
    onLog: (line) => {
      msgs.push((JSON.parse(line) as { msg: string }).msg)
      const next = waiters
      waiters = []
      for (const w of next)
        if (count(w.match) >= w.n) w.resolve()
        else waiters.push(w)
    },
  })
  const until = (match: RegExp, n = 1) =>
    count(match) >= n
      ? Promise.resolve()
      : new Promise<void>((resolve) => waiters.push({ match, n, resolve }))
  return { stack, until, count }
}

/** POSTs to `server`'s MCP endpoint on `stack`. */
const post = (stack: Stack, server: string, body: unknown, headers: Record<string, string>) =>
  postMcp(stack.local(server), body, headers)

async function openSession(stack: Stack, server: string, auth: Record<string, string>) {
  const init = await post(stack, server, INIT, auth)
  assert.equal(init.status, 200, init.text)
  const sid = init.headers['mcp-session-id'] as string
  const ack = await post(
    stack,
    server,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { ...auth, 'mcp-session-id': sid },
  )
  assert.equal(ack.status, 202)
  return sid
}

async function get(stack: Stack, path: string) {
  const res = await request(`${stack.url}${path}`)
  return { status: res.statusCode, text: await res.body.text() }
}

async function lost(stack: Stack): Promise<number> {
  const m = (await get(stack, '/metrics')).text.match(/^mcp_edge_audit_events_lost_total (\d+)$/m)
  assert.ok(m, 'the lost-events counter is exposed')
  return Number(m[1])
}

/** What the fixture processes received, by method. */
function received(stack: Stack): string[] {
  const file = join(stack.dir, 'fixture-record.jsonl')
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { method?: string }).method ?? 'reply')
}

describe('a gateway whose audit file cannot be written', () => {
  it('continue (default): calls still served, lost events counted, /readyz warns, logged once', async () => {
    const { stack, until, count } = await stackWith({ audit: '/dev/full' })
    try {
      const auth = { authorization: `Bearer ${await stack.token('alice', { server: 'fixture' })}` }
      const sid = await openSession(stack, 'fixture', { ...auth })
      const first = await post(stack, 'fixture', CALL, { ...auth, 'mcp-session-id': sid })
      assert.equal(first.status, 200)
      await until(NOT_WRITABLE)
      const before = await lost(stack)
      assert.ok(before >= 1)
      for (let i = 0; i < 3; i++) {
        const res = await post(
          stack,
          'fixture',
          { ...CALL, id: 10 + i },
          { ...auth, 'mcp-session-id': sid },
        )
        assert.equal(res.status, 200)
        assert.match(res.json().result.content[0].text, /^\d+$/)
      }
      assert.equal(await lost(stack), before + 3)
      const ready = await get(stack, '/readyz')
      assert.equal(ready.status, 200)
      const body = JSON.parse(ready.text) as { warnings: string[]; problems: string[] }
      assert.deepEqual(body.problems, [])
      assert.ok(
        body.warnings.includes('audit log not writable: ENOSPC; audit events are being lost'),
        ready.text,
      )
      assert.equal(count(NOT_WRITABLE), 1)
      assert.equal(count(WRITABLE_AGAIN), 0)
    } finally {
      await stack.close()
    }
  })

  it("refuse: an open session's call is refused with 503 and the process sees nothing of it", async () => {
    const { stack, until } = await stackWith({ audit: '/dev/full', auditOnFailure: 'refuse' })
    try {
      const auth = { authorization: `Bearer ${await stack.token('alice', { server: 'fixture' })}` }
      // The session opens; its initialize's audit line is the write that fails.
      const init = await post(stack, 'fixture', INIT, auth)
      assert.equal(init.status, 200)
      const sid = init.headers['mcp-session-id'] as string
      await until(NOT_WRITABLE)
      const before = await lost(stack)
      const res = await post(stack, 'fixture', CALL, { ...auth, 'mcp-session-id': sid })
      assert.equal(res.status, 503)
      assert.match(String(res.headers['retry-after']), /^\d+$/)
      assert.deepEqual(res.json().error, { code: -32000, message: 'audit log unavailable' })
      assert.deepEqual(received(stack), ['initialize'])
      // Refused, not served: nothing to audit, nothing lost.
      assert.equal(await lost(stack), before)
    } finally {
      await stack.close()
    }
  })

  it('refuse: every audited route is refused, health/metrics/metadata are not; back once the file opens', async () => {
    const target = join(mkdtempSync(join(tmpdir(), 'mcp-edge-audit-dir-')), 'audit.log')
    mkdirSync(target)
    const { stack, until, count } = await stackWith({ audit: target, auditOnFailure: 'refuse' })
    try {
      await until(NOT_WRITABLE)
      const token = await stack.token('alice', { server: 'fixture' })
      const auth = { authorization: `Bearer ${token}` }
      // Whatever the route, method, token or body: refused before any of it is looked at.
      const refused: [string, string, Record<string, string>, string | undefined][] = [
        ['POST', '/mcp/fixture', auth, JSON.stringify(INIT)],
        ['POST', '/mcp/fixture', auth, JSON.stringify(CALL)],
        ['POST', '/mcp/fixture', {}, JSON.stringify(INIT)],
        ['POST', '/mcp/fixture', { authorization: 'Bearer nonsense' }, JSON.stringify(INIT)],
        ['POST', '/mcp/fixture', auth, '{not json'],
        ['GET', '/mcp/fixture', auth, undefined],
        ['DELETE', '/mcp/fixture', { ...auth, 'mcp-session-id': 'x' }, undefined],
        ['GET', '/sse/fixture', auth, undefined],
        ['POST', '/messages/fixture?sessionId=x', auth, JSON.stringify(CALL)],
        ['POST', '/mcp/echo', auth, JSON.stringify(INIT)],
        ['POST', '/mcp/no-such-server', auth, JSON.stringify(INIT)],
        ['GET', '/mcp/healthz', auth, undefined],
        // No broker here: nothing answers OAuth at /token, so nothing speaks OAuth for it.
        ['POST', '/token', {}, 'grant_type=refresh_token'],
        ['GET', '/authorize?client_id=c', {}, undefined],
      ]
      for (const [method, path, headers, body] of refused) {
        const res = await request(`${stack.url}${path}`, {
          method: method as 'GET',
          headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
          ...(body === undefined ? {} : { body }),
        })
        const text = await res.body.text()
        assert.equal(res.statusCode, 503, `${method} ${path}: ${text}`)
        assert.match(String(res.headers['retry-after']), /^[1-9]\d*$/)
        assert.deepEqual(JSON.parse(text).error, { code: -32000, message: 'audit log unavailable' })
      }
      assert.deepEqual(received(stack), [])
      // Exempt: they produce no audit event, and tell probes and clients what is wrong.
      assert.equal((await get(stack, '/healthz')).status, 200)
      assert.equal((await get(stack, '/metrics')).status, 200)
      assert.equal(
        (await get(stack, '/.well-known/oauth-protected-resource/mcp/fixture')).status,
        200,
      )
      const ready = await get(stack, '/readyz')
      assert.equal(ready.status, 503)
      assert.ok(
        (JSON.parse(ready.text) as { problems: string[] }).problems.includes(
          'audit log not writable: EISDIR; requests that would be audited are refused',
        ),
        ready.text,
      )
      // The operator removes the directory: the next attempt makes the file, and serving resumes.
      rmdirSync(target)
      await until(WRITABLE_AGAIN)
      assert.equal((await get(stack, '/readyz')).status, 200)
      const sid = await openSession(stack, 'fixture', { ...auth })
      const res = await post(stack, 'fixture', CALL, { ...auth, 'mcp-session-id': sid })
      assert.equal(res.status, 200)
      assert.equal(count(NOT_WRITABLE), 1)
      await stack.gateway.close()
      const lines = readFileSync(target, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
      assert.equal(lines[0].msg, 'audit events lost')
      assert.ok(
        lines.some((l) => l.method === 'tools/call' && l.outcome === 'ok'),
        JSON.stringify(lines),
      )
    } finally {
      await stack.close()
    }
  })
})

/** A gateway in broker mode whose audit file is a directory, its log lines waited for by message. */
async function brokerWithoutAudit(o: { base?: string } = {}) {
  const port = await freePort()
  const target = join(mkdtempSync(join(tmpdir(), 'mcp-edge-audit-dir-')), 'audit.log')
  mkdirSync(target)
  let seen: () => void = () => {}
  const notWritable = new Promise<void>((resolve) => {
    seen = resolve
  })
  const s: BrokerStack = await startBrokerStack({
    port,
    realAudit: true,
    config: {
      log: { level: 'debug', audit: target, auditOnFailure: 'refuse', auditRetry: 10 },
      ...(o.base ? { publicUrl: `http://127.0.0.1:${port}${o.base}` } : {}),
    },
    onLog: (line) => {
      if (NOT_WRITABLE.test((JSON.parse(line) as { msg: string }).msg)) seen()
    },
  })
  await notWritable
  return s
}

const AUTHORIZE = `/authorize?${new URLSearchParams({
  response_type: 'code',
  client_id: 'some-client',
  redirect_uri: 'http://127.0.0.1:9/cb',
  scope: 'mcp:read',
  code_challenge: 'x'.repeat(43),
  code_challenge_method: 'S256',
})}`
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const JSON_BODY = { 'content-type': 'application/json' }

type Audience = 'oauth' | 'browser' | 'account-api' | 'mcp'
/** Route, and who is at the other end of it: what a refusal must look like there. */
const ROUTES: [string, string, Record<string, string>, string | undefined, Audience][] = [
  ['POST', '/token', FORM, 'grant_type=refresh_token&refresh_token=x&client_id=c', 'oauth'],
  ['POST', '/token', FORM, undefined, 'oauth'],
  [
    'POST',
    '/register',
    JSON_BODY,
    JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'] }),
    'oauth',
  ],
  ['GET', '/register/some-client', { authorization: 'Bearer x' }, undefined, 'oauth'],
  ['POST', '/revoke', FORM, 'token=x&client_id=c', 'oauth'],
  ['GET', AUTHORIZE, {}, undefined, 'browser'],
  ['POST', '/authorize', FORM, 'response_type=code&client_id=c', 'browser'],
  ['GET', '/authorize/some-uid', {}, undefined, 'browser'],
  ['GET', '/interaction/some-uid', {}, undefined, 'browser'],
  ['POST', '/interaction/some-uid/confirm', FORM, 'csrf=x', 'browser'],
  ['GET', '/oauth/callback?code=x&state=y', {}, undefined, 'browser'],
  ['GET', '/account', {}, undefined, 'browser'],
  ['GET', '/account/login', {}, undefined, 'browser'],
  ['GET', '/account/callback?code=x&state=y', {}, undefined, 'browser'],
  ['POST', '/account/secrets', FORM, 'csrf=x', 'browser'],
  ['GET', '/account/api', { authorization: 'Bearer x' }, undefined, 'account-api'],
  ['PUT', '/account/api/secrets/token', JSON_BODY, JSON.stringify({ value: 'v' }), 'account-api'],
  ['POST', '/mcp/echo', { ...JSON_BODY, accept: ACCEPT }, JSON.stringify(INIT), 'mcp'],
  ['GET', '/sse/echo', {}, undefined, 'mcp'],
  ['GET', '/no-such-path', {}, undefined, 'mcp'],
]

/** Sends `route` and asserts its 503 speaks the protocol of who is at the other end. */
async function assertRefused(
  url: string,
  [method, path, headers, body, audience]: (typeof ROUTES)[number],
) {
  const name = `${method} ${path.split('?')[0]}`
  const res = await request(`${url}${path}`, {
    method: method as 'GET',
    headers,
    ...(body === undefined ? {} : { body }),
  })
  const text = await res.body.text()
  assert.equal(res.statusCode, 503, `${name}: ${text}`)
  assert.match(String(res.headers['retry-after']), /^[1-9]\d*$/, name)
  const type = String(res.headers['content-type'])
  if (audience === 'browser') {
    assert.match(type, /^text\/html; charset=utf-8$/, name)
    assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/)
    assert.equal(res.headers['cache-control'], 'no-store', name)
    assert.match(text, /<h1>Sign-in unavailable<\/h1>/, name)
    assert.match(text, /audit log unavailable; try again later/, name)
    return
  }
  assert.match(type, /^application\/json/, name)
  const json = JSON.parse(text) as Record<string, unknown>
  if (audience === 'oauth') {
    // RFC 6749 §5.2: an error object, never a JSON-RPC envelope.
    assert.deepEqual(
      json,
      {
        error: 'temporarily_unavailable',
        error_description: 'audit log unavailable; try again later',
      },
      name,
    )
    assert.equal(res.headers['cache-control'], 'no-store', name)
  } else if (audience === 'account-api') {
    assert.deepEqual(
      json,
      { error: 'audit_unavailable', message: 'audit log unavailable; try again later' },
      name,
    )
  } else {
    assert.deepEqual(json.error, { code: -32000, message: 'audit log unavailable' }, name)
  }
}

describe('refuse, in broker mode: each route refuses in its own protocol', () => {
  it('OAuth endpoints: temporarily_unavailable; pages: the outage page; MCP: JSON-RPC; nothing is stored', async () => {
    const s = await brokerWithoutAudit()
    try {
      const stored = await s.store.dump()
      for (const route of ROUTES) await assertRefused(s.url, route)
      // Refused before anything was looked at: no client, interaction or session was written.
      assert.deepEqual(await s.store.dump(), stored)
      // Exempt: metadata and keys, which produce no audit event.
      for (const path of ['/jwks', '/.well-known/oauth-authorization-server']) {
        const res = await request(`${s.url}${path}`)
        await res.body.text()
        assert.equal(res.statusCode, 200, path)
      }
    } finally {
      await s.close()
    }
  })

  it('the same with a public URL that has a path, with and without it (a proxy that strips it)', async () => {
    const s = await brokerWithoutAudit({ base: '/base' })
    try {
      for (const [method, path, headers, body, audience] of ROUTES) {
        await assertRefused(s.url, [method, path, headers, body, audience])
        await assertRefused(s.url, [method, `/base${path}`, headers, body, audience])
      }
    } finally {
      await s.close()
    }
  })

  it('a person in a browser sees the outage page, status 503, at /authorize and /account', {
    skip: NO_BROWSER,
  }, async () => {
    const s = await brokerWithoutAudit()
    const { browser, close } = await launchBrowser()
    try {
      const page = await browser.newPage()
      for (const path of [AUTHORIZE, '/account']) {
        const res = await page.goto(`${s.url}${path}`)
        assert.equal(res?.status(), 503, path)
        assert.equal(await page.title(), 'Sign-in unavailable', path)
        const shown = await page.evaluate(() => document.body.innerText)
        assert.match(shown, /audit log unavailable; try again later/, path)
        assert.doesNotMatch(shown, /jsonrpc|-32000/, path)
      }
    } finally {
      await close()
      await s.close()
    }
  })
})
