// The log's stdout stream on a real pipe, while the process goes on (exit-write.test.ts and
// audit-bytes.test.ts hold its exit): a reader that stops reading leaves the bytes it had no room
// for waiting, in order, and they are written once it reads again, a flush coming back only
// then; a reader gone (EPIPE) fails the flush and every later line is dropped without a throw;
// a reader that stopped costs `maxPending` bytes at most, the lines past it dropped and counted.
// The pipe is a child's stdin, written by the stream on its descriptor as the gateway's stdout is.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { bufferedStdout } from '../../gateway/observability/stdout-stream.js'

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stdout-stream-'))
after(() => rmSync(dir, { recursive: true, force: true }))

// Reads nothing until SIGUSR1, then copies its stdin to the file named, and says `done` at end.
const READER = `
const fs = require('node:fs')
const alive = setInterval(() => {}, 1 << 30)
process.once('SIGUSR1', () => {
  const out = fs.createWriteStream(process.argv[1])
  process.stdin.pipe(out).on('finish', () => {
    clearInterval(alive)
    process.stdout.write('done')
  })
})
process.stdout.write('ready')
`

/** The descriptor of the test's end of `child`'s stdin (a non-blocking pipe, as libuv opens it). */
const stdinFd = (child: ChildProcess) =>
  (child.stdin as unknown as { _handle: { fd: number } })._handle.fd

const said = (child: ChildProcess, what: string) =>
  new Promise<void>((resolve) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += d
      if (out.includes(what)) resolve()
    })
  })

/** A bound far past anything these tests keep waiting. */
const PLENTY = 64 * 1024 * 1024

const line = (i: number) => `{"i":${i},"s":"${'é'.repeat(i % 50)}ツール😀"}\n`

/** Writes `line(0)`, `line(1)`, … to `stream` until `bytes` are given; returns them in order. */
function give(stream: { write(chunk: string): unknown }, bytes: number): string[] {
  const given: string[] = []
  for (let i = 0, size = 0; size < bytes; i++) {
    given.push(line(i))
    size += Buffer.byteLength(line(i))
    stream.write(line(i))
  }
  return given
}

describe('the log stdout stream, its reader behind', () => {
  for (const bytes of [0, 4096])
    it(`buffer ${bytes}: what the reader had no room for waits, in order, and is written once it reads`, async () => {
      const file = join(dir, `out-${bytes}`)
      const child = spawn(process.execPath, ['-e', READER, file], {
        stdio: ['pipe', 'pipe', 'inherit'],
      })
      try {
        await said(child, 'ready')
        const stream = bufferedStdout({
          fd: stdinFd(child),
          bytes,
          interval: 10,
          wait: 1000,
          maxPending: PLENTY,
        })
        // Far past what any pipe holds (a few hundred KiB at most), not one byte read.
        const given = give(stream, 4 * 1024 * 1024)
        let flushed = false
        const flush = new Promise<Error | undefined>((resolve) =>
          stream.flush((err) => {
            flushed = true
            resolve(err)
          }),
        )
        for (let k = 0; k < 20; k++) await new Promise((r) => setImmediate(r))
        assert.equal(flushed, false, 'nothing was read: the flush waits')
        // More lines while behind: they go after the ones waiting.
        for (let i = -1; i > -50; i--) {
          given.push(line(-i))
          stream.write(line(-i))
        }
        const done = said(child, 'done')
        child.kill('SIGUSR1')
        assert.equal(await flush, undefined)
        child.stdin!.end()
        await done
        assert.ok(readFileSync(file).equals(Buffer.from(given.join(''))))
      } finally {
        child.kill()
      }
    })
})

// Reads nothing until SIGUSR1, then copies its stdin to the file named, says `read` after its
// first read and `done` at end.
const READER_TELLS = READER.replace(
  'process.stdin.pipe(out)',
  "process.stdin.once('data', () => process.stdout.write('read'))\n  process.stdin.pipe(out)",
)

