// The start-failure memory (bridge/start-failures.ts) on its own: windows by an injected clock,
// the refusal's code, status and Retry-After, one probe at a time, and keys that keep one
// user's failing environment from refusing another's. The HTTP paths are in
// test/http/start-failures.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { BridgeError } from '../../gateway/bridge/errors.js'
import { StartFailures } from '../../gateway/bridge/start-failures.js'
import { configSchema } from '../../gateway/config/schema.js'
import { principal } from '../helpers/principal.js'

const config = configSchema.parse({
  servers: {
    s: {
      command: 'x',
      respawnBackoff: 1000,
      respawnBackoffMax: 4000,
      initializeTimeout: 100,
      requestTimeout: 100,
    },
    other: { command: 'x' },
    shared: { command: 'x', mode: 'shared' },
    ident: { command: 'x', identityEnv: true },
  },
})

function memory() {
  const clock = { now: 1_000_000 }
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) })
  const starts = new StartFailures({
    config,
    log,
    now: () => clock.now,
    identityOf: (server, p) => (server === 'ident' ? p.sub : undefined),
  })
  return { starts, clock, lines }
}

/** The refusal `admit` throws inside a window, or undefined when it admits. */
async function refusal(starts: StartFailures, server: string, who?: { sub: string; fp?: string }) {
  try {
    const attempt = await starts.admit(
      server,
      who && { principal: principal(who.sub), fingerprint: who.fp },
    )
    attempt.abandoned()
    return undefined
  } catch (err) {
    assert.ok(err instanceof BridgeError)
    return { code: err.code, status: err.status, retryAfter: err.retryAfter, message: err.message }
  }
}

describe('start failures: windows', () => {
  it('refuses inside a window that doubles to the max, and a success forgets it', async () => {
    const { starts, clock, lines } = memory()
    ;(await starts.admit('s')).failed('exit')
    const cases = [
      { after: 0, retryAfter: 1 },
      { after: 999, retryAfter: 1 },
    ]
    for (const c of cases) {
      clock.now += c.after
      assert.deepEqual(await refusal(starts, 's'), {
        code: 'server_unavailable',
        status: 503,
        retryAfter: c.retryAfter,
        message: `server s could not be started; retrying in ${c.retryAfter} s`,
      })
    }
    // Each window over (within the max past it: not forgotten yet), a failed probe doubles it
    // (2 s, 4 s, 4 s: the max).
    for (const [window, seconds] of [
      [1000, 2],
      [2000, 4],
      [4000, 4],
    ]) {
      clock.now += window!
      ;(await starts.admit('s')).failed('exit')
      assert.equal((await refusal(starts, 's'))?.retryAfter, seconds)
    }
    assert.equal(lines.filter((l) => /server s failed to start; retrying after/.test(l)).length, 4)
    clock.now += 4000
    ;(await starts.admit('s')).succeeded()
    assert.equal(starts.size, 0)
    assert.ok(lines.some((l) => /server s started again/.test(l)))
    ;(await starts.admit('s')).failed('exit')
    assert.equal((await refusal(starts, 's'))?.retryAfter, 1, 'back to the first delay')
  })

  it('forgets failures once their window ended longer than the max ago: the next starts at the first delay', async () => {
    const { starts, clock } = memory()
    ;(await starts.admit('s')).failed('exit')
    clock.now += 1000
    ;(await starts.admit('s')).failed('exit')
    assert.equal((await refusal(starts, 's'))?.retryAfter, 2)
    // The 2 s window ends at +2 s; 4 s (respawnBackoffMax) after that it is remembered still.
    clock.now += 2000 + 4000
    assert.equal(starts.status().servers[0]?.failures, 2)
    clock.now += 1
    assert.deepEqual(starts.status().servers, [])
    ;(await starts.admit('s')).failed('exit')
    assert.equal((await refusal(starts, 's'))?.retryAfter, 1)
    assert.equal(starts.size, 1)
  })

  it('a failure of a start under way when another failed does not extend the window', async () => {
    const { starts, clock, lines } = memory()
    const [a, b] = [await starts.admit('s'), await starts.admit('s')]
    a.failed('exit')
    clock.now += 500
    b.failed('exit')
    assert.equal((await refusal(starts, 's'))?.retryAfter, 1)
    assert.equal(lines.filter((l) => /failed to start/.test(l)).length, 1)
  })

  it('refuses only the server, and only the environment, that failed', async () => {
    const { starts } = memory()
    ;(await starts.admit('s', { principal: principal('alice'), fingerprint: 'bad' })).failed('exit')
    ;(await starts.admit('ident', { principal: principal('alice') })).failed('exit')
    const cases = [
      { server: 's', who: { sub: 'alice', fp: 'bad' }, refused: true },
      { server: 's', who: { sub: 'bob', fp: 'bad' }, refused: true },
      { server: 's', who: { sub: 'alice', fp: 'good' }, refused: false },
      { server: 's', who: undefined, refused: false },
      { server: 'other', who: undefined, refused: false },
      { server: 'ident', who: { sub: 'alice' }, refused: true },
      { server: 'ident', who: { sub: 'bob' }, refused: false },
    ]
    for (const c of cases)
      assert.equal(
        (await refusal(starts, c.server, c.who)) !== undefined,
        c.refused,
        JSON.stringify(c),
      )
  })

  it('never refuses a shared server (its process restarts with its own backoff)', async () => {
    const { starts } = memory()
    for (let i = 0; i < 3; i++) (await starts.admit('shared')).failed('exit')
    assert.equal(await refusal(starts, 'shared'), undefined)
    assert.equal(starts.isFailing('shared'), false)
  })
})

