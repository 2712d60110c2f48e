// Stop 31, an outsider's attack on what replicas share through Redis: two broker replicas on
// one real redis-server, real upstream IdP, real tokens. Found: (1) a per-user lock (the
// upstream re-check's) expired while its holder was still at work (a slow IdP: a token call then
// a userinfo call, each within the upstream timeout), so the other replica re-checked at the
// same time with the upstream refresh token the first had just rotated: the upstream saw it
// reused and the user was signed out everywhere; now a lock is renewed while its holder works.
// (2) Redis slow just as a refresh token was consumed: the client got 503, the consumed mark
// was written once Redis answered, and the client's retry was taken for a replay that revoked
// the grant; now a consume that failed undoes its own mark. Held: sealed upstream tokens copied
// onto another user's key do not open for them; client ids shaped like other keys write nothing.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createServer, connect, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { createClient } from '@redis/client'
import { brokerLogin } from '../helpers/broker-browser.js'
import {
  startBrokerReplicas,
  type BrokerReplicas,
  type ReplicaName,
} from '../helpers/broker-replicas.js'
import { REDIRECT } from '../helpers/oauth-provider.js'
import type { CookieJar } from '../helpers/oauth-flow.js'
import { NO_REDIS } from '../helpers/redis.js'
import { authorizeUrl, registerClient, replicaCall } from '../helpers/replica-call.js'
import { waitFor } from '../helpers/wait-for.js'

/** Alice's upstream id (Entra `oid`): the broker's subject, and part of her lock's key. */
const ALICE = '00000000-0000-0000-0000-00000000a11c'
/** A request may wait for another replica's whole re-check and then make its own. */
const SLOW_WAIT_MS = 120_000

let s: BrokerReplicas
const notes = () => `${s.publicUrl}/mcp/notes`

const token = (via: ReplicaName, form: Record<string, string>) =>
  replicaCall(s, via, '/token', { form, wait: SLOW_WAIT_MS })

const register = (via: ReplicaName) => registerClient(s, via, 'stop31 client', SLOW_WAIT_MS)

/** Alice's login for `clientId` through A (one browser: `jar`), the code exchanged at B; her refresh token. */
async function signedIn(clientId: string, jar: CookieJar): Promise<string> {
  const { url, verifier } = authorizeUrl(s, clientId)
  s.router.mode = 'a'
  const { callback } = await brokerLogin(url, { redirectUri: REDIRECT, jar })
  const code = callback.searchParams.get('code')
  assert.ok(code, `no code: ${callback.href}`)
  const res = await token('b', {
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT,
    client_id: clientId,
    resource: notes(),
  })
  assert.equal(res.status, 200, res.text)
  return res.json.refresh_token!
}

const refresh = (via: ReplicaName, clientId: string, refreshToken: string) =>
  token(via, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId })

/** Whether the store holds `key` (without the stack's prefix) now. */
async function inRedis(key: string): Promise<boolean> {
  const client = createClient({ url: s.redis.url })
  client.on('error', () => {})
  await client.connect()
  try {
    return (await client.exists(s.keyPrefix + key)) === 1
  } finally {
    client.destroy()
  }
}

/** Every key of the stack in Redis now (without the prefix). */
async function redisKeys(): Promise<Set<string>> {
  const client = createClient({ url: s.redis.url })
  client.on('error', () => {})
  await client.connect()
  try {
    return new Set((await client.keys(`${s.keyPrefix}*`)).map((k) => k.slice(s.keyPrefix.length)))
  } finally {
    client.destroy()
  }
}

/** The value Redis holds at `key` (without the stack's prefix); `to` replaces it first when given. */
async function atRedis(key: string, to?: string): Promise<string | null> {
  const client = createClient({ url: s.redis.url })
  client.on('error', () => {})
  await client.connect()
  try {
    if (to !== undefined) await client.set(s.keyPrefix + key, to, { KEEPTTL: true })
    return await client.get(s.keyPrefix + key)
  } finally {
    client.destroy()
  }
}

const BOB = '00000000-0000-0000-0000-000000000b0b'

