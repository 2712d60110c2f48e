// A key the IdP removes from its JWKS stops working at the gateway for tokens it had already
// verified and cached, once the gateway refetches the JWKS: here a rotation (a token of the new
// kid makes it refetch), over real HTTP against a real gateway and a real JWKS server, real
// signed tokens. The answer is 401 invalid_token with the challenge; a token of a kept key
// still works.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js'
import { claims, makeKey, signToken, type TestKey } from '../helpers/keys.js'
import { freePort } from '../helpers/ports.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

let jwks: JwksServer
let gateway: Gateway
let a: TestKey
let b: TestKey
let c: TestKey

before(async () => {
  ;[a, b, c] = await Promise.all([
    makeKey('ES256', 'a'),
    makeKey('RS256', 'b'),
    makeKey('ES256', 'c'),
  ])
  jwks = await startJwksServer([a.publicJwk, b.publicJwk])
  const port = await freePort()
  const config = validateConfig(
    {
      listen: { host: '127.0.0.1', port },
      auth: { issuer: jwks.origin, jwksCooldown: 1000 },
      servers: { echo: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] } },
    },
    { file: 'test', baseDir: '/' },
  )
  gateway = await startGateway(config, { log: pino({ level: 'silent' }) })
})
after(async () => {
  await gateway?.close()
  await jwks?.close()
})

const token = (k: TestKey) => signToken(k, claims(jwks.origin, { aud: `${gateway.url}/mcp/echo` }))

/** GET /whoami with `t`: its status and WWW-Authenticate. */
async function whoami(t: string): Promise<{ status: number; challenge: string | undefined }> {
  const res = await request(`${gateway.url}/whoami`, { headers: { authorization: `Bearer ${t}` } })
  await res.body.text()
  return { status: res.statusCode, challenge: res.headers['www-authenticate'] as string }
}

it('a rotated-out key: its cached token gets 401 invalid_token once the JWKS is refetched; a kept key still works', async () => {
  const [ta, tb, tc] = [await token(a), await token(b), await token(c)]
  assert.equal((await whoami(ta)).status, 200, 'a token of a: verified')
  assert.equal((await whoami(ta)).status, 200, 'and cached')
  assert.equal((await whoami(tb)).status, 200)
  // The IdP rotates: c in, a out (compromised).
  jwks.keys = [b.publicJwk, c.publicJwk]
  // A client with a token of the new kid makes the gateway refetch (at most once per
  // jwksCooldown: it is asked again until the cooldown has passed).
  await waitFor(async () => (await whoami(tc)).status === 200, 'the new kid to be fetched')
  const refused = await whoami(ta)
  assert.equal(refused.status, 401)
  assert.match(refused.challenge ?? '', /error="invalid_token"/)
  assert.match(refused.challenge ?? '', /unknown key/)
  assert.equal((await whoami(tb)).status, 200, 'a token of the kept key b')
})
