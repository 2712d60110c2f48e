// Stop 23: an outsider's review of per-user credentials and the account page. Each finding is a
// failing test first (real gateway, real IdP tokens, real stdio processes), then the fix:
// - a process's stderr is redacted line by line: a secret of several lines (a PEM key) and a
//   secret inside a longer base64 text (`Basic base64(user:token)`) showed in the log;
// - a call waiting for a missing secret kept polling the store (and its elicitation stayed
//   asked) after the client cancelled it or its session ended, for elicitationTimeout each;
// - the link to the account page dropped publicUrl's path (`https://host/base` → `/account`);
// - a process's own error text (initialize, a list refused at an endpoint) was logged unredacted;
// - a deleted secret's process (session, lane, endpoint lane) ran on with the deleted value;
// - a process's JSON-RPC error quoting the token went into the span's status (traces).
// stop23b.test.ts: the configuration and the token exchange.
// And pins of what held, where a later change could break it.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { getEventListeners } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import type { SecretOwner } from '../../gateway/credentials/secrets.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import type { Store } from '../../gateway/store/store.js'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'
import { connectAs } from '../helpers/sdk-session.js'

const node = process.execPath
const fixture = join(SERVERS_DIR, 'fixture.js')
const VAULT = { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } }
const policyFor = (servers: string[]) =>
  `${TEST_POLICY}${servers
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
    .join('')}`
const sha = (v: string) => createHash('sha256').update(v).digest('hex')
const textOf = (result: unknown) =>
  ((result as { content?: { text: string }[] }).content ?? []).map((c) => c.text).join('')

/**
 * A hostile stdio MCP server (newline-delimited JSON-RPC, no SDK): it writes its VAULT_TOKEN to
 * stderr as servers do when they log a request (raw, as a Basic credential, base64url of a
 * longer text), and with HOSTILE_FAIL=initialize, =list or =call answers that request with an
 * error quoting the token.
 */
const HOSTILE = `
const readline = require('node:readline')
const token = process.env.VAULT_TOKEN ?? ''
const fail = process.env.HOSTILE_FAIL ?? ''
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let m
  try { m = JSON.parse(line) } catch { return }
  if (m.id === undefined || m.method === undefined) return
  const error = (message) => send({ jsonrpc: '2.0', id: m.id, error: { code: -32603, message } })
  const result = (r) => send({ jsonrpc: '2.0', id: m.id, result: r })
  if (m.method === 'initialize') {
    if (fail === 'initialize') return error('cannot start: the token ' + token + ' was refused')
    return result({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'hostile', version: '1' } })
  }
  if (m.method === 'tools/list') {
    if (fail === 'list') return error('listing refused for ' + token)
    return result({ tools: [{ name: 'leak', inputSchema: { type: 'object' } }] })
  }
  if (m.method === 'tools/call') {
    if (fail === 'call') return error('call refused for ' + token)
    process.stderr.write('config VAULT_TOKEN=' + token + '\\n')
    process.stderr.write('Authorization: Basic ' + Buffer.from('x-access-token:' + token).toString('base64') + '\\n')
    process.stderr.write('blob=' + Buffer.from('{"u":"me","t":"' + token + '"}').toString('base64url') + '\\n')
    process.stderr.write('end of request\\n')
    return result({ content: [{ type: 'text', text: 'leaked' }] })
  }
  if (m.method === 'ping') return result({})
  error('no such method')
})
`

/** A stack whose servers take VAULT_TOKEN from each user's secret `vault_token`. */
async function credentialStack(
  servers: Record<string, Record<string, unknown>>,
  o: { store?: Store; publicUrl?: string; config?: Record<string, unknown> } = {},
): Promise<Stack> {
  return startStack({
    servers,
    policy: policyFor(Object.keys(servers)),
    ...(o.store ? { store: o.store } : {}),
    ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}),
    config: { credentials: { pollInterval: 20, elicitationTimeout: 60_000 }, ...o.config },
  })
}

const ownerOf = (stack: Stack, sub: string): SecretOwner => ({ iss: stack.idp.issuer, sub })

/** A 2025-11-25 session of `user` on `server`. */
const connect = (
  stack: Stack,
  user: string,
  server: string,
  o: Parameters<typeof connectAs>[3] = {},
) => connectAs(stack, user, server, { name: `stop23-${user}`, ...o })

