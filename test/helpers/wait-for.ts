// Waiting in a test for something the gateway makes true but cannot tell the test of.
import assert from 'node:assert/strict'

/**
 * Resolves once `cond` holds (a process exit, a log or audit line, a file a child wrote),
 * looking every 10 ms; fails naming `what` when it still does not after 1000 looks.
 */
export async function waitFor(
  cond: () => boolean,
  what = 'the condition came true',
): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(cond(), what)
}
