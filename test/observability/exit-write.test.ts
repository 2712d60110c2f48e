// A process that exits while its reader is behind still writes every log and audit line, once
// and in order: the bytes refused with EAGAIN (the pipe full) and waiting for a retry that never
// comes once the process exits (sonic-boom's write out, on the audit sink; the bytes the log's
// stdout stream keeps), first, then the lines queued after them.
// The reader here is a real pipe the test does not read until the child says it is exiting:
// the child writes until a write is refused for sure (seen by the fs call's result), logs
// more behind it, and exits; only then does the test read. Both of the gateway's ways out:
// process.exit at once, and serve's exit after its deadline (a flush asked for, not come back).
// And both destinations: stdout (the main log, audit lines in it) and the audit sink on stderr.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

const LOGGER = fileURLToPath(new URL('../../gateway/observability/logger.js', import.meta.url))
const AUDIT = fileURLToPath(new URL('../../gateway/observability/audit.js', import.meta.url))
const PINO = fileURLToPath(import.meta.resolve('pino'))

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-exit-write-'))
after(() => rmSync(dir, { recursive: true, force: true }))

type Exit = 'at once' | 'after a flush asked for'
type To = 'stdout' | 'stderr'

/** A child's settings: where it writes, its buffer, how it exits, its `log.exitWait`. */
interface Child {
  to: To
  bytes: number
  exit: Exit
  wait: number
  /** The test's read end: read once the child says it is exiting, after it exited, or closed. */
  reader: 'behind' | 'stopped' | 'gone'
}

// Writes lines to `to` until a write to it is refused (EAGAIN), then (with a reader gone: says
// `stalled` on the other stream, and waits for a line on stdin) more, then says `exiting` and
// exits. `report` gets the lines as they were handed on, in order.
const CHILD = ({ to, bytes, exit, wait, reader }: Child, report: string) => `
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const fs = require('node:fs')
// The clock stands still: the audit sink's lines and their twins are made apart.
Date.now = () => 1767225600000
const fd = ${to === 'stdout' ? 1 : 2}
let refused = false
// The audit sink (sonic-boom) writes from the thread pool, the log on stdout from the event loop:
// either refused (EAGAIN, or a part written) is seen.
const fsWrite = fs.write
fs.write = function (f, ...rest) {
  const cb = rest.pop()
  return fsWrite.call(this, f, ...rest, (err, n) => {
    if (f === fd && err?.code === 'EAGAIN') refused = true
    cb(err, n)
  })
}
for (const name of ['writeSync', 'writevSync']) {
  const real = fs[name]
  fs[name] = function (f, data, ...rest) {
    try {
      const n = real.call(this, f, data, ...rest)
      const size = Array.isArray(data) ? data.reduce((t, b) => t + b.length, 0) : Buffer.byteLength(data)
      if (f === fd && n < size) refused = true
      return n
    } catch (err) {
      if (f === fd && err.code === 'EAGAIN') refused = true
      throw err
    }
  }
}
const { pino } = require(${JSON.stringify(PINO)})
const { createLogger } = await import(${JSON.stringify(LOGGER)})
const { createAuditLog } = await import(${JSON.stringify(AUDIT)})
// The pipe made non-blocking, as the gateway's stdout is (createLogger reads isTTY).
void process.${to}.isTTY
const given = []
let log, audit, twin
if (fd === 1) {
  log = createLogger({ level: 'info', bufferBytes: ${bytes}, flushInterval: 60000, exitWait: ${wait}, format: 'json' })
  audit = createAuditLog('stdout', log)
  const stream = log[pino.symbols.streamSym]
  const write = stream.write
  stream.write = (chunk) => (given.push(chunk), write.call(stream, chunk))
} else {
  log = pino({ level: 'silent' })
  const failures = { retry: { next: () => 60000, reset() {} }, lost() { given.push('lost') }, exitWait: ${wait} }
  audit = createAuditLog('stderr', log, undefined, failures)
  twin = createAuditLog('stderr', log, { write: (l) => void given.push(l) })
}
const event = (i) => ({ sub: 'zoë-' + i, iss: 'https://idp', clientId: undefined, server: 'echo',
  method: 'tools/call', name: 'ツール😀'.repeat(i % 9), decision: 'allow', rule: 'r', durationMs: i / 3, outcome: 'ok' })
let i = 0
const burst = (n) => {
  for (const end = i + n; i < end; i++) {
    if (fd === 1) log.info({ i, s: 'é'.repeat(i % 50) }, 'line')
    audit.record(event(i))
    twin?.record(event(i))
  }
}
const say = (what) => ${to === 'stdout' ? 'process.stderr' : 'process.stdout'}.write(what + '\\n')
while (!refused) {
  burst(20)
  await new Promise((r) => setImmediate(r))
}
${reader === 'gone' ? "say('stalled')\nawait new Promise((r) => process.stdin.once('data', r))" : ''}
burst(300)
${exit === 'after a flush asked for' ? 'log.flush(() => {})\naudit.flush()' : ''}
fs.writeFileSync(${JSON.stringify(report)}, JSON.stringify(given))
say('exiting')
process.exit(0)
`

