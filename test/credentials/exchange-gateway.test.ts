// The `exchange` credential source through the whole gateway: the IdP the gateway trusts
// (oidc-provider over https with a private CA, RFC 8693 grant registered) issues the user's
// token; the gateway exchanges it for one meant for a downstream API and starts the user's
// process with that, never with the user's own token. Refusal, renewal and an unreachable
// IdP end as tool errors with nothing run.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { after, before, beforeEach, describe, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { EXCHANGE_CLIENTS, startExchangeIdp, type ExchangeIdp } from '../helpers/exchange-idp.js'
import { exchangeConfig, exchangeDir } from '../helpers/exchange-stack.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { makeTestCa } from '../helpers/test-ca.js'

const sha = (v: string) => createHash('sha256').update(v).digest('hex')
const SECRET_ENV = 'MCP_EDGE_TEST_EXCHANGE_SECRET'

let idp: ExchangeIdp
let gateway: Gateway
const logLines: string[] = []
const auditLines: string[] = []

let dir: string

/** The gateway's config (exchange-stack.ts), with `exchange` options of its own. */
const gatewayConfig = (exchange: { timeout?: number } = {}) =>
  exchangeConfig({
    dir,
    idp,
    secretEnv: SECRET_ENV,
    exchange: { renewBefore: 60_000, ...exchange },
  })

before(async () => {
  const ca = makeTestCa()
  dir = exchangeDir(ca.ca)
  idp = await startExchangeIdp({
    tls: ca,
    allow: {
      alice: ['warehouse-api'],
      bob: ['warehouse-api'],
      carol: ['warehouse-api'],
      dave: ['warehouse-api'],
      mallory: [],
    },
    targets: { 'warehouse-api': ['read'] },
  })
  process.env[SECRET_ENV] = EXCHANGE_CLIENTS.basic.clientSecret
  const config = await gatewayConfig()
  gateway = await startGateway(config, {
    log: pino({ level: 'debug' }, { write: (l: string) => void logLines.push(l) }),
    auditDestination: { write: (l: string) => void auditLines.push(l) },
  })
})
after(async () => {
  await gateway.close()
  await idp.close()
  delete process.env[SECRET_ENV]
})
beforeEach(() => idp.reset())

let nextId = 1
async function call(token: string): Promise<{
  result?: { content: { text: string }[]; isError?: boolean }
  error?: { code: number; message: string }
}> {
  const res = await request(
    `${gateway.url}/mcp/warehouse`,
    modernToolCall(token, 'credential', { name: 'WAREHOUSE_TOKEN' }, { id: nextId++ }),
  )
  return (await res.body.json()) as never
}

/** The exchanged tokens the IdP issued, in order, read from its answers. */
function capture(): string[] {
  const issued: string[] = []
  idp.knobs.tamper = (body) => {
    issued.push(String((body as { access_token?: unknown }).access_token))
    return body
  }
  return issued
}

