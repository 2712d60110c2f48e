// A session whose process is replaced because its user's credentials changed counts the old
// process toward its bounds until that process is gone (ending-holds.ts, as an ended session
// does), not only the new one: a server whose process leaves a helper that ignores SIGTERM
// (servers/holder.js, `stubborn`) keeps the old group for up to three stopGraces after the
// replacement, and a user opening another session meanwhile must not hold more groups than their
// bound. Real gateway, real holder processes, the SDK v2 client; stopGrace is long, so the gap
// lasts until the test ends the helper itself, and every wait is for an event.
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { SecretOwner, UserSecrets } from '../../gateway/credentials/secrets.js'
import { scopeOf } from '../../gateway/bridge/bounds.js'
import { ownerKey } from '../../gateway/bridge/session.js'
import { initBody } from '../checklist/open-session.js'
import { gone, pidsIn } from '../helpers/pids.js'
import { postMcp } from '../helpers/post-mcp.js'
import { connectAs } from '../helpers/sdk-session.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const dir = mkdtempSync(join(tmpdir(), 'replaced-holds-'))
/** What the holder processes started, in order: each start's stubborn helper. */
const pidsFile = join(dir, 'pids')
const SERVERS = {
  hv: {
    command: process.execPath,
    args: [join(SERVERS_DIR, 'holder.js')],
    credentials: { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } },
    maxSessionsPerSubject: 2,
    // Longer than the test: the old group runs on until the test ends its helper.
    stopGrace: 60_000,
    pool: { min: 0 },
    env: { HOLDER_PIDS_FILE: pidsFile, HOLDER_START_HELPER: 'stubborn' },
  },
}
const POLICY = `${TEST_POLICY}  hv:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`

let stack: Stack
let secrets: UserSecrets
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: { credentials: { pollInterval: 20, elicitationTimeout: 60_000 } },
  })
  secrets = stack.gateway.secrets!
})
/** Everything the holders started, ended: no group is left for a 60 s grace. */
const killAll = () => {
  for (const pid of pidsIn(pidsFile))
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
}
after(async () => {
  killAll()
  await stack.close()
})

const waits = () =>
  stack.logLines.filter((l) => l.includes('at a bound: waiting for ended sessions or lanes')).length

describe('a replaced process counts toward maxSessionsPerSubject until it is gone', () => {
  it('2025-11-25: after a rotation the old group counts; an open waits for it, starting nothing, then opens', async () => {
    const alice: SecretOwner = { iss: stack.idp.issuer, sub: 'alice' }
    const principal = { iss: stack.gateway.issuer!, sub: 'alice' }
    const held = () =>
      stack.gateway.registry.count(scopeOf({ server: 'hv', owner: ownerKey(principal as never) }))
    await secrets.set(alice, 'vault_token', 'v1')
    const { client } = await connectAs(stack, 'alice', 'hv')
    try {
      const echo = async () => {
        const r = (await client.callTool({ name: 'echo', arguments: {} })) as {
          content: { text: string }[]
        }
        return Number(r.content[0]!.text.split(' ')[1])
      }
      const first = await echo()
      const [helper] = await waitFor(() => pidsIn(pidsFile).length === 1 && pidsIn(pidsFile))
      await secrets.set(alice, 'vault_token', 'v2')
      const second = await echo()
      assert.notEqual(second, first, 'the process was replaced')
      await waitFor(
        () => stack.logLines.some((l) => l.includes(`"replaced":${first}`)),
        'the replacement logged',
      )
      // Its stdin closed, it waits for its helper, which stops for nothing short of SIGKILL.
      assert.equal(gone(helper!), false, 'its helper runs on')
      assert.equal(held(), 2, 'the session, and its old process while its group is stopped')
      const started = pidsIn(pidsFile).length

      // Another session of alice's, at the bound: it waits for the old group, starting nothing.
      const before = waits()
      const token = await stack.token('alice', { server: 'hv' })
      let answered = false
      const reopen = postMcp(stack.local('hv'), initBody({}, '2025-11-25'), {
        authorization: `Bearer ${token}`,
      }).finally(() => (answered = true))
      await waitFor(() => answered || waits() > before, 'the open waiting')
      assert.equal(answered, false, 'answered while the old group was being stopped')
      assert.equal(pidsIn(pidsFile).length, started, 'no process started meanwhile')

      // The old group gone, it opens with a process of its own: one more.
      process.kill(helper!, 'SIGKILL')
      const opened = await reopen
      assert.equal(opened.status, 200, opened.text)
      assert.equal(gone(first), true, 'it opened once the old process was gone')
      assert.equal(pidsIn(pidsFile).length, started + 1)
      assert.equal(held(), 2)
    } finally {
      killAll()
      await client.close()
    }
  })
})

describe('a session ended while its replacement waits for its requests starts no process', () => {
  // The session's process is replaced at a request boundary: the replacement waits for the
  // requests in flight on the old one. The session ended meanwhile (DELETE) fails them, which
  // woke the replacement: it started a process for a session already gone, paid from the
  // user's process-start budget. limits.processStartsPerSubject 2 tells: the session's start
  // and one more.
  let fixture: Stack
  before(async () => {
    fixture = await startStack({
      servers: {
        fv: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'fixture.js')],
          credentials: { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } },
          pool: { min: 0 },
        },
      },
      policy: `${TEST_POLICY}  fv:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
      config: {
        credentials: { pollInterval: 20, elicitationTimeout: 60_000 },
        limits: { processStartsPerSubject: 2 },
      },
    })
  })
  after(() => fixture.close())

  const era = '2025-11-25'
  it(`${era}: DELETE while the replacement waits for a call in flight: the next session still gets its start`, async () => {
    const bob: SecretOwner = { iss: fixture.idp.issuer, sub: 'bob' }
    await fixture.gateway.secrets!.set(bob, 'vault_token', 'v1')
    const { client, transport } = await connectAs(fixture, 'bob', 'fv')
    let running!: () => void
    const started = new Promise<void>((resolve) => (running = resolve))
    // In flight on the process: it waits at its gate, forever.
    const gated = client
      .callTool({ name: 'gate', arguments: { name: 'g' } }, { onprogress: () => running() })
      .catch(() => {})
    await started
    await fixture.gateway.secrets!.set(bob, 'vault_token', 'v2')
    const waiting = () =>
      fixture.logLines.filter((l) => l.includes('the process is replaced once its requests')).length
    const before = waiting()
    const second = client.callTool({ name: 'pid', arguments: {} }).catch(() => {})
    await waitFor(() => waiting() > before, 'the replacement waiting for the call in flight')
    await transport.terminateSession()
    await Promise.all([gated, second])
    await client.close()
    // A new session: its start is the second of the window, not the third.
    const token = await fixture.token('bob', { server: 'fv' })
    const opened = await postMcp(fixture.local('fv'), initBody({}, era), {
      authorization: `Bearer ${token}`,
    })
    assert.equal(opened.status, 200, opened.text)
  })
})
