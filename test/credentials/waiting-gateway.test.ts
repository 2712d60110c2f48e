// Calls waiting for a user's missing secret (2025-11-25 sessions, URL elicitation) are bounded:
// at most credentials.waitingPerSubject per user over every session and server, the next
// refused at once with the tool error naming the account page (never asked, never reaching the
// process), another user unaffected; and one look at the store per (user, server) per
// interval, however many of the user's calls wait. Real IdP tokens, real gateway, real fixture
// processes; every wait is for an event (an elicitation arriving, a call settling, a count of
// store reads), never for a time.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import type { SecretOwner } from '../../gateway/credentials/secrets.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import type { Store } from '../../gateway/store/store.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const node = process.execPath
const fixture = join(SERVERS_DIR, 'fixture.js')
const credentials = { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } }
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-waiting-'))
const records = { vault: join(dir, 'vault.jsonl'), vaultb: join(dir, 'vaultb.jsonl') }
const SERVERS = {
  vault: {
    command: node,
    args: [fixture],
    credentials,
    env: { FIXTURE_RECORD_FILE: records.vault },
  },
  vaultb: {
    command: node,
    args: [fixture],
    credentials,
    env: { FIXTURE_RECORD_FILE: records.vaultb },
  },
}
const POLICY = `${TEST_POLICY}${Object.keys(SERVERS)
  .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
  .join('')}`
/** credentials.waitingPerSubject in this stack. */
const N = 2
const SUBJECT: Record<string, string> = { alice: 'alice', bob: 'bob', dev: 'dora' }
const USERS = Object.keys(SUBJECT)

/** Store reads, by key (each look of a waiting call reads the user's secret). */
const reads = new Map<string, number>()
const inner = createMemoryStore()
const store: Store = {
  ...inner,
  async get(key) {
    reads.set(key, (reads.get(key) ?? 0) + 1)
    return inner.get(key)
  },
}

let stack: Stack
const sha = (v: string) => createHash('sha256').update(v).digest('hex')
const owner = (user: string): SecretOwner => ({ iss: stack.idp.issuer, sub: SUBJECT[user]! })
const readsOf = (user: string) =>
  reads.get(`secrets:${stack.gateway.secrets!.userKey(owner(user))}:vault_token`) ?? 0
const textOf = (result: unknown) =>
  ((result as { content?: { text: string }[] }).content ?? []).map((c) => c.text).join('')

before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    store,
    config: {
      credentials: { pollInterval: 20, elicitationTimeout: 60_000, waitingPerSubject: N },
    },
  })
})
after(() => stack?.close())
beforeEach(async () => {
  for (const u of USERS) await stack.gateway.secrets!.remove(owner(u), 'vault_token')
})

/** The tools/call requests for `credential` that reached `server`'s processes (their own record). */
function seenBy(server: keyof typeof records): number {
  if (!existsSync(records[server])) return 0
  return readFileSync(records[server], 'utf8')
    .split('\n')
    .filter((l) => l.includes('"tools/call"') && l.includes('"credential"')).length
}

/** A session of `user` whose client accepts (or, once `decline` is set, declines) every URL elicitation, counting them. */
async function waiting(user: string, server: keyof typeof records = 'vault') {
  const s = {
    asked: 0,
    decline: false,
    client: undefined as unknown as Client,
    transport: undefined as unknown as StreamableHTTPClientTransport,
  }
  s.client = new Client(
    { name: `waiting-${user}`, version: '0' },
    { capabilities: { elicitation: { url: {} } } },
  )
  s.client.setRequestHandler('elicitation/create', async () => {
    s.asked++
    return { action: s.decline ? 'decline' : 'accept' }
  })
  const token = await stack.token(user, { server })
  s.transport = new StreamableHTTPClientTransport(new URL(stack.local(server)), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  })
  await s.client.connect(s.transport)
  return s
}

type Session = Awaited<ReturnType<typeof waiting>>

/** A `credential` call; its settled result is pushed to `settled` as it comes. */
function call(s: Session, settled: unknown[] = [], signal?: AbortSignal) {
  return s.client
    .callTool(
      { name: 'credential', arguments: { name: 'VAULT_TOKEN' } },
      signal ? { signal } : undefined,
    )
    .then(
      (r) => (settled.push(r), r),
      (err: Error) => (settled.push(err), err),
    )
}

const BOUND = new RegExp(
  `^vault(b)? needs Your vault token \\(vault_token\\), which you have not set\\. Set it at http://127\\.0\\.0\\.1:\\d+/account\\?server=vault(b)?&secret=vault_token and try again\\. \\(${N} of your calls already wait for a secret\\)$`,
)

const auditOf = (sub: string, outcome: string) =>
  stack.audit().filter((e) => e.sub === sub && e.method === 'tools/call' && e.outcome === outcome)

