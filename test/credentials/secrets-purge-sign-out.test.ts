// An operator's `mcp-edge secrets purge` of a broker user (someone who left) signs them out
// everywhere: two broker replicas on one real redis-server, a broker access token of the user
// that both accept, then the built command run with a replica's own config, then that token
// refused by both (401 invalid_token, "signed out everywhere"), told over Redis pub/sub, while
// another user's token is still accepted. The store names the user only by a hash.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createClient } from '@redis/client'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { newClient } from '../helpers/broker-raw.js'
import { startBrokerReplicas, type BrokerReplicas } from '../helpers/broker-replicas.js'
import { BOB, loginTokens } from '../helpers/broker-tokens.js'
import { runCli } from '../helpers/cli-run.js'
import { REDIRECT } from '../helpers/oauth-provider.js'
import { NO_REDIS } from '../helpers/redis.js'
import { replicaCall } from '../helpers/replica-call.js'
import { waitFor } from '../helpers/wait-for.js'

const SIGNED_OUT = 'the user was signed out everywhere; sign in again'

describe('secrets purge with the broker signs the user out on every replica', {
  skip: NO_REDIS,
  timeout: 300_000,
}, () => {
  let s: BrokerReplicas
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-purge-sign-out-'))
  before(async () => {
    s = await startBrokerReplicas()
  })
  after(async () => {
    await s?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** The replicas' public URL, where a client logs in (every request at A: the router's default). */
  const front = () => ({
    url: s.publicUrl,
    endpoint: (server: string) => `${s.publicUrl}/mcp/${server}`,
    idp: s.idp,
  })

  /** An MCP initialize with `token` at replica `via`: its status and challenge. */
  async function useAt(via: 'a' | 'b', token: string) {
    const res = await replicaCall(s, via, '/mcp/notes', {
      json: initBody(),
      headers: { authorization: `Bearer ${token}`, accept: 'application/json, text/event-stream' },
    })
    return { status: res.status, challenge: String(res.headers['www-authenticate'] ?? '') }
  }

  /** How many revocations replica `via` learned of from others (its metric). */
  async function learned(via: 'a' | 'b'): Promise<number> {
    const text = await (await request(`${s.replicas[via].url}/metrics`)).body.text()
    return Number(/^mcp_edge_revocations_total\{event="learned"\} (\d+)$/m.exec(text)?.[1] ?? 0)
  }

  it("refuses the purged user's broker token on both replicas (401 invalid_token, signed out), not another user's", async () => {
    const client = await newClient(front(), [REDIRECT])
    const { access: alice } = await loginTokens(front(), { client, redirectUri: REDIRECT })
    const { access: bob } = await loginTokens(front(), { client, redirectUri: REDIRECT, user: BOB })
    const aliceSub = String(decodeJwt(alice).sub)
    assert.notEqual(aliceSub, String(decodeJwt(bob).sub))
    for (const via of ['a', 'b'] as const)
      for (const token of [alice, bob])
        assert.equal((await useAt(via, token)).status, 200, `${via} accepts before the purge`)

    const learnedBefore = { a: await learned('a'), b: await learned('b') }
    const config = join(dir, 'gateway.yaml')
    writeFileSync(config, JSON.stringify(s.rawConfig('operator')), { mode: 0o600 })
    const r = await runCli(['secrets', 'purge', '--subject', aliceSub, '--config', config])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(
      r.stdout,
      `no secrets held for subject ${aliceSub} of ${s.publicUrl}; and the account and upstream tokens the broker kept for them; signed out everywhere\n`,
    )

    // Each replica learns it by message (neither made it): wait for that event, on both.
    for (const via of ['a', 'b'] as const) {
      await waitFor(
        async () => (await learned(via)) > learnedBefore[via],
        `${via} learned of the sign-out`,
      )
      const refused = await useAt(via, alice)
      assert.equal(refused.status, 401, `${via} refuses the purged user's token`)
      assert.match(refused.challenge, /error="invalid_token"/, via)
      assert.ok(refused.challenge.includes(`error_description="${SIGNED_OUT}"`), refused.challenge)
      assert.equal((await useAt(via, bob)).status, 200, `${via} still accepts another user's`)
    }

    // Listed in the store (a replica starting later loads it) under a hash, never the subject.
    const redis = createClient({ url: s.redis.url })
    redis.on('error', () => {})
    await redis.connect()
    try {
      const members = await redis.zRange(`${s.keyPrefix}broker:revoked`, 0, -1)
      const hash = createHash('sha256').update(aliceSub).digest('base64url')
      assert.ok(
        members.some((m) => m.startsWith(`s.${hash}.`)),
        `listed: ${members.join(' ')}`,
      )
      assert.ok(!members.some((m) => m.includes(aliceSub)), 'the subject itself is not stored')
    } finally {
      redis.destroy()
    }
  })
})
