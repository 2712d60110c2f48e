// A revoked grant ends its access tokens at once (one broker, its memory store): each token
// names its grant by a keyed tag, never the id; a refresh token used twice, a failed upstream
// re-check and /revoke of the refresh token each make the grant's access token 401
// invalid_token "the token's grant was revoked", also when that token was verified (cached)
// just before; another grant of the same user keeps working. /revoke of an access token
// (RFC 7009, which oidc-provider refuses for JWTs) revokes that token alone. Tokens signed with
// the broker's own key without the grant claim, with a bad one, or with it twice are refused.
import assert from 'node:assert/strict'
import { createPrivateKey, createSign, randomUUID } from 'node:crypto'
import { after, afterEach, before, describe, it } from 'node:test'
import { decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose'
import { request } from 'undici'
import { newClient, nextSecond, refresh } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { loginTokens, pingWith, revokeAs, type TokenPair } from '../helpers/broker-tokens.js'

const REDIRECT = 'http://127.0.0.1:43121/cb'
const KEYS_ENV = `MCP_EDGE_TEST_REVOKED_SIGNING_${process.pid}`
let stack: BrokerStack
let signingKey: JWK
let clientId: string
let otherClientId: string

before(async () => {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true })
  signingKey = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'ES256' }
  process.env[KEYS_ENV] = JSON.stringify({ keys: [signingKey] })
  stack = await startBrokerStack({
    kind: 'entra',
    upstream: { recheckInterval: 0 },
    broker: { signingKeys: { env: KEYS_ENV }, registration: { perAddressPerMinute: 1000 } },
  })
  clientId = await newClient(stack, [REDIRECT])
  otherClientId = await newClient(stack, [REDIRECT])
})
afterEach(() => stack.idp.reset())
after(async () => {
  await stack.close()
  delete process.env[KEYS_ENV]
})

/** A fresh login (its own browser, so its own grant) of the fixture's user for `client`. */
const tokens = (client = clientId): Promise<TokenPair> =>
  loginTokens(stack, { client, redirectUri: REDIRECT })

/** A tools/list-free MCP request with the token: its status and WWW-Authenticate. */
const use = (token: string) => pingWith(stack, token)

/** The token was accepted: anything but a 401 (ping without a session is the bridge's to refuse). */
async function accepted(token: string, what: string): Promise<void> {
  const r = await use(token)
  assert.notEqual(r.status, 401, `${what}: ${r.challenge}`)
}

async function refusedAs(token: string, description: string, what: string): Promise<void> {
  const r = await use(token)
  assert.equal(r.status, 401, what)
  assert.match(r.challenge, /error="invalid_token"/, what)
  assert.match(r.challenge, new RegExp(`error_description="${description}"`), what)
}

const revoke = (token: string, client = clientId) => revokeAs(stack, token, client)

const GRANT_REVOKED = "the token's grant was revoked"