describe('stop 23: stderr redaction covers what a line-by-line scan missed', () => {
  let stack: Stack
  const PEM = [
    '-----BEGIN PRIVATE KEY-----',
    'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7',
    'VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDu',
    '-----END PRIVATE KEY-----',
  ].join('\n')
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stop23-'))
    const script = join(dir, 'hostile.cjs')
    writeFileSync(script, HOSTILE)
    stack = await credentialStack(
      {
        vault: { command: node, args: [fixture], credentials: VAULT },
        hostile: { command: node, args: [script], credentials: VAULT },
        hostileinit: {
          command: node,
          args: [script],
          credentials: VAULT,
          env: { HOSTILE_FAIL: 'initialize' },
        },
        hostilelist: {
          command: node,
          args: [script],
          credentials: VAULT,
          env: { HOSTILE_FAIL: 'list' },
        },
      },
      {
        config: {
          endpoints: { listing: { servers: ['hostilelist', 'vault'] } },
        },
      },
    )
  })
  after(() => stack?.close())

  it('a secret of several lines (a PEM key) printed raw: none of its lines reaches the log', async () => {
    await stack.gateway.secrets!.set(ownerOf(stack, 'alice'), 'vault_token', PEM)
    const { client } = await connect(stack, 'alice', 'vault')
    try {
      const r = await client.callTool({
        name: 'print_credential',
        arguments: { name: 'VAULT_TOKEN' },
      })
      assert.equal(textOf(r), 'printed')
      // The fixture ends its output with the base64 form, on the last line it writes.
      await waitFor(
        () => stack.logLines.some((l) => l.includes('b64=')),
        'the last stderr line was logged',
      )
      const log = stack.logLines.join('\n')
      for (const line of PEM.split('\n'))
        assert.ok(!log.includes(line), `the PEM line ${line} is not in the log`)
      assert.ok(log.includes('config VAULT_TOKEN=[redacted]'), 'the first line is blotted')
    } finally {
      await client.close()
    }
  })

  it('a secret inside longer base64 (a Basic credential, base64url of a JSON blob): blotted at every alignment', async () => {
    // Three lengths: each puts the value at another alignment inside the encoded text.
    for (const value of [
      'ghp_aaaaBBBBccccDDDD1234',
      'ghp_aaaaBBBBccccDDDD12345',
      'ghp_aaaaBBBBccccDDDD123456',
    ]) {
      await stack.gateway.secrets!.set(ownerOf(stack, 'bob'), 'vault_token', value)
      const before = stack.logLines.length
      const { client } = await connect(stack, 'bob', 'hostile')
      try {
        assert.equal(textOf(await client.callTool({ name: 'leak', arguments: {} })), 'leaked')
        await waitFor(
          () => stack.logLines.slice(before).some((l) => l.includes('end of request')),
          'the last stderr line was logged',
        )
      } finally {
        await client.close()
      }
      const lines = stack.logLines.slice(before)
      const basic = lines.find((l) => l.includes('Authorization: Basic'))!
      const blob = lines.find((l) => l.includes('blob='))!
      const encoded = Buffer.from(`x-access-token:${value}`).toString('base64')
      const url = Buffer.from(`{"u":"me","t":"${value}"}`).toString('base64url')
      assert.ok(!basic.includes(encoded), `the Basic credential is not whole in ${basic}`)
      // Decoding what is left gives no more than a few characters of the value.
      const left = basic
        .split('Basic ')[1]!
        .split('"')[0]!
        .replace(/\[redacted\]/g, '')
      assert.ok(!Buffer.from(left, 'base64').toString().includes(value.slice(0, 8)), basic)
      assert.ok(basic.includes('[redacted]'), basic)
      assert.ok(!blob.includes(url), blob)
      assert.ok(blob.includes('[redacted]'), blob)
    }
  })

  it("a process's initialize error quoting the token (a sessionless request starting its lane) is logged redacted", async () => {
    const value = 'init-secret-0123456789abcdef'
    await stack.gateway.secrets!.set(ownerOf(stack, 'dora'), 'vault_token', value)
    const before = stack.logLines.length
    const token = await stack.token('dev', { server: 'hostileinit' })
    const res = await request(
      stack.local('hostileinit'),
      modernToolCall(token, 'leak', {}, { id: 7 }),
    )
    await res.body.text()
    await waitFor(
      () =>
        stack.logLines.slice(before).some((l) => l.includes('server process failed to initialize')),
      'the failed start was logged',
    )
    const lines = stack.logLines.slice(before).join('\n')
    assert.ok(!lines.includes(value), 'the token is not in the log')
    assert.match(lines, /cannot start: the token \[redacted\] was refused/)
  })

  it("a backend's list error quoting the token (an endpoint's list) is logged redacted", async () => {
    const value = 'list-secret-0123456789abcdef'
    await stack.gateway.secrets!.set(ownerOf(stack, 'ada'), 'vault_token', value)
    const before = stack.logLines.length
    const token = await stack.token('admin', { resource: `${stack.url}/mcp/listing` })
    const res = await request(
      `${stack.url}/mcp/listing`,
      modernRequest(token, 'tools/list', {}, { id: 8 }),
    )
    const json = (await res.body.json()) as { result?: { tools: { name: string }[] } }
    // The vault backend still lists; the hostile one is left out.
    assert.ok(
      json.result?.tools.some((t) => t.name === 'vault_credential'),
      JSON.stringify(json),
    )
    const lines = stack.logLines.slice(before).join('\n')
    assert.match(lines, /a backend could not list/)
    assert.ok(!lines.includes(value), 'the token is not in the log')
    assert.match(lines, /listing refused for \[redacted\]/)
  })
})

