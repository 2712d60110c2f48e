import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { importPKCS8, SignJWT } from 'jose'
import { request } from 'undici'
import { connect, signIn } from '../helpers/upstream-client.js'
import { startEntraLike, type UpstreamIdp } from '../helpers/upstream-idp.js'

/** The fixtures' own IdP-like refusals, checked with raw requests (no gateway code involved). */
describe('Entra-like fixture refusals', () => {
  let idp: UpstreamIdp
  before(async () => {
    idp = await startEntraLike()
  })
  after(() => idp.close())

  const basic = () =>
    `Basic ${Buffer.from(`${idp.clients.basic!.clientId}:${idp.clients.basic!.clientSecret}`).toString('base64')}`
  const post = async (form: Record<string, string>, headers: Record<string, string> = {}) => {
    const res = await request(idp.endpoints.token, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    })
    return { status: res.statusCode, body: (await res.body.json()) as { error?: string } }
  }

  it('refuses resource at the token endpoint with 400 invalid_target (AADSTS9010010)', async (t) => {
    const up = await connect(idp, 'basic')
    t.after(() => up.close())
    const { tokens } = await signIn(up, idp)
    const res = await post(
      {
        grant_type: 'refresh_token',
        refresh_token: tokens.refreshToken!,
        resource: 'https://gw.example/mcp/x',
      },
      { authorization: basic() },
    )
    assert.deepEqual([res.status, res.body.error], [400, 'invalid_target'])
  })

  const audiences: {
    name: string
    aud: (i: UpstreamIdp) => string
    status: number
    error: string
  }[] = [
    {
      name: "the issuer (openid-client's default)",
      aud: (i) => i.issuer,
      status: 401,
      error: 'invalid_client',
    },
    {
      name: 'the token endpoint',
      aud: (i) => i.endpoints.token,
      status: 400,
      error: 'invalid_grant',
    },
  ]
  for (const a of audiences) {
    it(`a client assertion addressed to ${a.name} → ${a.status} ${a.error}`, async () => {
      const c = idp.clients.jwt!
      const key = await importPKCS8(c.privateKeyPem!, 'RS256')
      const assertion = await new SignJWT({ jti: randomUUID() })
        .setProtectedHeader({ alg: 'RS256', kid: c.kid! })
        .setIssuer(c.clientId)
        .setSubject(c.clientId)
        .setAudience(a.aud(idp))
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(key)
      const res = await post({
        grant_type: 'authorization_code',
        code: 'no-such-code',
        redirect_uri: 'http://127.0.0.1:9/x',
        code_verifier: 'v'.repeat(43),
        client_id: c.clientId,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      })
      assert.deepEqual([res.status, res.body.error], [a.status, a.error])
    })
  }
})
