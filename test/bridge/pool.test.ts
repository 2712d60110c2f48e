// The warm pool seeing demand coming: a miss raises the warm target and warm processes appear
// at once; the target stays within pool.burst and pool.max; a quiet cooldown (on an injected
// clock) ends the surplus; a process with an env of its own never gets a warm one. Real
// processes from servers/; every wait is for a pool event, never for a duration.
import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import { pino } from 'pino'
import { ProcessPool } from '../../gateway/bridge/pool.js'
import type { Child } from '../../gateway/bridge/child.js'
import { configSchema, type ServerConfig } from '../../gateway/config/schema.js'
import { recorder } from '../helpers/log-recorder.js'
import { gone, pidsIn } from '../helpers/pids.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { reaped, waitFor } from '../helpers/wait-for.js'

/**
 * The server without the SDK: the pool's cases ask of their ~60 warm processes only that they
 * start and answer its ping, and the SDK's imports cost each ~0.2 s of CPU.
 */
const PLAIN = join(SERVERS_DIR, 'plain.js')

/** A server's config as the schema fills it in, with this `pool`. */
function server(pool: Record<string, unknown>): ServerConfig {
  return configSchema.parse({
    // Demand warming is opt-in (burst 0 by default): on here unless a case says otherwise.
    servers: { echo: { command: process.execPath, args: [PLAIN], pool: { burst: 8, ...pool } } },
  }).servers.echo!
}

/** A pool whose log messages are events (`ready` per warm process) and whose clock is ours. */
function harness(pool: Record<string, unknown>) {
  const events = new EventEmitter()
  const clock = { t: 1_000_000 }
  const log = pino({ level: 'debug' }, {
    write: (line: string) => void events.emit('log', JSON.parse(line).msg),
  } as never)
  let ready = 0
  events.on('log', (msg: string) => {
    if (msg === 'warm server process ready') events.emit('ready', ++ready)
  })
  const p = new ProcessPool({ name: 'echo', config: server(pool), log, now: () => clock.t })
  /** Resolves once `n` warm processes were ready since the pool was made. */
  const readyCount = async (n: number) => {
    while (ready < n) await once(events, 'ready')
  }
  /** Resolves once the pool holds `n` warm processes (each ready event may hand one out). */
  const warm = async (n: number) => {
    while (p.warm !== n) await once(events, 'log')
  }
  return { p, log, clock, readyCount, warm, ready: () => ready }
}

const pools: ProcessPool[] = []
const taken: Child[] = []
afterEach(async () => {
  await Promise.all(taken.splice(0).map((c) => c.close()))
  await Promise.all(pools.splice(0).map((p) => p.close()))
})

describe('process pool: demand', () => {
  const cases = [
    { name: 'burst 8: a miss warms two at once', pool: {}, target: 2, warm: 2 },
    { name: 'burst 0 (the default): a miss warms nothing', pool: { burst: 0 }, target: 0, warm: 0 },
    { name: 'pool.min 1: taking the last one doubles', pool: { min: 1 }, target: 2, warm: 2 },
    { name: 'pool.burst 1 caps the target', pool: { burst: 1 }, target: 1, warm: 1 },
    { name: 'pool.max 1 caps the target and the processes', pool: { max: 1 }, target: 1, warm: 0 },
    {
      name: 'pool.burst under pool.min: min holds',
      pool: { min: 1, burst: 0 },
      target: 1,
      warm: 1,
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const h = harness(c.pool)
      pools.push(h.p)
      h.p.start()
      const min = (c.pool as { min?: number }).min ?? 0
      await h.warm(min)
      taken.push(await h.p.take(h.log))
      assert.equal(h.p.target, c.target)
      await h.warm(c.warm)
      assert.equal(h.p.target, c.target, 'the target did not move again')
      assert.ok(h.p.size <= ((c.pool as { max?: number }).max ?? 1000))
    })
  }

  it('keeps doubling on misses up to pool.burst, never past it', async () => {
    const h = harness({ burst: 4 })
    pools.push(h.p)
    h.p.start()
    const seen: number[] = []
    for (let i = 0; i < 6; i++) {
      taken.push(await h.p.take(h.log))
      seen.push(h.p.target)
    }
    assert.ok(
      seen.every((t) => t <= 4),
      `targets ${seen}`,
    )
    assert.equal(seen.at(-1), 4)
  })

  // The warm processes a raise adds are the asking session's subject's starts (process-starts.ts):
  // the target rises only as far as `pay` paid, whatever the doubling wanted.
  for (const budget of [0, 1, 2, 3]) {
    it(`a raise is paid by the session that asked: with ${budget} to pay, the target is ${budget}`, async () => {
      const h = harness({})
      pools.push(h.p)
      h.p.start()
      let left = budget
      const asked: number[] = []
      const pay = (n: number) => {
        asked.push(n)
        const paid = Math.min(n, left)
        left -= paid
        return paid
      }
      taken.push(await h.p.take(h.log, undefined, [], pay))
      taken.push(await h.p.take(h.log, undefined, [], pay))
      assert.equal(asked[0], 2, 'the first miss asks for the doubling (0 → 2)')
      assert.equal(h.p.target, budget)
      // The pool fills its target and spawns nothing more: the sessions' two and those paid for.
      await h.warm(budget)
      assert.equal(h.p.size, 2 + budget)
    })
  }

  it('a miss waits for a warm process already loading rather than spawning its own', async () => {
    const h = harness({ min: 1 })
    pools.push(h.p)
    h.p.start()
    await h.warm(1)
    taken.push(await h.p.take(h.log)) // the last one: two more spawn
    taken.push(await h.p.take(h.log)) // a miss while they load
    // The first took the last one (target 2), the miss doubled it (4, spawned at once) and
    // took the first of those ready: every process alive was a warm one.
    assert.equal(h.p.target, 4)
    await h.warm(4)
    assert.equal(h.p.size, 6)
    assert.equal(h.ready(), 6, 'no session spawned a process of its own')
  })
})