describe('stop 23: a call waiting for a missing secret stops waiting when its request is gone', () => {
  let stack: Stack
  /** Reads of users' secrets, per key (each poll of a waiting call reads its user's). */
  const secretReads = new Map<string, number>()
  const inner = createMemoryStore()
  const store: Store = {
    ...inner,
    async get(key) {
      if (key.startsWith('secrets:')) secretReads.set(key, (secretReads.get(key) ?? 0) + 1)
      return inner.get(key)
    },
  }
  /** Reads of the secrets of subject `sub` so far. */
  const readsOf = (sub: string) => {
    const prefix = `secrets:${stack.gateway.secrets!.userKey(ownerOf(stack, sub))}`
    let n = 0
    for (const [key, count] of secretReads) if (key.startsWith(prefix)) n += count
    return n
  }

  before(async () => {
    stack = await credentialStack(
      { vault: { command: node, args: [fixture], credentials: VAULT } },
      { store },
    )
  })
  after(() => stack?.close())

  /** A session whose client accepts the URL elicitation (so the call waits) and counts it. */
  async function waiting(user: string) {
    let asked = 0
    const s = await connect(stack, user, 'vault', {
      capabilities: { elicitation: { url: {} } },
      setup: (c) =>
        c.setRequestHandler('elicitation/create', async () => (asked++, { action: 'accept' })),
    })
    return { ...s, asked: () => asked }
  }

  /**
   * Polls running: `user`'s reads keep coming; then `end` the request and wait for the gateway
   * to have settled it (its audit line: `ended`). Then no clock decides: another user's call
   * (admin's),
   * waiting all along with the same poll interval, is watched for three more polls (a barrier),
   * in which this one, had it kept polling, would have polled at least twice; it may have made
   * one more, the read under way when the request ended.
   */
  async function pollsStop(
    user: string,
    end: () => Promise<void>,
    call: Promise<unknown>,
    ended: (e: Record<string, unknown>) => boolean,
  ) {
    const barrier = await waiting('admin')
    const waits = barrier.client
      .callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })
      .catch(() => undefined)
    try {
      const start = readsOf(user)
      await waitFor(() => readsOf(user) >= start + 3, 'the waiting call polls the store')
      await waitFor(() => barrier.asked() === 1, "the barrier's call waits")
      await end()
      await call.catch(() => {})
      await waitFor(() => stack.audit().some(ended), 'the gateway settled the request')
      const after = readsOf(user)
      const barrierAt = readsOf('ada')
      await waitFor(
        () => readsOf('ada') >= barrierAt + 3,
        "the barrier's call polled three more times",
      )
      assert.ok(
        readsOf(user) - after <= 1,
        `no more polls after the request ended (${readsOf(user) - after} reads)`,
      )
    } finally {
      await barrier.client.close()
      await waits
    }
  }

  it('the client cancels the call (notifications/cancelled): the wait ends', async () => {
    const s = await waiting('alice')
    try {
      const abort = new AbortController()
      const call = s.client
        .callTool(
          { name: 'credential', arguments: { name: 'VAULT_TOKEN' } },
          { signal: abort.signal },
        )
        .catch(() => undefined)
      await waitFor(() => s.asked() === 1, 'the client was asked')
      await pollsStop(
        'alice',
        async () => abort.abort('the user gave up'),
        call,
        (e) => e.sub === 'alice' && e.method === 'tools/call' && e.outcome === 'cancelled',
      )
    } finally {
      await s.client.close()
    }
  })

  it('the session ends (DELETE): the wait ends', async () => {
    const s = await waiting('bob')
    // Rejected when the session ends ('the session was closed'): caught at once.
    const call = s.client
      .callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })
      .catch(() => undefined)
    await waitFor(() => s.asked() === 1, 'the client was asked')
    await pollsStop(
      'bob',
      async () => {
        await s.transport.terminateSession()
        await s.client.close()
      },
      call,
      // The session closed: its requests end with -32000 (connection closed).
      (e) =>
        e.sub === 'bob' &&
        e.method === 'tools/call' &&
        typeof e.outcome === 'string' &&
        e.outcome.startsWith('error '),
    )
  })

  it("the question answered, the call waiting: only the wait listens on its request's signal", async () => {
    const s = await waiting('alice')
    try {
      const call = s.client
        .callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })
        .catch(() => undefined)
      await waitFor(() => s.asked() === 1, 'the client was asked')
      // Polls of the store: the answer came back and the call now waits for the secret.
      const start = readsOf('alice')
      await waitFor(() => readsOf('alice') >= start + 2, 'the waiting call polls the store')
      // The request's own signal (aborted when it settles), read off the session's requests.
      const registry = stack.gateway.registry as unknown as { sessions: Map<string, unknown> }
      const session = registry.sessions.get(s.transport.sessionId!) as {
        inflight: Map<unknown, { waiting?: AbortController }>
      }
      const signal = [...session.inflight.values()].find((r) => r.waiting)!.waiting!.signal
      // The elicitation's listener left with its answer; the wait's is the one left.
      assert.equal(getEventListeners(signal, 'abort').length, 1)
      await s.client.close()
      await call
    } finally {
      await s.client.close()
    }
  })

  it('held: once the secret is set, a waiting call runs with it (the wait still works)', async () => {
    const s = await waiting('dev')
    try {
      const call = s.client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })
      await waitFor(() => s.asked() === 1, 'the client was asked')
      await stack.gateway.secrets!.set(ownerOf(stack, 'dora'), 'vault_token', 'set-while-waiting')
      const r = JSON.parse(textOf(await call)) as { sha256: string }
      assert.equal(r.sha256, sha('set-while-waiting'))
    } finally {
      await s.client.close()
    }
  })
})