describe('start failures: one probe at a time', () => {
  it('after the window the first is the probe; the others wait and hear its failure', async () => {
    const { starts, clock } = memory()
    ;(await starts.admit('s')).failed('exit')
    clock.now += 1000
    const probe = await starts.admit('s')
    assert.equal(starts.isFailing('s'), true, 'an endpoint skips it while the probe runs')
    const waiting = [refusal(starts, 's'), refusal(starts, 's'), refusal(starts, 's')]
    probe.failed('exit')
    for (const r of await Promise.all(waiting)) assert.equal(r?.retryAfter, 2)
  })

  it('after a successful probe the others start', async () => {
    const { starts, clock } = memory()
    ;(await starts.admit('s')).failed('exit')
    clock.now += 1000
    const probe = await starts.admit('s')
    const waiting = [starts.admit('s'), starts.admit('s')]
    probe.succeeded()
    for (const w of await Promise.all(waiting)) w.succeeded()
    assert.equal(starts.isFailing('s'), false)
  })

  it('an abandoned probe hands the probe to one waiter', async () => {
    const { starts, clock } = memory()
    ;(await starts.admit('s')).failed('exit')
    clock.now += 1000
    const probe = await starts.admit('s')
    const [a, b] = [starts.admit('s'), starts.admit('s')]
    probe.abandoned()
    const next = await a
    let bSettled = false
    b.then(
      () => (bSettled = true),
      () => (bSettled = true),
    )
    await new Promise((r) => setImmediate(r))
    assert.equal(bSettled, false, 'the second waits for the new probe')
    next.failed('exit')
    await assert.rejects(b, (err: BridgeError) => err.code === 'server_unavailable')
  })

  it('a probe that never tells holds the others no longer than a start may take', async () => {
    const { starts, clock } = memory()
    ;(await starts.admit('s')).failed('exit')
    clock.now += 1000
    await starts.admit('s') // never settled
    // initializeTimeout (100 ms) plus the grace, in real time: the probe's own bound.
    // Its timer does not hold the process open: this test's does, meanwhile.
    const alive = setInterval(() => {}, 1000)
    const next = await starts.admit('s').finally(() => clearInterval(alive))
    next.failed('exit')
    assert.equal((await refusal(starts, 's'))?.retryAfter, 2)
  })
})

describe("start failures: a start with the client's own initialize", () => {
  const own = (sub: string) => ({ principal: principal(sub), ownInitialize: true })

  it("opens a window for its user only, and waits out the server's own window and probe", async () => {
    const { starts, clock, lines } = memory()
    ;(await starts.admit('s', own('alice'))).failed('exit')
    assert.equal(
      lines.filter((l) => l.includes('server s failed to start a session of alice')).length,
      1,
    )
    // Alice's own starts are refused; Bob's, and starts the gateway initializes, are not.
    await assert.rejects(starts.admit('s', own('alice')), { code: 'server_unavailable' })
    ;(await starts.admit('s', own('bob'))).succeeded()
    assert.equal(await refusal(starts, 's', { sub: 'alice' }), undefined)
    assert.equal(starts.isFailing('s'), false, 'endpoints still list the server')
    // The server itself failing refuses everyone's own starts too.
    ;(await starts.admit('s')).failed('exit')
    await assert.rejects(starts.admit('s', own('bob')), { code: 'server_unavailable' })
    // Its window over, a start with the client's initialize is no probe: it waits for the
    // gateway's own probe, and hears its outcome.
    clock.now += 1000
    const probe = await starts.admit('s')
    let admitted = false
    const waiting = starts.admit('s', own('bob')).then((a) => {
      admitted = true
      return a
    })
    await new Promise((r) => setImmediate(r))
    assert.equal(admitted, false, 'waits for the probe')
    probe.succeeded()
    ;(await waiting).succeeded()
    assert.equal(admitted, true)
    // Alice's own window ended long ago: her next start is her probe, and it clears her.
    clock.now += 60_000
    ;(await starts.admit('s', own('alice'))).succeeded()
    ;(await starts.admit('s', own('alice'))).abandoned()
  })
})

