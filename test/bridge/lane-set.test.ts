// LaneSet's indexes: what a request counts against its cap (`runningOf`), whether a principal
// still has a lane of a server (`has`), how many lanes live (`size`), which lanes a credential
// change retires (`retireStale`) and what the bounds count before a start (`count` of a scope
// naming its server and owner) come from the index and counters, not from a scan of every
// principal's lanes. A model check: random sequences of start, add, lease (alone, plain), park,
// release, pin, retire, exit, crash, reap, reclaim and credential changes over several servers
// and principals, from a seeded PRNG; after each step the indexes must agree with a brute-force
// scan of the lanes the test knows to be alive, starting or still exiting.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { pino } from 'pino'
import { type Hold, scopeOf } from '../../gateway/bridge/bounds.js'
import type { Child } from '../../gateway/bridge/child.js'
import { HELD, Lane, type LaneUser } from '../../gateway/bridge/lane.js'
import { LaneEvents } from '../../gateway/bridge/lane-events.js'
import { LaneSet, take } from '../../gateway/bridge/lane-set.js'
import { configSchema } from '../../gateway/config/schema.js'
import { destroyed, timersMade } from '../helpers/timers-made.js'

const log = pino({ level: 'silent' })
const tick = () => new Promise((r) => setImmediate(r))

/** A deterministic PRNG (mulberry32): the same sequences on every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A process as LaneSet sees one: alive until closed (retired) or crashed. The index is pure
 * bookkeeping, so thousands of steps need no real processes; the lane tests beside this one
 * drive the same paths with real stdio servers.
 */
class StandIn implements Child {
  readonly pid = 0
  gone = false
  /** Closed (retired), and not gone yet: the lane counts toward the bounds until `exit`. */
  closing = false
  exit = () => {}
  private markExited!: () => void
  /** As a process's: once it exited (crashed, or ended by its close). */
  readonly exited = new Promise<void>((resolve) => (this.markExited = resolve))
  onmessage?: (message: JSONRPCMessage) => void
  onexit?: () => void
  get alive(): boolean {
    return !this.gone
  }
  async send(): Promise<void> {}
  private closed: Promise<void> | undefined
  /** Once, however often called, as a process's. */
  close(): Promise<void> {
    this.closed ??= new Promise((resolve) => {
      this.gone = true
      this.closing = true
      this.exit = () => {
        this.closing = false
        this.markExited()
        resolve()
      }
    })
    return this.closed
  }
  retag(): void {}
  warn(): void {}
  /** The process exits by itself (its close, the stop ladder on its group, still to come). */
  crash(): void {
    this.gone = true
    this.markExited()
    this.onexit?.()
  }
}

const user = (): LaneUser => ({ fromServer() {}, lost() {} })

/** What a lane counts as running, written out again: a request alone (not parked), or plain ones. */
function runs(l: Lane): number {
  if (l.user !== undefined && !l.parked) return 1
  return l.plain.size > 0 ? 1 : 0
}

const cases = [
  { servers: 1, owners: 1, ids: 1, steps: 400 },
  { servers: 1, owners: 4, ids: 2, steps: 600 },
  { servers: 2, owners: 3, ids: 3, steps: 800 },
  { servers: 3, owners: 8, ids: 2, steps: 1200 },
]

