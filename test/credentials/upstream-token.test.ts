// The `upstreamToken` credential source, end to end: a user logs in through the broker at a
// real upstream IdP (an Entra-like oidc-provider); the server's process is started with the
// upstream access (or ID) token the broker got for them, refreshed with the upstream when
// near expiry, and never with another user's.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { BROKER_POLICY, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { exchange, login, newClient, nextSecond } from '../helpers/broker-raw.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const REDIRECT = 'http://127.0.0.1:43121/cb'
const ALICE = 'alice-pairwise-sub'
const BOB = 'bob-pairwise-sub'
const sha = (v: string) => createHash('sha256').update(v).digest('hex')
const POLICY = `${BROKER_POLICY}  tickets:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`

const BOB_CLAIMS = {
  oid: '00000000-0000-0000-0000-000000000b0b',
  name: 'Bob',
  email: 'bob@contoso.example',
  roles: ['MCP.Developer'],
}

let stack: BrokerStack
let clientId: string
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    policy: POLICY,
    broker: { registration: { perAddressPerMinute: 1000 } },
    config: {
      servers: {
        tickets: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'fixture.js')],
          credentials: {
            TICKETS_TOKEN: { upstreamToken: 'access_token' },
            TICKETS_ID: { upstreamToken: 'id_token' },
          },
        },
      },
    },
  })
  clientId = await newClient(stack, [REDIRECT])
  // Bob may use the servers too (the fixture's Bob has no app role).
  stack.idp.updateUser(BOB, BOB_CLAIMS)
})
after(() => stack.close())

/** Logs `user` in through the broker; returns the broker's access token and the upstream's token response. */
async function signIn(
  user: string,
  tamper: (body: Record<string, unknown>) => Record<string, unknown> = (b) => b,
): Promise<{ token: string; upstream: Record<string, unknown> }> {
  let upstream: Record<string, unknown> = {}
  stack.idp.nextUser(user)
  stack.idp.knobs.tamperToken = (body) => (upstream = tamper(body))
  const l = await login(stack, { clientId, redirectUri: REDIRECT, server: 'tickets' })
  const res = await exchange(stack, l, { clientId, redirectUri: REDIRECT, server: 'tickets' })
  assert.equal(res.status, 200, res.text)
  return { token: String(res.json.access_token), upstream }
}

let nextId = 1
/** A `tools/call` of the fixture's `credential` tool with `token`: the raw HTTP answer. */
function post(token: string, name: string) {
  return request(
    stack.endpoint('tickets'),
    modernToolCall(token, 'credential', { name }, { id: nextId++ }),
  )
}

async function credential(
  token: string,
  name: string,
): Promise<{ pid: number; sha256: string | null; isError?: boolean; text: string }> {
  const res = await post(token, name)
  const json = (await res.body.json()) as {
    result?: { content: { text: string }[]; isError?: boolean }
  }
  const text = json.result?.content.map((c) => c.text).join('') ?? JSON.stringify(json)
  if (json.result?.isError) return { pid: 0, sha256: null, isError: true, text }
  return { ...(JSON.parse(text) as { pid: number; sha256: string | null }), text }
}

