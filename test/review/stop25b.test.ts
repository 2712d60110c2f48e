// Stop 25b: an outsider's review of merge 33108ca (consent of a no-scope server remembered by a
// marker scope in the grant; a code exchange naming several resources refused before
// oidc-provider spends the code). Each finding is a failing test first (real broker, real
// upstream fixture, real codes), then the fix in token-resource.ts:
// - a code exchange with one empty `resource=`: the guard counted it as one resource named,
//   oidc-provider reads an empty parameter as none and took the code's several (useGrantedResource),
//   refused only after spending the code; the client's retry was a replay that revoked the grant;
// - a code exchange naming one resource the code was not granted for (another server, or a
//   spelling of its own: trailing slash, case): refused by oidc-provider after spending the code,
//   the same replay on retry (the refresh path refuses it before, provider.ts rotateRefreshToken);
// - a spent code replayed with no resource was refused by the guard (invalid_target) instead of
//   reaching oidc-provider's reuse detection: the grant, and the tokens the first exchange gave
//   (maybe a thief's), lived on (RFC 9700 §4.14.2 revokes them);
// - the guard looked the code up before client authentication and PKCE: anyone holding a code
//   (no secret, no verifier) learned from invalid_target that it is live and for several
//   resources. It now decides on a code only for a request that proves the code's verifier.
// - a /token (/register, /revoke) body declared and never sent held the socket until Node's
//   requestTimeout (300 s): oidc-provider and the guard read it with no bound of their own; it
//   now gets limits.bodyTimeout's 408, as the MCP endpoints do (mount.ts).
// And pins of what held: the marker scope cannot be asked for (oidc-provider refuses a quote in
// `scope` at /authorize and /token), and no token, refresh answer or JWT carries it; an
// approval of no scope is the resource's alone: an endpoint's does not open its servers, nor
// its servers' the endpoint, nor one spelling another.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { brokerLogin } from '../helpers/broker-browser.js'
import {
  authorizeUrl,
  login,
  newClient,
  newConfidentialClient,
  pkce,
  refresh,
  send,
  token,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const WEB = 'https://claude.ai/api/mcp/auth_callback'

describe('stop 25b: the code exchange guard and the approval marker', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack()
  })
  after(() => stack?.close())

  /** A login of `clientId` for these servers; the exchange form of its code (no resource). */
  async function codeFor(clientId: string, servers: string[], scope = 'mcp:read') {
    const { verifier, challenge } = pkce()
    const url = new URL(`${stack.url}/authorize`)
    for (const [k, v] of [
      ['response_type', 'code'],
      ['client_id', clientId],
      ['redirect_uri', WEB],
      ['scope', scope],
      ...servers.map((s) => ['resource', stack.endpoint(s)]),
      ['state', randomBytes(8).toString('base64url')],
      ['code_challenge', challenge],
      ['code_challenge_method', 'S256'],
    ])
      url.searchParams.append(k!, v!)
    const { callback } = await brokerLogin(url.href, { redirectUri: WEB })
    const code = callback.searchParams.get('code')
    assert.ok(code, callback.href)
    return {
      grant_type: 'authorization_code',
      code,
      redirect_uri: WEB,
      client_id: clientId,
      code_verifier: verifier,
    }
  }

  const post = (body: string, headers: Record<string, string> = {}) =>
    send(`${stack.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body,
    })

  it('one empty resource= on a code for two: refused with the code intact', async () => {
    const clientId = await newClient(stack, [WEB])
    const form = await codeFor(clientId, ['notes', 'echo'])
    const empty = await post(`${new URLSearchParams(form)}&resource=`)
    assert.equal(empty.status, 400, empty.text)
    assert.equal(empty.json.error, 'invalid_target')
    const one = await token(stack, { ...form, resource: stack.endpoint('notes') })
    assert.equal(one.status, 200, one.text)
    assert.equal(decodeJwt(String(one.json.access_token)).aud, stack.endpoint('notes'))
  })

  for (const [name, servers, asked] of [
    ['another server', ['notes'], () => stack.endpoint('echo')],
    ['its own with a trailing slash', ['notes'], () => `${stack.endpoint('notes')}/`],
    ['its own in upper case', ['notes'], () => stack.endpoint('notes').toUpperCase()],
    ['a third, the code for two', ['notes', 'echo'], () => `${stack.url}/elsewhere`],
  ] as const)
    it(`a code exchanged for a resource not granted (${name}): refused, the code intact`, async () => {
      const clientId = await newClient(stack, [WEB])
      const form = await codeFor(clientId, [...servers])
      const wrong = await token(stack, { ...form, resource: asked() })
      assert.equal(wrong.status, 400, wrong.text)
      assert.equal(wrong.json.error, 'invalid_target')
      assert.equal(wrong.json.access_token, undefined)
      const one = await token(stack, { ...form, resource: stack.endpoint('notes') })
      assert.equal(one.status, 200, one.text)
    })

  it('a spent code for two replayed with no resource: the reuse revokes the grant', async () => {
    const clientId = await newClient(stack, [WEB])
    const form = await codeFor(clientId, ['notes', 'echo'])
    const first = await token(stack, { ...form, resource: stack.endpoint('notes') })
    assert.equal(first.status, 200, first.text)
    const replay = await token(stack, form)
    assert.equal(replay.status, 400, replay.text)
    assert.equal(replay.json.error, 'invalid_grant')
    // The grant ended with the reuse: the first exchange's refresh token is worth nothing.
    const after = await refresh(stack, String(first.json.refresh_token), clientId, {
      resource: stack.endpoint('notes'),
    })
    assert.equal(after.status, 400, after.text)
    assert.equal(after.json.error, 'invalid_grant')
  })

  it('a code held without the verifier or the secret tells nothing of its resources', async () => {
    const c = await newConfidentialClient(stack, [WEB])
    const form = await codeFor(c.id, ['notes', 'echo'])
    const basic = (secret: string) =>
      `Basic ${Buffer.from(`${encodeURIComponent(c.id)}:${encodeURIComponent(secret)}`).toString('base64')}`
    // A thief's variants: no verifier, a wrong one, a wrong secret; one answer, not invalid_target.
    for (const [over, auth] of [
      [{ code_verifier: undefined }, basic(c.secret)],
      [{ code_verifier: pkce().verifier }, basic(c.secret)],
      [{ code_verifier: undefined }, basic('wrong')],
      [{ code_verifier: undefined, client_id: undefined }, undefined],
    ] as const) {
      const f = new URLSearchParams()
      for (const [k, v] of Object.entries({ ...form, ...over })) if (v !== undefined) f.append(k, v)
      const res = await post(f.toString(), auth ? { authorization: auth } : {})
      assert.notEqual(res.json.error, 'invalid_target', `${JSON.stringify(over)}: ${res.text}`)
      assert.ok(res.status === 400 || res.status === 401, res.text)
    }
    // And none of those spent it.
    const one = await token(
      stack,
      { ...form, client_id: undefined, resource: stack.endpoint('notes') },
      { authorization: basic(c.secret) },
    )
    assert.equal(one.status, 200, one.text)
  })

  it('held: the marker scope cannot be asked for, and no token carries it', async () => {
    const clientId = await newClient(stack, [WEB])
    for (const scope of [
      'mcp:read "mcp-edge:approved"',
      '"mcp-edge:approved"',
      'mcp:read \u201cmcp-edge:approved\u201d',
    ]) {
      const { challenge } = pkce()
      const res = await send(
        authorizeUrl(stack, {
          response_type: 'code',
          client_id: clientId,
          redirect_uri: WEB,
          scope,
          resource: stack.endpoint('notes'),
          state: 's',
          code_challenge: challenge,
          code_challenge_method: 'S256',
        }),
      )
      assert.ok(res.location, `${scope}: ${res.status} ${res.text}`)
      const to = new URL(res.location)
      assert.equal(to.searchParams.get('error'), 'invalid_scope', to.href)
    }
    // A no-scope approval (scope=openid), then a token and a refresh asking for the marker.
    const form = await codeFor(clientId, ['notes'], 'openid offline_access')
    const t = await token(stack, { ...form, resource: stack.endpoint('notes') })
    assert.equal(t.status, 200, t.text)
    assert.doesNotMatch(t.text, /approved/)
    assert.doesNotMatch(JSON.stringify(decodeJwt(String(t.json.access_token))), /approved/)
    const marked = await refresh(stack, String(t.json.refresh_token), clientId, {
      resource: stack.endpoint('notes'),
      scope: '"mcp-edge:approved"',
    })
    assert.equal(marked.status, 400, marked.text)
    assert.equal(marked.json.error, 'invalid_scope')
    const r = await refresh(stack, String(t.json.refresh_token), clientId, {
      resource: stack.endpoint('notes'),
    })
    assert.equal(r.status, 200, r.text)
    assert.doesNotMatch(r.text, /approved/)
    assert.doesNotMatch(JSON.stringify(decodeJwt(String(r.json.access_token))), /approved/)
  })
})

describe('stop 25b: a stalled body at the authorization server', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack({ config: { limits: { bodyTimeout: 300 } } })
  })
  after(() => stack?.close())

  /** What the gateway answers a request whose declared body stops after `sent`; at its close. */
  function stall(path: string, type: string, sent: string, origin?: string): Promise<string> {
    const u = new URL(stack.url)
    return new Promise((resolve, reject) => {
      const socket = connect(Number(u.port), u.hostname, () =>
        socket.write(
          `POST ${path} HTTP/1.1\r\nhost: ${u.host}\r\ncontent-type: ${type}\r\n` +
            (origin === undefined ? '' : `origin: ${origin}\r\n`) +
            `content-length: 4096\r\n\r\n${sent}`,
        ),
      )
      let got = ''
      socket.on('data', (d: Buffer) => {
        got += d.toString()
      })
      socket.on('error', reject)
      socket.on('close', () => resolve(got))
    })
  }

  // The bound is the gateway's limits.bodyTimeout (300 ms here); unbounded, Node's 300 s.
  for (const [path, type, sent] of [
    ['/token', 'application/x-www-form-urlencoded', 'grant_type=authorization_code&code='],
    ['/token', 'application/x-www-form-urlencoded', ''],
    ['/token', 'application/x-www-form-urlencoded; charset=UTF-8', 'grant_type=refresh_'],
    ['/register', 'application/json', '{"redirect_uris":['],
    ['/revoke', 'application/x-www-form-urlencoded', 'token='],
  ] as const)
    it(`${path} (${type}), its body stalled after ${sent.length} bytes: 408, the connection closed`, {
      timeout: 20_000,
    }, async () => {
      const answer = await stall(path, type, sent)
      assert.match(answer, /^HTTP\/1\.1 408 /, answer)
      assert.match(answer, /the request body did not arrive within 300 ms/, answer)
      // The body cut short is the client's doing: nothing logged as the gateway's error.
      const errors = stack.logLines.filter((l) => /"level":(50|60)/.test(l))
      assert.deepEqual(errors, [])
    })

  // The guard reads /token's body before oidc-provider's route sets its CORS headers: the 408
  // carries them as oidc-provider's answers before it knows the client do (a browser reads it).
  for (const origin of ['https://claude.ai', undefined])
    it(`/token stalled, Origin ${origin ?? 'none'}: the 408 carries oidc-provider's /token CORS headers`, {
      timeout: 20_000,
    }, async () => {
      const answer = await stall('/token', 'application/x-www-form-urlencoded', 'code=', origin)
      assert.match(answer, /^HTTP\/1\.1 408 /, answer)
      const head = answer.slice(0, answer.indexOf('\r\n\r\n')).toLowerCase()
      assert.match(
        head,
        new RegExp(`\r\naccess-control-allow-origin: ${origin ?? '\\*'}\r\n`),
        head,
      )
      assert.match(head, /\r\naccess-control-expose-headers: www-authenticate\r\n/, head)
      assert.match(head, /\r\nvary: origin\r\n/, head)
    })
})

