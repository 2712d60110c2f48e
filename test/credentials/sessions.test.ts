// Each user's own credentials for a stdio server, end to end: real IdP tokens, real gateway,
// real fixture processes that report (by hash) the value they were started with, the SDK v2
// client for sessions (2025-11-25) and raw 2026-07-28 requests. Isolation under concurrency,
// URL elicitation for a missing secret, rotation at a request boundary, deletion, redaction
// and the audit line.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import type { SecretOwner, UserSecrets } from '../../gateway/credentials/secrets.js'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'
import { connectAs } from '../helpers/sdk-session.js'

const node = process.execPath
const fixture = join(SERVERS_DIR, 'fixture.js')
const credentials = { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } }
const record = join(mkdtempSync(join(tmpdir(), 'mcp-edge-credentials-')), 'vault-record.jsonl')
const SERVERS = {
  vault: { command: node, args: [fixture], credentials, env: { FIXTURE_RECORD_FILE: record } },
  vaultjson: { command: node, args: [fixture], credentials, responses: 'json' },
}
const POLICY = `${TEST_POLICY}${Object.keys(SERVERS)
  .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
  .join('')}`
/** The test IdP's clients (client_credentials), each acting as one user. */
const USERS = ['alice', 'bob', 'dev', 'admin'] as const
const SUBJECT: Record<string, string> = { alice: 'alice', bob: 'bob', dev: 'dora', admin: 'ada' }

let stack: Stack
let secrets: UserSecrets
const sha = (v: string) => createHash('sha256').update(v).digest('hex')
const owner = (user: string): SecretOwner => ({ iss: stack.idp.issuer, sub: SUBJECT[user]! })

before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: {
      credentials: { pollInterval: 20, elicitationTimeout: 60_000 },
      // vault behind an endpoint too: its calls there are audited like at /mcp/vault.
      endpoints: { vaults: { path: '/mcp/vaults', servers: ['vault'] } },
    },
  })
  secrets = stack.gateway.secrets!
})
after(() => stack.close())
beforeEach(async () => {
  for (const u of USERS) await secrets.remove(owner(u), 'vault_token')
})

function textOf(result: unknown): string {
  return ((result as { content: { text: string }[] }).content ?? []).map((c) => c.text).join('')
}

/** A session (2025-11-25) of `user` on `server`, with `capabilities` and handlers set by `setup`. */
async function connect(user: string, server = 'vault', o: Parameters<typeof connectAs>[3] = {}) {
  return (await connectAs(stack, user, server, o)).client
}

async function credentialOf(
  client: Client,
): Promise<{ pid: number; sha256: string | null; isError?: boolean; text: string }> {
  const result = await client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })
  const text = textOf(result)
  if ((result as { isError?: boolean }).isError)
    return { pid: 0, sha256: null, isError: true, text }
  return { ...(JSON.parse(text) as { pid: number; sha256: string | null }), text }
}

let nextId = 1
/** One sessionless (2026-07-28) tools/call. */
async function modernCall(
  user: string,
  name: string,
  args: Record<string, unknown>,
  caps: Record<string, unknown> = {},
  server = 'vault',
) {
  const token = await stack.token(user, { server })
  const res = await request(
    stack.local(server),
    modernToolCall(token, name, args, { id: nextId++, caps }),
  )
  const json = (await res.body.json()) as {
    result?: { content: { text: string }[]; isError?: boolean }
    error?: {
      code: number
      message: string
      data?: {
        elicitations?: { mode: string; url: string; message: string; elicitationId: string }[]
      }
    }
  }
  return {
    status: res.statusCode,
    json,
    text: json.result?.content.map((c) => c.text).join('') ?? '',
  }
}

