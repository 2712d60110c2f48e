// A child's stdout read paced (stdout-pacing.ts): a line coming in small reads stops the reading
// (not only the events) after PACE_AFTER_READS of them, so what the process writes meanwhile is
// read at once; ordinary traffic (a line in one read, lines each ending in their read) never
// rests. A real child writes exactly what the test asks for, step by step over its stdin, so
// each read is known; the rest is the test's to end (no timer).
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import { afterEach, describe, it } from 'node:test'
import { PACE_AFTER_READS, readPaced } from '../../gateway/bridge/stdout-pacing.js'
import { waitFor } from '../helpers/wait-for.js'

// Each stdin character is a step: `x` one byte, `l` a whole line in one write, `e` a line's
// end, `r` 20 one-byte writes a few ms apart and a newline, then `done` on stderr.
const WRITER = `
const fs = require('node:fs')
process.stdin.on('data', (c) => {
  for (const ch of c.toString()) {
    if (ch === 'x') fs.writeSync(1, 'x')
    if (ch === 'l') fs.writeSync(1, '{"jsonrpc":"2.0","id":1,"result":{}}\\n')
    if (ch === 'e') fs.writeSync(1, 'x\\n')
    if (ch === 'r') {
      // A while apart: a stream still reading would read them one by one.
      let left = 20
      const next = () => {
        if (left-- > 0) return fs.writeSync(1, 'y'), setTimeout(next, 2)
        fs.writeSync(1, '\\n')
        fs.writeSync(2, 'done\\n')
      }
      next()
    }
  }
})
`

interface Reading {
  proc: ChildProcess
  chunks: string[]
  rests: (() => void)[]
  /** Asks the child for `steps` and waits for the read that brings their bytes. */
  step(steps: string): Promise<string>
}

let running: ChildProcess | undefined

afterEach(async () => {
  if (running?.exitCode === null) {
    const exited = once(running, 'exit')
    running.kill()
    await exited
  }
  running = undefined
})

function reading(): Reading {
  const proc = spawn(process.execPath, ['-e', WRITER], { stdio: ['pipe', 'pipe', 'pipe'] })
  running = proc
  const chunks: string[] = []
  const rests: (() => void)[] = []
  readPaced(
    proc.stdout!,
    (chunk) => chunks.push(chunk.toString()),
    (resume) => rests.push(resume),
  )
  return {
    proc,
    chunks,
    rests,
    async step(steps) {
      const before = chunks.length
      proc.stdin!.write(steps)
      await waitFor(() => chunks.length > before, `a read after ${steps}`)
      return chunks.slice(before).join('')
    },
  }
}

describe('stdout pacing: a line in small reads', () => {
  it('rests after PACE_AFTER_READS small reads of one line, then reads what piled up at once', async () => {
    const r = reading()
    for (let i = 1; i <= PACE_AFTER_READS; i++) {
      assert.equal(await r.step('x'), 'x')
      assert.equal(r.rests.length, 0, `no rest after ${i} small reads`)
    }
    assert.equal(await r.step('x'), 'x')
    assert.equal(r.rests.length, 1, 'a rest after the next one')
    const read = r.chunks.length
    const stderr: Buffer[] = []
    r.proc.stderr!.on('data', (c: Buffer) => stderr.push(c))
    // 21 writes while reading rests: none is read (Node's pause() would go on reading them, one
    // by one, and hand them over one by one when resumed).
    r.proc.stdin!.write('r')
    await waitFor(() => Buffer.concat(stderr).toString().includes('done'), 'the child wrote it all')
    assert.equal(r.chunks.length, read, 'nothing read while resting')
    r.rests[0]!()
    await waitFor(() => r.chunks.length > read, 'the read after the rest')
    assert.deepEqual(r.chunks.slice(read), [`${'y'.repeat(20)}\n`], 'all of it in one read')
    // The line ended: the next line's small reads count from nothing.
    for (let i = 1; i <= PACE_AFTER_READS; i++) await r.step('x')
    assert.equal(r.rests.length, 1)
  })

  it('ordinary lines never rest: whole lines, and many short lines each ending in its read', async () => {
    const r = reading()
    for (let i = 0; i < 3 * PACE_AFTER_READS; i++) await r.step(i % 2 === 0 ? 'l' : 'e')
    // A line in a few small reads (fewer than PACE_AFTER_READS), then its end: no rest either.
    for (let i = 1; i < PACE_AFTER_READS; i++) await r.step('x')
    await r.step('e')
    assert.equal(r.rests.length, 0)
  })

  it('a stream that is not a pipe is read as it comes', async () => {
    const stream = new PassThrough()
    const chunks: string[] = []
    let rests = 0
    readPaced(
      stream,
      (c) => chunks.push(c.toString()),
      () => rests++,
    )
    for (let i = 0; i < 3 * PACE_AFTER_READS; i++) stream.write('x')
    await new Promise(setImmediate)
    assert.equal(chunks.length, 3 * PACE_AFTER_READS)
    assert.equal(rests, 0)
  })
})