describe('start failures: a bounded memory, checked against a brute-force model', () => {
  /** A deterministic PRNG (mulberry32): the same sequences on every run. */
  function prng(seed: number): () => number {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
  }
  const CAP = 4
  // Server a's users are forgotten soon after their windows, b's long after: a user of a
  // failing after one of b is over first, behind it (what a sweep of the oldest alone misses).
  const SERVERS = { a: { first: 1000, max: 2000 }, b: { first: 500, max: 60_000 } }
  const modelConfig = configSchema.parse({
    servers: Object.fromEntries(
      Object.entries(SERVERS).map(([n, b]) => [
        n,
        { command: 'x', respawnBackoff: b.first, respawnBackoffMax: b.max },
      ]),
    ),
    limits: { startFailureUsers: CAP },
  })
  const SUBS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6']

  /**
   * The memory as a list, every rule applied by a scan: a key's entry is forgotten once its
   * window ended longer than its server's max ago; a user's new entry at CAP live ones forgets
   * the least recently failed; a success forgets its key (a user's own, the server's too).
   */
  class Model {
    entries = new Map<string, { server: string; n: number; until: number; seq: number }>()
    seq = 0
    constructor(readonly clock: { now: number }) {}
    live(key: string) {
      const e = this.entries.get(key)
      if (e === undefined) return undefined
      const max = SERVERS[e.server as 'a'].max
      return this.clock.now - e.until > max ? undefined : e
    }
    /** Seconds of the refusal a start of `key` meets now, or 0 when it is admitted. */
    refusal(key: string): number {
      const e = this.live(key)
      return e !== undefined && e.until > this.clock.now
        ? Math.ceil((e.until - this.clock.now) / 1000)
        : 0
    }
    fail(key: string, server: string, user: boolean) {
      const e = this.live(key)
      if (e !== undefined && e.until > this.clock.now) return
      if (e === undefined) {
        this.entries.delete(key)
        if (user) {
          const users = [...this.entries.entries()]
            .filter(([k]) => k.startsWith('user ') && this.live(k) !== undefined)
            .sort((x, y) => x[1].seq - y[1].seq)
          while (users.length >= CAP) this.entries.delete(users.shift()![0])
        }
      }
      const n = (e?.n ?? 0) + 1
      const { first, max } = SERVERS[server as 'a']
      const delay = Math.min(first * 2 ** (n - 1), max)
      this.entries.set(key, { server, n, until: this.clock.now + delay, seq: this.seq++ })
    }
  }

  /** The refusal's seconds for a start (0: admitted; the attempt is then ended as `end` says). */
  async function tryStart(
    starts: StartFailures,
    server: string,
    sub: string | undefined,
    end: (a: Awaited<ReturnType<StartFailures['admit']>>) => void,
  ): Promise<number> {
    try {
      const who = sub === undefined ? undefined : { principal: principal(sub), ownInitialize: true }
      end(await starts.admit(server, who))
      return 0
    } catch (err) {
      assert.ok(err instanceof BridgeError && err.code === 'server_unavailable', String(err))
      return err.retryAfter!
    }
  }

  for (const seed of [1, 2, 3, 4, 5, 20261202]) {
    it(`seed ${seed}: 2000 random failures, successes and clock steps over 2 servers and ${SUBS.length} users, at most ${CAP} users remembered`, async () => {
      const random = prng(seed)
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
      const clock = { now: 1_000_000 }
      const starts = new StartFailures({
        config: modelConfig,
        log: pino({ level: 'silent' }),
        now: () => clock.now,
      })
      const model = new Model(clock)
      const serverKey = (s: string) => `server ${s}`
      const userKey = (s: string, u: string) => `user ${s} ${u}`
      /** What a user's own start meets: the server's window first, then the user's. */
      const expected = (s: string, u?: string) =>
        model.refusal(serverKey(s)) || (u === undefined ? 0 : model.refusal(userKey(s, u)))
      for (let step = 0; step < 2000; step++) {
        const s = pick(Object.keys(SERVERS))
        const u = random() < 0.2 ? undefined : pick(SUBS)
        const op = pick(['fail', 'fail', 'fail', 'succeed', 'clock', 'clock'])
        const where = `step ${step}: ${op} ${s} ${u ?? '(server)'}`
        if (op === 'clock') {
          clock.now += pick([0, 1, 499, 1000, 2500, 4001, 9000, 70_000])
          continue
        }
        const want = expected(s, u)
        const got = await tryStart(starts, s, u, (a) =>
          op === 'fail' ? a.failed('exit') : a.succeeded(),
        )
        assert.equal(got, want, where)
        if (want === 0 && op === 'fail')
          model.fail(u === undefined ? serverKey(s) : userKey(s, u), s, u !== undefined)
        if (want === 0 && op === 'succeed') {
          model.entries.delete(serverKey(s))
          if (u !== undefined) model.entries.delete(userKey(s, u))
        }
        // Every key as the model says, after every step; the memory stays bounded.
        for (const server of Object.keys(SERVERS))
          for (const sub of [undefined, ...SUBS])
            assert.equal(
              await tryStart(starts, server, sub, (a) => a.abandoned()),
              expected(server, sub),
              `${where}; then ${server} ${sub ?? '(server)'}`,
            )
        assert.ok(starts.size <= Object.keys(SERVERS).length + CAP, `${where}: ${starts.size} kept`)
        const windows = [...model.entries.keys()].filter(
          (k) => k.startsWith('user ') && model.refusal(k) > 0,
        ).length
        assert.equal(starts.status().userWindows, windows, `${where}: users' windows`)
      }
    })
  }
})
