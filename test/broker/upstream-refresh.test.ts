import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import type { UpstreamConfig } from '../../gateway/broker/upstream.js'
import { connect, rejectsUpstream, signIn } from '../helpers/upstream-client.js'
import {
  ENTRA_GROUPS,
  startEntraLike,
  startGoogleLike,
  startPlainOAuth,
  type UpstreamIdp,
} from '../helpers/upstream-idp.js'

const ENTRA: Partial<UpstreamConfig> = {
  subjectClaim: 'oid',
  roleMap: { [ENTRA_GROUPS.developers]: ['mcp-developer'] },
}
const ALICE = { id: 'alice-pairwise-sub', oid: '00000000-0000-0000-0000-00000000a11c' }
const OFFLINE: Partial<UpstreamConfig> = {
  authorizeParams: { access_type: 'offline', prompt: 'consent' },
}
const GITHUB: Partial<UpstreamConfig> = {
  subjectClaim: 'id',
  roleClaims: ['teams'],
  roleMap: { 'acme/mcp-admins': ['mcp-admin'] },
}

describe('upstream re-check at refresh', () => {
  const idps: Record<'entra' | 'google' | 'github' | 'githubApp', UpstreamIdp> = {} as never
  before(async () => {
    idps.entra = await startEntraLike()
    idps.google = await startGoogleLike()
    idps.github = await startPlainOAuth()
    idps.githubApp = await startPlainOAuth({ expiringTokens: true })
  })
  afterEach(() => {
    for (const idp of Object.values(idps)) idp.reset()
  })
  after(async () => {
    for (const idp of Object.values(idps)) await idp.close()
  })

  it('Entra: a new identity and roles from the new ID token; the rotated refresh token is kept, the old one is dead', async (t) => {
    const up = await connect(idps.entra, 'jwt', ENTRA)
    t.after(() => up.close())
    const first = await signIn(up, idps.entra)
    idps.entra.updateUser(ALICE.id, {
      oid: ALICE.oid,
      email: 'alice@contoso.example',
      roles: ['MCP.Admin'],
      groups: [],
    })
    const second = await up.refresh(first.tokens)
    assert.deepEqual(
      { subject: second.subject, roles: second.roles, email: second.email },
      { subject: ALICE.oid, roles: ['MCP.Admin'], email: 'alice@contoso.example' },
    )
    assert.notEqual(second.tokens.refreshToken, first.tokens.refreshToken)
    assert.notEqual(second.tokens.idToken, first.tokens.idToken)
    assert.notEqual(second.tokens.accessToken, first.tokens.accessToken)
    // RFC 9700 §4.14.2: a rotated refresh token used again is refused (and the grant revoked).
    await rejectsUpstream(up.refresh(first.tokens), 'upstream_revoked')
  })

  const revocations: { name: string; act(idp: UpstreamIdp): void | Promise<void> }[] = [
    { name: 'a disabled user', act: (idp) => idp.disable(ALICE.id) },
    { name: 'revoked grants', act: (idp) => idp.revoke(ALICE.id) },
  ]
  for (const r of revocations) {
    it(`Entra: ${r.name} → upstream_revoked`, async (t) => {
      const up = await connect(idps.entra, 'basic', ENTRA)
      t.after(() => up.close())
      const { tokens } = await signIn(up, idps.entra)
      await r.act(idps.entra)
      const err = await rejectsUpstream(up.refresh(tokens), 'upstream_revoked')
      assert.equal(err.upstreamError, 'invalid_grant')
    })
  }

  const outages: { name: string; over?: Partial<UpstreamConfig>; act(idp: UpstreamIdp): void }[] = [
    {
      name: 'a token endpoint slower than the timeout',
      // The timeout bounds the sign-in before (discovery, exchange, userinfo) too, and is not
      // what is asserted (a refresh that never answers is cut, whenever): generous, so a busy
      // machine's sign-in makes it.
      over: { timeout: 2_000 },
      act: (idp) => void (idp.knobs.tokenDelayMs = 60_000),
    },
    { name: 'an IdP answering 503', act: (idp) => void (idp.knobs.down = true) },
  ]
  for (const o of outages) {
    it(`Entra: ${o.name} → upstream_unavailable, not revoked`, async (t) => {
      const up = await connect(idps.entra, 'jwt', { ...ENTRA, ...o.over })
      t.after(() => up.close())
      const { tokens } = await signIn(up, idps.entra)
      o.act(idps.entra)
      await rejectsUpstream(up.refresh(tokens), 'upstream_unavailable')
    })
  }

  it('an IdP that is gone (connection refused) → upstream_unavailable', async (t) => {
    const idp = await startEntraLike()
    const up = await connect(idp, 'basic', ENTRA)
    t.after(() => up.close())
    const { tokens } = await signIn(up, idp)
    await idp.close()
    await rejectsUpstream(up.refresh(tokens), 'upstream_unavailable')
  })

  it('a refreshed ID token that names another user → upstream_invalid_response', async (t) => {
    const up = await connect(idps.entra, 'jwt', ENTRA)
    t.after(() => up.close())
    const { tokens } = await signIn(up, idps.entra)
    idps.entra.knobs.tamperToken = async (body) => ({
      ...body,
      id_token: await idps.entra.forgeIdToken(
        String(body.id_token),
        (c) => (c.sub = 'bob-pairwise-sub'),
      ),
    })
    await rejectsUpstream(up.refresh(tokens), 'upstream_invalid_response')
  })

  it('Google with access_type=offline: refreshed, the refresh token (not rotated) kept', async (t) => {
    const up = await connect(idps.google, 'post', OFFLINE)
    t.after(() => up.close())
    const first = await signIn(up, idps.google)
    const second = await up.refresh(first.tokens)
    assert.deepEqual([second.subject, second.email], [first.subject, first.email])
    assert.equal(second.tokens.refreshToken, first.tokens.refreshToken)
    assert.notEqual(second.tokens.accessToken, first.tokens.accessToken)
  })

  it('Google without a refresh token: userinfo with the access token decides (OK, then 401 → revoked)', async (t) => {
    const up = await connect(idps.google, 'basic', { allowedDomains: ['example.com'] })
    t.after(() => up.close())
    const first = await signIn(up, idps.google)
    assert.equal(first.tokens.refreshToken, undefined)
    const second = await up.refresh(first.tokens)
    assert.deepEqual(
      [second.subject, second.email, second.tokens],
      [first.subject, first.email, first.tokens],
    )
    await idps.google.revoke(first.subject)
    await rejectsUpstream(up.refresh(first.tokens), 'upstream_revoked')
  })

  it('GitHub without a refresh token: /user decides, with roles as they are now; a disabled user → revoked', async (t) => {
    const up = await connect(idps.github, 'post', GITHUB)
    t.after(() => up.close())
    const first = await signIn(up, idps.github)
    assert.deepEqual(first.roles, ['acme/mcp-admins', 'mcp-admin'])
    idps.github.updateUser('octocat', {
      id: 123,
      login: 'octocat',
      email: 'octocat@github.example',
      teams: ['acme/readers'],
    })
    const second = await up.refresh(first.tokens)
    assert.deepEqual([second.subject, second.roles], ['123', ['acme/readers']])
    idps.github.disable('octocat')
    await rejectsUpstream(up.refresh(first.tokens), 'upstream_revoked')
  })

  it('GitHub App (expiring user tokens): the refresh token rotates, identity from /user', async (t) => {
    const up = await connect(idps.githubApp, 'post', GITHUB)
    t.after(() => up.close())
    const first = await signIn(up, idps.githubApp)
    assert.equal(typeof first.tokens.refreshToken, 'string')
    const second = await up.refresh(first.tokens)
    assert.deepEqual([second.subject, second.email], ['123', 'octocat@github.example'])
    assert.notEqual(second.tokens.refreshToken, first.tokens.refreshToken)
    assert.equal(second.tokens.idToken, undefined)
  })
})
