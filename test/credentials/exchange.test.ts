// TokenExchange against a real oidc-provider doing RFC 8693 on https://127.0.0.1:0 (test CA):
// what is sent for each client authentication, what comes back, caching and renewal on an
// injected clock, single flight, one user never getting another's token, and clean logs.
import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { decodeJwt } from 'jose'
import { Agent } from 'undici'
import {
  DEFAULT_EXCHANGE_MAX_REUSE_MS,
  DEFAULT_EXCHANGE_UNKNOWN_LIFETIME_MS,
} from '../../gateway/config/schema.js'
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../../gateway/credentials/exchange.js'
import {
  assertNoTokenIn,
  harness,
  logged,
  rejectsWith,
  type HarnessOptions,
} from '../helpers/exchange-client.js'
import { EXCHANGE_CLIENTS, startExchangeIdp, type ExchangeIdp } from '../helpers/exchange-idp.js'
import { makeTestCa } from '../helpers/test-ca.js'

const API = { audience: 'downstream-api', scope: 'read' }
const FILES = { resource: 'https://files.example/api', scope: 'files:read' }

describe('TokenExchange', () => {
  let idp: ExchangeIdp
  let dispatcher: Agent
  /** Every log line of every exchange in this file, and every token any of them saw. */
  const allLines: string[] = []
  const tokens = new Set<string>()
  const make = (o: HarnessOptions = {}) => harness(idp, dispatcher, allLines, o)
  const subject = async (sub: string) => {
    const token = await idp.subjectToken(sub)
    tokens.add(token)
    return { token, type: ACCESS_TOKEN_TYPE }
  }
  const issued = <T extends { value: string }>(t: T): T => (tokens.add(t.value), t)

  before(async () => {
    const ca = makeTestCa()
    dispatcher = new Agent({ connect: { ca: ca.ca } })
    idp = await startExchangeIdp({
      tls: ca,
      allow: { alice: ['downstream-api', 'https://files.example/api'], bob: ['downstream-api'] },
      targets: { 'downstream-api': ['read', 'write'], 'https://files.example/api': ['files:read'] },
    })
  })
  after(async () => {
    await idp.close()
    await dispatcher.close()
  })
  beforeEach(() => idp.reset())

  describe('exchanges with each client authentication', () => {
    const cases = [
      // RFC 6749 §2.3.1: id and secret form-urlencoded, then joined by ':' and base64'd.
      {
        client: 'basic',
        authorization: `Basic ${Buffer.from('gateway%3Abasic%2B1:se%3Acr%2Bet%25+%2F%3D%3F%261').toString('base64')}`,
        body: {},
      },
      {
        client: 'post',
        authorization: undefined,
        body: { client_id: 'gateway-post', client_secret: 'post+secret:2 %' },
      },
      { client: 'none', authorization: undefined, body: { client_id: 'gateway-public' } },
    ] as const
    for (const c of cases) {
      test(`${c.client}: the IdP authenticates the gateway and issues alice's token for the audience`, async () => {
        const { x, clock } = make({ client: c.client })
        const got = issued(await x.token('alice', 'API_TOKEN', API, await subject('alice')))
        const claims = decodeJwt(got.value)
        assert.equal(claims.sub, 'alice')
        assert.equal(claims.aud, 'downstream-api')
        assert.equal(claims.scope, 'read')
        assert.deepEqual(claims.act, { sub: EXCHANGE_CLIENTS[c.client].clientId })
        assert.equal(got.expiresAt, clock.t + 300_000)
        const [seen] = idp.received
        assert.equal(seen!.authorization, c.authorization)
        for (const name of ['client_id', 'client_secret'] as const)
          assert.equal(seen!.form.get(name) ?? undefined, (c.body as Record<string, string>)[name])
      })
    }
  })

  describe('the form sent (RFC 8693 §2.1)', () => {
    test('audience and scope: exactly the grant, the subject, the types asked for and the target', async () => {
      const { x } = make()
      const s = await subject('alice')
      issued(await x.token('alice', 'API_TOKEN', API, s))
      const [seen] = idp.received
      assert.equal(seen!.contentType, 'application/x-www-form-urlencoded;charset=UTF-8')
      assert.deepEqual(Object.fromEntries(seen!.form), {
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: s.token,
        subject_token_type: ACCESS_TOKEN_TYPE,
        requested_token_type: ACCESS_TOKEN_TYPE,
        audience: 'downstream-api',
        scope: 'read',
      })
    })
    test('a resource (RFC 8707) instead of an audience: no audience, no empty parameters', async () => {
      const { x } = make({ client: 'none' })
      const got = issued(await x.token('alice', 'FILES_TOKEN', FILES, await subject('alice')))
      assert.equal(decodeJwt(got.value).aud, 'https://files.example/api')
      const keys = [...idp.received[0]!.form.keys()].sort()
      assert.deepEqual(keys, [
        'client_id',
        'grant_type',
        'requested_token_type',
        'resource',
        'scope',
        'subject_token',
        'subject_token_type',
      ])
    })
    test('no scope configured: none sent', async () => {
      const { x } = make()
      issued(
        await x.token('alice', 'API_TOKEN', { audience: 'downstream-api' }, await subject('alice')),
      )
      assert.equal(idp.received[0]!.form.has('scope'), false)
    })
  })

  describe('caching and renewal (injected clock)', () => {
    test('a fresh token is reused until expiresAt - renewBefore, then exchanged anew', async () => {
      const { x, clock } = make({ renewBefore: 60_000 })
      const s = await subject('alice')
      const first = issued(await x.token('alice', 'API_TOKEN', API, s))
      clock.t += 240_000 - 1
      assert.equal((await x.token('alice', 'API_TOKEN', API, s)).value, first.value)
      assert.equal(idp.received.length, 1)
      clock.t += 1
      const second = issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(idp.received.length, 2)
      assert.notEqual(second.value, first.value)
      assert.equal(second.expiresAt, clock.t + 300_000)
    })
    test('without expires_in: expiresAt unknown, reused for the bounded default only', async () => {
      const { x, clock } = make()
      idp.knobs.tamper = ({ expires_in: _, ...rest }) => rest
      const s = await subject('alice')
      const first = issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(first.expiresAt, undefined)
      clock.t += DEFAULT_EXCHANGE_UNKNOWN_LIFETIME_MS - 1
      assert.equal((await x.token('alice', 'API_TOKEN', API, s)).value, first.value)
      clock.t += 1
      issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(idp.received.length, 2)
    })
    test('a day-long token is reused at most DEFAULT_EXCHANGE_MAX_REUSE_MS: the IdP re-decides', async () => {
      const { x, clock } = make()
      idp.knobs.expiresIn = 86_400
      const s = await subject('alice')
      const first = issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(first.expiresAt, clock.t + 86_400_000)
      clock.t += DEFAULT_EXCHANGE_MAX_REUSE_MS - 1
      assert.equal((await x.token('alice', 'API_TOKEN', API, s)).value, first.value)
      clock.t += 1
      issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(idp.received.length, 2)
    })
    test('configured maxReuse and unknownLifetime replace the defaults', async () => {
      const { x, clock } = make({ maxReuse: 10_000, unknownLifetime: 2_000 })
      idp.knobs.expiresIn = 86_400
      const s = await subject('alice')
      const first = issued(await x.token('alice', 'API_TOKEN', API, s))
      clock.t += 10_000 - 1
      assert.equal((await x.token('alice', 'API_TOKEN', API, s)).value, first.value)
      clock.t += 1
      issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(idp.received.length, 2)
      idp.knobs.tamper = ({ expires_in: _, ...rest }) => rest
      const bob = await subject('bob')
      const unknown = issued(await x.token('bob', 'API_TOKEN', API, bob))
      clock.t += 2_000 - 1
      assert.equal((await x.token('bob', 'API_TOKEN', API, bob)).value, unknown.value)
      clock.t += 1
      issued(await x.token('bob', 'API_TOKEN', API, bob))
      assert.equal(idp.received.length, 4)
    })
    test('tokens living no longer than renewBefore are not kept, and that is said once', async () => {
      const { x, lines } = make({ renewBefore: 60_000 })
      idp.knobs.expiresIn = 60
      const s = await subject('alice')
      for (let i = 0; i < 3; i++) issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(idp.received.length, 3)
      assert.equal(lines.filter((l) => l.includes('every request exchanges anew')).length, 1)
    })
    test('the key is (owner, variable, spec): another variable or scope is another token', async () => {
      const { x } = make()
      const s = await subject('alice')
      issued(await x.token('alice', 'API_TOKEN', API, s))
      issued(await x.token('alice', 'OTHER_TOKEN', API, s))
      issued(await x.token('alice', 'API_TOKEN', { ...API, scope: 'read write' }, s))
      issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(idp.received.length, 3)
    })
    test('the cache holds cacheMax tokens: the least recently used is exchanged again', async () => {
      const { x } = make({ cacheMax: 2 })
      const s = await subject('alice')
      for (const v of ['A', 'B', 'C', 'A']) issued(await x.token('alice', v, API, s))
      assert.equal(idp.received.length, 4)
    })
  })

  describe('single flight', () => {
    test('ten concurrent asks for one key: one request, one token for all', async () => {
      const { x } = make()
      const s = await subject('alice')
      const got = await Promise.all(
        Array.from({ length: 10 }, () => x.token('alice', 'API_TOKEN', API, s)),
      )
      assert.equal(idp.received.length, 1)
      assert.equal(new Set(got.map((t) => issued(t).value)).size, 1)
    })
    test('a failed flight fails every asker once, and is not kept: the next ask tries again', async () => {
      const { x } = make()
      const s = await subject('alice')
      idp.knobs.fail = { kind: 'answer', status: 503, body: 'down', contentType: 'text/plain' }
      const asks = Array.from({ length: 5 }, () =>
        rejectsWith(x.token('alice', 'API_TOKEN', API, s), 'exchange_unavailable', /503/),
      )
      await Promise.all(asks)
      assert.equal(idp.received.length, 1)
      delete idp.knobs.fail
      issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(idp.received.length, 2)
    })
  })

  describe('per-owner isolation', () => {
    test('concurrent asks of alice and bob: two requests, each gets a token of their own', async () => {
      const { x } = make()
      const [a, b] = await Promise.all([
        subject('alice').then((s) => x.token('alice', 'API_TOKEN', API, s)),
        subject('bob').then((s) => x.token('bob', 'API_TOKEN', API, s)),
      ])
      assert.equal(idp.received.length, 2)
      assert.equal(decodeJwt(issued(a!).value).sub, 'alice')
      assert.equal(decodeJwt(issued(b!).value).sub, 'bob')
      // Cached now: each still gets their own.
      assert.equal(
        decodeJwt(
          (await x.token('bob', 'API_TOKEN', API, { token: 'unused', type: ACCESS_TOKEN_TYPE }))
            .value,
        ).sub,
        'bob',
      )
      assert.equal(
        decodeJwt(
          (await x.token('alice', 'API_TOKEN', API, { token: 'unused', type: ACCESS_TOKEN_TYPE }))
            .value,
        ).sub,
        'alice',
      )
    })
    test('forget(owner) drops that owner only, even an owner key that starts like it', async () => {
      const { x } = make()
      const s = await subject('alice')
      const lookalike = 'alice",'
      issued(await x.token('alice', 'API_TOKEN', API, s))
      issued(await x.token(lookalike, 'API_TOKEN', API, s))
      issued(await x.token('bob', 'API_TOKEN', API, await subject('bob')))
      x.forget('alice')
      issued(await x.token('alice', 'API_TOKEN', API, s))
      await x.token(lookalike, 'API_TOKEN', API, s)
      await x.token('bob', 'API_TOKEN', API, s)
      assert.equal(idp.received.length, 4)
    })
    test('forget(owner) during an exchange: the askers get it, the cache does not keep it', async () => {
      const { x } = make()
      const s = await subject('alice')
      const asking = x.token('alice', 'API_TOKEN', API, s)
      x.forget('alice')
      issued(await asking)
      issued(await x.token('alice', 'API_TOKEN', API, s))
      assert.equal(idp.received.length, 2)
    })
  })

  test('no token of the user to trade: no_subject_token, nothing sent, even with a token cached', async () => {
    const { x } = make()
    const none = { token: '', type: ACCESS_TOKEN_TYPE }
    const err = await rejectsWith(
      x.token('alice', 'API_TOKEN', API, none),
      'no_subject_token',
      /sign in again/,
    )
    assert.equal(err.status, 401)
    assert.equal(idp.received.length, 0)
    issued(await x.token('alice', 'API_TOKEN', API, await subject('alice')))
    await rejectsWith(x.token('alice', 'API_TOKEN', API, none), 'no_subject_token', /sign in again/)
  })

  test('success is logged with the host and status, never the tokens', async () => {
    const { x, lines } = make()
    issued(await x.token('alice', 'API_TOKEN', API, await subject('alice')))
    const [line] = logged(lines, 'token exchanged')
    assert.equal(line!.host, new URL(idp.issuer).host)
    assert.equal(line!.status, 200)
    assert.equal(line!.expiresIn, 300)
  })

  // Last: the whole file's logs against every token it saw.
  test('no log line of this file carries a subject or an issued token', () => {
    assert.ok(allLines.length > 10 && tokens.size > 10, 'the file logged and exchanged')
    assertNoTokenIn(allLines, tokens)
  })
})
