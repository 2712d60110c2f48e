// Redirect URIs at /authorize, by raw HTTP: exact match for https (web) clients, RFC 8252
// loopback with any port for native ones, and nothing else; a request that cannot be sent
// back safely ends on the gateway's own page (no 3xx to an unvalidated URI, not framable);
// `state` comes back byte for byte and `iss` is on every redirect, success and error alike.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  assertGatewayPage,
  authorizeUrl,
  authParams,
  exchange,
  issued,
  issuedSince,
  NOTHING_ISSUED,
  login,
  newClient,
  pkce,
  send,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'

const WEB = 'https://claude.ai/api/mcp/auth_callback'
const NO_PORT = 'http://127.0.0.1/cb'
const PORT = 'http://127.0.0.1:5555/cb'

let stack: BrokerStack
let web: string
let noPort: string
let withPort: string
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    broker: { registration: { perAddressPerMinute: 1000 } },
  })
  web = await newClient(stack, [WEB])
  noPort = await newClient(stack, [NO_PORT])
  withPort = await newClient(stack, [PORT])
})
after(() => stack.close())

/** The first answer of /authorize for `clientId` with `redirectUri`. */
function authorize(
  clientId: string,
  redirectUri: string,
  over: Record<string, string | undefined> = {},
) {
  return send(
    authorizeUrl(stack, {
      ...authParams(stack, { clientId, redirectUri, challenge: pkce().challenge, state: 'st' }),
      ...over,
    }),
  )
}

/** /authorize went on to the consent page: the redirect URI was accepted. */
function assertAccepted(res: Awaited<ReturnType<typeof send>>, what: string): void {
  assert.equal(res.status, 303, `${what}: ${res.status} ${res.text.slice(0, 300)}`)
  assert.match(res.location ?? '', /^\/interaction\//, what)
}

describe('redirect URIs: what is accepted', () => {
  const cases: { name: string; client: () => string; uri: string }[] = [
    { name: 'web: exactly as registered', client: () => web, uri: WEB },
    { name: 'native, registered without a port: no port', client: () => noPort, uri: NO_PORT },
    {
      name: 'native, registered without a port: any port',
      client: () => noPort,
      uri: 'http://127.0.0.1:61000/cb',
    },
    { name: 'native, registered with a port: that port', client: () => withPort, uri: PORT },
    {
      name: 'native, registered with a port: another port',
      client: () => withPort,
      uri: 'http://127.0.0.1:61000/cb',
    },
  ]
  for (const c of cases) {
    it(c.name, async () => assertAccepted(await authorize(c.client(), c.uri), c.name))
  }

  it('a native client logs in through another loopback port and redeems its code there', async () => {
    const redirectUri = 'http://127.0.0.1:61001/cb'
    const l = await login(stack, { clientId: noPort, redirectUri })
    assert.equal(`${l.callback.origin}${l.callback.pathname}`, redirectUri)
    const res = await exchange(stack, l, { clientId: noPort, redirectUri })
    assert.equal(res.status, 200, res.text)
  })
})

describe("redirect URIs: refused with the gateway's page, never a redirect", () => {
  const refusals: { name: string; client: () => string; uri: string; error?: string }[] = [
    // web (exact match)
    { name: 'web: trailing slash', client: () => web, uri: `${WEB}/` },
    { name: 'web: a query added', client: () => web, uri: `${WEB}?next=https://evil.example/` },
    { name: 'web: a fragment', client: () => web, uri: `${WEB}#x` },
    {
      name: 'web: another port',
      client: () => web,
      uri: 'https://claude.ai:8443/api/mcp/auth_callback',
    },
    {
      name: 'web: explicit default port',
      client: () => web,
      uri: 'https://claude.ai:443/api/mcp/auth_callback',
    },
    {
      name: 'web: host in upper case',
      client: () => web,
      uri: 'https://CLAUDE.AI/api/mcp/auth_callback',
    },
    { name: 'web: http', client: () => web, uri: 'http://claude.ai/api/mcp/auth_callback' },
    {
      name: 'web: a suffix host',
      client: () => web,
      uri: 'https://claude.ai.evil.example/api/mcp/auth_callback',
    },
    {
      name: 'web: userinfo claude.ai@evil',
      client: () => web,
      uri: 'https://claude.ai@evil.example/api/mcp/auth_callback',
    },
    {
      name: 'web: userinfo evil@claude.ai',
      client: () => web,
      uri: 'https://evil@claude.ai/api/mcp/auth_callback',
    },
    {
      name: 'web: percent-encoded path',
      client: () => web,
      uri: 'https://claude.ai/api/mcp/%61uth_callback',
    },
    {
      name: 'web: dot segments',
      client: () => web,
      uri: 'https://claude.ai/api/mcp/x/../auth_callback',
    },
    {
      name: 'web: backslash',
      client: () => web,
      uri: 'https://claude.ai\\@evil.example/api/mcp/auth_callback',
    },
    { name: "web: the attacker's own", client: () => web, uri: 'https://evil.example/cb' },
    {
      name: 'web: a loopback URI (web clients get no port leeway either)',
      client: () => web,
      uri: 'http://127.0.0.1:61000/cb',
    },
    // native (RFC 8252 §7.3: only the port may vary)
    { name: 'native: another path', client: () => noPort, uri: 'http://127.0.0.1:61000/other' },
    { name: 'native: trailing slash', client: () => noPort, uri: 'http://127.0.0.1:61000/cb/' },
    { name: 'native: path case', client: () => noPort, uri: 'http://127.0.0.1:61000/CB' },
    { name: 'native: a query added', client: () => noPort, uri: 'http://127.0.0.1:61000/cb?x=1' },
    { name: 'native: a fragment', client: () => noPort, uri: 'http://127.0.0.1:61000/cb#x' },
    {
      name: 'native: localhost for 127.0.0.1',
      client: () => noPort,
      uri: 'http://localhost:61000/cb',
    },
    { name: 'native: [::1] for 127.0.0.1', client: () => noPort, uri: 'http://[::1]:61000/cb' },
    { name: 'native: 127.0.0.2', client: () => noPort, uri: 'http://127.0.0.2:61000/cb' },
    { name: 'native: 127.1 (shorthand)', client: () => noPort, uri: 'http://127.1:61000/cb' },
    { name: 'native: hex IPv4', client: () => noPort, uri: 'http://0x7f000001:61000/cb' },
    {
      name: 'native: a host that starts like loopback',
      client: () => noPort,
      uri: 'http://127.0.0.1.evil.example:61000/cb',
    },
    { name: 'native: https', client: () => noPort, uri: 'https://127.0.0.1:61000/cb' },
    {
      name: 'native: scheme in upper case',
      client: () => noPort,
      uri: 'HTTP://127.0.0.1:61000/cb',
    },
    { name: 'native: userinfo', client: () => noPort, uri: 'http://evil@127.0.0.1:61000/cb' },
    {
      name: 'native: userinfo hiding another host',
      client: () => noPort,
      uri: 'http://127.0.0.1:61000@evil.example/cb',
    },
    {
      name: 'native: percent-encoded path',
      client: () => noPort,
      uri: 'http://127.0.0.1:61000/%63b',
    },
    {
      name: 'native: encoded slash',
      client: () => noPort,
      uri: 'http://127.0.0.1:61000/cb%2F..%2Fother',
    },
    { name: 'native: double slash', client: () => noPort, uri: 'http://127.0.0.1:61000//cb' },
    { name: 'native: port out of range', client: () => noPort, uri: 'http://127.0.0.1:99999/cb' },
    { name: 'native: non-numeric port', client: () => noPort, uri: 'http://127.0.0.1:x/cb' },
    {
      name: 'native: a private-use scheme',
      client: () => noPort,
      uri: 'cursor://anysphere.cursor-retrieval/cb',
    },
    { name: 'native: javascript:', client: () => noPort, uri: 'javascript:alert(1)//127.0.0.1/cb' },
    // clients that do not exist
    {
      name: "an unknown client_id with the attacker's URI",
      client: () => 'no-such-client',
      uri: 'https://evil.example/cb',
      error: 'invalid_client',
    },
    {
      name: 'an unknown client_id with an allowed-looking URI',
      client: () => 'no-such-client',
      uri: WEB,
      error: 'invalid_client',
    },
    {
      name: 'no client_id',
      client: () => '',
      uri: 'https://evil.example/cb',
      error: 'invalid_request',
    },
  ]
  for (const r of refusals) {
    const error = r.error ?? 'invalid_redirect_uri'
    it(`${r.name} → 400 page with ${error}, no Location, not framable, nothing issued`, async () => {
      const before = await issued(stack)
      const res = await authorize(
        r.client(),
        r.uri,
        r.client() === '' ? { client_id: undefined } : {},
      )
      assertGatewayPage(assert, res, 400, r.name)
      assert.equal(/<code>([^<]*)<\/code>/.exec(res.text)?.[1], error)
      assert.doesNotMatch(res.text, /evil\.example/, 'the page does not link to the attacker')
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED)
    })
  }

  it('an error an attacker triggers with a bad redirect_uri and another error at once still never redirects', async () => {
    const res = await authorize(web, 'https://evil.example/cb', {
      code_challenge_method: 'plain',
      response_type: 'token',
    })
    assertGatewayPage(assert, res, 400, 'two errors')
  })
})