describe('process pool: one spawn per turn of the event loop', () => {
  // A spawn blocks the gateway's event loop until the child has started (libuv waits for its
  // exec): requests in flight must get a turn between two spawns, not wait for all of them.
  it('a raised target starts its warm processes one per turn, and they all come', async () => {
    const h = harness({ burst: 8, min: 2 })
    pools.push(h.p)
    h.p.start()
    assert.equal(h.p.size, 1, 'start(): one spawned now')
    await new Promise(setImmediate)
    assert.equal(h.p.size, 2, 'the next one a turn later')
    await h.warm(2)
    taken.push(await h.p.take(h.log))
    taken.push(await h.p.take(h.log)) // the last one: the target doubles to 4
    assert.equal(h.p.target, 4)
    // The refill comes just after the session's reply; from then on, turn by turn, the pool
    // grows by one process at most until the four warm ones have started.
    const sizes = [h.p.size]
    while (h.p.size === sizes[0]) await new Promise(setImmediate)
    while (sizes.at(-1) !== 6) {
      sizes.push(h.p.size)
      await new Promise(setImmediate)
    }
    for (let i = 1; i < sizes.length; i++)
      assert.ok(sizes[i]! - sizes[i - 1]! <= 1, `sizes turn by turn: ${sizes}`)
    await h.warm(4)
    assert.equal(h.p.size, 6, 'two in use, four warm')
  })

  it('misses in the same turn wait for the warm processes still to start, none spawns its own', async () => {
    const h = harness({ burst: 8 })
    pools.push(h.p)
    h.p.start()
    // Two sessions find the pool empty at once: targets 2 then 4, one spawn started so far.
    const both = [h.p.take(h.log), h.p.take(h.log)]
    assert.equal(h.p.size, 1, 'one spawned in this turn')
    assert.equal(h.p.target, 4)
    taken.push(...(await Promise.all(both)))
    await h.warm(4)
    assert.equal(h.p.size, 6, 'two in use, four warm')
    assert.equal(h.ready(), 6, 'every process was a warm one: no session spawned its own')
  })
})

describe('process pool: cooldown', () => {
  it('ends the warm processes above pool.min after a quiet pool.cooldown, not before', async () => {
    const h = harness({ min: 1, burst: 4, cooldown: 5000 })
    pools.push(h.p)
    h.p.start()
    await h.warm(1)
    taken.push(await h.p.take(h.log))
    assert.equal(h.p.target, 2)
    await h.warm(2)
    h.clock.t += 4999
    h.p.cool()
    assert.equal(h.p.target, 2, 'not quiet long enough')
    assert.equal(h.p.warm, 2)
    h.clock.t += 1
    h.p.cool()
    assert.equal(h.p.target, 1)
    assert.equal(h.p.warm, 1, 'one warm process ended')
    // The one ended counts toward pool.max until it is gone (its stop ladder over).
    assert.equal(h.p.size, 3, 'the one in use, the one warm, the one ended')
    await waitFor(() => h.p.size === 2, 'the one in use and the one warm')
  })
})

describe('process pool: an env of its own', () => {
  it('never gets a warm process, and is no demand', async () => {
    const h = harness({ min: 1 })
    pools.push(h.p)
    h.p.start()
    await h.warm(1)
    const envs: Record<string, string>[] = [{ MCP_EDGE_SUBJECT: 'alice' }, { API_KEY: 'secret' }]
    for (const env of envs) {
      const c = await h.p.take(h.log, env, Object.values(env))
      taken.push(c)
      assert.equal(h.p.warm, 1, 'the warm process is still there')
      assert.equal(h.p.target, 1, 'the target did not move')
    }
  })
})

