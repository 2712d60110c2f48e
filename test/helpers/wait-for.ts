// Waiting in a test for something the gateway makes true but cannot tell the test of.
import assert from 'node:assert/strict'

/** How many times a wait looks before it fails: the bound is a count, never a wall-clock time. */
const LOOKS = 1000

/**
 * Resolves once `cond` holds (a process exit, a log or audit line, a file a child wrote, an
 * answer of the gateway), looking every 10 ms; fails naming `what` when it still does not after
 * 1000 looks (`what` a function: what it returns then, to say what the last look saw). Resolves
 * to what `cond` returned, so a look can hand back what it found.
 */
export async function waitFor<T>(
  cond: () => T | Promise<T>,
  what: string | (() => string) = 'the condition came true',
): Promise<Exclude<T, false | undefined | null | 0 | ''>> {
  for (let i = 1; ; i++) {
    const v = await cond()
    if (v) return v as Exclude<T, false | undefined | null | 0 | ''>
    assert.ok(i < LOOKS, typeof what === 'string' ? what : what())
    await new Promise((r) => setTimeout(r, 10))
  }
}

/**
 * Resolves once `pid` is reaped: the gateway's 'exit' of it has run (node reaps a child and
 * emits its exit in one callback), whatever its stdout does.
 */
export async function reaped(pid: number): Promise<void> {
  await waitFor(() => {
    try {
      process.kill(pid, 0)
      return false
    } catch {
      return true
    }
  }, `process ${pid} reaped`)
}
