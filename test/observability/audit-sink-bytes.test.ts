// The audit file's bytes are the lines recorded, in order, byte for byte, written in chunks of
// whole lines of at most sonic-boom's maxWrite (16 KiB; a longer line alone), whatever lines
// arrive while a write is out or the file is opening: a real file, real writes, in a child
// process whose clock stands still (so the lines it records can be made again beside them).
// And each line's bytes are measured about twice (once by the sink, once by sonic-boom as its
// chunk is handed on), not once per line for the whole chunk gathered so far: sonic-boom alone
// measured up to 16 KiB at every line of a burst.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

const AUDIT = fileURLToPath(new URL('../../gateway/observability/audit.js', import.meta.url))
const PINO = fileURLToPath(import.meta.resolve('pino'))
const MAX_WRITE = 16 * 1024

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-audit-sink-bytes-'))
after(() => rmSync(dir, { recursive: true, force: true }))

// Records bursts to `file` (one before the file is open, one while writes are out, lines longer
// than a chunk, non-ASCII text), then ends by `exit`: a flush awaited, or the loop left to empty
// (pino's beforeExit flush). Writes to `report` the lines as a destination handed in gets them, each
// write the file got, and how many bytes Buffer.byteLength measured.
const CHILD = (file: string, report: string, exit: 'flush' | 'natural') => `
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const fs = require('node:fs')
Date.now = () => 1767225600000
let measured = 0
const byteLength = Buffer.byteLength
Buffer.byteLength = (s, e) => { const n = byteLength(s, e); measured += n; return n }
const writes = []
const fsWrite = fs.write
fs.write = function (fd, buf, ...rest) {
  if (fd > 2) writes.push(Buffer.isBuffer(buf) ? buf.toString() : String(buf))
  return fsWrite.call(this, fd, buf, ...rest)
}
const { pino } = require(${JSON.stringify(PINO)})
const { createAuditLog } = await import(${JSON.stringify(AUDIT)})
const log = pino({ level: 'silent' })
const audit = createAuditLog(${JSON.stringify(file)}, log)
const given = []
const twin = createAuditLog('stderr', log, { write: (l) => void given.push(l) })
const event = (i) => ({ sub: 'zoë-' + i, iss: 'https://idp', clientId: undefined, server: 'echo',
  method: 'tools/call', name: 'ツール😀'.repeat(i % 9), decision: 'allow', rule: 'r', durationMs: i / 3,
  outcome: 'ok', ...(i % 250 === 7 ? { credentials: Array.from({ length: 600 }, (_, k) => ({ name: 'VÄR_' + k, source: 'secret' })) } : {}) })
const burst = (from, n) => { for (let i = from; i < from + n; i++) { const e = event(i); audit.record(e); twin.record(e) } }
burst(0, 1000)
await new Promise((r) => setTimeout(r, 20))
burst(1000, 3)
await audit.flush()
burst(1003, 1000)
const report = () => fs.writeFileSync(${JSON.stringify(report)}, JSON.stringify({ given, writes, measured }))
${exit === 'flush' ? 'await audit.flush(); report(); process.exit(0)' : "process.on('exit', report)"}
`

describe('the audit file is the lines recorded, byte for byte', () => {
  for (const exit of ['flush', 'natural'] as const)
    it(`exit by ${exit}: every line in order; writes of whole lines, 16 KiB at most; each line measured about twice`, async () => {
      const file = join(dir, `audit-${exit}.log`)
      const report = join(dir, `report-${exit}.json`)
      const child = spawn(
        process.execPath,
        ['--input-type=module', '-e', CHILD(file, report, exit)],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      )
      let err = ''
      child.stderr.on('data', (d) => (err += d))
      const code = await new Promise((r) => child.once('close', r))
      assert.equal(code, 0, err)
      const { given, writes, measured } = JSON.parse(readFileSync(report, 'utf8')) as {
        given: string[]
        writes: string[]
        measured: number
      }
      assert.equal(given.length, 2003)
      const expected = Buffer.from(given.join(''))
      const bytes = readFileSync(file)
      assert.ok(bytes.equals(expected), 'the file holds the lines recorded, in order')
      assert.ok(Buffer.from(writes.join('')).equals(bytes), 'the file is its writes, in order')
      const lines = new Set(given)
      for (const w of writes) {
        assert.ok(w.endsWith('\n'), 'a write ends with a whole line')
        const parts = w.split(/(?<=\n)/)
        for (const part of parts) assert.ok(lines.has(part), 'a write is whole lines')
        if (parts.length > 1)
          assert.ok(
            Buffer.byteLength(w) <= MAX_WRITE,
            `a write of ${parts.length} lines is at most 16 KiB`,
          )
      }
      assert.ok(
        measured <= 2 * expected.length + 2 * MAX_WRITE,
        `${measured} bytes measured for ${expected.length} written`,
      )
    })
})
