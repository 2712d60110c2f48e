// Scope hierarchies (`implies:`) through a real gateway: real signed tokens, real sessions on
// the notes server, the challenge's scope, lists, metadata, /whoami, `policy check` agreeing
// with the gateway, and a bad `implies:` edit refused while the last good policy decides.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { firstData } from '../helpers/sse.js'
import { startStack, type Stack } from '../helpers/stack.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const ACCEPT = 'application/json, text/event-stream'

const POLICY = `roles:
  mcp-admin: [mcp:admin]
  mcp-developer: [mcp:write]
  mcp-user: [mcp:read]
implies:
  mcp:admin: [mcp:write]
  mcp:write: [mcp:read]
servers:
  echo:
    access: [mcp:read, mcp:write]
    tools: { echo: [mcp:read] }
  notes:
    access: [mcp:read]
    tools:
      list_notes: [mcp:read, billing:read]
      read_note: [mcp:read]
      write_note: [mcp:write]
      delete_note: [mcp:admin]
`

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    // An endpoint over both servers: its metadata is their access lists together, reduced too.
    config: { endpoints: { both: { path: '/mcp/both', servers: ['echo', 'notes'] } } },
  })
})
after(() => stack.close())

interface Answer {
  status: number
  headers: Record<string, unknown>
  text: string
}

async function post(token: string, body: unknown, sid?: string): Promise<Answer> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: ACCEPT,
    authorization: `Bearer ${token}`,
  }
  if (sid !== undefined) headers['mcp-session-id'] = sid
  const res = await request(stack.local('notes'), {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

function message(text: string): {
  result?: Record<string, unknown>
  error?: { code: number }
} {
  return JSON.parse((text.startsWith('{') ? text : firstData(text)) ?? 'null') ?? {}
}

/** A session for the token, or undefined when the gateway refuses to open one. */
async function openSession(token: string): Promise<string | undefined> {
  const init = await post(token, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'implies', version: '0' },
    },
  })
  if (init.status !== 200) return undefined
  const sid = init.headers['mcp-session-id'] as string
  await post(token, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
  return sid
}

let nextId = 1
const call = (token: string, sid: string | undefined, name: string) =>
  post(
    token,
    {
      jsonrpc: '2.0',
      id: nextId++,
      method: 'tools/call',
      params: { name, arguments: { name: 'welcome', text: 'x' } },
    },
    sid,
  )

/** allow, deny, or `challenge <scope>` (the WWW-Authenticate scope), from the answer alone. */
function outcome(res: Answer): string {
  if (res.status === 200) {
    const m = message(res.text)
    if (m.result !== undefined) return 'allow'
    if (m.error?.code === -32010) return 'deny'
  }
  const challenge = String(res.headers['www-authenticate'])
  const scope = /scope="([^"]*)"/.exec(challenge)?.[1]
  if (res.status === 403 && challenge.includes('error="insufficient_scope"'))
    return `challenge ${scope}`
  return `unexpected ${res.status} ${res.text.slice(0, 120)}`
}

/** A token signed by the IdP's key, for notes; no scope claim when `scope` is undefined. */
const forge = (sub: string, roles: string[], scope?: string) =>
  stack.forge({
    sub,
    aud: stack.endpoint('notes'),
    realm_access: { roles },
    ...(scope === undefined ? {} : { scope }),
  })

