import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CompactEncrypt, exportSPKI, SignJWT, type JWTPayload } from 'jose'
import { AuthError } from '../../gateway/auth/errors.js'
import { createIdpHttp } from '../../gateway/auth/idp-http.js'
import { createKeySource } from '../../gateway/auth/keys.js'
import { checkAudience, verifyAccessToken, type VerifyOptions } from '../../gateway/auth/verify.js'
import { ASYMMETRIC_ALGORITHMS } from '../../gateway/config/schema.js'
import {
  startJwksServer,
  startProbeListener,
  type JwksServer,
  type ProbeListener,
} from '../helpers/jwks-server.js'
import {
  b64json,
  claims,
  flipSignatureBit,
  makeKey,
  rejectsWith,
  signToken,
  unsecuredJwt,
  type TestKey,
} from '../helpers/keys.js'

let server: JwksServer
let probe: ProbeListener
let rsa: TestKey
let rsa2: TestKey
let ec: TestKey
let stranger: TestKey
let iss: string

before(async () => {
  ;[rsa, rsa2, ec, stranger] = await Promise.all([
    makeKey('RS256'),
    makeKey('RS256'),
    makeKey('ES256'),
    makeKey('RS256', 'stranger'),
  ])
  server = await startJwksServer([rsa.publicJwk, rsa2.publicJwk, ec.publicJwk])
  probe = await startProbeListener()
  iss = server.origin
})
after(async () => {
  await server.close()
  await probe.close()
})

const now = () => Math.floor(Date.now() / 1000)
const valid = (over: JWTPayload = {}) => claims(iss, over)
const ok = { sub: 'user-1' }
const code = (c: string) => ({ code: c })
const needTyp = { requireJwtAccessTokenType: true }

interface Case {
  name: string
  token: () => Promise<string> | string
  options?: Partial<VerifyOptions>
  /** A subject means: verified; a code means: refused with that code. */
  expect: { sub: string } | { code: string }
  /** Requests the JWKS server must have seen (discovery + JWKS). */
  fetches?: number
  /** The jku probe must have had no connection. */
  noJku?: boolean
}