/**
 * The slow IdP's every call, in ms: a re-check (a token call, then a userinfo call) takes at
 * least twice this, whatever the machine's speed, so it outlives LOCK_MS; one call stays under
 * UPSTREAM_TIMEOUT_MS by 2 s of slack for the IdP's own work on a loaded machine. (It was 5 s
 * against 8 s and 9 s: the same race, 20 s of waiting where 10 s show it.)
 */
const CALL_MS = 2_500
const UPSTREAM_TIMEOUT_MS = 4_500
const LOCK_MS = 4_800

describe('stop31: a re-check that outlasts its lock', { skip: NO_REDIS, timeout: 300_000 }, () => {
  before(async () => {
    // Each upstream call well within its timeout; a token call plus a userinfo call is not
    // within the lock's time to live (which need only exceed one call's timeout).
    s = await startBrokerReplicas({
      upstream: { recheckInterval: 0, timeout: UPSTREAM_TIMEOUT_MS, recheckLock: LOCK_MS },
      store: { lockWait: 60_000 },
    })
  })
  after(() => s?.close())

  it("a slow upstream re-check on A keeps its lock until done: B waits, then re-checks with A's rotated upstream token; nobody is signed out", async () => {
    const jar: CookieJar = new Map()
    const first = await register('a')
    const second = await register('b')
    const one = await signedIn(first, jar)
    const two = await signedIn(second, jar)
    // A slow IdP: each call 2.5 s (under the timeout), a re-check's two at least 5 s (over the lock).
    s.idp.knobs.tokenDelayMs = CALL_MS
    s.idp.knobs.userinfoDelayMs = CALL_MS
    const before = s.idp.counts.token
    const atA = refresh('a', first, one)
    await waitFor(() => inRedis(`broker:recheck:${ALICE}`), 'A holds the re-check lock')
    const atB = refresh('b', second, two)
    const [a, b] = await Promise.all([atA, atB])
    assert.equal(a.status, 200, `A: ${a.text}`)
    assert.equal(b.status, 200, `B: ${b.text}`)
    assert.equal(s.idp.counts.token - before, 2, 'one upstream refresh each, none refused')
    const signedOut = `broker:signed-out:${createHash('sha256').update(ALICE).digest('base64url')}`
    assert.equal(await inRedis(signedOut), false, 'Alice was not signed out')
  })

  it("held: Alice's sealed upstream tokens copied onto Bob's key in Redis do not open for Bob: his re-check forgets him, Alice's token is never used for him", async () => {
    s.idp.reset()
    const bobs = await register('a')
    // Bob with a role (the fixture's Bob has none), so that he gets a grant.
    s.idp.updateUser('bob-pairwise-sub', {
      oid: BOB,
      email: 'bob@contoso.example',
      roles: ['MCP.Developer'],
    })
    s.idp.nextUser('bob-pairwise-sub')
    const bobRefresh = await signedIn(bobs, new Map())
    s.idp.nextUser('alice-pairwise-sub')
    const alices = await register('b')
    await signedIn(alices, new Map())
    const alice = await atRedis(`broker:upstream:${ALICE}`)
    assert.ok(alice?.startsWith('s1.'), 'sealed')
    await atRedis(`broker:upstream:${BOB}`, alice!)
    const before = s.idp.counts.token
    const res = await refresh('b', bobs, bobRefresh)
    assert.equal(res.status, 400, res.text)
    assert.equal(res.json.error, 'invalid_grant')
    assert.equal(s.idp.counts.token, before, 'no upstream refresh with what was copied')
    assert.equal(await atRedis(`broker:account:${BOB}`), null, 'Bob is forgotten')
    assert.ok(await atRedis(`broker:account:${ALICE}`), 'Alice is untouched')
  })

  it('held: client ids that look like other keys (`:consumed`, `grant:`, `uid:`, globs, Unicode, 4096 characters) are unknown clients at B, and write nothing to Redis', async () => {
    const real = await register('a')
    const hostile = [
      `${real}:consumed`,
      `grant:${real}`,
      `uid:${real}`,
      '*',
      `${real.slice(0, 8)}*`,
      '../Grant/x',
      'ключ🙂',
      'x'.repeat(4096),
    ]
    const before = await redisKeys()
    for (const clientId of hostile) {
      const res = await refresh('b', clientId, 'not-a-refresh-token')
      assert.ok(
        [400, 401].includes(res.status),
        `${clientId.slice(0, 40)}: ${res.status} ${res.text}`,
      )
      assert.ok(['invalid_client', 'invalid_request'].includes(res.json.error!), res.text)
    }
    const written = [...(await redisKeys())].filter((k) => !before.has(k))
    assert.deepEqual(written, [], 'no key written')
    const ok = await refresh('b', real, 'not-a-refresh-token')
    assert.equal(ok.json.error, 'invalid_grant', 'the real client is still known at B')
  })
})