describe('decisions and challenges through the gateway', () => {
  it('an IdP mcp:write token opens notes and reads; challenges are narrow', async () => {
    const token = await stack.token('dev', { server: 'notes', scope: 'mcp:write' })
    assert.equal(decodeJwt(token).scope, 'mcp:write')
    const sid = await openSession(token)
    assert.ok(sid, 'mcp:write implies the access scope mcp:read')
    assert.equal(outcome(await call(token, sid, 'read_note')), 'allow')
    assert.equal(outcome(await call(token, sid, 'write_note')), 'allow')
    // mcp:read is held through mcp:write: the challenge names mcp:write, never mcp:read alone.
    assert.equal(outcome(await call(token, sid, 'list_notes')), 'challenge mcp:write billing:read')
    // mcp:admin covers the held mcp:read and mcp:write: one scope.
    assert.equal(outcome(await call(token, sid, 'delete_note')), 'challenge mcp:admin')
  })

  it('the IdP grants a narrower scope to a role granting a broader one', async () => {
    const token = await stack.token('admin', { server: 'notes', scope: 'mcp:read' })
    assert.equal(decodeJwt(token).scope, 'mcp:read')
    const sid = await openSession(token)
    assert.equal(outcome(await call(token, sid, 'read_note')), 'allow')
    assert.equal(outcome(await call(token, sid, 'write_note')), 'challenge mcp:write')
  })

  it('tools/list keeps what is implied and marks the narrowest step-up', async () => {
    const token = await forge('lister', ['mcp-admin'], 'mcp:read')
    const sid = await openSession(token)
    const res = await post(token, { jsonrpc: '2.0', id: nextId++, method: 'tools/list' }, sid)
    const tools = message(res.text).result!.tools as {
      name: string
      _meta?: Record<string, unknown>
    }[]
    assert.deepEqual(
      Object.fromEntries(tools.map((t) => [t.name, t._meta?.['mcp-edge/stepUp'] ?? null])),
      {
        read_note: null,
        write_note: { scopes: ['mcp:write'] },
        delete_note: { scopes: ['mcp:admin'] },
      },
    )
  })

  it('metadata and the 401 ask for the least that opens the server', async () => {
    const prm = await request(`${stack.url}/.well-known/oauth-protected-resource/mcp/echo`)
    const doc = (await prm.body.json()) as { scopes_supported: string[] }
    assert.deepEqual(doc.scopes_supported, ['mcp:write'])
    const res = await request(stack.local('echo'), { method: 'POST', body: '{}' })
    await res.body.dump()
    assert.equal(res.statusCode, 401)
    assert.match(String(res.headers['www-authenticate']), /scope="mcp:write"/)
  })

  it('an endpoint asks for the least that opens all its servers, in metadata and 401s', async () => {
    // echo needs mcp:read or mcp:write, notes mcp:read: mcp:write implies mcp:read.
    const prm = await request(`${stack.url}/.well-known/oauth-protected-resource/mcp/both`)
    assert.equal(prm.statusCode, 200)
    const doc = (await prm.body.json()) as { resource: string; scopes_supported: string[] }
    assert.equal(doc.resource, `${stack.url}/mcp/both`)
    assert.deepEqual(doc.scopes_supported, ['mcp:write'])
    for (const [method, path] of [
      ['POST', '/mcp/both'],
      ['GET', '/sse/both'],
    ] as const) {
      const res = await request(`${stack.url}${path}`, {
        method,
        headers: { accept: ACCEPT, 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: '{}' } : {}),
      })
      await res.body.dump()
      assert.equal(res.statusCode, 401, path)
      assert.match(String(res.headers['www-authenticate']), /scope="mcp:write"/, path)
    }
  })

  it('/whoami shows the implied scopes and where they come from', async () => {
    const token = await forge('ada', ['mcp-admin'], 'mcp:admin')
    const res = await request(`${stack.url}/whoami`, {
      headers: { authorization: `Bearer ${token}` },
    })
    const me = (await res.body.json()) as Record<string, unknown>
    assert.deepEqual(me.grantedScopes, ['mcp:admin'])
    assert.deepEqual(me.impliedScopes, { 'mcp:read': 'mcp:admin', 'mcp:write': 'mcp:admin' })
  })
})

type Checked = { line: number; decision?: string; required?: string[]; error?: string }

/** Every line through one `policy check --batch -` process; results in input order. */
function batch(policy: string, lines: unknown[]): Promise<Checked[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, 'policy', 'check', '--policy', policy, '--batch', '-'])
    const out: Checked[] = []
    let stderr = ''
    createInterface({ input: p.stdout }).on('line', (l) => void out.push(JSON.parse(l)))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`policy check exited ${code}: ${stderr}`)),
    )
    p.stdin.end(lines.map((l) => JSON.stringify(l)).join('\n'))
  })
}

