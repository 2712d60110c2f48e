// Stop 29 (brief review29): an outside attacker against token verification, the IdP documents
// the gateway fetches, the HTTP edge and policy hot reload. Real JWKS servers, real tokens, a
// real gateway and IdP; clocks injected where time matters.
import assert from 'node:assert/strict'
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { after, before, describe, test, type TestContext } from 'node:test'
import { request } from 'undici'
import { createIdpHttp } from '../../gateway/auth/idp-http.js'
import { createKeySource, type KeySource, type KeySourceOptions } from '../../gateway/auth/keys.js'
import { verifyAccessToken } from '../../gateway/auth/verify.js'
import { ASYMMETRIC_ALGORITHMS } from '../../gateway/config/schema.js'
import { JWKS_PATH, startJwksServer, type JwksServer, type Reply } from '../helpers/jwks-server.js'
import { claims, makeKey, rejectsWith, signToken, type TestKey } from '../helpers/keys.js'
import { startProbeListener } from '../helpers/jwks-server.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import { watchPolicy, type ReloadResult } from '../../gateway/policy/reload.js'
import { createPolicyStore } from '../../gateway/policy/store.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { waitFor } from '../helpers/wait-for.js'
import { startStack, type Stack } from '../helpers/stack.js'

let server: JwksServer
let k1: TestKey
let k2: TestKey

before(async () => {
  ;[k1, k2] = await Promise.all([makeKey('RS256', 'k1'), makeKey('RS256', 'k2')])
  server = await startJwksServer()
})
after(() => server.close())

describe('stop29: a failing JWKS is not fetched once per request', () => {
  // jose refetches the key set on every request while it holds none (or stale ones), and on an
  // unknown kid once its cooldown is over; a failed fetch starts no cooldown. So while the IdP's
  // JWKS failed (down, 5xx, a body too large or not a key set), every request carrying any
  // token that names the issuer (unsigned, random kid: no credentials needed) made the gateway
  // fetch the JWKS again, one after the other: 20 requests, 20 fetches. An unauthenticated
  // flood at the gateway became a flood at an IdP already in trouble (medium: amplification,
  // no privilege). Now a failed fetch is not retried for auth.discoveryRetry (as discovery).
  const RETRY = 5_000
  let clock = 0
  const now = () => clock

  function source(t: TestContext, o: Partial<KeySourceOptions> = {}): KeySource {
    const http = createIdpHttp(2_000)
    t.after(() => http.close())
    return createKeySource({
      issuer: server.origin,
      jwksUri: server.jwksUri,
      http,
      timeoutMs: 2_000,
      cooldownMs: 0,
      maxAgeMs: 600_000,
      retryMs: RETRY,
      now,
      ...o,
    })
  }
  const verify = (keys: KeySource, token: string) =>
    verifyAccessToken(token, {
      issuer: server.origin,
      algorithms: [...ASYMMETRIC_ALGORITHMS],
      clockTolerance: 30,
      requireJwtAccessTokenType: false,
      getKey: keys.getKey,
    })

  const failures: { name: string; reply: () => Reply }[] = [
    { name: '500', reply: () => ({ status: 500, body: { error: 'boom' } }) },
    { name: 'a redirect', reply: () => ({ status: 302, headers: { location: '/elsewhere' } }) },
    { name: 'not JSON', reply: () => ({ status: 200, body: undefined }) },
    { name: 'no key set', reply: () => ({ body: { nope: [] } }) },
    { name: 'keys that are no objects', reply: () => ({ body: { keys: [1, 'k', null] } }) },
    { name: 'too large', reply: () => ({ body: { keys: [], pad: 'x'.repeat(300 * 1024) } }) },
  ]
  for (const f of failures) {
    test(`never loaded, JWKS answers ${f.name}: one fetch per retry window`, async (t) => {
      server.keys = [k1.publicJwk]
      server.routes.clear()
      server.routes.set(JWKS_PATH, f.reply)
      server.requests.length = 0
      clock = 1_000_000
      const keys = source(t)
      const forged = await signToken(k2, claims(server.origin), { kid: 'nope' })
      for (let i = 0; i < 20; i++) await rejectsWith(verify(keys, forged), 'idp_unavailable', 503)
      assert.equal(server.hits(JWKS_PATH), 1)
      // The IdP recovers; the window passes: the next request fetches, and works.
      server.routes.clear()
      await rejectsWith(
        verify(keys, await signToken(k1, claims(server.origin))),
        'idp_unavailable',
        503,
      )
      assert.equal(server.hits(JWKS_PATH), 1)
      clock += RETRY
      assert.equal((await verify(keys, await signToken(k1, claims(server.origin)))).sub, 'user-1')
      assert.equal(server.hits(JWKS_PATH), 2)
    })
  }

  test('keys held, an unknown-kid flood while the JWKS fails: one fetch, known keys still work', async (t) => {
    server.keys = [k1.publicJwk]
    server.routes.clear()
    server.requests.length = 0
    clock = 2_000_000
    const keys = source(t)
    await keys.warm()
    assert.equal(server.hits(JWKS_PATH), 1)
    server.routes.set(JWKS_PATH, () => ({ status: 503, body: {} }))
    const forged = await signToken(k2, claims(server.origin), { kid: 'random-kid' })
    for (let i = 0; i < 20; i++) await rejectsWith(verify(keys, forged), 'idp_unavailable', 503)
    assert.equal(server.hits(JWKS_PATH), 2)
    // A token of a held key never needed the IdP.
    assert.equal((await verify(keys, await signToken(k1, claims(server.origin)))).sub, 'user-1')
    assert.equal(server.hits(JWKS_PATH), 2)
  })
})

