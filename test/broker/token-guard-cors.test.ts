// The broker's /token guard (token-resource.ts) answers some code exchanges itself, before
// oidc-provider: its answers must read like oidc-provider's own. (1) The CORS headers: a browser
// client reads the guard's invalid_target exactly when it could read oidc-provider's answer to
// the same request — compared here with a real answer of oidc-provider's /token for the same
// client and Origin. (2) The charset: the guard decodes the form as oidc-provider would (the
// Content-Type's charset, else UTF-8), and refuses a charset no decoder knows as oidc-provider
// does, the code intact either way.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { brokerLogin } from '../helpers/broker-browser.js'
import { register, pkce, send, token, type Answer } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'

const WEB = 'https://claude.ai/api/mcp/auth_callback'
const FORM = 'application/x-www-form-urlencoded'

/** The headers a browser reads a cross-origin answer by, and its caching. */
const CORS_HEADERS = [
  'access-control-allow-origin',
  'access-control-expose-headers',
  'vary',
  'cache-control',
] as const

const corsOf = (a: Answer) => Object.fromEntries(CORS_HEADERS.map((h) => [h, a.headers[h]]))

describe('the /token guard answers as oidc-provider does', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack()
  })
  after(() => stack?.close())

  /** A login of a new public client for notes and echo: its code exchange form. */
  async function codeForBoth() {
    const registered = await register(stack, {
      client_name: 'guard',
      redirect_uris: [WEB],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    })
    assert.equal(registered.status, 201, registered.text)
    const clientId = String(registered.json.client_id)
    const { verifier, challenge } = pkce()
    const url = new URL(`${stack.url}/authorize`)
    for (const [k, v] of [
      ['response_type', 'code'],
      ['client_id', clientId],
      ['redirect_uri', WEB],
      ['scope', 'mcp:read'],
      ['resource', stack.endpoint('notes')],
      ['resource', stack.endpoint('echo')],
      ['state', randomBytes(8).toString('base64url')],
      ['code_challenge', challenge],
      ['code_challenge_method', 'S256'],
    ])
      url.searchParams.append(k!, v!)
    const { callback } = await brokerLogin(url.href, { redirectUri: WEB })
    return {
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code') ?? '',
      redirect_uri: WEB,
      client_id: clientId,
      code_verifier: verifier,
    }
  }

  /** The form naming both resources (the guard's invalid_target), as a body. */
  const both = (form: Record<string, string>) => {
    const body = new URLSearchParams(form)
    body.append('resource', stack.endpoint('notes'))
    body.append('resource', stack.endpoint('echo'))
    return body.toString()
  }

  for (const [what, origin, readable] of [
    ['an origin of its redirect URI', 'https://claude.ai', true],
    ['a loopback origin', 'http://localhost:6274', true],
    ['an origin the client may not use', 'https://evil.example', false],
    ["the opaque origin 'null'", 'null', undefined],
    ['no Origin (not a browser)', undefined, true],
  ] as const)
    it(`invalid_target carries oidc-provider's /token CORS headers: ${what}`, async () => {
      const form = await codeForBoth()
      const headers: Record<string, string> = origin === undefined ? {} : { origin }
      const guard = await send(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': FORM, ...headers },
        body: both(form),
      })
      assert.equal(guard.status, 400, guard.text)
      assert.equal(guard.json.error, 'invalid_target', guard.text)
      // oidc-provider's own answer to the same client and Origin (a code it does not know).
      const real = await token(stack, { ...form, code: 'not-a-code', resource: undefined }, headers)
      assert.equal(real.status, 400, real.text)
      assert.notEqual(real.json.error, 'invalid_target')
      assert.deepEqual(
        corsOf(guard),
        corsOf(real),
        `guard ${guard.text}, oidc-provider ${real.text}`,
      )
      if (readable !== undefined)
        assert.equal(
          guard.headers['access-control-allow-origin'],
          readable ? (origin ?? '*') : undefined,
        )
      // The code is intact: exchanged with one resource, a token.
      const ok = await token(stack, { ...form, resource: stack.endpoint('notes') })
      assert.equal(ok.status, 200, ok.text)
      assert.equal(decodeJwt(String(ok.json.access_token)).aud, stack.endpoint('notes'))
    })

  it('a form in UTF-16LE, its charset named: the guard reads it as oidc-provider does', async () => {
    const form = await codeForBoth()
    const post = (body: string, charset: string) =>
      send(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': `${FORM}; charset=${charset}`, origin: 'https://claude.ai' },
        body: Buffer.from(body, charset === 'utf-16le' ? 'utf16le' : 'latin1') as never,
      })
    const refused = await post(both(form), 'utf-16le')
    assert.equal(refused.status, 400, refused.text)
    assert.equal(refused.json.error, 'invalid_target', refused.text)
    assert.equal(refused.headers['access-control-allow-origin'], 'https://claude.ai')
    const one = new URLSearchParams({ ...form, resource: stack.endpoint('echo') }).toString()
    const ok = await post(one, 'utf-16le')
    assert.equal(ok.status, 200, ok.text)
    assert.equal(decodeJwt(String(ok.json.access_token)).aud, stack.endpoint('echo'))
  })

  it('ISO-8859-1 named: read as such (the form is ASCII), a token', async () => {
    const form = await codeForBoth()
    const refused = await send(`${stack.url}/token`, {
      method: 'POST',
      headers: { 'content-type': `${FORM}; charset=ISO-8859-1` },
      body: both(form),
    })
    assert.equal(refused.json.error, 'invalid_target', refused.text)
    const ok = await send(`${stack.url}/token`, {
      method: 'POST',
      headers: { 'content-type': `${FORM}; charset=iso-8859-1` },
      body: new URLSearchParams({ ...form, resource: stack.endpoint('notes') }).toString(),
    })
    assert.equal(ok.status, 200, ok.text)
  })

  for (const charset of ['x-bogus', 'utf-7', 'utf-32'])
    it(`a charset no decoder knows (${charset}): 400 invalid_request as oidc-provider, nothing issued, the code intact`, async () => {
      const form = await codeForBoth()
      const body = new URLSearchParams({ ...form, resource: stack.endpoint('notes') }).toString()
      const res = await send(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': `${FORM}; charset=${charset}`, origin: 'https://claude.ai' },
        body,
      })
      assert.equal(res.status, 400, res.text)
      assert.deepEqual(res.json, {
        error: 'invalid_request',
        error_description: 'failed to parse the request body',
      })
      assert.equal(res.headers['access-control-allow-origin'], 'https://claude.ai')
      const ok = await token(stack, { ...form, resource: stack.endpoint('notes') })
      assert.equal(ok.status, 200, ok.text)
    })
})
