// Shutdown while the IdP holds a token exchange: the gateway must not wait for the IdP's
// answer (the exchange's own timeout here is ten minutes). Its HTTP clients are destroyed once
// every session is closed: no one is left to use an answer, and a hung IdP must not hold a
// SIGTERM up until the process deadline kills it.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import {
  EXCHANGE_CLIENTS,
  GATEWAY_AUDIENCE,
  startExchangeIdp,
  type ExchangeIdp,
} from '../helpers/exchange-idp.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { freePort } from '../helpers/ports.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { makeTestCa } from '../helpers/test-ca.js'

const SECRET_ENV = 'MCP_EDGE_TEST_EXCHANGE_SHUTDOWN_SECRET'
const TEN_MINUTES = 600_000

let idp: ExchangeIdp
let gateway: Gateway

before(async () => {
  const ca = makeTestCa()
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-exchange-shutdown-'))
  writeFileSync(join(dir, 'ca.pem'), ca.ca)
  writeFileSync(
    join(dir, 'policy.yaml'),
    'servers:\n  warehouse:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n',
  )
  idp = await startExchangeIdp({
    tls: ca,
    allow: { alice: ['warehouse-api'] },
    targets: { 'warehouse-api': ['read'] },
  })
  process.env[SECRET_ENV] = EXCHANGE_CLIENTS.basic.clientSecret
  const config = validateConfig(
    {
      listen: { host: '127.0.0.1', port: await freePort() },
      auth: {
        issuer: idp.issuer,
        caFile: 'ca.pem',
        audience: GATEWAY_AUDIENCE,
        roleClaims: [],
        tokenExchange: {
          clientId: EXCHANGE_CLIENTS.basic.clientId,
          clientSecret: { env: SECRET_ENV },
          clientAuth: 'client_secret_basic',
          timeout: TEN_MINUTES,
        },
      },
      servers: {
        warehouse: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'fixture.js')],
          shutdownGrace: 0,
          credentials: {
            WAREHOUSE_TOKEN: { exchange: { audience: 'warehouse-api', scope: 'read' } },
          },
        },
      },
      policies: join(dir, 'policy.yaml'),
    },
    { file: 'test', baseDir: dir },
  )
  gateway = await startGateway(config, { log: pino({ level: 'silent' }) })
})
after(async () => {
  await gateway.close()
  await idp.close()
  delete process.env[SECRET_ENV]
})

describe('shutdown while the IdP holds a token exchange', () => {
  it('closes without waiting for the answer, and drops the connection the IdP holds', {
    timeout: 60_000,
  }, async () => {
    idp.knobs.fail = { kind: 'stall' }
    const token = await idp.subjectToken('alice')
    const asked = once(idp.events, 'request')
    const abandoned = once(idp.events, 'abandoned')
    const answered = request(
      `${gateway.url}/mcp/warehouse`,
      modernToolCall(token, 'credential', { name: 'WAREHOUSE_TOKEN' }, { id: 1 }),
    ).then(
      async (res) => ({ status: res.statusCode, body: await res.body.text() }),
      (err: Error) => ({ status: 0, body: err.message }),
    )
    await asked
    // Held until the exchange's ten-minute timeout before the fix (the test's own timeout).
    await gateway.close()
    await abandoned
    const got = await answered
    // The call never got a token: whatever it was told, the process never ran it.
    assert.ok(!got.body.includes('"sha256"'), got.body)
    assert.equal(idp.received.length, 1)
  })
})