describe('stop29: held attacks on verification (kept as regressions)', () => {
  // Each refused with its code; where the header or the issuer is refused, before any key
  // lookup (no JWKS fetch); header URLs (jku, x5u) never dialled.
  let ec: TestKey
  let dupRsa: TestKey
  let dupEc: TestKey
  let encOnly: TestKey
  let noVerify: TestKey
  let jwks: JwksServer
  before(async () => {
    ;[ec, dupRsa, dupEc, encOnly, noVerify] = await Promise.all([
      makeKey('ES256'),
      makeKey('RS256', 'dup'),
      makeKey('ES256', 'dup'),
      makeKey('RS256', 'enc-only'),
      makeKey('RS256', 'no-verify'),
    ])
    jwks = await startJwksServer([
      k1.publicJwk,
      ec.publicJwk,
      dupRsa.publicJwk,
      dupEc.publicJwk,
      { ...encOnly.publicJwk, use: 'enc' },
      { ...noVerify.publicJwk, use: undefined, key_ops: ['encrypt'] },
    ])
  })
  after(() => jwks.close())

  const cyrillic = () => jwks.origin.replace('127.0.0.1', '127.0.0.1\u0435')
  const cases: {
    name: string
    token: (probe: string) => Promise<string> | string
    code?: string
    fetches?: number
  }[] = [
    {
      name: 'alg in lower case',
      token: () =>
        signToken(k1, claims(jwks.origin), { alg: 'rs256' }).catch(() =>
          hand({ alg: 'rs256', kid: 'k1' }),
        ),
      code: 'alg_not_allowed',
      fetches: 0,
    },
    {
      name: 'unknown crit header',
      token: () => signedByHand(k1, { alg: 'RS256', kid: 'k1', crit: ['x-mine'], 'x-mine': 1 }),
      code: 'malformed_token',
      fetches: 0,
    },
    {
      name: 'x5u naming another key is never dialled',
      token: (probe) =>
        signToken(k2, claims(jwks.origin), { kid: undefined, x5u: `${probe}/cert` }),
      code: 'unknown_key',
    },
    {
      name: 'the only key with this kid is use=enc',
      token: () => signToken(encOnly, claims(jwks.origin)),
      code: 'unknown_key',
    },
    {
      name: 'the only key with this kid has key_ops without verify',
      token: () => signToken(noVerify, claims(jwks.origin)),
      code: 'unknown_key',
    },
    {
      name: 'duplicate kid, RSA and EC: ES256 picks the EC key',
      token: () => signToken(dupEc, claims(jwks.origin)),
    },
    {
      name: 'duplicate kid, RSA and EC: RS256 picks the RSA key',
      token: () => signToken(dupRsa, claims(jwks.origin)),
    },
    {
      name: 'duplicate kid: ES256 signed by the RSA key',
      token: () => signToken(dupRsa, claims(jwks.origin)).then((t) => swapAlg(t, 'ES256')),
      code: 'bad_signature',
    },
    {
      name: 'exp as a string',
      token: () => signToken(k1, claims(jwks.origin, { exp: '9999999999' as never })),
      code: 'malformed_token',
    },
    {
      name: 'nbf as a string',
      token: () => signToken(k1, claims(jwks.origin, { nbf: '0' as never })),
      code: 'malformed_token',
    },
    {
      name: 'iat as a string',
      token: () => signToken(k1, claims(jwks.origin, { iat: '0' as never })),
      code: 'malformed_token',
    },
    {
      name: 'exp negative',
      token: () => signToken(k1, claims(jwks.origin, { exp: -1 })),
      code: 'token_expired',
    },
    {
      name: 'iss with a trailing slash',
      token: () => signToken(k1, claims(`${jwks.origin}/`)),
      code: 'wrong_issuer',
      fetches: 0,
    },
    {
      name: 'iss in upper case',
      token: () => signToken(k1, claims(jwks.origin.toUpperCase())),
      code: 'wrong_issuer',
      fetches: 0,
    },
    {
      name: 'iss with a look-alike letter',
      token: () => signToken(k1, claims(cyrillic())),
      code: 'wrong_issuer',
      fetches: 0,
    },
  ]
  /** A token whose header is `header` and whose signature is junk. */
  const hand = (header: Record<string, unknown>) =>
    `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims(jwks.origin))).toString('base64url')}.c2ln`
  /** A token signed by `key` (RS256) under any header, which jose would refuse to write. */
  const signedByHand = async (key: TestKey, header: Record<string, unknown>) => {
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims(jwks.origin))).toString('base64url')}`
    const sig = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', key.privateKey, Buffer.from(input))
    return `${input}.${Buffer.from(sig).toString('base64url')}`
  }
  /** The token with its header's alg replaced (the signature left as it was). */
  const swapAlg = (token: string, alg: string) => {
    const [h, p, sig] = token.split('.')
    const header = { ...JSON.parse(Buffer.from(h!, 'base64url').toString()), alg }
    return `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${p}.${sig}`
  }
  for (const c of cases) {
    test(c.name, async (t) => {
      const probe = await startProbeListener()
      t.after(() => probe.close())
      const http = createIdpHttp(2_000)
      t.after(() => http.close())
      const keys = createKeySource({
        issuer: jwks.origin,
        jwksUri: jwks.jwksUri,
        http,
        timeoutMs: 2_000,
        cooldownMs: 30_000,
        maxAgeMs: 600_000,
      })
      const fetched = jwks.hits(JWKS_PATH)
      const verified = verifyAccessToken(await c.token(probe.url), {
        issuer: jwks.origin,
        algorithms: [...ASYMMETRIC_ALGORITHMS],
        clockTolerance: 30,
        requireJwtAccessTokenType: false,
        getKey: keys.getKey,
      })
      if (c.code === undefined) assert.equal((await verified).sub, 'user-1')
      else await rejectsWith(verified, c.code)
      if (c.fetches !== undefined) assert.equal(jwks.hits(JWKS_PATH) - fetched, c.fetches)
      assert.equal(probe.connections, 0)
    })
  }
})

describe('stop29: the HTTP edge', () => {
  let stack: Stack
  let token: string
  before(async () => {
    stack = await startStack()
    token = await stack.token('alice', { server: 'fixture' })
  })
  after(() => stack.close())

  /** Messages the fixture process received whose arguments carry `marker`. */
  const seen = (marker: string) => {
    let text = ''
    try {
      text = readFileSync(join(stack.dir, 'fixture-record.jsonl'), 'utf8')
    } catch {}
    return text.split('\n').filter((l) => l.includes(marker)).length
  }

  describe('a Content-Encoding is refused (415), never read as identity nor inflated', () => {
    // A body labelled gzip was read as if it had no coding: gzip-labelled plain JSON was relayed
    // to the process (a filter in front that decodes saw garbage, the process saw a call), and
    // real gzip failed only by chance as invalid UTF-8 (low: a parsing differential).
    const INIT = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'x', version: '1' },
      },
    }
    const cases: { name: string; encoding: string; gzip?: boolean }[] = [
      { name: 'gzip label, plain JSON', encoding: 'gzip' },
      { name: 'gzip label, gzip body', encoding: 'gzip', gzip: true },
      { name: 'GZIP in upper case', encoding: 'GZIP' },
      { name: 'deflate', encoding: 'deflate' },
      { name: 'br', encoding: 'br' },
      { name: 'identity, gzip (a list)', encoding: 'identity, gzip' },
      { name: 'unknown coding', encoding: 'x-made-up' },
    ]
    for (const c of cases) {
      test(`sessionless tools/call: ${c.name}`, async () => {
        const marker = `enc-${Math.random().toString(36).slice(2)}`
        const req = modernToolCall(token, 'pid', { marker })
        const body = c.gzip ? gzipSync(req.body) : req.body
        const res = await request(stack.local('fixture'), {
          ...req,
          headers: { ...req.headers, 'content-encoding': c.encoding },
          body,
        })
        const text = await res.body.text()
        assert.equal(res.statusCode, 415, text)
        assert.match(JSON.parse(text).error.message, /must not be compressed/)
        assert.equal(seen(marker), 0)
      })
      test(`session initialize: ${c.name}`, async () => {
        const raw = JSON.stringify(INIT)
        const res = await request(stack.local('fixture'), {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            authorization: `Bearer ${token}`,
            'content-encoding': c.encoding,
          },
          body: c.gzip ? gzipSync(raw) : raw,
        })
        const text = await res.body.text()
        assert.equal(res.statusCode, 415, text)
        assert.equal(res.headers['mcp-session-id'], undefined)
      })
    }
    // The same reader serves every transport: a call on a session already open, and the legacy
    // transport's POST /messages, are refused alike (and the process sees nothing).
    const CALL = (marker: string) => ({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'pid', arguments: { marker } },
    })
    /** Each case's call, sent through `post`, is refused (415) and never reaches the process. */
    const refusesEveryCoding = async (
      post: (body: string | Buffer, encoding?: string) => ReturnType<typeof request>,
    ) => {
      for (const c of cases) {
        const marker = `enc-${Math.random().toString(36).slice(2)}`
        const raw = JSON.stringify(CALL(marker))
        const res = await post(c.gzip ? gzipSync(raw) : raw, c.encoding)
        const text = await res.body.text()
        assert.equal(res.statusCode, 415, `${c.name}: ${text}`)
        assert.match(JSON.parse(text).error.message, /must not be compressed/)
        assert.equal(seen(marker), 0, c.name)
      }
    }
    test('tools/call on an open session: every coding refused, the session goes on', async () => {
      const init = await postMcp(stack.local('fixture'), INIT, { authorization: `Bearer ${token}` })
      const sessionId = String(init.headers['mcp-session-id'])
      const headers = {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${token}`,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      }
      const post = (body: string | Buffer, encoding?: string) =>
        request(stack.local('fixture'), {
          method: 'POST',
          headers: encoding === undefined ? headers : { ...headers, 'content-encoding': encoding },
          body,
        })
      await (
        await post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }))
      ).body.text()
      await refusesEveryCoding(post)
      const marker = `enc-${Math.random().toString(36).slice(2)}`
      const res = await post(JSON.stringify(CALL(marker)))
      assert.equal(res.statusCode, 200, await res.body.text())
      assert.equal(seen(marker), 1)
    })
    test('legacy POST /messages: every coding refused, the stream goes on', async () => {
      const sse = await request(`${stack.url}/sse/fixture`, {
        headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
      })
      assert.equal(sse.statusCode, 200)
      const events = sse.body[Symbol.asyncIterator]()
      let text = ''
      while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
      const endpoint = /event: endpoint\ndata: (.*)\n/.exec(text)![1]!
      const post = (body: string | Buffer, encoding?: string) =>
        request(`${stack.url}${endpoint}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${token}`,
            ...(encoding === undefined ? {} : { 'content-encoding': encoding }),
          },
          body,
        })
      try {
        await (await post(JSON.stringify(INIT))).body.text()
        await (
          await post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }))
        ).body.text()
        await refusesEveryCoding(post)
        const marker = `enc-${Math.random().toString(36).slice(2)}`
        const res = await post(JSON.stringify(CALL(marker)))
        assert.equal(res.statusCode, 202, await res.body.text())
        await waitFor(() => seen(marker) === 1, 'the uncompressed call reached the process')
      } finally {
        sse.body.destroy()
      }
    })
    test('control: identity (or none) is read as before', async () => {
      for (const encoding of ['identity', undefined]) {
        const marker = `enc-${Math.random().toString(36).slice(2)}`
        const req = modernToolCall(token, 'pid', { marker })
        const headers = encoding ? { ...req.headers, 'content-encoding': encoding } : req.headers
        const res = await request(stack.local('fixture'), { ...req, headers })
        assert.equal(res.statusCode, 200, await res.body.text())
        assert.equal(seen(marker), 1)
      }
    })
  })
})