describe('policy check agrees with the running gateway', () => {
  it('on every (scope, roles, tool) of a grid, the challenge scope included', async (t) => {
    // undefined: no scope claim at all (the roles decide).
    const SCOPES = [
      undefined,
      '',
      'mcp:read',
      'mcp:write',
      'mcp:admin',
      'MCP:WRITE',
      'billing:read mcp:write',
    ]
    const ROLES = [[], ['mcp-user'], ['mcp-developer'], ['mcp-admin']]
    const TOOLS = ['list_notes', 'read_note', 'write_note', 'delete_note', 'unknown']
    const rows: { claims: object; tool: string; gateway: string }[] = []
    let n = 0
    for (const scope of SCOPES)
      for (const roles of ROLES) {
        const token = await forge(`grid-${n++}`, roles, scope)
        const sid = await openSession(token)
        for (const tool of TOOLS)
          rows.push({
            claims: decodeJwt(token),
            tool,
            gateway: outcome(await call(token, sid, tool)),
          })
      }
    const checked = await batch(
      join(stack.dir, 'policy.yaml'),
      rows.map((r) => ({ claims: r.claims, server: 'notes', tool: r.tool })),
    )
    const cli = checked.map((c) =>
      c.decision === 'challenge'
        ? `challenge ${c.required!.join(' ')}`
        : String(c.decision ?? c.error),
    )
    const disagree = rows.flatMap((r, i) =>
      cli[i] === r.gateway
        ? []
        : [`${JSON.stringify(r.claims)} ${r.tool}: gateway ${r.gateway}, cli ${cli[i]}`],
    )
    assert.deepEqual(disagree, [])
    const seen = new Set(rows.map((r) => r.gateway.split(' ')[0]))
    t.diagnostic(`${rows.length} checks; outcomes ${[...seen].join(', ')}`)
    assert.deepEqual([...seen].sort(), ['allow', 'challenge', 'deny'])
  })
})

describe('hot reload', () => {
  const file = () => join(stack.dir, 'policy.yaml')
  after(() => {
    writeFileSync(file(), POLICY)
    stack.gateway.reloadPolicy()
  })

  it('a bad implies: edit is refused with file:line and the last good policy decides', async () => {
    const token = await stack.token('dev', { server: 'notes', scope: 'mcp:write' })
    const sid = await openSession(token)
    assert.equal(outcome(await call(token, sid, 'read_note')), 'allow')
    const bad = [
      POLICY.replace('mcp:write: [mcp:read]', 'mcp:write: [mcp:read, mcp:admin]'),
      POLICY.replace('mcp:write: [mcp:read]', 'mcp:write: [mcp:write]'),
      POLICY.replace('mcp:write: [mcp:read]', 'mcp:write: ["mcp:*"]'),
      POLICY.replace('mcp:write: [mcp:read]', 'mcp:write: mcp:read'),
    ]
    const why = [
      /implies cycle: mcp:admin → mcp:write/,
      /mcp:write implies itself/,
      /not patterns/,
      /list of the scopes/,
    ]
    for (const [i, text] of bad.entries()) {
      writeFileSync(file(), text)
      const r = stack.gateway.reloadPolicy()!
      assert.equal(r.ok, false, `edit ${i} was accepted`)
      assert.match(r.ok ? '' : r.problems.join('\n'), /policy\.yaml:\d+(:\d+)?: /)
      assert.match(r.ok ? '' : r.problems.join('\n'), why[i]!)
      // The old hierarchy still decides, on the open session.
      assert.equal(outcome(await call(token, sid, 'read_note')), 'allow', `after edit ${i}`)
      assert.equal(outcome(await call(token, sid, 'delete_note')), 'challenge mcp:admin')
    }
  })

  it('a good edit of implies: applies to the next message of an open session', async () => {
    const token = await stack.token('dev', { server: 'notes', scope: 'mcp:write' })
    const sid = await openSession(token)
    assert.equal(outcome(await call(token, sid, 'read_note')), 'allow')
    const edited = POLICY.replace('  mcp:write: [mcp:read]\n', '')
    assert.notEqual(edited, POLICY)
    writeFileSync(file(), edited)
    assert.equal(stack.gateway.reloadPolicy()?.ok, true)
    // mcp:write no longer implies mcp:read, and the roles grant no mcp:read to this user.
    assert.equal(outcome(await call(token, sid, 'read_note')), 'challenge mcp:read')
  })
})
