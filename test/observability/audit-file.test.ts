// The audit log written to a file: sonic-boom writes each line asynchronously, one write at a
// time, so lines recorded together are still in memory until their writes come back. The
// gateway's close awaits `flush()`, which must resolve only when every line is in the file.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import pino from 'pino'
import { type AuditEvent, createAuditLog } from '../../gateway/observability/audit.js'
import { auditEvent } from '../helpers/audit-event.js'

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-audit-file-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const event = (i: number): AuditEvent => auditEvent(`user-${i}`)

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean)

describe('audit log to a file', () => {
  for (const count of [1, 10, 1000])
    it(`flush() resolves once all ${count} lines recorded are in the file, in order`, async () => {
      const file = join(dir, `audit-${count}.log`)
      const audit = createAuditLog(file, pino({ level: 'silent' }))
      // The file opens asynchronously: the first line waits for it.
      for (let i = 0; i < count; i++) audit.record(event(i))
      await audit.flush()
      const written = lines(file)
      assert.equal(written.length, count)
      written.forEach((l, i) => assert.equal((JSON.parse(l) as AuditEvent).sub, `user-${i}`))
    })

  it('flush() with nothing recorded since resolves at once', async () => {
    const file = join(dir, 'audit-idle.log')
    const audit = createAuditLog(file, pino({ level: 'silent' }))
    audit.record(event(0))
    await audit.flush()
    await audit.flush()
    assert.equal(lines(file).length, 1)
  })
})