describe('state and iss on every redirect', () => {
  const states: { name: string; state: string }[] = [
    { name: 'unicode', state: 'état ✓ 日本語 🚀' },
    { name: 'long (1,500 characters)', state: 'x'.repeat(1500) },
    { name: 'URL and HTML special characters', state: `a&b=c#d?e/f+g%20h "'<>;\\` },
    { name: 'a JSON blob', state: JSON.stringify({ r: '/after?x=1&y=2', n: 1 }) },
    { name: 'already percent-encoded text', state: '%2F%3D%26' },
  ]
  for (const s of states) {
    it(`${s.name}: success, immediate error and consent denial all return it untouched, with iss`, async () => {
      const ok = await login(stack, { clientId: noPort, redirectUri: NO_PORT, state: s.state })
      assert.ok(ok.callback.searchParams.get('code'))
      assert.equal(ok.callback.searchParams.get('state'), s.state)
      assert.equal(ok.callback.searchParams.get('iss'), stack.url)

      const err = await authorize(noPort, NO_PORT, {
        state: s.state,
        code_challenge_method: 'plain',
      })
      const to = new URL(err.location!)
      assert.equal(to.searchParams.get('error'), 'invalid_request')
      assert.equal(to.searchParams.get('state'), s.state)
      assert.equal(to.searchParams.get('iss'), stack.url)

      const denied = await login(stack, {
        clientId: noPort,
        redirectUri: NO_PORT,
        state: s.state,
        choices: { consent: 'deny' },
      })
      assert.equal(denied.callback.searchParams.get('error'), 'access_denied')
      assert.equal(denied.callback.searchParams.get('code'), null)
      assert.equal(denied.callback.searchParams.get('state'), s.state)
      assert.equal(denied.callback.searchParams.get('iss'), stack.url)
    })
  }

  it('no state sent: none invented, iss still there', async () => {
    const ok = await login(stack, {
      clientId: noPort,
      redirectUri: NO_PORT,
      params: { state: undefined },
    })
    assert.equal(ok.callback.searchParams.has('state'), false)
    assert.equal(ok.callback.searchParams.get('iss'), stack.url)
  })
})
