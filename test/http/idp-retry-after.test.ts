// An unreachable IdP's 503 tells the client when the gateway will try it again: what is left of
// auth.discoveryRetry's window (it said 5 s whatever the window was).
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway } from '../../gateway/gateway.js'
import { freePort } from '../helpers/ports.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { SEALING } from '../helpers/account.js'

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

it('503 idp_unavailable: Retry-After is the seconds left of a 600 s window, not 5', async () => {
  // Nothing listens at the issuer: discovery fails at start, the window opens.
  const [idpPort, gwPort] = [await freePort(), await freePort()]
  const issuer = `http://127.0.0.1:${idpPort}`
  const config = validateConfig(
    {
      listen: { host: '127.0.0.1', port: gwPort },
      auth: { issuer, discoveryRetry: 600_000 },
      servers: {
        echo: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] },
        // A server taking a user's secret: the account API runs, behind the same IdP.
        vault: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'echo.js')],
          credentials: { VAULT_TOKEN: { secret: 'vault-token' } },
        },
      },
      secrets: SEALING,
    },
    { file: 'test', baseDir: '/' },
  )
  const gateway = await startGateway(config, { log: pino({ level: 'silent' }) })
  try {
    // A token naming the issuer (no valid signature needed to reach the key lookup).
    const exp = Math.floor(Date.now() / 1000) + 300
    const token = `${b64({ alg: 'RS256', kid: 'k' })}.${b64({ iss: issuer, sub: 'u', exp })}.c2ln`
    for (let i = 0; i < 3; i++) {
      const res = await request(`${gateway.url}/mcp/echo`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      })
      const text = await res.body.text()
      assert.equal(res.statusCode, 503, text)
      assert.match(text, /the authorization server is unreachable/)
      // Whole seconds left of 600 (the test would have to stall for minutes to see less).
      const retry = Number(res.headers['retry-after'])
      assert.ok(Number.isInteger(retry) && retry > 60 && retry <= 600, `Retry-After ${retry}`)
      // The account API answers through the same builder, in its own words, with the same window.
      const api = await request(`${gateway.url}/account/api`, {
        headers: { authorization: `Bearer ${token}` },
      })
      assert.equal(api.statusCode, 503)
      assert.deepEqual(await api.body.json(), {
        error: 'idp_unavailable',
        message: 'the authorization server is unreachable; retry later',
      })
      const apiRetry = Number(api.headers['retry-after'])
      assert.ok(apiRetry > 60 && apiRetry <= 600, `account API Retry-After ${apiRetry}`)
      assert.equal(api.headers['cache-control'], 'no-store')
    }
  } finally {
    await gateway.close()
  }
})