describe('LaneSet index agrees with a scan of every lane', () => {
  for (const c of cases)
    for (const seed of [1, 2, 3, 20261202]) {
      it(`${c.servers} servers, ${c.owners} principals, ${c.ids} credentials each, seed ${seed}`, async () => {
        const random = prng(seed)
        const pickOf = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
        const servers = Array.from({ length: c.servers }, (_, i) => `s${i}`)
        const owners = Array.from({ length: c.owners }, (_, i) => JSON.stringify(['iss', `u${i}`]))
        const keyOf = (s: string, o: string, id: number) =>
          `${s}\n${o}${id === 0 ? '' : `\n#fp${id}`}`
        const lanes = new LaneSet({
          config: configSchema.parse({ servers: { s0: { command: process.execPath } } }),
          plainConcurrency: 3,
          log,
          events: new LaneEvents(4),
          changed() {},
        })
        // Everything the test added; alive while its stand-in is (retire closes it, crash ends it).
        const added: Lane[] = []
        const starting = new Set<Hold>()
        const alive = () => added.filter((l) => !(l.child as StandIn).gone)

        const steps: Record<string, () => void | Promise<void>> = {
          begin() {
            const hold = { server: pickOf(servers), owner: pickOf(owners) }
            starting.add(hold)
            lanes.begin(hold)
          },
          end() {
            const hold = pickOf([...starting])
            if (hold === undefined) return
            starting.delete(hold)
            lanes.end(hold)
          },
          add() {
            const [server, owner] = [pickOf(servers), pickOf(owners)]
            const key = keyOf(server, owner, Math.floor(random() * c.ids))
            const lane = new Lane(key, server, owner, new StandIn(), {} as never, () => {})
            if (random() < 0.5) take(lane, random() < 0.5 ? HELD : user())
            added.push(lane)
            lanes.add(lane)
          },
          alone() {
            const lane = pickOf(alive().filter((l) => lanes.fits(l, HELD)))
            if (lane !== undefined) take(lane, HELD)
          },
          plain() {
            const lane = pickOf(alive().filter((l) => lanes.fits(l, user())))
            if (lane !== undefined) take(lane, user())
          },
          park() {
            const lane = pickOf(alive().filter((l) => l.user !== undefined))
            if (lane !== undefined) lane.parked = true
          },
          release() {
            const lane = pickOf(alive().filter((l) => l.busy))
            if (lane === undefined) return
            const share = [...lane.plain][0]
            if (share !== undefined) lane.leave(share)
            else {
              lane.user = undefined
              lane.parked = false
            }
          },
          pin() {
            const lane = pickOf(alive())
            if (lane !== undefined) lane.pins.add(() => {})
          },
          retire() {
            const lane = pickOf(alive())
            if (lane !== undefined) void lanes.retire(lane)
          },
          exit() {
            const lane = pickOf(added.filter((l) => (l.child as StandIn).closing))
            if (lane !== undefined) (lane.child as StandIn).exit()
          },
          crash() {
            const lane = pickOf(alive())
            if (lane !== undefined) (lane.child as StandIn).crash()
          },
          stale() {
            const [server, owner] = [pickOf(servers), pickOf(owners)]
            const current = keyOf(server, owner, Math.floor(random() * c.ids))
            const before = alive().filter(
              (l) => l.server === server && l.owner === owner && l.key !== current,
            )
            lanes.retireStale(server, owner, current)
            // The same lanes a scan of every key would end or mark, and no other.
            for (const l of before)
              assert.equal((l.child as StandIn).gone || l.stale, true, `${l.key} retired or stale`)
          },
          reap() {
            const lane = pickOf(alive())
            if (lane !== undefined) lane.lastUsed = 0
            lanes.reap(60_000)
          },
          reclaim() {
            // Ends one at once; its process exits at a later `exit` step.
            const server = pickOf(servers)
            void lanes.reclaimIdle((h) => h.server === server, 'model check')
          },
        }
        const names = Object.keys(steps)

        for (let step = 0; step < c.steps; step++) {
          const name = pickOf(names)
          await steps[name]!()
          // Ended lanes' closes settle (they count while ending).
          await tick()
          const where = `step ${step} (${name})`
          const live = alive()
          assert.equal(lanes.size, live.length, `${where}: size`)
          // What the bounds count: live, starting and ending lanes, from the index (a scope naming
          // its server and owner) and from a scan (the same test, unnamed), against the model.
          const closing = added.filter((l) => (l.child as StandIn).closing)
          for (const server of [...servers, undefined])
            for (const owner of [...owners, undefined]) {
              const scope = scopeOf({ server, owner })
              const scan = (h: Hold) => scope(h)
              const model = [...live, ...starting, ...closing].filter(scan).length
              assert.equal(lanes.count(scope), model, `${where}: count ${server} ${owner}`)
              assert.equal(lanes.count(scan), model, `${where}: count (scan) ${server} ${owner}`)
            }
          for (const server of servers)
            for (const owner of owners) {
              const mine = (h: Hold) => h.server === server && h.owner === owner
              const scanned =
                live.filter(mine).reduce((n, l) => n + runs(l), 0) +
                [...starting].filter(mine).length
              assert.equal(lanes.runningOf(server, owner), scanned, `${where}: runningOf`)
              assert.equal(lanes.running(mine), scanned, `${where}: running`)
              assert.equal(lanes.has(server, owner), live.some(mine), `${where}: has`)
              for (let id = 0; id < c.ids; id++) {
                const key = keyOf(server, owner, id)
                const free = lanes.pick(key, HELD, () => true)
                assert.equal(
                  free !== undefined,
                  live.some((l) => l.key === key),
                  `${where}: pick`,
                )
                if (free !== undefined) assert.equal(live.includes(free), true, `${where}: live`)
              }
            }
        }
        const all = lanes.takeAll()
        assert.equal(all.length, alive().length)
        assert.equal(lanes.size, 0)
        const closing = added.filter((l) => (l.child as StandIn).closing)
        assert.equal(
          lanes.count(scopeOf({})),
          starting.size + closing.length,
          'count after takeAll',
        )
        for (const server of servers)
          for (const owner of owners) assert.equal(lanes.has(server, owner), false)
      })
    }
})

describe('LaneSet forgets a lane', () => {
  // Each way a lane is forgotten: its request timeouts' timer goes with it, not when next due.
  for (const how of ['retired', 'exited'] as const)
    it(`${how}: the lane's timeout timer is cleared`, async () => {
      const lanes = new LaneSet({
        config: configSchema.parse({ servers: { s0: { command: process.execPath } } }),
        plainConcurrency: 3,
        log,
        events: new LaneEvents(4),
        changed() {},
      })
      const child = new StandIn()
      try {
        await timersMade((made) => {
          const lane = new Lane('s0\no', 's0', 'o', child, {} as never, () => {})
          lanes.add(lane)
          lane.timeouts.add(60_000, () => assert.fail('cancelled')).cancel()
          assert.equal(made.length, 1)
          assert.equal(destroyed(made[0]!), false)
          if (how === 'retired') void lanes.retire(lane)
          else child.crash()
          assert.equal(destroyed(made[0]!), true)
        })
      } finally {
        child.exit()
      }
    })
})
