// The buffered stdout log of `mcp-edge serve` when nothing is logged: no timer runs, no write
// and no fsync (sonic-boom, the log's stream before, fsynced a flush given a callback and wrote
// even an empty buffer), and a line logged is written once, by one timer, without an fsync. Run
// in a child process whose stdout is a pipe, counting every fs write and fsync call on stdout
// (sync or not) and the timers that ran.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'

const LOGGER = fileURLToPath(new URL('../../gateway/observability/logger.js', import.meta.url))

// 10 ms flushes; the counts are read after 20 intervals with nothing logged, then after a line.
const CHILD = `
import fs from 'node:fs'
const counts = { write: 0, fsync: 0, timers: 0 }
for (const name of ['write', 'writeSync', 'writev', 'writevSync', 'fsync', 'fsyncSync']) {
  const real = fs[name]
  const counted = name.startsWith('fsync') ? 'fsync' : 'write'
  fs[name] = (fd, ...rest) => { if (fd === 1) counts[counted]++; return real(fd, ...rest) }
}
const realTimeout = globalThis.setTimeout
for (const name of ['setTimeout', 'setInterval']) {
  const real = globalThis[name]
  globalThis[name] = (fn, ...rest) => real((...a) => { counts.timers++; return fn(...a) }, ...rest)
}
const { createLogger } = await import(${JSON.stringify(LOGGER)})
const log = createLogger({ level: 'info', bufferBytes: 4096, flushInterval: 10, format: 'json' })
const wait = (n) => new Promise((r) => realTimeout(r, n * 10))
await wait(20)
const idle = { ...counts }
log.info('one line')
// Until the line's write has come back (a state, not a duration): then as many intervals idle.
while (counts.write === idle.write) await wait(1)
await wait(20)
process.stderr.write(JSON.stringify({ idle, after: counts }))
process.exit(0)
`

describe('buffered stdout log', () => {
  it('idle: no timer runs, nothing is written or fsynced; a line is written once by one timer, never fsynced', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const code = await new Promise((r) => child.once('exit', r))
    assert.equal(code, 0, err)
    const { idle, after } = JSON.parse(err) as Record<string, Record<string, number>>
    assert.deepEqual(idle, { write: 0, fsync: 0, timers: 0 })
    assert.deepEqual(after, { write: 1, fsync: 0, timers: 1 })
    assert.match(out, /"msg":"one line"/)
  })
})

// The shutdown's order: the exit's flush is asked for while a write is out, a line is logged
// in between, and another flush is still pending when the exit's comes back (the audit log's,
// at gateway close). sonic-boom calls a flush back once the write in flight is done, with the
// later line still buffered; the exit's sync flush is skipped while another flush is pending.
const EXIT_CHILD = (bufferBytes: number) => `
const { createLogger } = await import(${JSON.stringify(LOGGER)})
const log = createLogger({ level: 'info', bufferBytes: ${bufferBytes}, flushInterval: 60000, format: 'json' })
log.info('shutting down')
log.flush(() => process.exit(0))
log.info('stopped')
log.flush(() => {})
`

describe('buffered stdout log at exit', () => {
  for (const bytes of [0, 4096, 16_384, 1024 * 1024])
    it(`every line logged before the exit's flush came back is written (buffer ${bytes})`, async () => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', EXIT_CHILD(bytes)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (d) => (out += d))
      child.stderr.on('data', (d) => (err += d))
      const code = await new Promise((r) => child.once('exit', r))
      assert.equal(code, 0, err)
      const messages = out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { msg: string }).msg)
      assert.deepEqual(messages, ['shutting down', 'stopped'])
    })
})