describe('credentials from RFC 8693 token exchange, through the gateway', () => {
  it("the process runs with the exchanged token for the downstream API, each user their own, never the user's token", async () => {
    const issued = capture()
    const alice = await idp.subjectToken('alice')
    const bob = await idp.subjectToken('bob')
    const a = JSON.parse((await call(alice)).result!.content[0]!.text) as {
      sha256: string
      pid: number
    }
    const b = JSON.parse((await call(bob)).result!.content[0]!.text) as {
      sha256: string
      pid: number
    }
    assert.equal(issued.length, 2)
    assert.equal(a.sha256, sha(issued[0]!))
    assert.equal(b.sha256, sha(issued[1]!))
    assert.notEqual(a.sha256, sha(alice))
    assert.notEqual(a.pid, b.pid)
    // What the IdP received: the grant, the user's token as subject, the audience and scope asked.
    const form = idp.received[0]!.form
    assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:token-exchange')
    assert.equal(form.get('subject_token'), alice)
    assert.equal(form.get('audience'), 'warehouse-api')
    assert.equal(form.get('scope'), 'read')
    // Cached while fresh: the next call exchanges nothing and runs on the same process.
    const again = JSON.parse((await call(alice)).result!.content[0]!.text) as {
      sha256: string
      pid: number
    }
    assert.equal(again.pid, a.pid)
    assert.equal(idp.received.length, 2)
    const lines = auditLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.server === 'warehouse' && e.outcome === 'ok')
    assert.deepEqual(lines.at(-1)!.credentials, [{ name: 'WAREHOUSE_TOKEN', source: 'exchange' }])
    for (const t of [alice, bob, ...issued]) {
      assert.ok(!logLines.some((l) => l.includes(t)), 'no token in the log')
      assert.ok(!auditLines.some((l) => l.includes(t)), 'no token in the audit')
    }
  })

  it('a token within renewBefore of expiry is exchanged again, and the process replaced', async () => {
    // 30 s of life, renewed 60 s before expiry: never fresh, exchanged at every request.
    idp.knobs.expiresIn = 30
    const issued = capture()
    // A user with nothing cached yet (tokens are cached per user).
    const carol = await idp.subjectToken('carol')
    const first = JSON.parse((await call(carol)).result!.content[0]!.text) as {
      sha256: string
      pid: number
    }
    const issuedAgain = capture()
    const second = JSON.parse((await call(carol)).result!.content[0]!.text) as {
      sha256: string
      pid: number
    }
    assert.equal(first.sha256, sha(issued[0]!))
    assert.equal(second.sha256, sha(issuedAgain[0]!))
    assert.notEqual(second.sha256, first.sha256)
    assert.notEqual(second.pid, first.pid, 'a new process for the new value')
  })

  it('the IdP refuses the exchange (the user may not have that audience): a tool error, nothing run', async () => {
    const r = await call(await idp.subjectToken('mallory'))
    assert.equal(r.result?.isError, true, JSON.stringify(r))
    assert.match(r.result!.content[0]!.text, /warehouse-api/)
    assert.equal(idp.received.length, 1)
  })

  it('the IdP fails (503): a tool error; the next request exchanges again', async () => {
    idp.knobs.fail = { kind: 'answer', status: 503, body: 'down' }
    const token = await idp.subjectToken('dave')
    const r = await call(token)
    assert.equal(r.result?.isError, true)
    idp.knobs.fail = undefined
    const ok = await call(token)
    assert.notEqual(ok.result?.isError, true, JSON.stringify(ok))
  })
})

describe('shutdown while the IdP holds a token exchange', () => {
  // The gateway must not wait for the IdP's answer (the exchange's own timeout here is ten
  // minutes): its HTTP clients are destroyed once every session is closed, when no one is left
  // to use an answer, so a hung IdP cannot hold SIGTERM up until the process deadline.
  it('closes without waiting for the answer, and drops the connection the IdP holds', {
    timeout: 60_000,
  }, async () => {
    const other = await startGateway(await gatewayConfig({ timeout: 600_000 }), {
      log: pino({ level: 'silent' }),
    })
    idp.knobs.fail = { kind: 'stall' }
    const token = await idp.subjectToken('alice')
    const asked = once(idp.events, 'request')
    const abandoned = once(idp.events, 'abandoned')
    const answered = request(
      `${other.url}/mcp/warehouse`,
      modernToolCall(token, 'credential', { name: 'WAREHOUSE_TOKEN' }, { id: nextId++ }),
    ).then(
      async (res) => res.body.text(),
      (err: Error) => err.message,
    )
    await asked
    // Before the fix this waited for the exchange's ten-minute timeout (the test's own timeout).
    await other.close()
    await abandoned
    // The call never got a token: whatever it was told, the process never ran it.
    assert.ok(!(await answered).includes('"sha256"'))
    assert.equal(idp.received.length, 1)
  })
})