const cases: Case[] = [
  { name: 'valid RS256 token', token: () => signToken(rsa, valid()), expect: ok, fetches: 2 },
  {
    name: 'valid ES256 token',
    token: () => signToken(ec, valid({ sub: 'ec-user' })),
    expect: { sub: 'ec-user' },
  },
  {
    name: 'no kid, the only EC key',
    token: () => signToken(ec, valid(), { kid: undefined }),
    expect: ok,
  },
  {
    name: 'no kid, two RSA keys: ambiguous',
    token: () => signToken(rsa, valid(), { kid: undefined }),
    expect: code('unknown_key'),
  },
  {
    name: 'expired 5 minutes ago',
    token: () => signToken(rsa, valid({ exp: now() - 300 })),
    expect: code('token_expired'),
  },
  {
    name: 'expired 10 s ago, within clockTolerance',
    token: () => signToken(rsa, valid({ exp: now() - 10 })),
    expect: ok,
  },
  {
    name: 'expired 10 s ago, no tolerance',
    token: () => signToken(rsa, valid({ exp: now() - 10 })),
    options: { clockTolerance: 0 },
    expect: code('token_expired'),
  },
  {
    name: 'nbf 10 minutes ahead',
    token: () => signToken(rsa, valid({ nbf: now() + 600 })),
    expect: code('token_not_yet_valid'),
  },
  {
    name: 'nbf 10 s ahead, within clockTolerance',
    token: () => signToken(rsa, valid({ nbf: now() + 10 })),
    expect: ok,
  },
  {
    name: 'wrong issuer: refused before any key lookup',
    token: () => signToken(rsa, valid({ iss: 'http://evil.example' })),
    expect: code('wrong_issuer'),
    fetches: 0,
  },
  {
    name: 'issuer with a trailing slash is another issuer',
    token: () => signToken(rsa, valid({ iss: `${iss}/` })),
    expect: code('wrong_issuer'),
    fetches: 0,
  },
  {
    name: 'no issuer',
    token: () => signToken(rsa, valid({ iss: undefined })),
    expect: code('wrong_issuer'),
    fetches: 0,
  },
  {
    name: 'unknown kid',
    token: () => signToken(stranger, valid()),
    expect: code('unknown_key'),
    fetches: 2,
  },
  {
    name: 'kid of one key, signed by another',
    token: () => signToken(stranger, valid(), { kid: rsa.kid }),
    expect: code('bad_signature'),
  },
  {
    name: 'flipped signature bit',
    token: async () => flipSignatureBit(await signToken(rsa, valid())),
    expect: code('bad_signature'),
  },
  {
    name: 'payload changed after signing',
    token: async () => {
      const [h, , s] = (await signToken(rsa, valid())).split('.')
      return `${h}.${b64json(valid({ sub: 'admin' }))}.${s}`
    },
    expect: code('bad_signature'),
  },
  {
    name: 'alg none (unsecured JWT)',
    token: () => unsecuredJwt({ alg: 'none', typ: 'JWT' }, valid()),
    expect: code('alg_not_allowed'),
    fetches: 0,
  },
  {
    name: 'alg None',
    token: () => unsecuredJwt({ alg: 'None' }, valid()),
    expect: code('alg_not_allowed'),
    fetches: 0,
  },
  {
    name: 'alg none with a signature',
    token: async () => {
      const sig = (await signToken(rsa, valid())).split('.')[2]
      return `${unsecuredJwt({ alg: 'none', kid: rsa.kid }, valid())}${sig}`
    },
    expect: code('alg_not_allowed'),
    fetches: 0,
  },
  {
    name: 'no alg at all',
    token: () => unsecuredJwt({ kid: rsa.kid }, valid()),
    expect: code('alg_not_allowed'),
  },
  {
    name: 'HS256 keyed with the RSA public key (key confusion)',
    token: async () => {
      const secret = new TextEncoder().encode(await exportSPKI(rsa.publicKey))
      return new SignJWT(valid()).setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).sign(secret)
    },
    expect: code('alg_not_allowed'),
    fetches: 0,
  },
  {
    name: 'ES256 when only RS256 is configured',
    token: () => signToken(ec, valid()),
    options: { algorithms: ['RS256'] },
    expect: code('alg_not_allowed'),
    fetches: 0,
  },
  {
    name: 'JWE (5 segments)',
    token: () =>
      new CompactEncrypt(new TextEncoder().encode(JSON.stringify(valid())))
        .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
        .encrypt(new Uint8Array(32).fill(7)),
    expect: code('malformed_token'),
    fetches: 0,
  },
  { name: 'garbage', token: () => 'not-a-jwt', expect: code('malformed_token'), fetches: 0 },
  {
    name: 'three segments of garbage',
    token: () => 'a.b.c',
    expect: code('malformed_token'),
    fetches: 0,
  },
  {
    name: 'payload not JSON',
    token: () => `${b64json({ alg: 'RS256' })}.${Buffer.from('x').toString('base64url')}.c2ln`,
    expect: code('malformed_token'),
    fetches: 0,
  },
  {
    name: 'missing sub',
    token: () => signToken(rsa, valid({ sub: undefined })),
    expect: code('missing_claim'),
  },
  // sub must be a non-empty string: anything else would make identities collide.
  ...(
    [
      ['an empty string', ''],
      ['a number', 42],
      ['zero', 0],
      ['a list', ['user-1']],
      ['an empty list', []],
      ['an object', { id: 'user-1' }],
      ['an empty object', {}],
      ['true', true],
      ['false', false],
      ['null', null],
    ] as [string, unknown][]
  ).map(
    ([what, sub]): Case => ({
      name: `sub is ${what}`,
      token: () => signToken(rsa, valid({ sub: sub as never })),
      expect: code('malformed_token'),
    }),
  ),
  {
    name: 'missing exp',
    token: () => signToken(rsa, valid({ exp: undefined })),
    expect: code('missing_claim'),
  },
  {
    name: 'exp not a number',
    token: () => signToken(rsa, valid({ exp: 'tomorrow' as never })),
    expect: code('malformed_token'),
  },
  {
    name: 'typ JWT when at+jwt is required',
    token: () => signToken(rsa, valid(), { typ: 'JWT' }),
    options: needTyp,
    expect: code('wrong_token_type'),
    fetches: 0,
  },
  {
    name: 'no typ when at+jwt is required',
    token: () => signToken(rsa, valid(), { typ: undefined }),
    options: needTyp,
    expect: code('wrong_token_type'),
    fetches: 0,
  },
  {
    name: 'typ at+jwt when required',
    token: () => signToken(rsa, valid()),
    options: needTyp,
    expect: ok,
  },
  {
    name: 'typ application/at+jwt when required',
    token: () => signToken(rsa, valid(), { typ: 'application/at+jwt' }),
    options: needTyp,
    expect: ok,
  },
  {
    name: 'typ AT+JWT when required (media types are case-insensitive)',
    token: () => signToken(rsa, valid(), { typ: 'AT+JWT' }),
    options: needTyp,
    expect: ok,
  },
  {
    name: 'typ JWT accepted when not required',
    token: () => signToken(rsa, valid(), { typ: 'JWT' }),
    expect: ok,
  },
  {
    name: 'jku header is ignored (valid token, no connection to jku)',
    token: () => signToken(rsa, valid(), { jku: `${probe.url}/jwks` }),
    expect: ok,
    noJku: true,
  },
  {
    name: 'jku naming the signing key is ignored',
    token: () => signToken(stranger, valid(), { jku: `${probe.url}/jwks` }),
    expect: code('unknown_key'),
    noJku: true,
  },
  {
    name: 'embedded jwk header is ignored',
    token: () => {
      const { kty, n, e } = stranger.publicJwk
      return signToken(stranger, valid(), { jwk: { kty, n, e } })
    },
    expect: code('unknown_key'),
  },
]

