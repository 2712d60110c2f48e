import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseBearer } from '../../gateway/auth/bearer.js'
import { AuthError } from '../../gateway/auth/errors.js'

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'
const MISSING = { code: 'missing_token', status: 401 }
const INVALID = { code: 'invalid_request', status: 400 }

const cases: {
  name: string
  input: string | null | undefined
  expect: string | { code: string; status: number }
}[] = [
  { name: 'undefined', input: undefined, expect: MISSING },
  { name: 'null', input: null, expect: MISSING },
  { name: 'empty', input: '', expect: MISSING },
  { name: 'blank', input: '   ', expect: MISSING },
  { name: 'Basic credentials', input: 'Basic dXNlcjpwYXNz', expect: MISSING },
  { name: 'Basic alone', input: 'Basic', expect: MISSING },
  { name: 'DPoP scheme', input: `DPoP ${JWT}`, expect: MISSING },
  { name: 'scheme glued to token', input: `Bearer${JWT}`, expect: MISSING },
  { name: 'Bearer TOKEN', input: `Bearer ${JWT}`, expect: JWT },
  { name: 'bearer TOKEN (lower case)', input: `bearer ${JWT}`, expect: JWT },
  { name: 'BEARER TOKEN (upper case)', input: `BEARER ${JWT}`, expect: JWT },
  { name: 'trailing space trimmed', input: `Bearer ${JWT} `, expect: JWT },
  { name: 'every b64token character', input: 'Bearer AZaz09-._~+/==', expect: 'AZaz09-._~+/==' },
  { name: 'Bearer alone', input: 'Bearer', expect: INVALID },
  { name: 'Bearer and a space', input: 'Bearer ', expect: INVALID },
  { name: 'two tokens', input: 'Bearer a b', expect: INVALID },
  { name: 'two headers joined', input: 'Bearer a, Bearer b', expect: INVALID },
  { name: 'token then comma', input: 'Bearer a,', expect: INVALID },
  { name: '= inside the token', input: 'Bearer a=b', expect: INVALID },
  { name: 'only padding', input: 'Bearer ==', expect: INVALID },
  { name: 'quote', input: 'Bearer a"b', expect: INVALID },
  { name: 'non-ASCII', input: 'Bearer tökén', expect: INVALID },
  { name: 'CR LF', input: 'Bearer a\r\nX-Evil: 1', expect: INVALID },
]

for (const c of cases) {
  test(`parseBearer: ${c.name}`, () => {
    if (typeof c.expect === 'string') {
      assert.equal(parseBearer(c.input), c.expect)
      return
    }
    const want = { ...c.expect, expose: true }
    assert.throws(
      () => parseBearer(c.input),
      (err: unknown) => {
        assert.ok(err instanceof AuthError)
        assert.deepEqual({ code: err.code, status: err.status, expose: err.expose }, want)
        return true
      },
    )
  })
}

// parseBearer remembers the last header that parsed: every case again, each right after a
// valid header (so a refusal is never answered from the remembered one), and each twice.
test('parseBearer: each case after a valid header, and twice in a row', () => {
  for (const c of cases) {
    for (const before of [`Bearer ${JWT}`, c.input]) {
      try {
        parseBearer(before)
      } catch {}
      for (let i = 0; i < 2; i++) {
        const want = c.expect
        if (typeof want === 'string') assert.equal(parseBearer(c.input), want, c.name)
        else
          assert.throws(
            () => parseBearer(c.input),
            (err: unknown) => err instanceof AuthError && err.code === want.code,
            c.name,
          )
      }
    }
  }
})
