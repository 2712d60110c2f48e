// Dynamic client registration (RFC 7591) at the broker, by raw HTTP: the bounds (body size,
// chunked bodies, redirect URI count, clients in all, registrations per address), the
// redirect URI allow-list and the broker's own callback, metadata refusals as RFC 7591
// errors, and registrations that expire unused. Every refusal registers nothing.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { request } from 'undici'
import {
  authorizeUrl,
  authParams,
  pkce,
  register,
  send,
  token,
  type Answer,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'

const MAX_BYTES = 4096
const MAX_URIS = 3
const LOOPBACK = 'http://127.0.0.1:43140/cb'

/** A registration body a client would send, with `extra` on top. */
const metadata = (extra: Record<string, unknown> = {}) => ({
  client_name: 'registration test',
  redirect_uris: [LOOPBACK],
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  ...extra,
})

/** Client records the broker holds. */
async function clients(stack: BrokerStack): Promise<number> {
  return (await stack.store.keys('oidc:Client:')).length
}

/** A refusal: status, RFC 7591 error, no client_id, nothing registered. */
async function assertRefused(
  stack: BrokerStack,
  send: () => Promise<Answer>,
  status: number,
  error: string,
  what: string,
): Promise<Answer> {
  const before = await clients(stack)
  const res = await send()
  assert.equal(res.status, status, `${what}: ${res.text}`)
  assert.equal(res.json.error, error, what)
  assert.equal(res.json.client_id, undefined, what)
  assert.equal(await clients(stack), before, `${what}: nothing registered`)
  return res
}

/** Whether /authorize knows the client (a consent page, not the unknown-client page). */
async function known(stack: BrokerStack, clientId: string): Promise<boolean> {
  const res = await send(
    authorizeUrl(
      stack,
      authParams(stack, { clientId, redirectUri: LOOPBACK, challenge: pkce().challenge }),
    ),
  )
  if (res.status === 303) return true
  assert.equal(res.status, 400, res.text)
  assert.match(res.text, /invalid_client/)
  return false
}

describe('registration bounds', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      broker: {
        registration: {
          maxBodyBytes: MAX_BYTES,
          maxRedirectUris: MAX_URIS,
          perAddressPerMinute: 1000,
        },
      },
    })
  })
  after(() => stack.close())

  /** A body of exactly `bytes` bytes: the metadata padded with JSON whitespace. */
  const sized = (bytes: number) => {
    const json = JSON.stringify(metadata())
    return `${json.slice(0, -1)}${' '.repeat(bytes - json.length)}}`
  }
  const raw =
    (body: string | Readable, headers: Record<string, string> = {}) =>
    async (): Promise<Answer> => {
      const res = await request(`${stack.url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      })
      const text = await res.body.text()
      return {
        status: res.statusCode,
        headers: res.headers,
        text,
        json: JSON.parse(text || '{}') as Record<string, unknown>,
        location: undefined,
      }
    }

  it(`a body of exactly maxBodyBytes (${MAX_BYTES}) → 201`, async () => {
    const res = await raw(sized(MAX_BYTES))()
    assert.equal(res.status, 201, res.text)
  })

  it(`a body of maxBodyBytes + 1 → 413 invalid_request, nothing registered`, async () => {
    await assertRefused(stack, raw(sized(MAX_BYTES + 1)), 413, 'invalid_request', 'one byte over')
  })

  it('a large body → 413 invalid_request, before it is read', async () => {
    await assertRefused(stack, raw(sized(60_000)), 413, 'invalid_request', '60 KB')
  })

  it('a chunked body (no Content-Length), even a small one → 411 invalid_request', async () => {
    async function* chunks() {
      yield Buffer.from(JSON.stringify(metadata()).slice(0, 20))
      yield Buffer.from(JSON.stringify(metadata()).slice(20))
    }
    await assertRefused(stack, raw(Readable.from(chunks())), 411, 'invalid_request', 'chunked')
  })

  it(`${MAX_URIS} redirect URIs → 201; ${MAX_URIS + 1} → 400 invalid_redirect_uri`, async () => {
    const uris = (n: number) =>
      Array.from({ length: n }, (_, i) => `http://127.0.0.1:${43200 + i}/cb`)
    assert.equal((await register(stack, metadata({ redirect_uris: uris(MAX_URIS) }))).status, 201)
    await assertRefused(
      stack,
      () => register(stack, metadata({ redirect_uris: uris(MAX_URIS + 1) })),
      400,
      'invalid_redirect_uri',
      'one URI too many',
    )
  })

  describe('the default redirect URI allow-list', () => {
    const accepted = [
      'https://claude.ai/api/mcp/auth_callback',
      'https://claude.com/api/mcp/auth_callback',
      'https://chatgpt.com/connector_platform_oauth_redirect',
      'https://chatgpt.com/connector/oauth/abc123',
      'https://vscode.dev/redirect',
      'https://www.cursor.com/agents/mcp/oauth/callback',
      'cursor://anysphere.cursor-retrieval/oauth/user-abc/callback',
      'vscode://vscode.github-authentication/did-authenticate',
      'http://127.0.0.1:33418/callback',
      'http://127.0.0.1/callback',
      'http://localhost:6274/oauth/callback',
      'http://[::1]:8080/cb',
    ]
    for (const uri of accepted) {
      it(`accepts ${uri}`, async () => {
        const res = await register(stack, metadata({ redirect_uris: [uri] }))
        assert.equal(res.status, 201, res.text)
        assert.deepEqual(res.json.redirect_uris, [uri])
      })
    }

    const refused: { uri: unknown; why: string }[] = [
      { uri: 'https://evil.example/cb', why: 'not on the list' },
      { uri: 'https://claude.ai/api/mcp/other', why: 'another path of a listed host' },
      {
        uri: 'https://claude.ai/api/mcp/auth_callback?next=https://evil.example',
        why: 'a query on a listed URI',
      },
      { uri: 'https://claude.ai/api/mcp/auth_callback#f', why: 'a fragment' },
      { uri: 'https://claude.ai.evil.example/api/mcp/auth_callback', why: 'a suffix host' },
      {
        uri: 'https://claude.ai@evil.example/api/mcp/auth_callback',
        why: 'userinfo hiding the host',
      },
      { uri: 'https://CLAUDE.AI/api/mcp/auth_callback', why: 'not canonical' },
      { uri: 'https://claude.ai/api/mcp/x/../auth_callback', why: 'dot segments' },
      { uri: 'http://claude.ai/api/mcp/auth_callback', why: 'http to a listed host' },
      { uri: 'http://non-loopback.example/cb', why: 'http, not loopback' },
      { uri: 'http://192.168.1.10/cb', why: 'http to a private address' },
      { uri: 'http://127.0.0.1.evil.example/cb', why: 'a host that starts like loopback' },
      { uri: 'https://127.0.0.1/cb', why: 'https on loopback' },
      { uri: 'javascript:alert(document.cookie)', why: 'javascript:' },
      { uri: 'JavaScript:alert(1)', why: 'javascript: in mixed case' },
      { uri: 'data:text/html,<script>alert(1)</script>', why: 'data:' },
      { uri: 'vbscript:msgbox(1)', why: 'vbscript:' },
      { uri: 'file:///etc/passwd', why: 'file:' },
      { uri: 'ws://127.0.0.1/cb', why: 'ws:' },
      { uri: 'com.evil.app:/cb', why: 'an unlisted app scheme' },
      { uri: '/cb', why: 'relative' },
      { uri: '', why: 'empty' },
      { uri: 42, why: 'not a string' },
      { uri: 'http://127.0.0.1:43140/c b', why: 'a space' },
      { uri: `http://127.0.0.1/${'a'.repeat(2100)}`, why: 'longer than 2048' },
    ]
    for (const r of refused) {
      it(`refuses ${String(r.uri).slice(0, 60)} (${r.why}) → 400 invalid_redirect_uri`, async () => {
        await assertRefused(
          stack,
          () => register(stack, metadata({ redirect_uris: [r.uri] })),
          400,
          'invalid_redirect_uri',
          r.why,
        )
      })
    }

    it("refuses the broker's own upstream callback, with or without a query → 400 invalid_redirect_uri", async () => {
      for (const uri of [`${stack.url}/oauth/callback`, `${stack.url}/oauth/callback?x=1`]) {
        // The callback is on loopback http, which the allow-list otherwise accepts.
        await assertRefused(
          stack,
          () => register(stack, metadata({ redirect_uris: [LOOPBACK, uri] })),
          400,
          'invalid_redirect_uri',
          uri,
        )
      }
    })

    it('refuses no redirect_uris, an empty list, a string → 400 invalid_redirect_uri', async () => {
      for (const value of [undefined, [], LOOPBACK]) {
        await assertRefused(
          stack,
          () => register(stack, metadata({ redirect_uris: value })),
          400,
          'invalid_redirect_uri',
          JSON.stringify(value) ?? 'absent',
        )
      }
    })
  })

  describe('other client metadata → 400 invalid_client_metadata (RFC 7591 §3.2.2)', () => {
    const cases: { name: string; extra: Record<string, unknown> }[] = [
      {
        name: 'private_key_jwt at registration',
        extra: { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [] } },
      },
      { name: 'client_secret_jwt', extra: { token_endpoint_auth_method: 'client_secret_jwt' } },
      { name: 'an unknown auth method', extra: { token_endpoint_auth_method: 'magic' } },
      {
        name: 'the client_credentials grant',
        extra: { grant_types: ['authorization_code', 'client_credentials'] },
      },
      {
        name: 'the implicit grant',
        extra: { grant_types: ['implicit'], response_types: ['token'] },
      },
      {
        name: 'the device grant',
        extra: { grant_types: ['urn:ietf:params:oauth:grant-type:device_code'] },
      },
      { name: 'response_types token', extra: { response_types: ['code', 'token'] } },
      { name: 'a jwks_uri', extra: { jwks_uri: 'https://evil.example/jwks' } },
      {
        name: 'a sector_identifier_uri',
        extra: { sector_identifier_uri: 'https://evil.example/s.json' },
      },
      {
        name: 'a client_name with a bidi override',
        extra: { client_name: 'Claude\u202e lanigiro' },
      },
      { name: 'a client_name with a control character', extra: { client_name: 'Claude\u0007' } },
      { name: 'a client_name of 257 characters', extra: { client_name: 'x'.repeat(257) } },
      { name: 'an empty client_name', extra: { client_name: '' } },
      { name: 'a client_name that is not a string', extra: { client_name: { en: 'x' } } },
    ]
    for (const c of cases) {
      it(c.name, async () => {
        await assertRefused(
          stack,
          () => register(stack, metadata(c.extra)),
          400,
          'invalid_client_metadata',
          c.name,
        )
      })
    }

    it('request_uris (request objects are off) are dropped, never kept', async () => {
      const res = await register(stack, metadata({ request_uris: ['https://evil.example/r'] }))
      assert.equal(res.status, 201, res.text)
      assert.equal(res.json.request_uris, undefined)
    })

    it('a body that is not JSON → 400, nothing registered', async () => {
      const before = await clients(stack)
      const res = await send(`${stack.url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"redirect_uris": [',
      })
      assert.equal(res.status, 400, res.text)
      assert.equal(res.json.client_id, undefined)
      assert.equal(await clients(stack), before)
    })
  })
})

describe('registrations per address', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      broker: { registration: { perAddressPerMinute: 3 } },
    })
  })
  after(() => stack.close())

  it('the 4th in a minute from one address → 429 slow_down with Retry-After, nothing registered', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await register(stack, metadata())).status, 201)
    const res = await assertRefused(
      stack,
      () => register(stack, metadata()),
      429,
      'slow_down',
      'over the rate',
    )
    assert.match(String(res.headers['retry-after']), /^\d+$/)
    // Refused registrations count too: hammering does not get through.
    await assertRefused(stack, () => register(stack, metadata()), 429, 'slow_down', 'still over')
  })
})

describe('clients in all, and unused registrations', () => {
  const UNUSED_S = 60
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      broker: { registration: { maxClients: 2, unusedTtl: UNUSED_S, perAddressPerMinute: 1000 } },
    })
  })
  after(() => stack.close())

  it('maxClients reached → 429 too_many_clients; unused ones expire and are forgotten, a used one lives on, and the room they leave is usable', async () => {
    const unused = String((await register(stack, metadata())).json.client_id)
    const used = String((await register(stack, metadata())).json.client_id)
    const res = await assertRefused(
      stack,
      () => register(stack, metadata()),
      429,
      'too_many_clients',
      'at the cap',
    )
    assert.match(String(res.headers['retry-after']), /^\d+$/)

    // The store's clock, not a sleep: most of the unused time passes, one client is used, the rest passes.
    stack.store.advance((UNUSED_S - 20) * 1000)
    assert.equal(await known(stack, used), true, 'used before it expired')
    stack.store.advance(30 * 1000)
    assert.equal(
      (await stack.store.keys(`oidc:Client:${unused}`)).length,
      0,
      'the unused record is gone',
    )
    assert.equal(await known(stack, unused), false, 'the unused client is forgotten at /authorize')
    const t = await token(stack, {
      grant_type: 'refresh_token',
      refresh_token: 'x',
      client_id: unused,
    })
    assert.equal(t.status, 401, t.text)
    assert.equal(t.json.error, 'invalid_client', 'and at /token')
    assert.equal(await known(stack, used), true, 'the used client lives on')

    // The forgotten client no longer counts against maxClients.
    const again = await register(stack, metadata())
    assert.equal(again.status, 201, again.text)
  })

  it('registrations nobody ever looks up again still leave room when they expire', async () => {
    // Fill the cap again (the previous case leaves one used client and one new one).
    stack.store.advance((UNUSED_S + 1) * 1000)
    const a = await register(stack, metadata())
    const b = await register(stack, metadata())
    assert.equal(a.status, 201, a.text)
    assert.equal(b.status, 201, b.text)
    await assertRefused(
      stack,
      () => register(stack, metadata()),
      429,
      'too_many_clients',
      'at the cap',
    )
    stack.store.advance((UNUSED_S + 1) * 1000)
    const c = await register(stack, metadata())
    assert.equal(c.status, 201, `abandoned registrations must not hold the cap forever: ${c.text}`)
  })
})