describe('process pool: preinitialize', () => {
  // Asks the client for its roots once initialized; a tools/call is answered (with the code of
  // the answer it got) only once that question was answered.
  const ASKS = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
let answer, call
const reply = () => out({ jsonrpc: '2.0', id: call, result: { code: answer.error?.code ?? null } })
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'asks', version: '0' } } })
  else if (m.method === 'notifications/initialized')
    out({ jsonrpc: '2.0', id: 'roots-1', method: 'roots/list' })
  else if (m.method === 'tools/call') {
    call = m.id
    if (answer !== undefined) reply()
  } else if (m.method === undefined && m.id === 'roots-1') {
    answer = m
    if (call !== undefined) reply()
  } else if (m.id !== undefined) out({ jsonrpc: '2.0', id: m.id, result: {} })
})
`

  it('a request from an initialized warm process while it waits is refused, not left unanswered', async () => {
    const script = join(mkdtempSync(join(tmpdir(), 'pool-asks-')), 'asks.mjs')
    writeFileSync(script, ASKS)
    const events = new EventEmitter()
    const log = pino({ level: 'debug' }, {
      write: (line: string) => void events.emit('log', JSON.parse(line).msg),
    } as never)
    const asked = new Promise<void>((resolve) =>
      events.on('log', (msg: string) => msg === 'warm server process asked; refused' && resolve()),
    )
    const config = configSchema.parse({
      servers: {
        asks: { command: process.execPath, args: [script], pool: { min: 1, preinitialize: true } },
      },
    }).servers.asks!
    const p = new ProcessPool({ name: 'asks', config, log })
    pools.push(p)
    p.start()
    // The process asked while it sat in the pool, before any session had it.
    await asked
    const child = await p.take(log)
    taken.push(child)
    const replied = new Promise<Record<string, any>>((resolve) => {
      child.onmessage = (m) => resolve(m as Record<string, any>)
    })
    await child.send({
      jsonrpc: '2.0',
      id: 5,
      method: 'tools/call',
      params: { name: 'x' },
    } as never)
    const reply = await replied
    assert.equal(reply.id, 5)
    assert.equal(reply.result.code, -32601, 'its roots/list was refused')
  })
})

describe('process pool: a dead process counts toward pool.max until it is gone', () => {
  const HOLDER = join(SERVERS_DIR, 'holder.js')
  const dir = mkdtempSync(join(tmpdir(), 'pool-dying-'))
  /** The holder server (servers/holder.js), its descendants' pids written to `file`. */
  function holder(file: string, pool: Record<string, unknown>, env: Record<string, string> = {}) {
    writeFileSync(file, '')
    return configSchema.parse({
      servers: {
        holder: {
          command: process.execPath,
          args: [HOLDER],
          // Longer than any test: the gap lasts until the test ends the descendant.
          stopGrace: 60_000,
          respawnBackoff: 10,
          pool,
          env: { HOLDER_PIDS_FILE: file, ...env },
        },
      },
    }).servers.holder!
  }
  const kill = (pids: number[]) => {
    for (const pid of pids)
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
  }
  const left: number[] = []
  afterEach(() => kill(left.splice(0)))

  it('a warm process that exited while a descendant holds its stdout: no replacement on top of it at pool.max', async () => {
    const file = join(dir, 'warm')
    const { log, line } = recorder()
    const pool = new ProcessPool({ name: 'holder', config: holder(file, { min: 1, max: 1 }), log })
    pools.push(pool)
    pool.start()
    const warm = (await line(/^warm server process ready$/)).pid as number
    process.kill(warm, 'SIGUSR2')
    await reaped(warm)
    await line(/^warm server process exited before use$/)
    left.push(...pidsIn(file))
    assert.equal(pool.size, 1, 'the dead process, its stdout held open')
    await assert.rejects(pool.take(log), { code: 'too_many_sessions' })
    // The descendant ends: its stdout closes, the process is gone; its replacement comes.
    kill(pidsIn(file))
    await waitFor(() => pool.warm === 1, 'the replacement warm')
    const child = await pool.take(log)
    taken.push(child)
    assert.notEqual(child.pid, warm)
    assert.equal(pool.size, 1)
  })

  it("a session's process that crashed leaving a helper that ignores SIGTERM: counted until the stop ladder ended it", async () => {
    const file = join(dir, 'stubborn')
    const { log } = recorder()
    const config = holder(file, { min: 0, max: 1 }, { HOLDER_START_HELPER: 'stubborn' })
    const pool = new ProcessPool({ name: 'holder', config, log })
    pools.push(pool)
    const child = await pool.take(log)
    taken.push(child)
    const [helper] = await waitFor(() => pidsIn(file).length === 1 && pidsIn(file))
    left.push(helper!)
    process.kill(child.pid, 'SIGKILL')
    await child.exited
    // Exited and read; its helper runs on (SIGTERM ignored, SIGKILL stopGrace later).
    assert.equal(gone(helper!), false)
    assert.equal(pool.size, 1)
    await assert.rejects(pool.take(log), { code: 'too_many_sessions' })
    kill([helper!])
    await child.close()
    await waitFor(() => pool.size === 0, 'the crashed process no longer counted')
    const next = await pool.take(log)
    taken.push(next)
    assert.equal(pool.size, 1)
    // Its own helper ignores SIGTERM too: ended here, or closing it after the test would wait
    // out the 60 s grace (twice: the CI spent two minutes on this case).
    const [, own] = await waitFor(() => pidsIn(file).length === 2 && pidsIn(file))
    kill([own!])
  })
})
