// /readyz follows the IdP: not ready while its keys cannot be fetched, ready once they can,
// without any request having to come first.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { startDevIdp } from '../../gateway/devidp/provider.js'
import { DEMO_ROLES, scopesForRoles } from '../helpers/dev-roles.js'
import { startGateway } from '../../gateway/gateway.js'
import { freePort } from '../helpers/ports.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

it('an IdP that starts after the gateway makes it ready, with no request needed', async () => {
  const [idpPort, gwPort] = [await freePort(), await freePort()]
  const issuer = `http://127.0.0.1:${idpPort}`
  const config = validateConfig(
    {
      listen: { host: '127.0.0.1', port: gwPort },
      // Fetched again 600 ms after each failure (the default, 5.5 s, is 550 looks of a wait).
      auth: { issuer, discoveryRetry: 100 },
      servers: { echo: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] } },
    },
    { file: 'test', baseDir: '/' },
  )
  const gateway = await startGateway(config, { log: pino({ level: 'silent' }) })
  let idp: Awaited<ReturnType<typeof startDevIdp>> | undefined
  try {
    const ready = async () => {
      const res = await request(`${gateway.url}/readyz`)
      return { status: res.statusCode, body: (await res.body.json()) as { problems: string[] } }
    }
    const before = await ready()
    assert.equal(before.status, 503)
    assert.match(before.body.problems[0]!, /signing keys/)
    idp = await startDevIdp({
      port: idpPort,
      resources: [`${gateway.url}/mcp/echo`],
      scopesFor: scopesForRoles(DEMO_ROLES),
      stateFile: false,
    })
    let now = before
    await waitFor(
      async () => (now = await ready()).status === 200,
      () => JSON.stringify(now.body),
    )
    assert.equal(now.status, 200, JSON.stringify(now.body))
  } finally {
    await gateway.close()
    await idp?.close()
  }
})
