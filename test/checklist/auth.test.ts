// Checklist items of sections B and C (challenges, token validation) that no other test checked
// black-box: each test's name starts with its item id (see test/checklist/README.md).
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair, SignJWT } from 'jose'
import { postMcp } from '../helpers/post-mcp.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { initBody, openSession as openIn } from './open-session.js'

const INIT = initBody()

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

const openSession = (server: string, token: string) => openIn(stack, server, token)

const post = (server: string, body: unknown, headers: Record<string, string> = {}) =>
  postMcp(stack.local(server), body, headers)

function b64(o: unknown): string {
  return Buffer.from(JSON.stringify(o)).toString('base64url')
}

/** The auth-params of a Bearer challenge, each name as often as it appears. */
function params(challenge: string): [string, string][] {
  assert.match(challenge, /^Bearer [A-Za-z_]+="/)
  return [...challenge.slice('Bearer '.length).matchAll(/([A-Za-z_]+)="((?:[^"\\]|\\.)*)"/g)].map(
    (m) => [m[1]!, m[2]!],
  )
}

describe('B: challenges', () => {
  it('B12: the same insufficient call twice gets the identical challenge', async () => {
    const token = await stack.token('alice', { server: 'notes' })
    const sid = await openSession('notes', token)
    const call = {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'write_note', arguments: { name: 'n', text: 't' } },
    }
    const h = { authorization: `Bearer ${token}`, 'mcp-session-id': sid }
    const one = await post('notes', call, h)
    const two = await post('notes', { ...call, id: 8 }, h)
    assert.equal(one.status, 403, one.text)
    assert.equal(two.status, 403, two.text)
    assert.match(one.headers['www-authenticate'] as string, /error="insufficient_scope"/)
    assert.equal(one.headers['www-authenticate'], two.headers['www-authenticate'])
  })

  it('B14: a kid carrying CR LF, quote and backslash is a 401 with one clean challenge', async () => {
    for (const kid of ['a\r\nX-Injected: 1', 'a"b\\c', 'é\u0000\u202e']) {
      const token = `${b64({ alg: 'RS256', typ: 'at+jwt', kid })}.${b64({ sub: 'alice' })}.${b64('sig')}`
      const res = await post('echo', INIT, { authorization: `Bearer ${token}` })
      assert.equal(res.status, 401, res.text)
      assert.equal(res.headers['x-injected'], undefined)
      const challenge = res.headers['www-authenticate'] as string
      assert.equal(typeof challenge, 'string')
      assert.match(challenge, /^[\x20-\x7e]+$/)
      const names = params(challenge).map(([n]) => n)
      assert.deepEqual(names, [...new Set(names)], challenge)
      for (const [, v] of params(challenge)) assert.doesNotMatch(v, /["\\]/, challenge)
    }
  })
})

describe('C: token validation', () => {
  it('C5: an audience with upper-case scheme and host is accepted; a trailing slash is not', async () => {
    const url = new URL(stack.endpoint('echo'))
    const upper = `${url.protocol.toUpperCase()}//${url.host.toUpperCase()}${url.pathname}`
    const up = await post('echo', INIT, {
      authorization: `Bearer ${await stack.forge({ aud: upper })}`,
    })
    assert.equal(up.status, 200, up.text)
    const slash = await post('echo', INIT, {
      authorization: `Bearer ${await stack.forge({ aud: `${stack.endpoint('echo')}/` })}`,
    })
    assert.equal(slash.status, 401, slash.text)
    assert.match(slash.headers['www-authenticate'] as string, /error="invalid_token"/)
  })

  it('C9: alg none in any case, and alg missing, are 401 invalid_token', async () => {
    const now = Math.floor(Date.now() / 1000)
    const claims = {
      iss: stack.idp.issuer,
      sub: 'alice',
      aud: stack.endpoint('echo'),
      exp: now + 300,
      realm_access: { roles: ['mcp-user'] },
    }
    for (const header of [{ alg: 'None' }, { alg: 'NONE' }, { alg: 'nOnE' }, {}]) {
      const token = `${b64({ ...header, typ: 'at+jwt', kid: stack.kid })}.${b64(claims)}.`
      const res = await post('echo', INIT, { authorization: `Bearer ${token}` })
      assert.equal(res.status, 401, JSON.stringify(header))
      assert.match(res.headers['www-authenticate'] as string, /error="invalid_token"/)
    }
  })

  it('C10: an ID token (typ JWT, aud = the client id) is 401', async () => {
    const res = await post('echo', INIT, {
      authorization: `Bearer ${await stack.forge({ aud: 'alice', azp: 'alice' }, { typ: 'JWT' })}`,
    })
    assert.equal(res.status, 401, res.text)
    assert.match(res.headers['www-authenticate'] as string, /error="invalid_token"/)
  })

  describe('C11: a jku header is never followed', () => {
    let probe: Server
    let connections = 0
    before(async () => {
      probe = createServer((s) => {
        connections++
        s.destroy()
      })
      await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    })
    after(() => new Promise<void>((r) => probe.close(() => r())))

    it('C11: an attacker-signed token pointing jku at a listener is 401, and the listener sees nothing', async () => {
      const port = (probe.address() as { port: number }).port
      const { privateKey } = await generateKeyPair('RS256')
      const now = Math.floor(Date.now() / 1000)
      const token = await new SignJWT({
        iss: stack.idp.issuer,
        sub: 'alice',
        aud: stack.endpoint('echo'),
        exp: now + 300,
        realm_access: { roles: ['mcp-user'] },
      })
        .setProtectedHeader({
          alg: 'RS256',
          typ: 'at+jwt',
          kid: 'attacker',
          jku: `http://127.0.0.1:${port}/jwks`,
        })
        .sign(privateKey)
      const res = await post('echo', INIT, { authorization: `Bearer ${token}` })
      assert.equal(res.status, 401, res.text)
      // control: the same kid under the IdP's own key is a valid token (the refusal is the key).
      const good = await post('echo', INIT, {
        authorization: `Bearer ${await stack.forge({}, { jku: `http://127.0.0.1:${port}/jwks` })}`,
      })
      assert.equal(good.status, 200, good.text)
      assert.equal(connections, 0)
    })
  })

  it('C12: a five-segment JWE is 401 invalid_token', async () => {
    const jwe = [b64({ alg: 'RSA-OAEP', enc: 'A256GCM', kid: stack.kid }), 'a', 'b', 'c', 'd'].join(
      '.',
    )
    const res = await post('echo', INIT, { authorization: `Bearer ${jwe}` })
    assert.equal(res.status, 401, res.text)
    assert.match(res.headers['www-authenticate'] as string, /error="invalid_token"/)
  })

  it('C16: the scheme name is case-insensitive: bearer and BEARER work', async () => {
    const token = await stack.token('alice')
    for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
      const res = await post('echo', INIT, { authorization: `${scheme} ${token}` })
      assert.equal(res.status, 200, `${scheme}: ${res.text}`)
      assert.ok(res.headers['mcp-session-id'])
    }
  })

  it('E2: a live session id with an expired token, or none, is 401; the session is not credentials', async () => {
    const token = await stack.token('alice')
    const sid = await openSession('echo', token)
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
    const expired = await stack.forge({ exp: Math.floor(Date.now() / 1000) - 300 })
    const a = await post('echo', list, {
      authorization: `Bearer ${expired}`,
      'mcp-session-id': sid,
    })
    assert.equal(a.status, 401)
    assert.match(a.headers['www-authenticate'] as string, /error="invalid_token"/)
    const b = await post('echo', list, { 'mcp-session-id': sid })
    assert.equal(b.status, 401)
    assert.match(b.headers['www-authenticate'] as string, /resource_metadata="/)
    // control: the owner with a valid token is served
    const c = await post('echo', list, { authorization: `Bearer ${token}`, 'mcp-session-id': sid })
    assert.equal(c.status, 200, c.text)
  })
})

describe('C14: an IdP out of reach', () => {
  let own: Stack
  before(async () => {
    own = await startStack()
  })
  after(() => own.close())

  it('C14: a token whose key must be fetched while the IdP is down is 503, not 401', async () => {
    const token = await own.token('alice')
    const warm = await postMcp(own.local('echo'), INIT, { authorization: `Bearer ${token}` })
    assert.equal(warm.status, 200, warm.text)
    await own.idp.close()
    const res = await postMcp(own.local('echo'), INIT, {
      authorization: `Bearer ${await own.forge({ sub: 'carol' }, { kid: 'rotated-away' })}`,
    })
    assert.equal(res.status, 503, res.text)
    assert.equal(res.headers['mcp-session-id'], undefined)
  })
})