/** A TCP proxy in front of Redis that can stall one connection (Redis slow for it) until released. */
interface Stall {
  url: string
  /** Holds the first chunk a connection sends that `when` matches, and all it sends after. */
  hold(when: (command: string) => boolean): void
  /** Resolves once a chunk was held. */
  held: Promise<void>
  /** Sends the held chunks on; counts the answers that come back. */
  release(): void
  /** Answers Redis sent the stalled connection since its release. */
  answered: number
  close(): Promise<void>
}

async function stallingProxy(redisUrl: string): Promise<Stall> {
  const port = Number(new URL(redisUrl).port)
  const sockets = new Set<Socket>()
  let when: ((command: string) => boolean) | undefined
  let stalled: { queue: Buffer[] | undefined; upstream: Socket } | undefined
  let sawHeld = () => {}
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1')
    const conn = { queue: undefined as Buffer[] | undefined, upstream }
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.on('data', (d: Buffer) => {
      if (conn.queue !== undefined) return void conn.queue.push(d)
      if (when?.(d.toString('latin1'))) {
        when = undefined
        conn.queue = [d]
        stalled = conn
        sawHeld()
        return
      }
      upstream.write(d)
    })
    upstream.on('data', (d: Buffer) => {
      if (stalled === conn && conn.queue === undefined) stall.answered++
      client.write(d)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const stall: Stall = {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    hold(w) {
      when = w
    },
    held: new Promise<void>((resolve) => {
      sawHeld = resolve
    }),
    release() {
      const conn = stalled!
      const queue = conn.queue ?? []
      conn.queue = undefined
      for (const d of queue) conn.upstream.write(d)
    },
    answered: 0,
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  return stall
}

describe('stop31: Redis slow just as a refresh token is consumed', {
  skip: NO_REDIS,
  timeout: 300_000,
}, () => {
  let stall: Stall | undefined
  before(async () => {
    s = await startBrokerReplicas({
      redisUrl: async (url) => (stall = await stallingProxy(url)).url,
      store: { commandTimeout: 1_000 },
    })
  })
  after(async () => {
    await s?.close()
    await stall?.close()
  })

  it("a refresh whose consume timed out (503) leaves its refresh token usable once Redis answers: the client's retry gets tokens, the grant is not revoked", async () => {
    const client = await register('a')
    const rt = await signedIn(client, new Map())
    // The consumed mark of a refresh token: SET <prefix>oidc:RefreshToken:<digest>:consumed … NX.
    stall!.hold((command) => command.includes(':consumed') && command.includes('NX'))
    const first = await refresh('a', client, rt)
    assert.equal(first.status, 503, first.text)
    assert.equal(first.json.error, 'temporarily_unavailable')
    await stall!.held
    // Redis answers again: the SET it was sent runs now, and what A sent after it.
    stall!.release()
    await waitFor(() => stall!.answered > 0, 'Redis answered the stalled connection')
    const retry = await refresh('b', client, rt)
    assert.equal(retry.status, 200, `the retry: ${retry.text}`)
    const again = await refresh('a', client, retry.json.refresh_token!)
    assert.equal(again.status, 200, `the grant lives: ${again.text}`)
  })
})
