import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bearerChallenge, type BearerChallenge } from '../../gateway/auth/challenge.js'

const RM = 'http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp/echo'
const TAIL = `resource_metadata="${RM}"`

const cases: { name: string; input: BearerChallenge; expect: string }[] = [
  {
    name: 'no error: resource_metadata only (RFC 6750 §3.1)',
    input: { resourceMetadata: RM },
    expect: `Bearer ${TAIL}`,
  },
  {
    name: 'a description without error is dropped',
    input: { resourceMetadata: RM, description: 'x' },
    expect: `Bearer ${TAIL}`,
  },
  {
    name: 'invalid_token with description',
    input: { resourceMetadata: RM, error: 'invalid_token', description: 'the token has expired' },
    expect: `Bearer error="invalid_token", error_description="the token has expired", ${TAIL}`,
  },
  {
    name: 'invalid_request without description',
    input: { resourceMetadata: RM, error: 'invalid_request' },
    expect: `Bearer error="invalid_request", ${TAIL}`,
  },
  {
    name: 'insufficient_scope with scope list',
    input: {
      resourceMetadata: RM,
      error: 'insufficient_scope',
      description: 'step up',
      scope: ['mcp:read', 'mcp:write'],
    },
    expect:
      'Bearer error="insufficient_scope", error_description="step up", ' +
      `scope="mcp:read mcp:write", ${TAIL}`,
  },
  {
    name: 'empty scope list omitted',
    input: { resourceMetadata: RM, error: 'insufficient_scope', scope: [] },
    expect: `Bearer error="insufficient_scope", ${TAIL}`,
  },
  {
    name: 'description with quote, backslash, CR/LF and non-ASCII is stripped',
    input: {
      resourceMetadata: RM,
      error: 'invalid_token',
      description: 'bad "kid" \\ here\r\nWWW-Authenticate: Basic realm="x"\u00e9\u202e',
    },
    expect:
      'Bearer error="invalid_token", ' +
      `error_description="bad kid  hereWWW-Authenticate: Basic realm=x", ${TAIL}`,
  },
  {
    name: 'a parameter smuggled through the description stays inside it',
    input: {
      resourceMetadata: RM,
      error: 'invalid_token',
      description: 'x", error="insufficient_scope',
    },
    expect:
      'Bearer error="invalid_token", ' + `error_description="x, error=insufficient_scope", ${TAIL}`,
  },
  {
    name: 'scope tokens lose quotes, spaces and backslashes',
    input: { resourceMetadata: RM, error: 'insufficient_scope', scope: ['a"b', 'c d', 'e\\f'] },
    expect: `Bearer error="insufficient_scope", scope="ab cd ef", ${TAIL}`,
  },
  {
    name: 'resource_metadata is cleaned too',
    input: { resourceMetadata: `${RM}"\r\nSet-Cookie: a=b` },
    expect: `Bearer resource_metadata="${RM}Set-Cookie: a=b"`,
  },
]

for (const c of cases) {
  test(`bearerChallenge: ${c.name}`, () => {
    const value = bearerChallenge(c.input)
    assert.equal(value, c.expect)
    // A header value: visible ASCII and spaces only, never a line break.
    assert.match(value, /^[\x20-\x7E]+$/)
    for (const param of ['error', 'error_description', 'scope', 'resource_metadata']) {
      const count = value.split(/[ ,]+/).filter((part) => part.startsWith(`${param}="`)).length
      assert.ok(count <= 1, `${param} appears ${count} times`)
    }
  })
}

test('bearerChallenge: an empty scope token is never emitted', () => {
  const input: BearerChallenge = {
    resourceMetadata: RM,
    error: 'insufficient_scope',
    scope: ['a', '"', 'b'],
  }
  assert.equal(bearerChallenge(input), `Bearer error="insufficient_scope", scope="a b", ${TAIL}`)
})