/** Runs the child; reads `to` as `o.reader` says. */
async function run(o: Child) {
  const report = join(dir, `${o.to}-${o.bytes}-${o.exit}-${o.wait}-${o.reader}.json`)
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD(o, report)], {
    stdio: [o.reader === 'gone' ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  })
  const read = child[o.to]!
  const other = (o.to === 'stdout' ? child.stderr : child.stdout)!
  // Listened to from the start but paused: node resumes (and drops) what nobody listens to
  // once the child exits, and a paused stream stops reading the pipe once its buffer is full.
  const out: Buffer[] = []
  read.on('data', (d: Buffer) => out.push(d)).pause()
  let said = ''
  other.on('data', (d: Buffer) => {
    said += d
    if (o.reader === 'gone' && said.includes('stalled\n') && !read.destroyed) {
      read.destroy()
      child.stdin!.end('go\n')
    }
    if (o.reader === 'behind' && said.includes('exiting\n')) read.resume()
  })
  if (o.reader === 'stopped') child.once('exit', () => read.resume())
  const code = await new Promise((r) => child.once('close', r))
  assert.equal(code, 0, said)
  assert.ok(said.includes('exiting\n'), said)
  const given = JSON.parse(readFileSync(report, 'utf8')) as string[]
  assert.ok(!given.includes('lost'))
  return { out: Buffer.concat(out), given: Buffer.from(given.join('')), lines: given.length }
}

/** Where two byte strings first differ, to say what went wrong (lost, twice, out of order). */
const firstDifference = (a: Buffer, b: Buffer) => {
  let k = 0
  while (k < a.length && k < b.length && a[k] === b[k]) k++
  return `${a.length} bytes out, ${b.length} given; first difference at ${k}`
}

const name = (o: Child) =>
  `${o.to === 'stdout' ? `the log on stdout, buffer ${o.bytes}` : 'the audit log on stderr'}, exit ${o.exit}`

describe('the lines a process exits with, its reader behind, come out once and in order', () => {
  const cases: [To, number, Exit][] = [
    ['stdout', 0, 'at once'],
    ['stdout', 4096, 'at once'],
    ['stdout', 16_384, 'at once'],
    ['stdout', 4096, 'after a flush asked for'],
    ['stderr', 0, 'at once'],
    ['stderr', 0, 'after a flush asked for'],
  ]
  for (const [to, bytes, exit] of cases) {
    const o: Child = { to, bytes, exit, wait: 60_000, reader: 'behind' }
    it(name(o), async () => {
      const { out, given, lines } = await run(o)
      assert.ok(lines > 300)
      assert.ok(out.equals(given), firstDifference(out, given))
    })
  }
})

// The process still ends: a reader that stopped reading is given up after `log.exitWait`
// without a byte taken (what it did take is what was given, in order, nothing twice), and one
// that went away (EPIPE) at once.
describe('a reader that takes nothing more does not hold the exit', () => {
  const cases: Child[] = []
  for (const to of ['stdout', 'stderr'] as const)
    for (const exit of ['at once', 'after a flush asked for'] as const) {
      cases.push({ to, bytes: 4096, exit, wait: 0, reader: 'stopped' })
      cases.push({ to, bytes: 4096, exit, wait: 100, reader: 'stopped' })
      cases.push({ to, bytes: 4096, exit, wait: 60_000, reader: 'gone' })
    }
  for (const o of cases)
    it(`${name(o)}, a reader ${o.reader}${o.reader === 'stopped' ? `, exitWait ${o.wait}` : ''}`, async () => {
      const { out, given } = await run(o)
      if (o.reader === 'gone') return assert.equal(out.length, 0)
      assert.ok(out.length > 0 && out.length < given.length, firstDifference(out, given))
      assert.ok(given.subarray(0, out.length).equals(out), firstDifference(out, given))
    })
})
