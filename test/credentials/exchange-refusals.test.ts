// TokenExchange when the answer is no: the IdP refusing the user (exchange_refused, 403), the
// IdP being unreachable, slow, broken or misconfigured (exchange_unavailable, 502), and hostile
// answers; none is cached, none puts a token in a message or a log line.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, beforeEach, describe, test } from 'node:test'
import { Agent } from 'undici'
import { CredentialError } from '../../gateway/credentials/errors.js'
import {
  ACCESS_TOKEN_TYPE,
  tokenEndpointFor,
  type ExchangeSpec,
} from '../../gateway/credentials/exchange.js'
import {
  assertNoTokenIn,
  harness,
  logged,
  rejectsWith,
  type HarnessOptions,
} from '../helpers/exchange-client.js'
import {
  GATEWAY_AUDIENCE,
  startExchangeIdp,
  type ExchangeIdp,
  type Misbehaviour,
} from '../helpers/exchange-idp.js'
import { freePort } from '../helpers/ports.js'
import { makeTestCa } from '../helpers/test-ca.js'

const API: ExchangeSpec = { audience: 'downstream-api', scope: 'read' }
const json = (status: number, body: unknown): Misbehaviour => ({
  kind: 'answer',
  status,
  body: JSON.stringify(body),
  contentType: 'application/json',
})

