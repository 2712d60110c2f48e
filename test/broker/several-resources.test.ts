// RFC 8707 lets a request name several resources. The broker (oidc-provider) takes several at
// /authorize (one consent page names every server, one grant holds each), but issues a token
// for one resource only: a token request naming two is refused (invalid_target), so no token
// of the broker speaks for two servers at once; each token's `aud` is the one resource asked.
// A code exchange naming two is refused before the code is spent (token-resource.ts). A
// secret shared by two servers is set with a token for an endpoint serving both (README). The dev IdP side (`mcp-edge token --resource` twice) is in test/cli/cli.test.ts.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { brokerLogin } from '../helpers/broker-browser.js'
import { request } from 'undici'
import { newClient, pkce, refresh, register, send, token } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'

const WEB = 'https://claude.ai/api/mcp/auth_callback'

describe('the broker and several resources in one request', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack()
  })
  after(() => stack?.close())

  it('one consent for notes and echo; a token per resource; a refresh naming both refused, not spent', async () => {
    const clientId = await newClient(stack, [WEB])
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
    const { callback, visits } = await brokerLogin(url.href, { redirectUri: WEB })
    const pages = visits.filter((v) => v.status === 200)
    assert.equal(pages.length, 1, 'one consent page')
    assert.match(pages[0]!.html, /notes/)
    assert.match(pages[0]!.html, /echo/)
    const code = callback.searchParams.get('code')
    assert.ok(code, callback.href)
    const form = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: WEB,
      client_id: clientId,
      code_verifier: verifier,
    }
    const post = (body: URLSearchParams) =>
      send(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: body.toString(),
      })
    // One of them: its token, for it alone.
    const notes = await token(stack, { ...form, resource: stack.endpoint('notes') })
    assert.equal(notes.status, 200, notes.text)
    const claims = decodeJwt(String(notes.json.access_token))
    assert.equal(claims.aud, stack.endpoint('notes'))
    assert.equal(claims.scope, 'mcp:read')
    // A refresh naming both: refused too, and the refresh token is not spent.
    const bothAgain = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: String(notes.json.refresh_token),
      client_id: clientId,
    })
    bothAgain.append('resource', stack.endpoint('notes'))
    bothAgain.append('resource', stack.endpoint('echo'))
    const twoAgain = await post(bothAgain)
    assert.equal(twoAgain.status, 400, twoAgain.text)
    assert.equal(twoAgain.json.error, 'invalid_target')
    // The other through the refresh token the grant of both gave.
    const echo = await refresh(stack, String(notes.json.refresh_token), clientId, {
      resource: stack.endpoint('echo'),
    })
    assert.equal(echo.status, 200, echo.text)
    assert.equal(decodeJwt(String(echo.json.access_token)).aud, stack.endpoint('echo'))
  })

  /** A login of a new client (`extra`: its metadata) for notes and echo; its code and verifier. */
  async function codeForBoth(extra: Record<string, unknown> = {}) {
    const registered = await register(stack, {
      client_name: 'several',
      redirect_uris: [WEB],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...extra,
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
      clientId,
      secret: registered.json.client_secret as string | undefined,
      form: {
        grant_type: 'authorization_code',
        code: callback.searchParams.get('code') ?? '',
        redirect_uri: WEB,
        client_id: clientId,
        code_verifier: verifier,
      },
    }
  }

  it('a client_secret_post client: its credentials in the form still authenticate it', async () => {
    const c = await codeForBoth({ token_endpoint_auth_method: 'client_secret_post' })
    assert.ok(c.secret)
    const bad = await token(stack, {
      ...c.form,
      client_secret: 'wrong',
      resource: stack.endpoint('notes'),
    })
    assert.equal(bad.status, 401, bad.text)
    assert.equal(bad.json.error, 'invalid_client')
    const ok = await token(stack, {
      ...c.form,
      client_secret: c.secret,
      resource: stack.endpoint('notes'),
    })
    assert.equal(ok.status, 200, ok.text)
  })

  for (const [name, resources] of [
    ['an empty resource next to one', ['notes', '']],
    ['two empty resources', ['', '']],
  ] as const)
    it(`a code exchanged with ${name}: refused, the code intact`, async () => {
      const c = await codeForBoth()
      const body = new URLSearchParams(c.form)
      for (const r of resources) body.append('resource', r === '' ? '' : stack.endpoint(r))
      const res = await send(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: body.toString(),
      })
      assert.equal(res.status, 400, res.text)
      assert.equal(res.json.access_token, undefined)
      const one = await token(stack, { ...c.form, resource: stack.endpoint('notes') })
      assert.equal(one.status, 200, one.text)
    })

  it('a form past 56 KiB, chunked or declared: 400, nothing issued', async () => {
    const c = await codeForBoth()
    const body = `${new URLSearchParams({ ...c.form, resource: stack.endpoint('notes') })}&pad=${'a'.repeat(60 * 1024)}`
    for (const chunked of [true, false]) {
      const res = await request(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: chunked
          ? Readable.from(
              (function* () {
                for (let i = 0; i < body.length; i += 8192)
                  yield Buffer.from(body.slice(i, i + 8192))
              })(),
            )
          : body,
      })
      const text = await res.body.text()
      assert.equal(res.statusCode, 400, text)
      assert.equal(JSON.parse(text).error, 'invalid_request', text)
    }
  })

  // oidc-provider resolves a code's resource only after it has spent the code: a request that
  // named two (or none, the code granted for two) was refused and the code gone, so the retry
  // with one resource was a replay, refused, and the grant revoked. Refused before (the
  // refresh-token path is guarded alike, provider.ts rotateRefreshToken).
  for (const [name, resources] of [
    ['both resources', ['notes', 'echo']],
    ['both resources, one twice', ['notes', 'echo', 'notes']],
    ['one resource twice', ['echo', 'echo']],
    ['no resource (the code is for two)', []],
  ] as const)
    it(`a code exchanged with ${name}: invalid_target, the code intact; with one, a token`, async () => {
      const clientId = await newClient(stack, [WEB])
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
      const form = {
        grant_type: 'authorization_code',
        code: callback.searchParams.get('code') ?? '',
        redirect_uri: WEB,
        client_id: clientId,
        code_verifier: verifier,
      }
      const body = new URLSearchParams(form)
      for (const r of resources) body.append('resource', stack.endpoint(r))
      const two = await send(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: body.toString(),
      })
      assert.equal(two.status, 400, two.text)
      assert.equal(two.json.error, 'invalid_target')
      assert.equal(two.json.access_token, undefined)
      assert.equal(two.headers['cache-control'], 'no-store')
      const line = stack.audit().at(-1)!
      assert.equal(line.method, 'oauth/token')
      assert.equal(line.decision, 'deny')
      assert.match(String(line.outcome), /^invalid_target: one resource per token request/)
      const one = await token(stack, { ...form, resource: stack.endpoint('echo') })
      assert.equal(one.status, 200, one.text)
      assert.equal(decodeJwt(String(one.json.access_token)).aud, stack.endpoint('echo'))
      // The code is spent now, as ever: a second exchange is a replay.
      const again = await token(stack, { ...form, resource: stack.endpoint('echo') })
      assert.equal(again.status, 400)
      assert.equal(again.json.error, 'invalid_grant')
    })
})
