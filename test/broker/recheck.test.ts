// Re-check at refresh (upstream.recheckInterval: 0, so every refresh asks the Entra-like
// upstream): a user disabled there loses the grant, roles changed there narrow the next token,
// an upstream that cannot be reached fails the refresh without revoking anything. And a
// refresh token used twice at once revokes its grant, whichever use wins.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import {
  credentialKey,
  exchange,
  issued,
  issuedSince,
  NOTHING_ISSUED,
  login,
  newClient,
  nextSecond,
  refresh,
  useAt,
  type Answer,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import type { CookieJar } from '../helpers/oauth-flow.js'

const REDIRECT = 'http://127.0.0.1:43120/cb'
const ALICE = 'alice-pairwise-sub'
const ALICE_OID = '00000000-0000-0000-0000-00000000a11c'
const ALICE_CLAIMS = {
  oid: ALICE_OID,
  name: 'Alice',
  preferred_username: 'alice@contoso.example',
  email: 'alice@contoso.example',
}

let stack: BrokerStack
let clientId: string
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    upstream: { recheckInterval: 0 },
    broker: { registration: { perAddressPerMinute: 1000 } },
  })
  clientId = await newClient(stack, [REDIRECT])
})
afterEach(() => stack.idp.reset())
after(() => stack.close())

const client = () => ({ clientId, redirectUri: REDIRECT })

/** Alice logs in (in `jar`'s browser) and the client exchanges the code. */
async function tokens(
  o: { scope?: string; jar?: CookieJar } = {},
): Promise<Record<string, string>> {
  const l = await login(stack, { ...client(), scope: o.scope ?? 'mcp:read mcp:write', jar: o.jar })
  const res = await exchange(stack, l, client())
  assert.equal(res.status, 200, res.text)
  return res.json as Record<string, string>
}

/** The grant id an access token was issued under, from the store (refresh token → grant). */
async function grantOf(refreshToken: string): Promise<string> {
  const value = (await stack.store.dump()).get(credentialKey('RefreshToken', refreshToken))
  assert.ok(value, 'the refresh token is stored')
  return String((JSON.parse(value) as { grantId: string }).grantId)
}

function refused(res: Answer, error: string, what: string): void {
  assert.equal(res.status, 400, `${what}: ${res.text}`)
  assert.equal(res.json.error, error, what)
  assert.equal(res.json.access_token, undefined, `${what}: no access token`)
  assert.equal(res.json.refresh_token, undefined, `${what}: no refresh token`)
}

describe('re-check at refresh: the upstream no longer vouches for the user', () => {
  const cases: { name: string; act: (idp: BrokerStack['idp']) => Promise<void> | void }[] = [
    { name: 'user disabled upstream (block sign-in)', act: (idp) => idp.disable(ALICE) },
    { name: 'every grant revoked upstream', act: (idp) => idp.revoke(ALICE) },
  ]
  for (const c of cases) {
    it(`${c.name} → 400 invalid_grant; the grant, its other refresh token and the account are gone; audited`, async () => {
      const jar = new Map<string, string>()
      const one = await tokens({ jar })
      // The same browser and client again: a remembered consent, the same grant, a second refresh token.
      const two = await tokens({ jar })
      const grantId = await grantOf(one.refresh_token!)
      assert.equal(await grantOf(two.refresh_token!), grantId, 'one grant, two refresh tokens')
      await c.act(stack.idp)
      refused(
        await refresh(stack, one.refresh_token!, clientId),
        'invalid_grant',
        'the refresh that re-checks',
      )
      const held = await stack.store.dump()
      assert.equal(held.has(`oidc:Grant:${grantId}`), false, 'the grant is revoked')
      assert.equal(
        held.has(credentialKey('RefreshToken', two.refresh_token!)),
        false,
        'its other refresh token is revoked',
      )
      assert.equal(
        [...held.keys()].some(
          (k) => k.startsWith('broker:account:') || k.startsWith('broker:upstream:'),
        ),
        false,
        'the account and its upstream tokens are forgotten',
      )
      // The upstream vouching again later does not bring the revoked grant back.
      stack.idp.reset()
      refused(
        await refresh(stack, two.refresh_token!, clientId),
        'invalid_grant',
        'the other refresh token',
      )
      const line = stack
        .audit()
        .find(
          (a) =>
            a.method === 'oauth/refresh' && a.sub === ALICE_OID && a.outcome === 'grant revoked',
        )
      assert.ok(line, 'an audit line for the revocation')
      assert.match(String(line.rule), /upstream refused the user at re-check/)
      // Signed out everywhere until this second: the next case logs in again after it.
      await nextSecond()
    })
  }
})

