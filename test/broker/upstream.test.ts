import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import type { UpstreamConfig } from '../../gateway/broker/upstream.js'
import {
  captureLog,
  connect,
  leaksNone,
  rejectsUpstream,
  signIn,
  toCallback,
} from '../helpers/upstream-client.js'
import {
  ENTRA_GROUPS,
  startEntraLike,
  startGoogleLike,
  startPlainOAuth,
  type UpstreamIdp,
} from '../helpers/upstream-idp.js'

const RESOURCE = 'https://gw.example/mcp/notes'
const isJwt = (token: string) => token.split('.').length === 3

describe('upstream sign-in against Entra-, Google- and GitHub-like IdPs', () => {
  const idps: Record<'entra' | 'google' | 'github', UpstreamIdp> = {} as never
  before(async () => {
    idps.entra = await startEntraLike()
    idps.google = await startGoogleLike()
    idps.github = await startPlainOAuth()
  })
  afterEach(() => {
    for (const idp of Object.values(idps)) idp.reset()
  })
  after(async () => {
    for (const idp of Object.values(idps)) await idp.close()
  })

  const entra: Partial<UpstreamConfig> = {
    subjectClaim: 'oid',
    roleMap: { [ENTRA_GROUPS.developers]: ['mcp-developer'], 'MCP.Developer': ['mcp-user'] },
  }
  const cases: {
    name: string
    idp: keyof typeof idps
    client: string
    over?: Partial<UpstreamConfig>
    user?: string
    subject: string
    roles: string[]
    email?: string
    idToken: boolean
  }[] = [
    {
      name: 'Entra, private_key_jwt: oid is the subject, app roles and groups through roleMap',
      idp: 'entra',
      client: 'jwt',
      over: entra,
      user: 'alice-pairwise-sub',
      subject: '00000000-0000-0000-0000-00000000a11c',
      roles: [
        ENTRA_GROUPS.developers,
        'MCP.Developer',
        ENTRA_GROUPS.everyone,
        'mcp-developer',
        'mcp-user',
      ].sort(),
      email: 'alice@contoso.example',
      idToken: true,
    },
    {
      name: 'Entra, client_secret_basic: a user with a group and no app role',
      idp: 'entra',
      client: 'basic',
      over: entra,
      user: 'bob-pairwise-sub',
      subject: '00000000-0000-0000-0000-000000000b0b',
      roles: [ENTRA_GROUPS.everyone],
      email: 'bob@contoso.example',
      idToken: true,
    },
    {
      name: 'Google, client_secret_basic: sub, email, no roles',
      idp: 'google',
      client: 'basic',
      subject: '104857600000000000001',
      roles: [],
      email: 'ann@example.com',
      idToken: true,
    },
    {
      name: 'Google, client_secret_post',
      idp: 'google',
      client: 'post',
      user: '104857600000000000002',
      subject: '104857600000000000002',
      roles: [],
      email: 'gus@gmail.com',
      idToken: true,
    },
    {
      name: 'GitHub, client_secret_post: numeric id → string subject, teams through roleMap',
      idp: 'github',
      client: 'post',
      over: {
        subjectClaim: 'id',
        roleClaims: ['teams'],
        roleMap: { 'acme/mcp-admins': ['mcp-admin'] },
        scopes: ['read:user', 'read:org'],
      },
      subject: '123',
      roles: ['acme/mcp-admins', 'mcp-admin'],
      email: 'octocat@github.example',
      idToken: false,
    },
    {
      name: 'GitHub without scopes: a user with no email and no team',
      idp: 'github',
      client: 'post',
      over: { subjectClaim: 'id', roleClaims: ['teams'] },
      user: 'hubot',
      subject: '456',
      roles: [],
      idToken: false,
    },
  ]
  for (const c of cases) {
    it(c.name, async (t) => {
      const idp = idps[c.idp]
      if (c.user) idp.nextUser(c.user)
      const { log, lines } = captureLog()
      const up = await connect(idp, c.client, c.over, { log })
      t.after(() => up.close())
      const who = await signIn(up, idp)
      assert.deepEqual(
        { subject: who.subject, roles: who.roles, email: who.email },
        { subject: c.subject, roles: c.roles, email: c.email },
      )
      assert.equal(typeof who.tokens.accessToken, 'string')
      assert.equal(who.tokens.idToken !== undefined, c.idToken)
      assert.ok(who.tokens.expiresAt! > Date.now() / 1000)
      for (const name of ['nonce', 'at_hash', 'c_hash'])
        assert.equal(name in who.claims, false, name)
      leaksNone(JSON.stringify(who.claims) + lines.join(''), [
        who.tokens.accessToken,
        who.tokens.refreshToken,
        who.tokens.idToken,
      ])
      assert.equal(idp.counts.resource, 0)
    })
  }

  it('asks an OIDC upstream for openid profile email with PKCE S256, state and nonce; plain OAuth for no scope and no nonce', async (t) => {
    const oidc = await connect(idps.google, 'basic')
    const plain = await connect(idps.github, 'post')
    t.after(() => Promise.all([oidc.close(), plain.close()]))
    const a = new URL((await oidc.begin()).url).searchParams
    const b = new URL((await plain.begin()).url).searchParams
    assert.deepEqual(
      [a.get('scope'), a.get('code_challenge_method'), a.get('response_type')],
      ['openid profile email', 'S256', 'code'],
    )
    assert.ok(a.get('nonce') && a.get('state') && a.get('code_challenge'))
    assert.deepEqual(
      [b.has('scope'), b.has('nonce'), b.get('code_challenge_method')],
      [false, false, 'S256'],
    )
  })

  it('Entra never receives resource without sendResource', async (t) => {
    const up = await connect(idps.entra, 'basic', entra)
    t.after(() => up.close())
    const { callback, tx, url } = await toCallback(up, idps.entra, { resource: RESOURCE })
    assert.equal(url.searchParams.has('resource'), false)
    assert.equal((await up.finish(callback, tx)).subject, '00000000-0000-0000-0000-00000000a11c')
    assert.equal(idps.entra.counts.resource, 0)
  })

  it("Entra's refusal of resource (sendResource) is upstream_refused, and nothing is exchanged", async (t) => {
    const up = await connect(idps.entra, 'basic', { ...entra, sendResource: true })
    t.after(() => up.close())
    const { callback, tx, url } = await toCallback(up, idps.entra, { resource: RESOURCE })
    assert.equal(url.searchParams.get('resource'), RESOURCE)
    const err = await rejectsUpstream(up.finish(callback, tx), 'upstream_refused')
    assert.equal(err.upstreamError, 'invalid_target')
    assert.equal(idps.entra.counts.token, 0)
  })

  it('authorizeParams reach the upstream: login_hint picks the Entra user', async (t) => {
    const up = await connect(idps.entra, 'jwt', {
      ...entra,
      authorizeParams: { login_hint: 'bob-pairwise-sub' },
    })
    t.after(() => up.close())
    assert.equal((await signIn(up, idps.entra)).subject, '00000000-0000-0000-0000-000000000b0b')
  })

  it('Google: opaque access token; a refresh token only with access_type=offline and prompt=consent', async (t) => {
    const online = await connect(idps.google, 'basic')
    const offline = await connect(idps.google, 'basic', {
      authorizeParams: { access_type: 'offline', prompt: 'consent' },
    })
    t.after(() => Promise.all([online.close(), offline.close()]))
    const a = await signIn(online, idps.google)
    const b = await signIn(offline, idps.google)
    assert.equal(isJwt(a.tokens.accessToken), false)
    assert.equal(isJwt(a.tokens.idToken!), true)
    assert.deepEqual(
      [a.tokens.refreshToken === undefined, typeof b.tokens.refreshToken],
      [true, 'string'],
    )
  })

  const domains: { name: string; user: string; code?: string }[] = [
    { name: 'a Workspace account of a listed domain (hd)', user: '104857600000000000001' },
    { name: 'a gmail.com account', user: '104857600000000000002', code: 'domain_not_allowed' },
    {
      name: 'an unverified email in a listed domain, without hd',
      user: '104857600000000000003',
      code: 'domain_not_allowed',
    },
  ]
  for (const d of domains) {
    it(`Google allowedDomains [EXAMPLE.com]: ${d.name} is ${d.code ? 'refused' : 'accepted'}`, async (t) => {
      const up = await connect(idps.google, 'post', { allowedDomains: ['EXAMPLE.com'] })
      t.after(() => up.close())
      idps.google.nextUser(d.user)
      if (!d.code) return void assert.equal((await signIn(up, idps.google)).subject, d.user)
      const err = await rejectsUpstream(signIn(up, idps.google), d.code)
      assert.match(err.message, /allowedDomains/)
      assert.doesNotMatch(err.message, /@/)
    })
  }
})
