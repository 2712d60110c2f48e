// An audit file that cannot be written never ends the process: real failures, no fs mocks.
// /dev/full fails every write with ENOSPC (a full disk); a directory fails the open with
// EISDIR, and becomes writable once it is removed (the sink makes the file then). Each case
// waits for the main log's lines, never for time.
import assert from 'node:assert/strict'
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import pino from 'pino'
import { type AuditEvent, createAuditLog } from '../../gateway/observability/audit.js'
import { auditEvent } from '../helpers/audit-event.js'

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-audit-failure-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const event = (i: number): AuditEvent => auditEvent(`user-${i}`)

/** A main log whose lines are kept, and waited for by their message. */
function mainLog() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = []
  const count = (match: RegExp) => lines.filter((l) => match.test(l.msg)).length
  let waiters: { match: RegExp; n: number; resolve: () => void }[] = []
  const log = pino(
    { level: 'info' },
    {
      write: (l: string) => {
        lines.push(JSON.parse(l))
        const next = waiters
        waiters = []
        for (const w of next)
          if (count(w.match) >= w.n) w.resolve()
          else waiters.push(w)
      },
    },
  )
  /** Resolves once `n` lines (default 1) matching `match` are written. */
  const until = (match: RegExp, n = 1) =>
    count(match) >= n
      ? Promise.resolve()
      : new Promise<void>((resolve) => waiters.push({ match, n, resolve }))
  return { log, lines, seen: until, until, count }
}

/** A backoff that waits 5 ms each time: counts its attempts and resets, and waits for them. */
function quickRetry() {
  const waiters: { n: number; resolve: () => void }[] = []
  const r = {
    attempts: 0,
    resets: 0,
    next: () => {
      r.attempts++
      for (const w of waiters.splice(0))
        if (r.attempts >= w.n) w.resolve()
        else waiters.push(w)
      return 5
    },
    reset: () => void r.resets++,
    /** Resolves once `n` failures have asked for a wait. */
    failures: (n: number) =>
      r.attempts >= n
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  }
  return r
}

/** The descriptor this process holds open on `path` (read from /proc, Linux). */
function descriptorOf(path: string): number {
  for (const fd of readdirSync('/proc/self/fd'))
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) return Number(fd)
    } catch {}
  throw new Error(`no descriptor open on ${path}`)
}

const NOT_WRITABLE = /^audit log not writable: /
const WRITABLE_AGAIN = /^audit log writable again$/

describe('an audit file that cannot be written', () => {
  for (const c of [
    { name: '/dev/full (every write ENOSPC)', target: '/dev/full', code: 'ENOSPC' },
    { name: 'a directory (open EISDIR)', target: dir, code: 'EISDIR' },
  ])
    it(`${c.name}: logged once, events counted lost, flush resolves, the process lives`, async () => {
      const main = mainLog()
      let lost = 0
      const retry = quickRetry()
      const audit = createAuditLog(c.target, main.log, undefined, {
        retry,
        lost: (n) => void (lost += n),
      })
      try {
        audit.record(event(0))
        await main.seen(NOT_WRITABLE)
        assert.equal(audit.failing?.()?.code, c.code)
        assert.equal(lost, 1)
        // Every event while failing is lost and counted, whatever attempts are under way.
        for (let i = 1; i <= 50; i++) audit.record(event(i))
        assert.equal(lost, 51)
        // Attempts to open it again fail too: still one error line, never a line's content.
        await retry.failures(4)
        for (let i = 51; i <= 60; i++) audit.record(event(i))
        assert.equal(lost, 61)
        await audit.flush()
        assert.equal(main.count(NOT_WRITABLE), 1)
        assert.equal(main.count(WRITABLE_AGAIN), 0)
        const error = main.lines.find((l) => NOT_WRITABLE.test(l.msg))!
        assert.equal(error.level, 50)
        assert.equal(error.msg, `audit log not writable: ${c.code}; audit events are being lost`)
        assert.doesNotMatch(JSON.stringify(main.lines), /user-\d/)
        assert.equal(retry.resets, 0)
      } finally {
        audit.close?.()
      }
    })

  it('a directory removed: opened again, writable again logged once, the gap written first', async () => {
    const target = join(dir, 'audit-recovers.log')
    mkdirSync(target)
    const main = mainLog()
    let lost = 0
    const retry = quickRetry()
    const audit = createAuditLog(target, main.log, undefined, {
      retry,
      lost: (n) => void (lost += n),
    })
    try {
      audit.record(event(0))
      audit.record(event(1))
      await main.seen(NOT_WRITABLE)
      audit.record(event(2))
      assert.equal(lost, 3)
      // The operator fixes it: the next attempt makes the file and writes the gap's record.
      rmdirSync(target)
      await main.seen(WRITABLE_AGAIN)
      assert.equal(audit.failing?.(), undefined)
      assert.equal(retry.resets, 1)
      const back = main.lines.find((l) => WRITABLE_AGAIN.test(l.msg))!
      assert.equal(back.level, 30)
      assert.equal(back.lost, 3)
      audit.record(event(3))
      await audit.flush()
      const written = readFileSync(target, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
      assert.equal(written.length, 2)
      assert.equal(written[0].msg, 'audit events lost')
      assert.equal(written[0].lost, 3)
      assert.equal(written[0].log, 'audit')
      assert.match(written[0].since, /^\d{4}-\d\d-\d\dT/)
      assert.equal(written[1].sub, 'user-3')
      assert.equal(lost, 3)
      assert.equal(main.count(NOT_WRITABLE), 1)
      assert.equal(main.count(WRITABLE_AGAIN), 1)
    } finally {
      audit.close?.()
    }
  })

  it('a failure after a recovery (EBADF: its descriptor closed) is logged again, once', async () => {
    const target = join(dir, 'audit-twice.log')
    mkdirSync(target)
    const main = mainLog()
    let lost = 0
    const audit = createAuditLog(target, main.log, undefined, {
      retry: quickRetry(),
      lost: (n) => void (lost += n),
    })
    try {
      audit.record(event(0))
      await main.seen(NOT_WRITABLE)
      rmdirSync(target)
      await main.seen(WRITABLE_AGAIN)
      audit.record(event(1))
      await audit.flush()
      // The descriptor closed under the log: its next write fails with EBADF.
      closeSync(descriptorOf(target))
      audit.record(event(2))
      await main.until(NOT_WRITABLE, 2)
      assert.equal(main.count(NOT_WRITABLE), 2)
      assert.match(main.lines.filter((l) => NOT_WRITABLE.test(l.msg))[1]!.msg, /EBADF/)
      // Opened again by path: writable again, the gap (event 2) recorded in the file.
      await main.until(WRITABLE_AGAIN, 2)
      audit.record(event(3))
      await audit.flush()
      const written = readFileSync(target, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
      assert.deepEqual(
        written.map((l) => l.sub ?? `${l.msg} ${l.lost}`),
        ['audit events lost 1', 'user-1', 'audit events lost 1', 'user-3'],
      )
      assert.equal(lost, 2)
    } finally {
      audit.close?.()
    }
  })
})