describe('a revoked grant ends its access tokens at once', () => {
  it('each access token names its grant by a keyed tag, never the grant id', async () => {
    const t = await tokens()
    const claims = decodeJwt(t.access)
    assert.match(String(claims.grant_tag), /^[A-Za-z0-9_-]{22}$/)
    const grants = await stack.store.keys('oidc:Grant:')
    assert.ok(grants.length > 0)
    for (const key of grants) assert.ok(!t.access.includes(key.slice('oidc:Grant:'.length)))
    assert.notEqual(decodeJwt((await tokens()).access).grant_tag, claims.grant_tag)
  })

  it('a refresh token used twice: the access token (cached, just verified) is refused; another grant of the user works', async () => {
    const t = await tokens()
    const other = await tokens(otherClientId)
    await accepted(t.access, 'before the reuse (and now in the verified-token cache)')
    const one = await refresh(stack, t.refresh, clientId)
    assert.equal(one.status, 200, one.text)
    const reuse = await refresh(stack, t.refresh, clientId)
    assert.equal(reuse.json.error, 'invalid_grant')
    await refusedAs(t.access, GRANT_REVOKED, 'the first access token of the revoked grant')
    await refusedAs(String(one.json.access_token), GRANT_REVOKED, 'the one the refresh gave')
    await accepted(other.access, 'another grant of the same user')
    const audit = stack.audit().filter((a) => a.method === 'oauth/revoke')
    assert.ok(audit.some((a) => /its access tokens are refused/.test(String(a.outcome))))
    const metrics = await (await request(`${stack.url}/metrics`)).body.text()
    assert.match(metrics, /mcp_edge_auth_failures_total\{code="token_revoked"\} [1-9]/)
    assert.match(metrics, /mcp_edge_revocations_total\{event="revoked"\} [1-9]/)
  })

  it('the upstream refusing the user at re-check: that grant’s access token is refused', async () => {
    const t = await tokens()
    await accepted(t.access, 'before')
    stack.idp.disable('alice-pairwise-sub')
    const res = await refresh(stack, t.refresh, clientId)
    assert.equal(res.json.error, 'invalid_grant', res.text)
    await refusedAs(t.access, GRANT_REVOKED, 'after the re-check')
    // Signed out everywhere until this second: the next tests log in again after it.
    await nextSecond()
  })

  it('/revoke of the refresh token revokes the grant and its access tokens', async () => {
    const t = await tokens()
    await accepted(t.access, 'before')
    assert.equal((await revoke(t.refresh)).status, 200)
    await refusedAs(t.access, GRANT_REVOKED, 'after /revoke of the refresh token')
  })

  it('/revoke of an access token (RFC 7009): that token alone; the grant refreshes on', async () => {
    const t = await tokens()
    await accepted(t.access, 'before')
    const res = await revoke(t.access)
    assert.equal(res.status, 200, res.text)
    await refusedAs(t.access, 'the token was revoked', 'after /revoke')
    const next = await refresh(stack, t.refresh, clientId)
    assert.equal(next.status, 200, 'the grant lives on')
    await accepted(String(next.json.access_token), 'the next access token')
    const audit = stack.audit().filter((a) => a.outcome === 'access token revoked')
    assert.equal(audit.length, 1)
  })

  it("/revoke by another (public) client of someone's access token: 200, nothing revoked", async () => {
    const t = await tokens()
    assert.equal((await revoke(t.access, otherClientId)).status, 200)
    await accepted(t.access, 'not revoked by a client it was not issued to')
    assert.equal((await revoke('eyJhbGciOiJub25lIn0.e30.')).status, 200, 'not a token of ours')
  })
})

describe("tokens signed with the broker's own key, the grant claim tampered with", () => {
  /** A token like the broker's, signed with its key, `edit` applied to the payload JSON. */
  async function forged(edit: (claims: Record<string, unknown>) => string): Promise<string> {
    const claims = decodeJwt((await tokens()).access) as Record<string, unknown>
    const header = { alg: 'ES256', typ: 'at+jwt', kid: signingKey.kid }
    const enc = (s: string) => Buffer.from(s).toString('base64url')
    // Signed over the raw text (jose's SignJWT would serialize the payload itself).
    const input = `${enc(JSON.stringify(header))}.${enc(edit(claims))}`
    const pk = createPrivateKey({ key: signingKey as never, format: 'jwk' })
    const sig = createSign('SHA256').update(input).sign({ key: pk, dsaEncoding: 'ieee-p1363' })
    return `${input}.${sig.toString('base64url')}`
  }
  const cases: { name: string; edit: (c: Record<string, unknown>) => string; why: RegExp }[] = [
    {
      name: 'without the claim',
      edit: ({ grant_tag: _g, ...c }) => JSON.stringify(c),
      why: /no grant_tag claim/,
    },
    {
      name: 'the claim a list',
      edit: (c) => JSON.stringify({ ...c, grant_tag: [c.grant_tag] }),
      why: /grant_tag claim is invalid/,
    },
    {
      name: 'the claim empty',
      edit: (c) => JSON.stringify({ ...c, grant_tag: '' }),
      why: /grant_tag claim is invalid/,
    },
    {
      name: 'the claim twice',
      edit: (c) => `${JSON.stringify(c).slice(0, -1)},"grant_tag":"AAAAAAAAAAAAAAAAAAAAAA"}`,
      why: /more than once/,
    },
  ]
  for (const c of cases) {
    it(`${c.name}: 401 invalid_token`, async () => {
      const token = await forged(c.edit)
      const r = await use(token)
      assert.equal(r.status, 401, c.name)
      assert.match(r.challenge, /error="invalid_token"/)
      assert.match(r.challenge, c.why)
    })
  }
  it('the control: the same forging, untouched, is accepted (so the refusals above are the claim’s)', async () => {
    await accepted(await forged((claims) => JSON.stringify(claims)), 'untouched')
  })
})