describe('verifyAccessToken against a real JWKS endpoint (discovery, then JWKS)', () => {
  for (const c of cases) {
    test(c.name, async (t) => {
      const http = createIdpHttp(2_000)
      t.after(() => http.close())
      const keys = createKeySource({
        issuer: iss,
        http,
        timeoutMs: 2_000,
        cooldownMs: 30_000,
        maxAgeMs: 600_000,
      })
      const options: VerifyOptions = {
        issuer: iss,
        algorithms: [...ASYMMETRIC_ALGORITHMS],
        clockTolerance: 30,
        requireJwtAccessTokenType: false,
        getKey: keys.getKey,
        ...c.options,
      }
      const token = await c.token()
      const seen = server.requests.length
      const connections = probe.connections
      const result = verifyAccessToken(token, options)
      if ('sub' in c.expect) assert.equal((await result).sub, c.expect.sub)
      else await rejectsWith(result, c.expect.code)
      if (c.fetches !== undefined) assert.equal(server.requests.length - seen, c.fetches)
      if (c.noJku) assert.equal(probe.connections - connections, 0)
    })
  }
})

describe('checkAudience', () => {
  const R = 'http://127.0.0.1:8080/mcp/echo'
  const cases: { name: string; aud: unknown; expected?: string[]; ok: boolean }[] = [
    { name: 'exact match', aud: R, ok: true },
    {
      name: 'upper-case scheme and host accepted',
      aud: 'HTTP://127.0.0.1:8080/mcp/echo',
      ok: true,
    },
    {
      name: 'upper-case host name accepted',
      aud: 'http://MCP.Example.COM/mcp/echo',
      expected: ['http://mcp.example.com/mcp/echo'],
      ok: true,
    },
    {
      name: 'expected side in upper case',
      aud: R,
      expected: ['HTTP://127.0.0.1:8080/mcp/echo'],
      ok: true,
    },
    { name: 'path is case-sensitive', aud: 'http://127.0.0.1:8080/MCP/echo', ok: false },
    { name: 'trailing slash refused', aud: `${R}/`, ok: false },
    { name: 'query refused', aud: `${R}?x=1`, ok: false },
    { name: 'another server', aud: 'http://127.0.0.1:8080/mcp/notes', ok: false },
    { name: 'prefix of the resource refused', aud: 'http://127.0.0.1:8080/mcp', ok: false },
    { name: 'other port refused', aud: 'http://127.0.0.1:8081/mcp/echo', ok: false },
    { name: 'https vs http refused', aud: 'https://127.0.0.1:8080/mcp/echo', ok: false },
    { name: 'array containing the resource', aud: ['api://other', R], ok: true },
    { name: 'array with junk and the resource', aud: [42, null, R], ok: true },
    {
      name: 'array without the resource',
      aud: ['api://other', 'http://127.0.0.1:8080/mcp/notes'],
      ok: false,
    },
    {
      name: 'one of several expected audiences',
      aud: 'api://mcp',
      expected: [R, 'api://mcp'],
      ok: true,
    },
    { name: 'missing aud', aud: undefined, ok: false },
    { name: 'empty aud array', aud: [], ok: false },
    { name: 'empty string aud', aud: '', ok: false },
    { name: 'non-string aud', aud: 42, ok: false },
    { name: 'nothing expected', aud: R, expected: [], ok: false },
  ]
  for (const c of cases) {
    test(c.name, () => {
      const run = () => checkAudience(c.aud as JWTPayload['aud'], c.expected ?? [R])
      if (c.ok) {
        assert.doesNotThrow(run)
        return
      }
      assert.throws(run, (err: unknown) => {
        assert.ok(err instanceof AuthError)
        assert.deepEqual([err.code, err.status], ['wrong_audience', 401])
        return true
      })
    })
  }
})
