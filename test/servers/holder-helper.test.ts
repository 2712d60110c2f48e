// servers/holder's helper is named in HOLDER_PIDS_FILE only once it is what it claims: a
// `stubborn` one already catches SIGTERM then. Named at spawn (before its runtime had started),
// a stop ladder reaching it at once ended it, and bridge/ending-holds saw its helper gone on a
// busy machine. Checked without any wait on time: the signal mask the kernel shows for the pid
// the moment it is in the file.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { pidsIn } from '../helpers/pids.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const dir = mkdtempSync(join(tmpdir(), 'holder-helper-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** Whether `pid` catches `signal` now (the SigCgt mask of /proc/<pid>/status: Linux). */
function catches(pid: number, signal: number): boolean {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1')
  const mask = BigInt(`0x${/^SigCgt:\s*([0-9a-f]+)$/m.exec(status)![1]}`)
  return ((mask >> BigInt(signal - 1)) & 1n) === 1n
}

describe('servers/holder: its helper', () => {
  for (let round = 1; round <= 10; round++) {
    it(`stubborn: catches SIGTERM from the moment its pid is in the file (${round})`, async (t) => {
      const file = join(dir, `pids-${round}`)
      const holder = spawn(process.execPath, [join(SERVERS_DIR, 'holder.js')], {
        env: { ...process.env, HOLDER_PIDS_FILE: file, HOLDER_START_HELPER: 'stubborn' },
        stdio: ['pipe', 'ignore', 'ignore'],
      })
      t.after(() => {
        for (const pid of pidsIn(file)) process.kill(pid, 'SIGKILL')
        holder.kill('SIGKILL')
      })
      // Read as soon as it is there (one event-loop turn apart): a pid named too early is caught
      // before its runtime starts. Correct code passes however late this looks.
      let helper: number | undefined
      while (helper === undefined) {
        helper = pidsIn(file)[0]
        if (helper === undefined) await new Promise((r) => setImmediate(r))
      }
      assert.equal(catches(helper, 15), true, 'SIGTERM is caught already')
    })
  }
})
