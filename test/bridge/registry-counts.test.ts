// SessionRegistry's counts: what the bounds read before each new session or lane (`count` of a
// scope naming its server and owner, `scopeOf`) comes from counters kept on every path a session
// is opened or ends, not from a scan of every session. A model check over real processes: random
// sequences of open (one, or several at once), DELETE, reap, reclaim, eviction at a bound or at
// pool.max, a session's process crashing and a shared process crashing (every session on it
// ends), over shared and session-mode servers and several subjects, from a seeded PRNG. After
// each step, and while opens are under way, the counters must agree with a scan of the
// registry's sessions and with the sessions the test knows to be open or ended with their
// process not gone yet (`goneOf`: they count until then); every bound holds; and after
// shutdown every count is 0.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { type Hold, scopeOf } from '../../gateway/bridge/bounds.js'
import { goneOf } from '../../gateway/bridge/child.js'
import { BridgeError } from '../../gateway/bridge/errors.js'
import { SessionRegistry } from '../../gateway/bridge/registry.js'
import { ownerKey, type Session } from '../../gateway/bridge/session.js'
import { configSchema } from '../../gateway/config/schema.js'
import { createMetrics, zeroGauges } from '../../gateway/observability/metrics.js'
import { principal } from '../helpers/principal.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const log = pino({ level: 'silent' })
const tick = () => new Promise((r) => setImmediate(r))
/**
 * The server without the SDK: the model check asks of its ~75 processes only that they start,
 * answer and die when killed, and the SDK's imports cost each ~0.2 s of CPU.
 */
const plain = join(SERVERS_DIR, 'plain.js')

/** A deterministic PRNG (mulberry32): the same sequences on every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const base = { command: process.execPath, args: [plain], respawnBackoff: 10 }
/** Small bounds, so opens often meet one and evict an idle session to make room. */
const SERVERS = {
  a: { ...base, mode: 'shared', maxSessionsPerSubject: 3, maxSessions: 7 },
  b: { ...base, mode: 'shared', replicas: 2, maxSessionsPerSubject: 4 },
  // Every session a process of its own; at pool.max an idle session of the server is evicted.
  // A process the test kills before initialize failed its start: the next open of that user
  // after the window is a probe, never told its outcome here (no initialize is ever sent), so
  // it holds that user's other opens for the longer of requestTimeout and initializeTimeout,
  // plus 1 s (bridge/start-failures.ts).
  c: {
    ...base,
    pool: { min: 0, max: 2 },
    maxSessionsPerSubject: 3,
    requestTimeout: 100,
    initializeTimeout: 100,
  },
}
const LIMITS = { maxSessionsPerSubject: 6, maxSessions: 12 }
const subjects = ['u0', 'u1', 'u2', 'u3']

