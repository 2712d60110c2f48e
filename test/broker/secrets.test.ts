// What the broker keeps and writes: after whole flows (registration with a secret, login,
// code exchange, refresh, reuse, revocation, tool calls, refusals), no upstream token is in
// the store in plaintext (keys or values), and no log or audit line holds an access token,
// refresh token, code, client secret, upstream token or upstream code.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { exchange, login, refresh, register, send, useAt } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'

const REDIRECT = 'http://127.0.0.1:43170/cb'

let stack: BrokerStack
/** Every secret value seen on the way, by what it is. */
const secrets = new Map<string, string>()
/** Upstream tokens only (must not be stored in plaintext). */
const upstream = new Map<string, string>()

function keep(map: Map<string, string>, what: string, value: unknown): void {
  if (typeof value === 'string' && value.length >= 8) map.set(`${what} #${map.size}`, value)
}

before(async () => {
  stack = await startBrokerStack({ kind: 'entra', upstream: { recheckInterval: 0 } })
  // The upstream's token responses, seen on their way to the gateway (unchanged).
  const watch = () => {
    stack.idp.knobs.tamperToken = (body) => {
      for (const k of ['access_token', 'refresh_token', 'id_token'])
        keep(upstream, `upstream ${k}`, body[k])
      watch()
      return body
    }
  }
  watch()

  const reg = await register(stack, {
    client_name: 'confidential',
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  })
  assert.equal(reg.status, 201, reg.text)
  const clientId = String(reg.json.client_id)
  const clientSecret = String(reg.json.client_secret)
  keep(secrets, 'client secret', clientSecret)
  const creds = { client_id: clientId, client_secret: clientSecret }

  for (let round = 0; round < 2; round++) {
    const l = await login(stack, { clientId, redirectUri: REDIRECT, scope: 'mcp:read mcp:write' })
    keep(secrets, 'code', l.callback.searchParams.get('code'))
    for (const v of l.visits) {
      const u = new URL(v.url)
      if (u.pathname === '/oauth/callback')
        keep(secrets, 'upstream code', u.searchParams.get('code'))
      if (u.pathname.endsWith('/finish')) keep(secrets, 'finish token', u.searchParams.get('t'))
    }
    const t = await exchange(stack, l, { clientId, redirectUri: REDIRECT }, creds)
    assert.equal(t.status, 200, t.text)
    keep(secrets, 'access token', t.json.access_token)
    keep(secrets, 'refresh token', t.json.refresh_token)
    assert.equal(await useAt(stack, 'notes', String(t.json.access_token)), 200)
    assert.equal(await useAt(stack, 'echo', String(t.json.access_token)), 401)
    // A rotated refresh token, then a reused one or a revoked one, then a replayed code.
    const r = await refresh(stack, String(t.json.refresh_token), clientId, {
      client_secret: clientSecret,
    })
    assert.equal(r.status, 200, r.text)
    keep(secrets, 'access token', r.json.access_token)
    keep(secrets, 'refresh token', r.json.refresh_token)
    if (round === 0) {
      assert.equal(
        (
          await refresh(stack, String(t.json.refresh_token), clientId, {
            client_secret: clientSecret,
          })
        ).status,
        400,
      )
    } else {
      const res = await send(`${stack.url}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: String(r.json.refresh_token), ...creds }).toString(),
      })
      assert.equal(res.status, 200, res.text)
      assert.equal(
        (
          await refresh(stack, String(r.json.refresh_token), clientId, {
            client_secret: clientSecret,
          })
        ).status,
        400,
      )
    }
    assert.equal((await exchange(stack, l, { clientId, redirectUri: REDIRECT }, creds)).status, 400)
  }
  // A refused client authentication, and an upstream refusal at re-check.
  assert.equal(
    (await refresh(stack, 'x'.repeat(43), clientId, { client_secret: `${clientSecret}x` })).status,
    401,
  )
  const l = await login(stack, { clientId, redirectUri: REDIRECT })
  const t = await exchange(stack, l, { clientId, redirectUri: REDIRECT }, creds)
  keep(secrets, 'refresh token', t.json.refresh_token)
  keep(secrets, 'access token', t.json.access_token)
  stack.idp.disable('alice-pairwise-sub')
  assert.equal(
    (await refresh(stack, String(t.json.refresh_token), clientId, { client_secret: clientSecret }))
      .status,
    400,
  )
  assert.ok(upstream.size >= 6, `upstream tokens seen: ${upstream.size}`)
})
after(() => stack.close())

describe('secrets at rest and in logs', () => {
  it('no upstream token is in the store in plaintext, in any key or value', async () => {
    // Log in once more so a live account with sealed tokens is held.
    stack.idp.reset()
    const clientId = String(
      (
        await register(stack, {
          redirect_uris: [REDIRECT],
          token_endpoint_auth_method: 'none',
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        })
      ).json.client_id,
    )
    await login(stack, { clientId, redirectUri: REDIRECT })
    const held = await stack.store.dump()
    assert.ok(
      [...held.keys()].some((k) => k.startsWith('broker:upstream:')),
      'sealed upstream tokens are held',
    )
    for (const [key, value] of held) {
      for (const [what, secret] of upstream) {
        assert.equal(key.includes(secret), false, `${what} in the key ${key}`)
        assert.equal(value.includes(secret), false, `${what} in the value of ${key}`)
        // Nor a recognisable part of it (a JWT's signature, or its payload).
        for (const part of secret.split('.').filter((p) => p.length >= 16)) {
          assert.equal(value.includes(part), false, `part of ${what} in the value of ${key}`)
        }
      }
    }
  })

  it('no log or audit line holds a token, code, client secret, upstream token or upstream code', () => {
    const lines = [...stack.logLines, ...stack.audit().map((a) => JSON.stringify(a))]
    assert.ok(lines.length > 20, `lines written: ${lines.length}`)
    assert.ok(secrets.size >= 10, `secrets seen: ${secrets.size}`)
    for (const line of lines) {
      for (const [what, secret] of [...secrets, ...upstream]) {
        assert.equal(line.includes(secret), false, `${what} in: ${line.slice(0, 300)}`)
        for (const part of secret.split('.').filter((p) => p.length >= 16)) {
          assert.equal(line.includes(part), false, `part of ${what} in: ${line.slice(0, 300)}`)
        }
      }
    }
  })
})