describe('re-check at login: recheckInterval 0 means every authorization goes upstream', () => {
  const refusals: { name: string; act: (idp: BrokerStack['idp']) => void }[] = [
    { name: 'a user disabled upstream', act: (idp) => idp.disable(ALICE) },
  ]
  for (const r of refusals) {
    it(`${r.name} gets no new code through their existing browser session`, async () => {
      const jar = new Map<string, string>()
      await tokens({ jar })
      r.act(stack.idp)
      const before = await issued(stack)
      const attempt = await login(stack, { ...client(), jar }).then(
        (l) => l.callback,
        (err: { visits?: { url: string; status: number }[] }) => err,
      )
      assert.equal(
        attempt instanceof URL,
        false,
        `no redirect back to the client: ${attempt instanceof URL ? attempt.href : ''}`,
      )
      const visits = (attempt as { visits: { url: string; status: number }[] }).visits
      assert.ok(
        visits.some((v) => v.url.startsWith(stack.idp.issuer)),
        'the browser was sent upstream',
      )
      assert.ok(visits.at(-1)!.status >= 400, 'the sign-in ends on an error page')
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED, 'no code, no token')
    })
  }

  it('an enabled user in the same browser is confirmed upstream again, and gets a code', async () => {
    const jar = new Map<string, string>()
    await tokens({ jar })
    const before = stack.idp.counts.token
    const l = await login(stack, { ...client(), jar })
    assert.ok(l.callback.searchParams.get('code'))
    assert.ok(stack.idp.counts.token > before, 'a new upstream code exchange')
  })
})

describe('re-check at refresh: roles changed upstream', () => {
  it('MCP.Developer → mcp-reader: the next token carries mcp:read only and the new roles', async () => {
    const t = await tokens()
    assert.equal(decodeJwt(t.access_token!).scope, 'mcp:read mcp:write')
    stack.idp.updateUser(ALICE, { ...ALICE_CLAIMS, roles: ['mcp-reader'] })
    const res = await refresh(stack, t.refresh_token!, clientId)
    assert.equal(res.status, 200, res.text)
    const claims = decodeJwt(String(res.json.access_token))
    assert.equal(claims.scope, 'mcp:read')
    assert.deepEqual(claims.roles, ['mcp-reader'])
    assert.equal(res.json.scope, 'mcp:read', 'the token response says so too')
  })

  it('every role removed: the next token carries no scope and roles [], and opens no session (403)', async () => {
    const t = await tokens()
    stack.idp.updateUser(ALICE, { ...ALICE_CLAIMS, roles: [] })
    const res = await refresh(stack, t.refresh_token!, clientId)
    assert.equal(res.status, 200, res.text)
    const claims = decodeJwt(String(res.json.access_token))
    assert.equal(claims.scope, undefined)
    assert.deepEqual(claims.roles, [])
    assert.equal(res.json.scope, '')
    assert.equal(
      await useAt(stack, 'notes', String(res.json.access_token)),
      403,
      "the server's access scope is missing",
    )
  })
})

describe('re-check at refresh: the upstream cannot be reached', () => {
  it('→ 400 temporarily_unavailable, nothing revoked, nothing consumed; the same refresh token works once it is back', async () => {
    const t = await tokens()
    const grantId = await grantOf(t.refresh_token!)
    const revocations = () =>
      stack.audit().filter((a) => a.method === 'oauth/refresh' && a.outcome === 'grant revoked')
        .length
    const revokedBefore = revocations()
    stack.idp.knobs.down = true
    refused(
      await refresh(stack, t.refresh_token!, clientId),
      'temporarily_unavailable',
      'upstream down',
    )
    refused(
      await refresh(stack, t.refresh_token!, clientId),
      'temporarily_unavailable',
      'upstream still down',
    )
    const held = await stack.store.dump()
    assert.ok(held.has(`oidc:Grant:${grantId}`), 'the grant stays')
    assert.ok(held.has(credentialKey('RefreshToken', t.refresh_token!)), 'the refresh token stays')
    assert.equal(
      held.has(`${credentialKey('RefreshToken', t.refresh_token!)}:consumed`),
      false,
      'and is not spent',
    )
    assert.equal(revocations(), revokedBefore, 'no revocation audited')
    stack.idp.knobs.down = false
    const back = await refresh(stack, t.refresh_token!, clientId)
    assert.equal(back.status, 200, back.text)
    assert.equal(decodeJwt(String(back.json.access_token)).scope, 'mcp:read mcp:write')
  })
})

describe('refresh token reuse', () => {
  it('one refresh token used twice at once: one use wins, and the grant is revoked either way', async () => {
    const t = await tokens()
    // Each use re-checks upstream first, so both pass "consumed?" before either consumes.
    const answers = await Promise.all([
      refresh(stack, t.refresh_token!, clientId),
      refresh(stack, t.refresh_token!, clientId),
    ])
    const won = answers.filter((a) => a.status === 200)
    assert.equal(won.length, 1, answers.map((a) => `${a.status} ${a.text}`).join(' | '))
    refused(answers.find((a) => a.status !== 200)!, 'invalid_grant', 'the second use')
    refused(
      await refresh(stack, String(won[0]!.json.refresh_token), clientId),
      'invalid_grant',
      'the winner’s rotated refresh token',
    )
  })

  it('one refresh token used again later: the grant is revoked', async () => {
    const t = await tokens()
    const one = await refresh(stack, t.refresh_token!, clientId)
    assert.equal(one.status, 200, one.text)
    refused(await refresh(stack, t.refresh_token!, clientId), 'invalid_grant', 'the replay')
    refused(
      await refresh(stack, String(one.json.refresh_token), clientId),
      'invalid_grant',
      'the rotated one',
    )
  })
})