describe('stop 23: a deleted secret leaves with its process, in every era and at an endpoint', () => {
  let stack: Stack
  before(async () => {
    stack = await credentialStack(
      { vault: { command: node, args: [fixture], credentials: VAULT } },
      { config: { endpoints: { kit: { servers: ['vault'] } } } },
    )
  })
  after(() => stack?.close())

  const alive = (pid: number) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  /** The fixture's answer to `credential`: the pid and the hash of VAULT_TOKEN, or the error text. */
  const parse = (text: string) => {
    try {
      return JSON.parse(text) as { pid: number; sha256: string | null }
    } catch {
      return { pid: 0, sha256: null, text }
    }
  }
  let id = 100
  async function modern(user: string, path: string, tool: string, resource?: string) {
    const token = await stack.token(user, resource ? { resource } : { server: 'vault' })
    const res = await request(
      `${stack.url}${path}`,
      modernToolCall(token, tool, { name: 'VAULT_TOKEN' }, { id: id++ }),
    )
    const json = (await res.body.json()) as {
      result?: { content: { text: string }[]; isError?: boolean }
    }
    return { isError: json.result?.isError === true, text: textOf(json.result ?? {}) }
  }

  it('a session (2025-11-25): the refused call replaces the process; lists go on', async () => {
    await stack.gateway.secrets!.set(ownerOf(stack, 'alice'), 'vault_token', 'to-be-deleted-1')
    const { client } = await connect(stack, 'alice', 'vault')
    try {
      const first = parse(
        textOf(await client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })),
      )
      assert.equal(first.sha256, sha('to-be-deleted-1'))
      await stack.gateway.secrets!.remove(ownerOf(stack, 'alice'), 'vault_token')
      const refused = await client.callTool({
        name: 'credential',
        arguments: { name: 'VAULT_TOKEN' },
      })
      assert.equal((refused as { isError?: boolean }).isError, true)
      assert.match(textOf(refused), /account\?server=vault&secret=vault_token/)
      await waitFor(() => !alive(first.pid), 'the process holding the deleted value exited')
      const listed = await client.listTools()
      assert.ok(listed.tools.some((t) => t.name === 'credential'))
    } finally {
      await client.close()
    }
  })

  it('sessionless (2026-07-28): the lane holding the value ends when the call is refused', async () => {
    await stack.gateway.secrets!.set(ownerOf(stack, 'bob'), 'vault_token', 'to-be-deleted-2')
    const first = await modern('bob', '/mcp/vault', 'credential')
    const was = parse(first.text)
    assert.equal(was.sha256, sha('to-be-deleted-2'), first.text)
    await stack.gateway.secrets!.remove(ownerOf(stack, 'bob'), 'vault_token')
    const refused = await modern('bob', '/mcp/vault', 'credential')
    assert.equal(refused.isError, true)
    await waitFor(() => !alive(was.pid), 'the lane holding the deleted value ended')
  })

  it('an endpoint: the backend lane holding the value ends when the call is refused', async () => {
    const resource = `${stack.url}/mcp/kit`
    await stack.gateway.secrets!.set(ownerOf(stack, 'dora'), 'vault_token', 'to-be-deleted-3')
    const first = await modern('dev', '/mcp/kit', 'vault_credential', resource)
    const was = parse(first.text)
    assert.equal(was.sha256, sha('to-be-deleted-3'), first.text)
    await stack.gateway.secrets!.remove(ownerOf(stack, 'dora'), 'vault_token')
    const refused = await modern('dev', '/mcp/kit', 'vault_credential', resource)
    assert.equal(refused.isError, true)
    await waitFor(() => !alive(was.pid), 'the lane holding the deleted value ended')
  })

  it('held: at an endpoint, users interleaved in both eras each run with their own value', async () => {
    const users = [
      ['alice', 'alice'],
      ['bob', 'bob'],
    ] as const
    for (const [, sub] of users)
      await stack.gateway.secrets!.set(ownerOf(stack, sub), 'vault_token', `kit-${sub}-value`)
    const sessions = await Promise.all(users.map(([client]) => connect(stack, client, 'kit')))
    try {
      const resource = `${stack.url}/mcp/kit`
      const calls: Promise<void>[] = []
      for (let round = 0; round < 4; round++) {
        users.forEach(([client, sub], i) => {
          calls.push(
            sessions[i]!.client.callTool({
              name: 'vault_credential',
              arguments: { name: 'VAULT_TOKEN' },
            }).then((r) => {
              assert.equal(parse(textOf(r)).sha256, sha(`kit-${sub}-value`), `${sub}, session`)
            }),
          )
          calls.push(
            modern(client, '/mcp/kit', 'vault_credential', resource).then((r) => {
              assert.equal(parse(r.text).sha256, sha(`kit-${sub}-value`), `${sub}, sessionless`)
            }),
          )
        })
      }
      await Promise.all(calls)
    } finally {
      for (const s of sessions) await s.client.close()
    }
  })

  it("held: another user's process is untouched by one user's deletion", async () => {
    await stack.gateway.secrets!.set(ownerOf(stack, 'ada'), 'vault_token', 'ada-keeps-1')
    await stack.gateway.secrets!.set(ownerOf(stack, 'bob'), 'vault_token', 'bob-deletes-1')
    const ada = parse((await modern('admin', '/mcp/vault', 'credential')).text)
    const bob = parse((await modern('bob', '/mcp/vault', 'credential')).text)
    await stack.gateway.secrets!.remove(ownerOf(stack, 'bob'), 'vault_token')
    assert.equal((await modern('bob', '/mcp/vault', 'credential')).isError, true)
    await waitFor(() => !alive(bob.pid), "bob's lane ended")
    const again = parse((await modern('admin', '/mcp/vault', 'credential')).text)
    assert.equal(again.pid, ada.pid)
    assert.equal(again.sha256, sha('ada-keeps-1'))
  })
})

