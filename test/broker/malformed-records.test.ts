// Records in the broker's store that are not what the gateway wrote (someone with write access
// to Redis, a half-written value, another version): every read goes through one parser
// (store/record.ts), which counts such a record as absent and logs its kind, never its value.
// Two broker replicas on one real redis-server, a real upstream IdP, real logins.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createClient } from '@redis/client'
import { brokerLogin } from '../helpers/broker-browser.js'
import {
  startBrokerReplicas,
  type BrokerReplicas,
  type ReplicaName,
} from '../helpers/broker-replicas.js'
import { REDIRECT } from '../helpers/oauth-provider.js'
import { NO_REDIS } from '../helpers/redis.js'
import { authorizeUrl, registerClient, replicaCall } from '../helpers/replica-call.js'

/** In every hostile value: no log line may quote it. */
const MARK = 'MARK-3e1c'
const ALICE = '00000000-0000-0000-0000-00000000a11c'
const LOGGED = 'a stored record is not what this gateway writes'

/** Values the gateway never writes, by what is wrong with them. */
const HOSTILE: Record<string, string> = {
  'not JSON': `{${MARK}`,
  'half-written': `{"accountId":"${MARK}","grantId":"g`,
  array: `["${MARK}"]`,
  number: '5',
  null: 'null',
  string: `"${MARK}"`,
  'a field of another type': `{"grantId":["${MARK}"],"accountId":5,"sub":5,"roles":"${MARK}"}`,
  '__proto__ key': `{"__proto__":{"grantId":"${MARK}","roles":["mcp-admin"]},"clientId":"c"}`,
  'nested __proto__ key': `{"clientId":"c","extra":{"a":[{"__proto__":{"x":"${MARK}"}}]}}`,
  'missing fields': `{"roles":["mcp-admin"],"email":"${MARK}"}`,
  huge: `{"accountId":"${MARK}${'x'.repeat(2 << 20)}"}`,
}

let s: BrokerReplicas
let clientId: string

const token = (via: ReplicaName, form: Record<string, string>) =>
  replicaCall(s, via, '/token', { form })

/** Writes `value` at `key` (without the stack's prefix) in Redis. */
async function write(key: string, value: string): Promise<void> {
  const client = createClient({ url: s.redis.url })
  client.on('error', () => {})
  await client.connect()
  try {
    await client.set(s.keyPrefix + key, value, { EX: 600 })
  } finally {
    client.destroy()
  }
}

/** The log lines `via` wrote from `mark` on: one names `kind`, none quotes a hostile value. */
function logged(via: ReplicaName, mark: number, kind: string, what: string): void {
  const lines = s.replicas[via].logLines.slice(mark)
  assert.ok(
    lines.some((l) => l.includes(LOGGED) && l.includes(`"kind":"${kind}"`)),
    `${what}: logged as ${kind}`,
  )
  assert.ok(!lines.some((l) => l.includes(MARK)), `${what}: no log line quotes the value`)
  assert.ok(!lines.some((l) => l.includes('server_error')), `${what}: no server error`)
}

