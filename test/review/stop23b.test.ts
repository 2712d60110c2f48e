// Stop 23 (continued, see stop23.test.ts): per-user credentials from outside, the parts that
// are the configuration and the token exchange:
// - a credential variable also set by `env`, `inheritEnv` or `identityEnv` ran users who had
//   not set theirs with that other value: refused at start-up;
// - with the MCP client's own token traded (no broker), the exchanged token was cached per user
//   only: a second app of the user ran with what the IdP exchanged for the first one.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import type { Gateway } from '../../gateway/gateway.js'
import { GATEWAY_AUDIENCE, type ExchangeIdp } from '../helpers/exchange-idp.js'
import { startExchangeStack, type ExchangeStack } from '../helpers/exchange-stack.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { configProblems } from '../helpers/config-problems.js'

const VAULT = { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } }
const sha = (v: string) => createHash('sha256').update(v).digest('hex')
const textOf = (result: unknown) =>
  ((result as { content?: { text: string }[] }).content ?? []).map((c) => c.text).join('')

describe('stop 23: a credential variable takes no other value', () => {
  const problems = configProblems
  const server = (extra: Record<string, unknown>) => ({
    servers: { vault: { command: 'node', credentials: VAULT, ...extra } },
  })

  it('a shared value under that name (env, inheritEnv, identityEnv) is refused at start-up', () => {
    for (const [extra, by, variable] of [
      [{ env: { VAULT_TOKEN: 'the-bot-token' } }, 'env', 'VAULT_TOKEN'],
      [{ inheritEnv: ['VAULT_TOKEN'] }, 'inheritEnv', 'VAULT_TOKEN'],
      [
        { identityEnv: true, credentials: { MCP_EDGE_SUBJECT: { secret: 'who' } } },
        'identityEnv',
        'MCP_EDGE_SUBJECT',
      ],
    ] as const) {
      const got = problems(server(extra))
      assert.equal(got.length, 1, JSON.stringify(got))
      assert.match(got[0]!, new RegExp(`^servers\\.vault\\.credentials\\.${variable}: `))
      assert.match(got[0]!, new RegExp(`${variable} is also set by ${by}`))
    }
  })

  it('held: other variables in env and inheritEnv, and identityEnv beside credentials, are fine', () => {
    assert.deepEqual(
      problems(server({ env: { OTHER: 'x' }, inheritEnv: ['LANG'], identityEnv: true })),
      [],
    )
  })
})

describe("stop 23: an exchanged token is one client's: another client of the same user gets its own", () => {
  let stack: ExchangeStack
  let idp: ExchangeIdp
  let gateway: Gateway

  before(async () => {
    stack = await startExchangeStack('MCP_EDGE_STOP23_EXCHANGE_SECRET')
    ;({ idp, gateway } = stack)
  })
  after(() => stack?.close())

  async function call(token: string, id: number) {
    const res = await request(
      `${gateway.url}/mcp/warehouse`,
      modernToolCall(token, 'credential', { name: 'WAREHOUSE_TOKEN' }, { id }),
    )
    const json = (await res.body.json()) as { result?: { content: { text: string }[] } }
    return JSON.parse(textOf(json.result ?? {})) as { sha256: string; pid: number }
  }

  it("a second app's token is exchanged itself; the first app's exchanged token stays the first app's", async () => {
    const issued: string[] = []
    idp.knobs.tamper = (body) => {
      issued.push(String((body as { access_token?: unknown }).access_token))
      return body
    }
    const broad = await idp.subjectToken('alice')
    // The same user through another app (its own client id, a token the IdP signed for it).
    const now = Math.floor(Date.now() / 1000)
    const narrow = await idp.forge({
      iss: idp.issuer,
      sub: 'alice',
      aud: GATEWAY_AUDIENCE,
      client_id: 'narrow-app',
      scope: 'mcp:read',
      iat: now,
      exp: now + 600,
    })
    const a = await call(broad, 1)
    const b = await call(narrow, 2)
    assert.equal(idp.received.length, 2, 'each app had its own token exchanged')
    assert.equal(idp.received[1]!.form.get('subject_token'), narrow)
    assert.equal(a.sha256, sha(issued[0]!))
    assert.equal(b.sha256, sha(issued[1]!), "the narrow app's process runs with its own exchange")
    // held: each app's exchanged token is still cached for it.
    assert.equal((await call(broad, 3)).sha256, sha(issued[0]!))
    assert.equal((await call(narrow, 4)).sha256, sha(issued[1]!))
    assert.equal(idp.received.length, 2)
  })
})