const OPEN_POLICY = `
roles:
  MCP.Developer: ["mcp:read"]
servers:
  open: { tools: { "*": allow } }
  open2: { tools: { "*": allow } }
`
const ECHO = { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] }

describe('stop 25b, held: a no-scope approval is its resource only', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack({
      policy: OPEN_POLICY,
      config: {
        servers: { open: ECHO, open2: ECHO },
        endpoints: { both: { servers: ['open', 'open2'] } },
      },
    })
  })
  after(() => stack?.close())

  const authorize = (clientId: string, jar: Map<string, string>, resource: string) =>
    login(stack, {
      clientId,
      redirectUri: WEB,
      jar,
      params: { scope: 'openid', resource },
      choices: { consent: 'deny' },
    })

  for (const [approved, asked] of [
    [['both'], 'open'],
    [['both'], 'open2'],
    [['open', 'open2'], 'both'],
    [['open'], 'open2'],
  ] as const)
    it(`approved for ${approved.join(' and ')}: ${asked} (scope=openid) shows the page`, async () => {
      const clientId = await newClient(stack, [WEB])
      const jar = new Map<string, string>()
      for (const a of approved) {
        const l = await login(stack, {
          clientId,
          redirectUri: WEB,
          jar,
          params: { scope: 'openid', resource: stack.endpoint(a) },
        })
        assert.ok(l.callback.searchParams.get('code'), l.callback.href)
        // Remembered: asked again, no page and a code.
        const again = await authorize(clientId, jar, stack.endpoint(a))
        assert.equal(again.visits.filter((v) => v.status === 200).length, 0, a)
        assert.ok(again.callback.searchParams.get('code'), again.callback.href)
      }
      const other = await authorize(clientId, jar, stack.endpoint(asked))
      assert.equal(other.visits.filter((v) => v.status === 200).length, 1, 'the consent page')
      assert.equal(other.callback.searchParams.get('error'), 'access_denied')
    })

  it('approved for open: its spellings are refused at /authorize, not taken as approved', async () => {
    const clientId = await newClient(stack, [WEB])
    const jar = new Map<string, string>()
    const first = await login(stack, {
      clientId,
      redirectUri: WEB,
      jar,
      params: { scope: 'openid', resource: stack.endpoint('open') },
    })
    assert.ok(first.callback.searchParams.get('code'))
    const u = stack.endpoint('open')
    for (const spelling of [
      `${u}/`,
      u.toUpperCase(),
      `${u}?x=1`,
      `${u}#f`,
      u.replace(/open$/, '%6Fpen'),
    ]) {
      const { challenge } = pkce()
      const res = await send(
        authorizeUrl(stack, {
          response_type: 'code',
          client_id: clientId,
          redirect_uri: WEB,
          scope: 'openid',
          resource: spelling,
          state: 's',
          code_challenge: challenge,
          code_challenge_method: 'S256',
        }),
        { jar },
      )
      const to = new URL(String(res.location))
      assert.equal(to.searchParams.get('code'), null, `${spelling}: ${to.href}`)
      assert.equal(to.searchParams.get('error'), 'invalid_target', `${spelling}: ${to.href}`)
    }
  })
})