describe('stop29: a policy file that is a symlink into another folder is reloaded when edited', () => {
  // The watch was on the policy path's own folder. A policy file linked from elsewhere
  // (/etc/mcp-edge/policy.yaml -> /srv/policies/prod.yaml, or a folder's entries linked in) is
  // changed in the target's folder, even when edited through the link: no event, no reload, no
  // log line, /readyz quiet. An operator who denied a tool saw the edit "saved" while the
  // gateway went on allowing it until a restart or SIGHUP (medium: a revocation silently not
  // applied). Now the folders the files resolve into are watched too, found again at each reload.
  const policy = (effect: string) => `servers:\n  s:\n    tools:\n      t: ${effect}\n`
  const effect = (store: ReturnType<typeof createPolicyStore>) =>
    store.current.servers.get('s')!.rules.tools[0]!.effect.kind
  const dirs: string[] = []
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
  const root = () => {
    const d = mkdtempSync(join(tmpdir(), 'mcp-edge-link-'))
    dirs.push(d)
    for (const sub of ['etc', 'real', 'real2']) mkdirSync(join(d, sub))
    return d
  }

  for (const shape of ['file', 'folder'] as const) {
    test(`${shape}: an edit of the link's target is applied, also after the link is re-pointed`, async () => {
      const d = root()
      writeFileSync(join(d, 'real', 'p.yaml'), policy('allow'))
      symlinkSync(join(d, 'real', 'p.yaml'), join(d, 'etc', 'policy.yaml'))
      const path = shape === 'file' ? join(d, 'etc', 'policy.yaml') : join(d, 'etc')
      const store = createPolicyStore(loadPolicy(path))
      const results: ReloadResult[] = []
      const reloader = watchPolicy(path, store, 20, (r) => results.push(r))
      try {
        assert.equal(effect(store), 'allow')
        // The operator denies the tool, editing the file where it lives.
        writeFileSync(join(d, 'real', 'p.yaml'), policy('deny'))
        await waitFor(() => effect(store) === 'deny', 'the edit of the target was applied')
        // An editor saving by rename in the target's folder.
        writeFileSync(join(d, 'real', 'p.yaml.tmp'), policy('allow'))
        renameSync(join(d, 'real', 'p.yaml.tmp'), join(d, 'real', 'p.yaml'))
        await waitFor(() => effect(store) === 'allow', 'the saved-by-rename target was applied')
        // The link is pointed at another file (atomically); that file's edits count now.
        writeFileSync(join(d, 'real2', 'p.yaml'), policy('deny'))
        symlinkSync(join(d, 'real2', 'p.yaml'), join(d, 'etc', 'policy.yaml.new'))
        renameSync(join(d, 'etc', 'policy.yaml.new'), join(d, 'etc', 'policy.yaml'))
        await waitFor(() => effect(store) === 'deny', 'the re-pointed link was reloaded')
        writeFileSync(join(d, 'real2', 'p.yaml'), policy('["x:y"]'))
        await waitFor(() => effect(store) === 'scopes', 'the edit of the new target was applied')
        assert.ok(results.every((r) => r.ok))
      } finally {
        reloader.close()
      }
    })
  }
})