describe('malformed records in the broker store', { skip: NO_REDIS, timeout: 600_000 }, () => {
  before(async () => {
    s = await startBrokerReplicas()
    clientId = await registerClient(s, 'a', 'malformed-records client')
  })
  after(() => s?.close())

  it('a refresh token whose record is not as written: 400 invalid_grant on either replica, its kind logged', async () => {
    for (const via of ['a', 'b'] as const)
      for (const [what, value] of Object.entries(HOSTILE)) {
        const refreshToken = randomBytes(24).toString('base64url')
        const stored = createHash('sha256').update(refreshToken).digest('base64url')
        await write(`oidc:RefreshToken:${stored}`, value)
        const mark = s.replicas[via].logLines.length
        const res = await token(via, {
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
          client_id: clientId,
        })
        assert.equal(res.status, 400, `${via} ${what}: ${res.text.slice(0, 200)}`)
        assert.equal(res.json.error, 'invalid_grant', `${via} ${what}`)
        logged(via, mark, 'oidc RefreshToken', `${via} ${what}`)
      }
  })

  it('a client whose record is not as written: 401 invalid_client on either replica, its kind logged', async () => {
    for (const via of ['a', 'b'] as const)
      for (const [what, value] of Object.entries(HOSTILE)) {
        const id = randomBytes(12).toString('base64url')
        await write(`oidc:Client:${id}`, value)
        const mark = s.replicas[via].logLines.length
        const res = await token(via, {
          grant_type: 'refresh_token',
          refresh_token: 'whatever',
          client_id: id,
        })
        assert.equal(res.status, 401, `${via} ${what}: ${res.text.slice(0, 200)}`)
        assert.equal(res.json.error, 'invalid_client', `${via} ${what}`)
        logged(via, mark, 'oidc Client', `${via} ${what}`)
      }
  })

  it('a sign-in transaction not as written: the callback says the sign-in expired (400), on either replica, its kind logged', async () => {
    for (const via of ['a', 'b'] as const)
      for (const [what, value] of Object.entries(HOSTILE)) {
        const state = randomBytes(16).toString('base64url')
        await write(`broker:tx:${state}`, value)
        const mark = s.replicas[via].logLines.length
        const res = await replicaCall(s, via, `/oauth/callback?state=${state}&code=c`)
        assert.equal(res.status, 400, `${via} ${what}: ${res.text.slice(0, 200)}`)
        assert.match(res.text, /This sign-in has expired/, `${via} ${what}`)
        logged(via, mark, 'sign-in transaction', `${via} ${what}`)
      }
  })

  it("a user's account not as written: the refresh is refused (400 invalid_grant) as for a user gone, on either replica", async () => {
    for (const [via, what] of [
      ['a', 'not JSON'],
      ['b', '__proto__ key'],
      ['b', 'missing fields'],
    ] as const) {
      const { url, verifier } = authorizeUrl(s, clientId)
      s.router.mode = via
      const { callback } = await brokerLogin(url, { redirectUri: REDIRECT, jar: new Map() })
      const code = callback.searchParams.get('code')
      assert.ok(code, `no code: ${callback.href}`)
      const issued = await token(via, {
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        redirect_uri: REDIRECT,
        client_id: clientId,
        resource: `${s.publicUrl}/mcp/notes`,
      })
      assert.equal(issued.status, 200, issued.text)
      await write(`broker:account:${ALICE}`, HOSTILE[what]!)
      const mark = s.replicas[via].logLines.length
      const res = await token(via, {
        grant_type: 'refresh_token',
        refresh_token: issued.json.refresh_token!,
        client_id: clientId,
      })
      assert.equal(res.status, 400, `${via} ${what}: ${res.text}`)
      assert.equal(res.json.error, 'invalid_grant', `${via} ${what}`)
      logged(via, mark, 'account', `${via} ${what}`)
    }
  })

  it('a sign-in hand-off not as written: the finish step says the sign-in expired (400), on either replica, its kind logged; no code reaches the client', async () => {
    const cases: [ReplicaName, string, string][] = [
      ['a', 'not JSON', HOSTILE['not JSON']!],
      ['b', '__proto__ key', HOSTILE['__proto__ key']!],
      ['a', 'missing fields', HOSTILE['missing fields']!],
      ['b', 'a field of another type', HOSTILE['a field of another type']!],
      ['a', 'huge', HOSTILE.huge!],
    ]
    for (const [via, what, value] of cases) {
      s.router.mode = via
      const jar = new Map<string, string>()
      const { url } = authorizeUrl(s, clientId)
      // Up to the broker's own interaction page, then through the upstream login up to the
      // hand-off to the finish step, whose record is replaced before the browser follows it.
      const started = await brokerLogin(url, { redirectUri: `${s.publicUrl}/interaction/`, jar })
      const uid = started.callback.pathname.split('/')[2]!
      const { callback } = await brokerLogin(started.callback.href, {
        redirectUri: `${s.publicUrl}/interaction/${uid}/finish`,
        jar,
      })
      const t = callback.searchParams.get('t')
      assert.ok(t, `${via} ${what}: no hand-off token in ${callback.href}`)
      await write(`broker:finish:${t}`, value)
      const mark = s.replicas[via].logLines.length
      const res = await replicaCall(s, via, `${callback.pathname}${callback.search}`, {
        headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
      })
      assert.equal(res.status, 400, `${via} ${what}: ${res.text.slice(0, 200)}`)
      assert.match(res.text, /This sign-in has expired/, `${via} ${what}`)
      assert.equal(res.headers.location, undefined, `${via} ${what}: not sent on`)
      assert.ok(!res.text.includes('code='), `${via} ${what}: no code`)
      logged(via, mark, 'sign-in handoff', `${via} ${what}`)
    }
  })
})