describe('stop 23: the account page link keeps the public URL path', () => {
  let stack: Stack
  const PUBLIC = 'https://mcp.example.com/edge'

  before(async () => {
    stack = await credentialStack(
      { vault: { command: node, args: [fixture], credentials: VAULT } },
      { publicUrl: PUBLIC },
    )
  })
  after(() => stack?.close())

  it('the tool error and the URL elicitation (-32042) both point under publicUrl, where the page is', async () => {
    const token = await stack.token('alice', { server: 'vault' })
    const plain = await request(
      stack.local('vault'),
      modernToolCall(token, 'credential', { name: 'VAULT_TOKEN' }, { id: 1 }),
    )
    const text = JSON.stringify(await plain.body.json())
    assert.ok(
      text.includes(`${PUBLIC}/account?server=vault&secret=vault_token`),
      `the tool error names ${PUBLIC}/account: ${text}`,
    )
    const eliciting = await request(
      stack.local('vault'),
      modernToolCall(
        token,
        'credential',
        { name: 'VAULT_TOKEN' },
        { id: 2, caps: { elicitation: { url: {} } } },
      ),
    )
    const json = (await eliciting.body.json()) as {
      error?: { code: number; data?: { elicitations?: { url: string }[] } }
    }
    assert.equal(json.error?.code, -32042)
    assert.equal(
      json.error?.data?.elicitations?.[0]?.url,
      `${PUBLIC}/account?server=vault&secret=vault_token`,
    )
    // The page is there (the gateway answers below the path as a proxy passing it would ask).
    const page = await request(`${stack.url}/edge/account?server=vault&secret=vault_token`, {
      headers: { host: 'mcp.example.com' },
    })
    await page.body.text()
    assert.equal(page.statusCode, 200)
  })
})

