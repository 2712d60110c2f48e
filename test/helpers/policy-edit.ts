// Edits of a running stack's policy file, each reloaded into its gateway at once, for tests of
// what a reload changes for requests already under way.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Stack } from './stack.js'

/** A stack's policy as it was when read, and the edits of it loaded since. */
export interface PolicyEdit {
  /** The policy text as read. */
  original: string
  /** Loads the original with `from` replaced by `to`; asserts the text changed and the reload took. */
  replace(from: string, to: string): void
  /** Loads the original again; asserts the reload took. */
  restore(): void
}

/** Reads `stack`'s policy.yaml now, for edits that `restore()` undoes. */
export function editPolicy(stack: Pick<Stack, 'dir' | 'gateway'>): PolicyEdit {
  const file = join(stack.dir, 'policy.yaml')
  const original = readFileSync(file, 'utf8')
  const load = (text: string) => {
    writeFileSync(file, text)
    assert.equal(stack.gateway.reloadPolicy()?.ok, true)
  }
  return {
    original,
    replace(from, to) {
      const next = original.replace(from, to)
      assert.notEqual(next, original)
      load(next)
    },
    restore: () => load(original),
  }
}