/** The tools/call requests for `credential` that reached the vault process (its own record). */
function credentialCallsSeen(): number {
  if (!existsSync(record)) return 0
  return readFileSync(record, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"tools/call"') && l.includes('"credential"')).length
}

describe('per-user credentials: isolation', () => {
  it("every call runs in a process started with its own user's value, under interleaved concurrency, in both eras", async () => {
    const value = (u: string) => `vault-${u}-${u.length}-secret`
    for (const u of USERS) await secrets.set(owner(u), 'vault_token', value(u))
    const clients = await Promise.all(USERS.map((u) => connect(u)))
    try {
      const pids = new Map<string, Set<number>>(USERS.map((u) => [u, new Set()]))
      const calls: Promise<void>[] = []
      for (let round = 0; round < 6; round++) {
        USERS.forEach((u, i) => {
          calls.push(
            credentialOf(clients[i]!).then((r) => {
              assert.equal(r.sha256, sha(value(u)), `${u}'s session ran with ${u}'s value`)
              pids.get(u)!.add(r.pid)
            }),
          )
          calls.push(
            modernCall(u, 'credential', { name: 'VAULT_TOKEN' }).then((r) => {
              assert.equal(r.status, 200, JSON.stringify(r.json))
              const got = JSON.parse(r.text) as { pid: number; sha256: string }
              assert.equal(
                got.sha256,
                sha(value(u)),
                `${u}'s sessionless call ran with ${u}'s value`,
              )
              pids.get(u)!.add(got.pid)
            }),
          )
        })
      }
      await Promise.all(calls)
      for (const a of USERS)
        for (const b of USERS)
          if (a !== b)
            for (const pid of pids.get(a)!)
              assert.ok(!pids.get(b)!.has(pid), `${a} and ${b} never share a process`)
    } finally {
      await Promise.all(clients.map((c) => c.close()))
    }
  })

  it("a user without the secret never gets another user's: the call asks, the process saw nothing", async () => {
    await secrets.set(owner('alice'), 'vault_token', 'alice-only')
    const seen = credentialCallsSeen()
    const bob = await connect('bob')
    try {
      const r = await credentialOf(bob)
      assert.equal(r.isError, true)
      assert.match(
        r.text,
        /vault needs Your vault token \(vault_token\), which you have not set\. Set it at http:\/\/127\.0\.0\.1:\d+\/account\?server=vault&secret=vault_token and try again\./,
      )
      assert.equal(credentialCallsSeen(), seen, 'the call never reached the process')
    } finally {
      await bob.close()
    }
  })
})

describe('per-user credentials: a missing secret, asked for with URL elicitation (2025-11-25)', () => {
  it('the client is sent to the account page; the call runs, with the value, once the secret is set', async () => {
    const asked: { url: string; message: string; elicitationId: string }[] = []
    const completed: string[] = []
    const client = await connect('alice', 'vault', {
      capabilities: { elicitation: { url: {} } },
      setup: (c) => {
        c.setRequestHandler('elicitation/create', async (req) => {
          const p = req.params as {
            mode: string
            url: string
            message: string
            elicitationId: string
          }
          asked.push(p)
          // The user follows the link and sets the secret (the account page's write), after the
          // client said it opened the page: the gateway waits for the store, not for the client.
          setImmediate(() => void secrets.set(owner('alice'), 'vault_token', 'set-after-asking'))
          return { action: 'accept' }
        })
        c.setNotificationHandler(
          'notifications/elicitation/complete',
          (n) => void completed.push(String(n.params.elicitationId)),
        )
      },
    })
    try {
      const r = await credentialOf(client)
      assert.equal(r.sha256, sha('set-after-asking'))
      assert.equal(asked.length, 1)
      assert.equal((asked[0] as { mode?: string }).mode, 'url')
      assert.equal(asked[0]!.url, `${stack.url}/account?server=vault&secret=vault_token`)
      // The request waits here (unlike -32042's, which asks for a retry).
      assert.equal(
        asked[0]!.message,
        'vault needs Your vault token (vault_token), which you have not set. Set it on your account page; the request continues once it is set.',
      )
      assert.doesNotMatch(JSON.stringify(asked[0]), /set-after-asking/)
      assert.deepEqual(completed, [asked[0]!.elicitationId])
      // Set now: the next call asks nothing.
      assert.equal((await credentialOf(client)).sha256, sha('set-after-asking'))
      assert.equal(asked.length, 1)
    } finally {
      await client.close()
    }
  })

  for (const action of ['decline', 'cancel'] as const) {
    it(`the user answers ${action}: a tool error naming the page, nothing reaches the process`, async () => {
      const seen = credentialCallsSeen()
      const client = await connect('bob', 'vault', {
        capabilities: { elicitation: { url: {} } },
        setup: (c) => c.setRequestHandler('elicitation/create', async () => ({ action })),
      })
      try {
        const r = await credentialOf(client)
        assert.equal(r.isError, true)
        assert.match(r.text, /\/account\?server=vault&secret=vault_token/)
        assert.equal(credentialCallsSeen(), seen)
        const refused = stack
          .audit()
          .filter(
            (e) => e.sub === 'bob' && e.outcome === `credential missing (elicitation ${action})`,
          )
        assert.ok(refused.length > 0, 'audited with the answer')
      } finally {
        await client.close()
      }
    })
  }

  it('a client that declared only form elicitation gets the tool error, never a URL request', async () => {
    let asked = 0
    const client = await connect('dev', 'vault', {
      capabilities: { elicitation: {} },
      setup: (c) =>
        c.setRequestHandler(
          'elicitation/create',
          async () => (asked++, { action: 'accept', content: {} }),
        ),
    })
    try {
      const r = await credentialOf(client)
      assert.equal(r.isError, true)
      assert.match(r.text, /Set it at http:\/\/127\.0\.0\.1:\d+\/account\?server=vault/)
      assert.equal(asked, 0)
    } finally {
      await client.close()
    }
  })

  it('JSON responses: the elicitation goes on the listening stream the client holds open', async () => {
    const client = await connect('admin', 'vaultjson', {
      capabilities: { elicitation: { url: {} } },
      setup: (c) =>
        c.setRequestHandler('elicitation/create', async () => {
          await secrets.set(owner('admin'), 'vault_token', 'json-mode')
          return { action: 'accept' }
        }),
    })
    try {
      assert.equal((await credentialOf(client)).sha256, sha('json-mode'))
    } finally {
      await client.close()
    }
  })

  it('JSON responses and no listening stream: nowhere to send the request, so the tool error', async () => {
    const token = await stack.token('admin', { server: 'vaultjson' })
    const post = async (body: unknown, session?: string) => {
      const res = await request(stack.local('vaultjson'), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${token}`,
          ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' } : {}),
        },
        body: JSON.stringify(body),
      })
      const text = await res.body.text()
      return {
        session: res.headers['mcp-session-id'] as string | undefined,
        json: text
          ? (JSON.parse(text) as { result?: { content: { text: string }[]; isError?: boolean } })
          : undefined,
      }
    }
    const init = await post({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: { elicitation: { url: {} } },
        clientInfo: { name: 'raw', version: '0' },
      },
    })
    assert.ok(init.session)
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, init.session)
    const r = await post(
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'credential', arguments: { name: 'VAULT_TOKEN' } },
      },
      init.session,
    )
    assert.equal(r.json?.result?.isError, true, JSON.stringify(r.json))
    assert.match(r.json!.result!.content[0]!.text, /account\?server=vaultjson&secret=vault_token/)
  })

  it('deleting the secret makes the next call ask again', async () => {
    let asked = 0
    await secrets.set(owner('alice'), 'vault_token', 'first')
    const client = await connect('alice', 'vault', {
      capabilities: { elicitation: { url: {} } },
      setup: (c) =>
        c.setRequestHandler('elicitation/create', async () => (asked++, { action: 'decline' })),
    })
    try {
      assert.equal((await credentialOf(client)).sha256, sha('first'))
      await secrets.remove(owner('alice'), 'vault_token')
      const r = await credentialOf(client)
      assert.equal(r.isError, true)
      assert.equal(asked, 1)
    } finally {
      await client.close()
    }
  })
})

describe('per-user credentials: rotation replaces the process at a request boundary', () => {
  it('a session: the request in flight finishes on the old process; the next runs on a new one with the new value', async () => {
    await secrets.set(owner('bob'), 'vault_token', 'v1')
    const client = await connect('bob')
    try {
      const first = await credentialOf(client)
      assert.equal(first.sha256, sha('v1'))
      let running!: () => void
      const started = new Promise<void>((resolve) => (running = resolve))
      const slow = client.callTool(
        { name: 'slow', arguments: { ms: 300, every: 20 } },
        { onprogress: () => running() },
      )
      await started
      await secrets.set(owner('bob'), 'vault_token', 'v2')
      const second = await credentialOf(client)
      assert.equal(textOf(await slow), 'done', 'the call in flight was not cut')
      assert.equal(second.sha256, sha('v2'))
      assert.notEqual(second.pid, first.pid)
      // The old process ends.
      await waitFor(() => !alive(first.pid))
      assert.ok(
        stack.logLines.some(
          (l) => l.includes('process replaced') && l.includes(`"replaced":${first.pid}`),
        ),
      )
      // The session is the same one, and lists still work on the new process.
      assert.ok((await client.listTools()).tools.some((t) => t.name === 'credential'))
    } finally {
      await client.close()
    }
  })

  it('sessionless: the next request after a rotation runs on a process with the new value; the old one ends', async () => {
    await secrets.set(owner('dev'), 'vault_token', 'd1')
    const a = JSON.parse((await modernCall('dev', 'credential', { name: 'VAULT_TOKEN' })).text) as {
      pid: number
      sha256: string
    }
    assert.equal(a.sha256, sha('d1'))
    await secrets.set(owner('dev'), 'vault_token', 'd2')
    const b = JSON.parse((await modernCall('dev', 'credential', { name: 'VAULT_TOKEN' })).text) as {
      pid: number
      sha256: string
    }
    assert.equal(b.sha256, sha('d2'))
    assert.notEqual(b.pid, a.pid)
    await waitFor(() => !alive(a.pid))
  })
})

describe('per-user credentials: sessionless (2026-07-28) missing secrets', () => {
  it('a client with URL elicitation gets URLElicitationRequiredError (-32042) naming the page; the retry after setting runs', async () => {
    const seen = credentialCallsSeen()
    const caps = { elicitation: { url: {} } }
    const r = await modernCall('admin', 'credential', { name: 'VAULT_TOKEN' }, caps)
    assert.equal(r.json.error?.code, -32042, JSON.stringify(r.json))
    // The request is over: the message asks for a retry, not for waiting.
    const said =
      'vault needs Your vault token (vault_token), which you have not set. Set it on your account page; then try again.'
    assert.equal(r.json.error?.message, said)
    const e = r.json.error!.data!.elicitations!
    assert.equal(e[0]!.message, said)
    assert.equal(e.length, 1)
    assert.equal(e[0]!.mode, 'url')
    assert.equal(e[0]!.url, `${stack.url}/account?server=vault&secret=vault_token`)
    assert.ok(e[0]!.elicitationId.length >= 16)
    assert.equal(credentialCallsSeen(), seen)
    await secrets.set(owner('admin'), 'vault_token', 'ada-now')
    const again = await modernCall('admin', 'credential', { name: 'VAULT_TOKEN' }, caps)
    assert.equal(JSON.parse(again.text).sha256, sha('ada-now'))
  })

  it('a client without it gets a tool error naming the page', async () => {
    const r = await modernCall('admin', 'credential', { name: 'VAULT_TOKEN' }, { elicitation: {} })
    assert.equal(r.json.result?.isError, true)
    assert.match(
      r.text,
      /Set it at http:\/\/127\.0\.0\.1:\d+\/account\?server=vault&secret=vault_token/,
    )
  })

  it('lists do not wait for credentials', async () => {
    const token = await stack.token('admin', { server: 'vault' })
    const res = await request(
      stack.local('vault'),
      modernRequest(token, 'tools/list', {}, { id: nextId++ }),
    )
    const json = (await res.body.json()) as { result?: { tools: { name: string }[] } }
    assert.ok(
      json.result?.tools.some((t) => t.name === 'credential'),
      JSON.stringify(json),
    )
  })
})

describe('per-user credentials: what is written down', () => {
  it('a process writing its credential to stderr is redacted in the log, raw and encoded', async () => {
    const value = 'sk-live/"quoted"+plus&amp'
    await secrets.set(owner('alice'), 'vault_token', value)
    const client = await connect('alice')
    try {
      assert.equal(
        textOf(
          await client.callTool({ name: 'print_credential', arguments: { name: 'VAULT_TOKEN' } }),
        ),
        'printed',
      )
      await waitFor(() => stack.logLines.some((l) => l.includes('config VAULT_TOKEN=')))
      const line = stack.logLines.find((l) => l.includes('config VAULT_TOKEN='))!
      for (const form of [
        value,
        JSON.stringify(value).slice(1, -1),
        encodeURIComponent(value),
        Buffer.from(value).toString('base64'),
      ]) {
        assert.ok(!line.includes(form), `no ${form} in ${line}`)
      }
      assert.match(line, /config VAULT_TOKEN=\[redacted\]/)
    } finally {
      await client.close()
    }
  })

  it('the audit line names each credential and its source, never a value; logs hold no value', async () => {
    const value = 'audit-me-not-0123456789'
    await secrets.set(owner('bob'), 'vault_token', value)
    const client = await connect('bob')
    try {
      await credentialOf(client)
    } finally {
      await client.close()
    }
    await modernCall('bob', 'credential', { name: 'VAULT_TOKEN' })
    // The same calls through the endpoint /mcp/vaults, in both eras.
    const vaults = `${stack.url}/mcp/vaults`
    const token = await stack.token('bob', { resource: vaults })
    const atEndpoint = new Client({ name: 'test-bob-endpoint', version: '0' })
    await atEndpoint.connect(
      new StreamableHTTPClientTransport(new URL(vaults), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      const r = await atEndpoint.callTool({
        name: 'vault_credential',
        arguments: { name: 'VAULT_TOKEN' },
      })
      assert.equal(JSON.parse(textOf(r)).sha256, sha(value))
    } finally {
      await atEndpoint.close()
    }
    const modern = await request(
      vaults,
      modernToolCall(token, 'vault_credential', { name: 'VAULT_TOKEN' }, { id: nextId++ }),
    )
    assert.match(await modern.body.text(), new RegExp(sha(value)))
    const lines = stack
      .audit()
      .filter(
        (e) =>
          e.sub === 'bob' &&
          e.method === 'tools/call' &&
          e.outcome === 'ok' &&
          e.server === 'vault',
      )
    assert.ok(lines.length >= 4, JSON.stringify(lines))
    for (const l of lines)
      assert.deepEqual(l.credentials, [{ name: 'VAULT_TOKEN', source: 'secret' }])
    assert.ok(!JSON.stringify(stack.audit()).includes(value))
    assert.ok(!stack.logLines.some((l) => l.includes(value)))
  })
})

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
