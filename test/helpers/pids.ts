// Processes a test fixture started, found by the pids it wrote down.
import { existsSync, readFileSync } from 'node:fs'

/** The pids written to `file`, one per line (none while it does not exist). */
export const pidsIn = (file: string): number[] =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number) : []

/**
 * Whether `pid` is gone: no such process (ESRCH), or a zombie (dead, waiting for an init that
 * does not reap orphans to reap it, as this machine's PID 1 does not).
 */
export function gone(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}