describe("stop 23: a process's error quoting the token reaches no trace", () => {
  const OTEL = {
    OTEL_EXPORTER_OTLP_ENDPOINT: '',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_METRIC_EXPORT_INTERVAL: '3600000',
  }
  const saved = Object.fromEntries(Object.keys(OTEL).map((k) => [k, process.env[k]]))
  let receiver: OtlpReceiver
  let stack: Stack
  const value = 'traced-secret-0123456789abcdef'

  before(async () => {
    receiver = await startOtlpReceiver()
    const dir = mkdtempSync(join(tmpdir(), 'stop23-trace-'))
    const script = join(dir, 'hostile.cjs')
    writeFileSync(script, HOSTILE)
    // The tracing SDK reads its settings from the environment at start.
    Object.assign(process.env, OTEL, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url })
    try {
      stack = await credentialStack(
        {
          refuser: {
            command: node,
            args: [script],
            credentials: VAULT,
            env: { HOSTILE_FAIL: 'call' },
          },
        },
        { config: { endpoints: { refusing: { servers: ['refuser'] } } } },
      )
    } finally {
      for (const [k, v] of Object.entries(saved))
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
    }
    for (const sub of ['alice', 'bob', 'dora'])
      await stack.gateway.secrets!.set(ownerOf(stack, sub), 'vault_token', value)
  })
  after(async () => {
    await stack?.close()
    await receiver?.close()
  })

  it('a session, a sessionless call and an endpoint call: the error span says [redacted]', async () => {
    const { client } = await connect(stack, 'alice', 'refuser')
    try {
      await assert.rejects(client.callTool({ name: 'leak', arguments: {} }), /call refused for/)
    } finally {
      await client.close()
    }
    const token = await stack.token('bob', { server: 'refuser' })
    const res = await request(stack.local('refuser'), modernToolCall(token, 'leak', {}, { id: 9 }))
    const body = (await res.body.json()) as { error?: { message: string } }
    // The client is the user: the answer is theirs, as the server wrote it.
    assert.equal(body.error?.message, `call refused for ${value}`)
    const endpoint = await connect(stack, 'dev', 'refusing')
    try {
      await assert.rejects(
        endpoint.client.callTool({ name: 'refuser_leak', arguments: {} }),
        /call refused for/,
      )
    } finally {
      await endpoint.client.close()
    }
    await stack.gateway.tracing.flush()
    const errors = receiver.spans.filter((s) => s.status.message?.includes('call refused for'))
    assert.ok(errors.length >= 3, `three error spans (${errors.length})`)
    for (const s of errors) assert.equal(s.status.message, 'call refused for [redacted]', s.name)
    assert.ok(
      !receiver.spans.some((s) =>
        JSON.stringify(s, (_, v) => (typeof v === 'bigint' ? String(v) : v)).includes(value),
      ),
      'no span holds the value',
    )
  })
})