describe("credentials from the broker's upstream login", () => {
  it("the process gets the user's own upstream access and ID tokens, never the broker's token", async () => {
    const alice = await signIn(ALICE)
    const bob = await signIn(BOB)
    const a = await credential(alice.token, 'TICKETS_TOKEN')
    const b = await credential(bob.token, 'TICKETS_TOKEN')
    assert.equal(a.sha256, sha(String(alice.upstream.access_token)), a.text)
    assert.equal(b.sha256, sha(String(bob.upstream.access_token)))
    assert.notEqual(a.pid, b.pid)
    assert.equal(
      (await credential(alice.token, 'TICKETS_ID')).sha256,
      sha(String(alice.upstream.id_token)),
    )
    assert.notEqual(a.sha256, sha(alice.token), "not the client's own token")
    const audit = stack.audit().filter((e) => e.server === 'tickets' && e.outcome === 'ok')
    assert.ok(
      audit.some(
        (e) =>
          JSON.stringify(e.credentials) ===
          JSON.stringify([
            { name: 'TICKETS_ID', source: 'upstreamToken' },
            { name: 'TICKETS_TOKEN', source: 'upstreamToken' },
          ]),
      ),
    )
  })

  it('an upstream token near expiry is refreshed with the upstream first, and the process replaced', async () => {
    // The upstream says its token lasts 30 s: less than the minute a process is given.
    const carol = await signIn(ALICE, (body) => ({ ...body, expires_in: 30 }))
    const tokenCalls = stack.idp.counts.token
    let refreshed: Record<string, unknown> = {}
    stack.idp.knobs.tamperToken = (body) => (refreshed = body)
    const r = await credential(carol.token, 'TICKETS_TOKEN')
    assert.equal(stack.idp.counts.token, tokenCalls + 1, 'one refresh at the upstream')
    assert.ok(refreshed.access_token, 'the upstream issued a new access token')
    assert.notEqual(refreshed.access_token, carol.upstream.access_token)
    assert.equal(r.sha256, sha(String(refreshed.access_token)))
    // Fresh now: the next call uses it as it is.
    assert.equal(
      (await credential(carol.token, 'TICKETS_TOKEN')).sha256,
      sha(String(refreshed.access_token)),
    )
    assert.equal(stack.idp.counts.token, tokenCalls + 1)
  })

  it('an upstream token that expired and cannot be refreshed: a tool error asking to sign in again', async () => {
    // expires_in 0: expired the moment it was issued, and no refresh token to renew it with.
    const dave = await signIn(BOB, (body) => ({ ...body, expires_in: 0, refresh_token: undefined }))
    const r = await credential(dave.token, 'TICKETS_TOKEN')
    assert.equal(r.isError, true)
    assert.match(r.text, /sign in again/)
  })
})

describe('an upstream token the upstream refuses to refresh', () => {
  afterEach(() => stack.idp.reset())
  const signedOut = () =>
    stack.audit().filter((a) => /signed out everywhere/.test(String(a.outcome))).length
  /** Whether upstream tokens are kept for the user a broker token names. */
  const keptFor = async (token: string) =>
    (await stack.store.dump()).has(
      `broker:upstream:${encodeURIComponent(String(decodeJwt(token).sub))}`,
    )

  it('signs the user out everywhere: every broker token of theirs gets 401 "signed out everywhere"', async () => {
    const other = await signIn(ALICE)
    // The upstream token kept for her is the last login's: 30 s left, so the next call refreshes.
    const near = await signIn(ALICE, (body) => ({ ...body, expires_in: 30 }))
    const audited = signedOut()
    assert.equal(await keptFor(near.token), true)
    stack.idp.disable(ALICE)
    const tokenCalls = stack.idp.counts.token
    const r = await credential(near.token, 'TICKETS_TOKEN')
    assert.equal(stack.idp.counts.token, tokenCalls + 1, 'the upstream was asked, and refused')
    assert.equal(r.isError, true, r.text)
    assert.match(r.text, /sign in again/)
    for (const [which, token] of [
      ['another grant', other.token],
      ['the same grant', near.token],
    ] as const) {
      const res = await post(token, 'TICKETS_ID')
      assert.equal(res.statusCode, 401, which)
      assert.match(
        String(res.headers['www-authenticate']),
        /the user was signed out everywhere; sign in again/,
        which,
      )
      await res.body.dump()
    }
    assert.equal(signedOut(), audited + 1, 'one sign-out audited')
    const line = stack.audit().findLast((a) => /signed out everywhere/.test(String(a.outcome)))
    assert.match(String(line?.rule), /refresh of their upstream token/)
    assert.equal(await keptFor(near.token), false, 'her upstream tokens are forgotten')
    // Later logins are the user's again (the sign-out refuses tokens issued until its second).
    await nextSecond()
  })

  it('an upstream out of reach signs nobody out: the kept token serves while it lasts', async () => {
    stack.idp.updateUser(BOB, BOB_CLAIMS)
    const other = await signIn(BOB)
    const near = await signIn(BOB, (body) => ({ ...body, expires_in: 30 }))
    const audited = signedOut()
    stack.idp.knobs.down = true
    const r = await credential(near.token, 'TICKETS_TOKEN')
    assert.equal(r.sha256, sha(String(near.upstream.access_token)), r.text)
    for (const token of [other.token, near.token]) {
      const res = await post(token, 'TICKETS_ID')
      assert.equal(res.statusCode, 200)
      await res.body.dump()
    }
    assert.equal(signedOut(), audited, 'no sign-out')
    assert.equal(await keptFor(near.token), true, 'his upstream tokens are kept')
  })
})