describe('the log stdout stream, its reader stopped: memory stays bounded', () => {
  it('past maxPending lines are dropped, counted once the reader caught up, and the next line goes out', async () => {
    const MAX = 1024 * 1024
    const file = join(dir, 'out-bounded')
    const child = spawn(process.execPath, ['-e', READER, file], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    try {
      await said(child, 'ready')
      const told: { lines: number; since: Date }[] = []
      const before = new Date()
      const stream = bufferedStdout({
        fd: stdinFd(child),
        bytes: 4096,
        interval: 10,
        wait: 1000,
        maxPending: MAX,
        lost: (lines, since) => void told.push({ lines, since }),
      })
      const given = give(stream, 8 * MAX)
      const flushed = new Promise((resolve) => stream.flush(resolve))
      assert.equal(told.length, 0, 'nothing said while the reader is behind')
      const done = said(child, 'done')
      child.kill('SIGUSR1')
      await flushed
      stream.write('after\n')
      await new Promise((resolve) => stream.flush(resolve))
      child.stdin!.end()
      await done
      const out = readFileSync(file, 'utf8')
      assert.ok(out.endsWith('after\n'))
      const kept = out.slice(0, -'after\n'.length)
      // Whole lines, the first ones given, in order (what the pipe took and what waited), no gap.
      let k = 0
      let at = 0
      while (at < kept.length) {
        assert.ok(kept.startsWith(given[k]!, at), `line ${k}`)
        at += given[k]!.length
        k++
      }
      const keptBytes = Buffer.byteLength(kept)
      // At most the bound waited, besides what the pipe held (a few hundred KiB) and one chunk.
      assert.ok(keptBytes < MAX + 1024 * 1024, `${keptBytes} bytes kept`)
      assert.ok(k < given.length)
      assert.equal(told.length, 1)
      const { lines, since } = told[0]!
      assert.equal(lines, given.length - k, 'every line dropped is counted')
      assert.ok(since.getTime() >= before.getTime())
    } finally {
      child.kill()
    }
  })
})

describe('the log stdout stream, room in the pipe again before its retry', () => {
  it('a line given while bytes wait goes after them, though the pipe could take it', async (t) => {
    // The retry held back (its timer mocked): the reader makes room, a line is given, then the
    // retry runs. Written at once, the line would overtake the bytes waiting.
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const file = join(dir, 'out-room')
    const child = spawn(process.execPath, ['-e', READER_TELLS, file], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    try {
      await said(child, 'ready')
      const stream = bufferedStdout({
        fd: stdinFd(child),
        bytes: 0,
        interval: 10,
        wait: 1000,
        maxPending: PLENTY,
      })
      const given = give(stream, 4 * 1024 * 1024)
      const read = said(child, 'read')
      child.kill('SIGUSR1')
      await read
      given.push('last\n')
      stream.write('last\n')
      const flushed = new Promise((resolve) => stream.flush(resolve))
      const done = said(child, 'done')
      // The retry's timer, until everything waiting is out (the mocked clock moves; no waiting).
      let out = false
      void flushed.then(() => (out = true))
      while (!out) {
        t.mock.timers.tick(100)
        await new Promise((r) => setImmediate(r))
      }
      child.stdin!.end()
      await done
      assert.ok(readFileSync(file).equals(Buffer.from(given.join(''))))
    } finally {
      child.kill()
    }
  })
})

describe('the log stdout stream, its reader gone', () => {
  it('a flush comes back with EPIPE; later lines are dropped, nothing throws', async () => {
    // Closes its end of the pipe, says so, and stays (its exit would close the test's end too).
    const child = spawn(
      process.execPath,
      [
        '-e',
        "require('node:fs').closeSync(0); process.stdout.write('closed'); setInterval(() => {}, 1 << 30)",
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    )
    try {
      await said(child, 'closed')
      const stream = bufferedStdout({
        fd: stdinFd(child),
        bytes: 0,
        interval: 10,
        wait: 1000,
        maxPending: PLENTY,
      })
      assert.equal(stream.write(line(1)), true)
      const err = await new Promise<Error | undefined>((resolve) => stream.flush(resolve))
      assert.equal((err as NodeJS.ErrnoException | undefined)?.code, 'EPIPE')
      assert.equal(stream.write(line(2)), true)
      const again = await new Promise<Error | undefined>((resolve) => stream.flush(resolve))
      assert.equal((again as NodeJS.ErrnoException | undefined)?.code, 'EPIPE')
      stream.flushSync()
    } finally {
      child.kill()
    }
  })
})