describe('SessionRegistry counts agree with a scan of every session', () => {
  for (const [seed, steps] of [
    [1, 60],
    [2, 60],
    [20261202, 90],
  ] as const) {
    it(`3 servers, ${subjects.length} subjects, seed ${seed}, ${steps} steps`, async () => {
      const random = prng(seed)
      const pickOf = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(random() * xs.length)]
      const config = configSchema.parse({ servers: SERVERS, limits: LIMITS })
      const metrics = createMetrics(zeroGauges())
      const registry = new SessionRegistry({ config, log, metrics })
      registry.start()
      // Every session the test opened and has not seen end. No initialize is ever sent, so
      // `initialized` settles exactly when the session is closed (by any path).
      const open = new Set<Session>()
      /** Those open, and those ended whose process is not gone yet: what the bounds count. */
      const counted = new Set<Session>()
      const opened = (s: Session) => {
        open.add(s)
        counted.add(s)
        void s.initialized.then(() => {
          open.delete(s)
          return goneOf(s.child).then(() => counted.delete(s))
        })
      }
      const tryOpen = async (server: string, sub: string) => {
        try {
          opened(await registry.open(server, principal(sub), log))
        } catch (err) {
          // At pool.max with every process another open's (not idle yet): nothing to evict. A
          // session whose process the test killed before initialize failed its start: its user
          // is refused for a window (bridge/start-failures.ts), before anything is counted.
          assert.ok(err instanceof BridgeError, String(err))
          assert.ok(
            ['subject_session_limit', 'too_many_sessions', 'server_unavailable'].includes(err.code),
            `refused with ${err.code}`,
          )
        }
      }
      const servers = Object.keys(SERVERS)
      const owners = subjects.map((s) => ownerKey(principal(s)))

      /** The counters against a scan of the registry's sessions (both see opens under way). */
      const indexAgreesWithScan = (where: string) => {
        for (const server of [...servers, undefined])
          for (const owner of [...owners, undefined]) {
            const scope = scopeOf({ server, owner })
            const scan = (h: Hold) => scope(h)
            assert.equal(
              registry.count(scope),
              registry.count(scan),
              `${where}: count ${server} ${owner}`,
            )
          }
      }

      const kinds: Record<string, () => Promise<void>> = {
        async open() {
          // Session-mode opens spawn a process each: fewer of them.
          const server = random() < 0.4 ? 'c' : pickOf(['a', 'b'])!
          await tryOpen(server, pickOf(subjects)!)
        },
        async openMany() {
          const n = 2 + Math.floor(random() * 3)
          const all = Array.from({ length: n }, () => tryOpen(pickOf(servers)!, pickOf(subjects)!))
          // Counted from the start of each open, before its process is attached.
          indexAgreesWithScan('opens under way')
          await Promise.all(all)
        },
        async delete() {
          await pickOf([...open])?.close()
        },
        async reap() {
          const s = pickOf([...open])
          if (s === undefined) return
          s.lastActive = 0
          // The reaper's sweep, now rather than at its next interval.
          ;(registry as unknown as { reapIdle(): void }).reapIdle()
          await s.initialized
        },
        async reclaim() {
          const scope = pickOf([
            scopeOf({ server: pickOf(servers) }),
            scopeOf({ owner: pickOf(owners) }),
            (h: Hold) => h.server === 'b',
          ])!
          await registry.reclaimIdle(scope, 'model check')
        },
        async crash() {
          // A session's own process exits: its session ends.
          const s = pickOf([...open].filter((x) => x.server === 'c'))
          if (s === undefined) return
          process.kill(s.child.pid, 'SIGKILL')
          await s.initialized
        },
        async crashShared() {
          // A shared process exits: every session on it ends (it restarts after respawnBackoff).
          if (random() < 0.7) return
          const s = pickOf([...open].filter((x) => x.server !== 'c'))
          if (s === undefined) return
          const pid = s.child.pid
          const on = [...open].filter((x) => x.child.pid === pid)
          process.kill(pid, 'SIGKILL')
          await Promise.all(on.map((x) => x.initialized))
        },
      }
      // Opens outnumber ends, so the bounds are met often.
      const names = [...Object.keys(kinds), 'open', 'open', 'openMany']
      const seen = new Map<string, number>()

      // A failing step still ends every process (the assertion's report, not a hang).
      let shut = false
      try {
        for (let step = 0; step < steps; step++) {
          const name = pickOf(names)!
          seen.set(name, (seen.get(name) ?? 0) + 1)
          await kinds[name]!()
          await tick()
          const where = `step ${step} (${name})`
          assert.equal(registry.size, open.size, `${where}: size`)
          indexAgreesWithScan(where)
          for (const server of [...servers, undefined])
            for (const owner of [...owners, undefined]) {
              const model = [...counted].filter(
                (s) =>
                  (server === undefined || s.server === server) &&
                  (owner === undefined || s.owner === owner),
              ).length
              assert.equal(
                registry.count(scopeOf({ server, owner })),
                model,
                `${where}: count ${server} ${owner} against the model`,
              )
            }
          // Every bound holds.
          for (const server of servers) {
            const c = config.servers[server]!
            assert.ok(registry.count(scopeOf({ server })) <= (c.maxSessions ?? Infinity), where)
            for (const owner of owners)
              assert.ok(
                registry.count(scopeOf({ server, owner })) <= c.maxSessionsPerSubject,
                where,
              )
          }
          for (const owner of owners)
            assert.ok(registry.count(scopeOf({ owner })) <= LIMITS.maxSessionsPerSubject, where)
          assert.ok(registry.count(scopeOf({})) <= LIMITS.maxSessions, where)
        }
        // The sequence met the paths it is meant to.
        for (const name of [
          'open',
          'openMany',
          'delete',
          'reap',
          'reclaim',
          'crash',
          'crashShared',
        ])
          assert.ok((seen.get(name) ?? 0) > 0, `no ${name} step`)

        const evicted = new Map<string, number>()
        for (const v of (await metrics.sessionsReclaimed.get()).values)
          evicted.set(
            String(v.labels.reason),
            (evicted.get(String(v.labels.reason)) ?? 0) + v.value,
          )
        assert.ok((evicted.get('session limit') ?? 0) > 0, 'an open evicted a session at a bound')
        assert.ok((evicted.get('process limit') ?? 0) > 0, 'an open evicted a session at pool.max')
        shut = true
        await registry.closeAll()
      } finally {
        if (!shut) await registry.closeAll()
      }
      await tick()
      assert.equal(open.size, 0, 'every session ended at shutdown')
      assert.equal(counted.size, 0, 'every process gone after shutdown')
      for (const server of [...servers, undefined])
        for (const owner of [...owners, undefined])
          assert.equal(registry.count(scopeOf({ server, owner })), 0, 'count after shutdown')
    })
  }
})