describe('TokenExchange refusals and failures', () => {
  let idp: ExchangeIdp
  let dispatcher: Agent
  const allLines: string[] = []
  const tokens = new Set<string>()
  const make = (o: HarnessOptions = {}) => harness(idp, dispatcher, allLines, o)
  const subject = async (sub: string, o?: { audience?: string }) => {
    const token = await idp.subjectToken(sub, o)
    tokens.add(token)
    return token
  }
  const as = (token: string, type = ACCESS_TOKEN_TYPE) => ({ token, type })

  before(async () => {
    const ca = makeTestCa()
    dispatcher = new Agent({ connect: { ca: ca.ca } })
    idp = await startExchangeIdp({
      tls: ca,
      allow: { alice: ['downstream-api', 'payroll'], bob: ['downstream-api'] },
      targets: {
        'downstream-api': ['read'],
        'https://files.example/api': ['files:read'],
        payroll: ['pay'],
      },
      clientTargets: { 'gateway:basic+1': ['downstream-api', 'https://files.example/api'] },
    })
  })
  after(async () => {
    await idp.close()
    await dispatcher.close()
  })
  beforeEach(() => idp.reset())

  describe('refused by the IdP: exchange_refused (403), not cached, named by its OAuth error', () => {
    const cases: Array<{
      name: string
      error: string
      spec?: ExchangeSpec
      token: () => Promise<string>
      type?: string
      fail?: Misbehaviour
    }> = [
      {
        name: 'a subject token for another audience',
        error: 'invalid_grant',
        token: () => subject('alice', { audience: 'https://elsewhere.test' }),
      },
      {
        name: 'a subject token signed by another key under the same kid',
        error: 'invalid_grant',
        token: async () =>
          idp.forge(
            {
              iss: idp.issuer,
              sub: 'alice',
              aud: GATEWAY_AUDIENCE,
              exp: Math.floor(Date.now() / 1000) + 600,
            },
            { foreign: true },
          ),
      },
      {
        name: 'an expired subject token',
        error: 'invalid_grant',
        token: async () =>
          idp.forge({
            iss: idp.issuer,
            sub: 'alice',
            aud: GATEWAY_AUDIENCE,
            exp: Math.floor(Date.now() / 1000) - 600,
          }),
      },
      {
        name: 'a user the IdP does not know',
        error: 'invalid_grant',
        token: () => subject('mallory'),
      },
      {
        name: 'an audience the user may not have',
        error: 'access_denied',
        spec: { audience: 'payroll' },
        token: () => subject('bob'),
      },
      {
        name: 'an audience the IdP does not know',
        error: 'invalid_target',
        spec: { audience: 'nowhere' },
        token: () => subject('alice'),
      },
      {
        name: 'a resource that is not an absolute URI',
        error: 'invalid_target',
        spec: { resource: 'files' },
        token: () => subject('alice'),
      },
      {
        name: 'an audience the gateway client may not exchange for',
        error: 'unauthorized_client',
        spec: { audience: 'payroll' },
        token: () => subject('alice'),
      },
      {
        name: 'a scope beyond the audience',
        error: 'invalid_scope',
        spec: { audience: 'downstream-api', scope: 'read admin' },
        token: () => subject('alice'),
      },
      {
        name: 'a subject token type the IdP does not take',
        error: 'invalid_request',
        type: 'urn:ietf:params:oauth:token-type:saml2',
        token: () => subject('alice'),
      },
      {
        name: "Keycloak's 403 for a client outside the token's audience",
        error: 'access_denied',
        token: () => subject('alice'),
        fail: json(403, {
          error: 'access_denied',
          error_description: 'Client is not within the token audience',
        }),
      },
      {
        name: "Keycloak's 400 for a subject token it no longer accepts",
        error: 'invalid_token',
        token: () => subject('alice'),
        fail: json(400, { error: 'invalid_token', error_description: 'Invalid token' }),
      },
    ]
    for (const c of cases) {
      test(`${c.name} → ${c.error}`, async () => {
        const { x, lines } = make()
        if (c.fail) idp.knobs.fail = c.fail
        const spec = c.spec ?? API
        const token = await c.token()
        tokens.add(token)
        const target = spec.audience ?? spec.resource!
        const err = await rejectsWith(
          x.token('alice', 'API_TOKEN', spec, as(token, c.type)),
          'exchange_refused',
          new RegExp(`\\(${c.error}\\).*"${target}"`),
          [token],
        )
        assert.equal(err.status, 403)
        await rejectsWith(
          x.token('alice', 'API_TOKEN', spec, as(token, c.type)),
          'exchange_refused',
          new RegExp(c.error),
        )
        assert.equal(idp.received.length, 2, 'a refusal is not cached')
        const [line] = logged(lines, 'token exchange refused')
        assert.equal(line!.error, c.error)
        assert.equal(line!.host, new URL(idp.issuer).host)
        assert.equal(line!.level, 40)
      })
    }
    test("an error_description echoing the user's token is redacted in the log, absent from the message", async () => {
      const { x, lines } = make()
      const token = await subject('alice')
      idp.knobs.fail = json(400, {
        error: 'invalid_grant',
        error_description: `token ${token} is no good`,
      })
      await rejectsWith(
        x.token('alice', 'API_TOKEN', API, as(token)),
        'exchange_refused',
        /invalid_grant/,
        [token],
      )
      assert.equal(
        logged(lines, 'token exchange refused')[0]!.description,
        'token [subject token] is no good',
      )
    })
    test('an error_description carrying part of a token, or any long token-like run, is redacted before it is cut', async () => {
      const { x, lines } = make()
      const token = await subject('alice')
      const cases = [
        [`token ${token.slice(0, 150)}... expired`, 'token [redacted] expired'],
        [`use ${'k'.repeat(40)} instead`, 'use [redacted] instead'],
        ['x '.repeat(150), 'x '.repeat(100)],
      ]
      for (const [description, expected] of cases) {
        idp.knobs.fail = json(400, { error: 'invalid_grant', error_description: description })
        await rejectsWith(
          x.token('alice', 'API_TOKEN', API, as(token)),
          'exchange_refused',
          /invalid_grant/,
        )
        assert.equal(logged(lines, 'token exchange refused').at(-1)!.description, expected)
      }
    })
  })

  describe('the IdP unavailable or answering nonsense: exchange_unavailable (502), not cached', () => {
    const cases: Array<{ name: string; fail: Misbehaviour; mentions: RegExp; level?: number }> = [
      {
        name: '503 with a text body',
        fail: {
          kind: 'answer',
          status: 503,
          body: 'down for maintenance',
          contentType: 'text/plain',
        },
        mentions: /answered 503/,
      },
      {
        name: '500 server_error',
        fail: json(500, { error: 'server_error' }),
        mentions: /answered 500/,
      },
      {
        name: '429 rate limited',
        fail: { kind: 'answer', status: 429, body: '', headers: { 'retry-after': '5' } },
        mentions: /answered 429/,
      },
      {
        name: '200 with an HTML page',
        fail: { kind: 'answer', status: 200, body: '<html>hi</html>', contentType: 'text/html' },
        mentions: /"text\/html", not application\/json/,
      },
      {
        name: '200 with broken JSON',
        fail: {
          kind: 'answer',
          status: 200,
          body: '{"access_token":',
          contentType: 'application/json',
        },
        mentions: /not valid UTF-8 JSON/,
      },
      {
        name: '400 with an HTML page',
        fail: { kind: 'answer', status: 400, body: '<h1>Bad</h1>', contentType: 'text/html' },
        mentions: /answered 400 \(no readable error\)/,
      },
      {
        name: '400 with an error code nobody defined',
        fail: json(400, { error: 'try_later_maybe' }),
        mentions: /answered 400 \(try_later_maybe\)/,
      },
      {
        name: '400 with a non-string error',
        fail: json(400, { error: ['invalid_grant'] }),
        mentions: /no readable error/,
      },
      {
        name: '307 to elsewhere (not followed)',
        fail: {
          kind: 'answer',
          status: 307,
          body: '',
          headers: { location: 'https://127.0.0.1:9/token' },
        },
        mentions: /redirect, which is not followed/,
      },
      {
        name: '400 invalid_client (Keycloak: the audience client does not exist)',
        fail: json(400, { error: 'invalid_client', error_description: 'Audience not found' }),
        mentions: /does not accept the gateway's token exchange client/,
        level: 50,
      },
      {
        name: '400 unsupported_grant_type (exchange not enabled)',
        fail: json(400, { error: 'unsupported_grant_type' }),
        mentions: /check auth.tokenExchange/,
        level: 50,
      },
      {
        name: '401 without a body',
        fail: { kind: 'answer', status: 401, body: '' },
        mentions: /401 no readable error/,
        level: 50,
      },
    ]
    for (const c of cases) {
      test(c.name, async () => {
        const { x, lines } = make()
        idp.knobs.fail = c.fail
        const token = await subject('alice')
        const err = await rejectsWith(
          x.token('alice', 'API_TOKEN', API, as(token)),
          'exchange_unavailable',
          c.mentions,
          [token],
        )
        assert.equal(err.status, 502)
        assert.match(err.message, /"downstream-api"/)
        await rejectsWith(
          x.token('alice', 'API_TOKEN', API, as(token)),
          'exchange_unavailable',
          c.mentions,
        )
        assert.equal(idp.received.length, 2, 'a failure is not cached')
        const [line] = logged(lines, 'token exchange failed')
        assert.equal(line!.level, c.level ?? 40)
        assert.equal(line!.host, new URL(idp.issuer).host)
      })
    }

    test('wrong client secret (basic and post): 401 invalid_client from the IdP, logged at error', async () => {
      for (const client of ['basic', 'post'] as const) {
        const { x, lines } = make({ client, secret: 'not-the-secret' })
        await rejectsWith(
          x.token('alice', 'API_TOKEN', API, as(await subject('alice'))),
          'exchange_unavailable',
          /401 invalid_client/,
          ['not-the-secret'],
        )
        const [line] = logged(lines, 'token exchange failed')
        assert.deepEqual([line!.level, line!.status, line!.error], [50, 401, 'invalid_client'])
        assert.ok(!lines.join('\n').includes('not-the-secret'))
      }
    })

    test('connection refused', async () => {
      // Free a moment ago and outside the ephemeral range: nothing listens there.
      const port = await freePort()
      const { x, lines } = make({ endpoint: async () => `https://127.0.0.1:${port}/token` })
      await rejectsWith(
        x.token('alice', 'API_TOKEN', API, as(await subject('alice'))),
        'exchange_unavailable',
        /could not be reached/,
      )
      assert.equal(logged(lines, 'token exchange failed')[0]!.cause, 'ECONNREFUSED')
    })

    const held = [
      {
        name: 'no answer past the timeout',
        fail: { kind: 'stall' },
        mentions: /did not answer the token exchange within 200 ms/,
        timeout: 200,
      },
      {
        name: 'half a body, then nothing, past the timeout',
        fail: { kind: 'stall-body' },
        mentions: /within 200 ms/,
        timeout: 200,
      },
      {
        name: 'Content-Length of 1 GiB: refused on the header',
        fail: { kind: 'huge', declared: true },
        mentions: /exceeds 65536 bytes/,
        timeout: 30_000,
      },
      {
        name: 'an endless chunked body: refused after maxResponseBytes',
        fail: { kind: 'huge', declared: false },
        mentions: /exceeds 65536 bytes/,
        timeout: 30_000,
      },
    ] as const
    for (const c of held) {
      test(`${c.name}; the connection is dropped`, async () => {
        const { x } = make({ timeout: c.timeout })
        idp.knobs.fail = c.fail
        const abandoned = once(idp.events, 'abandoned')
        await rejectsWith(
          x.token('alice', 'API_TOKEN', API, as(await subject('alice'))),
          'exchange_unavailable',
          c.mentions,
        )
        await abandoned
      })
    }
  })

  describe('the token endpoint itself refused before anything is sent', () => {
    const cases: Array<{ name: string; endpoint: () => Promise<string>; mentions: RegExp }> = [
      {
        name: 'plain http to another host',
        endpoint: async () => 'http://idp.example/token',
        mentions: /neither https nor on this machine/,
      },
      // Spellings that look like this machine and are not (config/loopback.ts, as the broker's).
      ...[
        'HTTP://IDP.EXAMPLE/token',
        'http://localhost.evil.example/token',
        'http://127.0.0.1.nip.io/token',
        'http://localhost./token',
        'http://[::ffff:127.0.0.1]/token',
        'http://0.0.0.0/token',
        'http://[::]/token',
      ].map((url) => ({
        name: `plain http to ${url}`,
        endpoint: async () => url,
        mentions: /neither https nor on this machine/,
      })),
      {
        name: 'credentials in the URL',
        endpoint: async () => 'https://user:pw@127.0.0.1:9/token',
        mentions: /credentials in its URL/,
      },
      { name: 'not a URL', endpoint: async () => 'token', mentions: /not an absolute URL/ },
      {
        name: 'discovery failed',
        endpoint: () => Promise.reject(new Error('ENOTFOUND idp.example')),
        mentions: /not known \(discovery failed\)/,
      },
    ]
    for (const c of cases) {
      test(c.name, async () => {
        const { x, lines } = make({ endpoint: c.endpoint })
        await rejectsWith(
          x.token('alice', 'API_TOKEN', API, as(await subject('alice'))),
          'exchange_unavailable',
          c.mentions,
        )
        assert.equal(idp.received.length, 0)
        assert.equal(logged(lines, 'token exchange endpoint unusable')[0]!.level, 50)
      })
    }
    test('plain http to this machine is allowed (a development IdP): it is tried', async () => {
      // Free a moment ago and outside the ephemeral range: nothing listens there.
      const port = await freePort()
      const { x } = make({ endpoint: async () => `http://127.0.0.1:${port}/token` })
      await rejectsWith(
        x.token('alice', 'API_TOKEN', API, as(await subject('alice'))),
        'exchange_unavailable',
        /could not be reached/,
      )
    })
    test('tokenEndpointFor: the configured endpoint, else the discovered one, else exchange_unavailable', () => {
      assert.equal(
        tokenEndpointFor({ tokenEndpoint: 'https://a.test/token' }, 'https://b.test/token'),
        'https://a.test/token',
      )
      assert.equal(tokenEndpointFor({}, 'https://b.test/token'), 'https://b.test/token')
      assert.throws(
        () => tokenEndpointFor({}, undefined),
        (err) => err instanceof CredentialError && err.code === 'exchange_unavailable',
      )
    })
    test('a client authentication that needs a secret, without one, fails at construction', () => {
      assert.throws(
        () => make({ client: 'basic', secret: '' }),
        /client_secret_basic needs the client secret/,
      )
    })
  })

  describe('hostile or broken success answers: exchange_unavailable, never handed on', () => {
    const without = (key: string) => (b: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(b).filter(([k]) => k !== key))
    const set = (key: string, value: unknown) => (b: Record<string, unknown>) => ({
      ...b,
      [key]: value,
    })
    const cases: Array<[string, (b: Record<string, unknown>) => unknown, RegExp]> = [
      ['no access_token', without('access_token'), /access_token is missing/],
      ['an empty access_token', set('access_token', ''), /access_token is missing/],
      ['a numeric access_token', set('access_token', 12345), /access_token is missing/],
      ['an object as access_token', set('access_token', { value: 'x' }), /access_token is missing/],
      ['a newline in the access_token', set('access_token', 'abc\ndef'), /printable ASCII/],
      ['a NUL in the access_token', set('access_token', 'abc\u0000def'), /printable ASCII/],
      ['non-ASCII in the access_token', set('access_token', 'tökén'), /printable ASCII/],
      ['no issued_token_type', without('issued_token_type'), /issued_token_type is missing/],
      [
        'a refresh token issued',
        set('issued_token_type', 'urn:ietf:params:oauth:token-type:refresh_token'),
        /"urn:ietf:params:oauth:token-type:refresh_token", not an access token/,
      ],
      [
        'an ID token issued',
        set('issued_token_type', 'urn:ietf:params:oauth:token-type:id_token'),
        /not an access token/,
      ],
      ['a numeric issued_token_type', set('issued_token_type', 1), /issued_token_type is missing/],
      ['no token_type', without('token_type'), /token_type is missing/],
      ['a DPoP-bound token', set('token_type', 'DPoP'), /"DPoP", not Bearer/],
      ['token_type N_A (not an access token)', set('token_type', 'N_A'), /"N_A", not Bearer/],
      ['a negative expires_in', set('expires_in', -1), /expires_in is not a positive number/],
      ['a zero expires_in', set('expires_in', 0), /expires_in is not a positive number/],
      ['expires_in as a string', set('expires_in', '3600'), /expires_in is not a positive number/],
      ['expires_in null', set('expires_in', null), /expires_in is not a positive number/],
      ['a numeric scope', set('scope', 42), /scope is not a string/],
      ['an array body', (b) => [b], /not a JSON object/],
      ['a null body', () => null, /not a JSON object/],
      ['a string body', (b) => String(b.access_token), /not a JSON object/],
      [
        'the token hidden in __proto__',
        (b) => JSON.parse(`{"__proto__":${JSON.stringify(b)}}`),
        /access_token is missing/,
      ],
    ]
    for (const [name, tamper, mentions] of cases) {
      test(name, async () => {
        const { x } = make()
        let handed: unknown
        idp.knobs.tamper = (b) => {
          handed = b.access_token
          tokens.add(String(handed))
          return tamper(b)
        }
        const token = await subject('alice')
        const err = await rejectsWith(
          x.token('alice', 'API_TOKEN', API, as(token)),
          'exchange_unavailable',
          mentions,
          [token],
        )
        assert.equal(typeof handed, 'string', 'the IdP issued a real token first')
        assert.ok(!err.message.includes(handed as string))
      })
    }
    const raw: Array<[string, Misbehaviour, RegExp]> = [
      [
        'expires_in 1e400 (Infinity once parsed)',
        {
          kind: 'answer',
          status: 200,
          contentType: 'application/json',
          body: `{"access_token":"t","issued_token_type":"${ACCESS_TOKEN_TYPE}","token_type":"Bearer","expires_in":1e400}`,
        },
        /expires_in/,
      ],
      [
        'valid JSON as text/plain',
        {
          kind: 'answer',
          status: 200,
          contentType: 'text/plain',
          body: `{"access_token":"t","issued_token_type":"${ACCESS_TOKEN_TYPE}","token_type":"Bearer"}`,
        },
        /"text\/plain", not application\/json/,
      ],
      [
        'valid JSON without a Content-Type',
        {
          kind: 'answer',
          status: 200,
          body: `{"access_token":"t","issued_token_type":"${ACCESS_TOKEN_TYPE}","token_type":"Bearer"}`,
        },
        /untyped, not application\/json/,
      ],
      [
        'invalid UTF-8',
        {
          kind: 'answer',
          status: 200,
          contentType: 'application/json',
          body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]),
        },
        /not valid UTF-8 JSON/,
      ],
      [
        '201 Created with a token',
        {
          ...json(201, {
            access_token: 't',
            issued_token_type: ACCESS_TOKEN_TYPE,
            token_type: 'Bearer',
          }),
        },
        /answered 201/,
      ],
    ]
    for (const [name, fail, mentions] of raw) {
      test(name, async () => {
        const { x } = make()
        idp.knobs.fail = fail
        await rejectsWith(
          x.token('alice', 'API_TOKEN', API, as(await subject('alice'))),
          'exchange_unavailable',
          mentions,
        )
      })
    }
    test("an IdP echoing the user's token as issued_token_type does not get it into the message", async () => {
      const { x } = make()
      const token = await subject('alice')
      idp.knobs.tamper = (b) => ({ ...b, issued_token_type: token })
      await rejectsWith(
        x.token('alice', 'API_TOKEN', API, as(token)),
        'exchange_unavailable',
        /an unexpected value, not an access token/,
        [token],
      )
    })
    test('token_type is case-insensitive (RFC 6749 §5.1): "bearer" and "BEARER" are accepted', async () => {
      for (const type of ['bearer', 'BEARER']) {
        const { x } = make()
        idp.knobs.tamper = (b) => ({ ...b, token_type: type })
        const got = await x.token('alice', 'API_TOKEN', API, as(await subject('alice')))
        tokens.add(got.value)
      }
    })
  })

  test('no log line of this file carries a subject or an issued token', () => {
    assert.ok(allLines.length > 40 && tokens.size > 40, 'the file logged and exchanged')
    assertNoTokenIn(allLines, tokens)
  })
})