describe('credentials.waitingPerSubject: calls waiting for a missing secret', () => {
  it(`${N}+3 calls of one user over two sessions and two servers: ${N} wait, 3 are refused at once naming the page, unasked; the processes saw nothing; another user still waits; once set the ${N} run`, async () => {
    const seen = { vault: seenBy('vault'), vaultb: seenBy('vaultb') }
    const refusedBefore = auditOf('alice', 'credential missing (too many calls waiting)').length
    const a1 = await waiting('alice', 'vault')
    const a2 = await waiting('alice', 'vaultb')
    const bob = await waiting('bob', 'vault')
    try {
      const settled: unknown[] = []
      const calls = [a1, a1, a2, a2, a2].map((s) => call(s, settled))
      // The refused calls settle while the secret is still not set: they never waited.
      await waitFor(() => settled.length === 3, 'three calls answered with the secret unset')
      await waitFor(() => a1.asked + a2.asked === N, `${N} calls asked the user`)
      for (const r of settled) {
        assert.equal((r as { isError?: boolean }).isError, true, JSON.stringify(r))
        assert.match(textOf(r), BOUND)
      }
      assert.equal(
        auditOf('alice', 'credential missing (too many calls waiting)').length - refusedBefore,
        3,
        'each refusal audited with its reason',
      )
      // Another user is not counted with alice: bob's call waits too.
      const bobCall = call(bob)
      await waitFor(() => bob.asked === 1, "bob's call asked him")
      assert.equal(settled.length, 3, "alice's waiting calls still wait")
      assert.deepEqual({ vault: seenBy('vault'), vaultb: seenBy('vaultb') }, seen)
      // The user sets the secret: the calls that waited run with it.
      await stack.gateway.secrets!.set(owner('alice'), 'vault_token', 'alice-at-last')
      await Promise.all(calls)
      const ran = settled.slice(3)
      assert.equal(ran.length, N)
      for (const r of ran) assert.equal(JSON.parse(textOf(r)).sha256, sha('alice-at-last'))
      assert.equal(a1.asked + a2.asked, N, 'the refused calls asked nothing')
      assert.equal(seenBy('vault') + seenBy('vaultb') - seen.vault - seen.vaultb, N)
      await stack.gateway.secrets!.set(owner('bob'), 'vault_token', 'bob-too')
      assert.equal(JSON.parse(textOf(await bobCall)).sha256, sha('bob-too'))
    } finally {
      await Promise.all([a1, a2, bob].map((s) => s.client.close()))
    }
  })

  it('a place is given back on every path: a declined elicitation, a cancelled call, a call that ran', async () => {
    const s = await waiting('dev', 'vault')
    try {
      // Declined N+1 times in a row: each is asked (none kept a place).
      s.decline = true
      for (let i = 1; i <= N + 1; i++) {
        const r = await call(s)
        assert.match(textOf(r), /\/account\?server=vault&secret=vault_token and try again\.$/)
        assert.equal(s.asked, i)
      }
      s.decline = false
      // N wait; one of them is cancelled: the next call waits in its place; the one after is refused.
      const asked = s.asked
      const abort = new AbortController()
      const settled: unknown[] = []
      const cancelled = call(s, settled, abort.signal)
      const waits = [call(s, settled)]
      await waitFor(() => s.asked === asked + N, `${N} calls wait`)
      abort.abort('the user gave up')
      await cancelled
      await waitFor(() => auditOf('dora', 'cancelled').length === 1, 'the cancelled call settled')
      waits.push(call(s, settled))
      await waitFor(() => s.asked === asked + N + 1, 'the next call took the place')
      const refused = await call(s)
      assert.match(textOf(refused), BOUND)
      assert.equal(s.asked, asked + N + 1)
      // Set: the waiting calls run and give their places back; N more can wait again.
      await stack.gateway.secrets!.set(owner('dev'), 'vault_token', 'dora-1')
      for (const r of await Promise.all(waits))
        assert.equal(JSON.parse(textOf(r)).sha256, sha('dora-1'))
      await stack.gateway.secrets!.remove(owner('dev'), 'vault_token')
      const again = [call(s), call(s)]
      await waitFor(() => s.asked === asked + 2 * N + 1, `${N} wait again`)
      await stack.gateway.secrets!.set(owner('dev'), 'vault_token', 'dora-2')
      for (const r of await Promise.all(again))
        assert.equal(JSON.parse(textOf(r)).sha256, sha('dora-2'))
    } finally {
      await s.client.close()
    }
  })

  it(`one look at the store per interval for a user's ${N} waiting calls on a server, in two sessions, as for one call`, async () => {
    const a1 = await waiting('alice', 'vault')
    const a2 = await waiting('alice', 'vault')
    const bob = await waiting('bob', 'vault')
    try {
      const calls = [call(a1), call(a2), call(bob)]
      await waitFor(() => a1.asked + a2.asked === N && bob.asked === 1, 'all three wait')
      // Bob's one waiting call is the clock: per look, one read of his secret.
      const start = { alice: readsOf('alice'), bob: readsOf('bob') }
      await waitFor(() => readsOf('bob') - start.bob >= 40, 'bob’s call looked 40 times')
      const looked = { alice: readsOf('alice') - start.alice, bob: readsOf('bob') - start.bob }
      assert.ok(looked.alice >= 20, `alice's calls still look (${JSON.stringify(looked)})`)
      assert.ok(
        looked.alice <= looked.bob + 3,
        `alice's ${N} calls share one look (${JSON.stringify(looked)})`,
      )
      await stack.gateway.secrets!.set(owner('alice'), 'vault_token', 'shared')
      await stack.gateway.secrets!.set(owner('bob'), 'vault_token', 'own')
      const [r1, r2, r3] = await Promise.all(calls)
      assert.equal(JSON.parse(textOf(r1)).sha256, sha('shared'))
      assert.equal(JSON.parse(textOf(r2)).sha256, sha('shared'))
      assert.equal(JSON.parse(textOf(r3)).sha256, sha('own'))
    } finally {
      await Promise.all([a1, a2, bob].map((s) => s.client.close()))
    }
  })
})
