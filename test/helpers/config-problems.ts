// What start-up says of a configuration: each problem as `path: message`, none when it loads.
import assert from 'node:assert/strict'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'

/** The problems `validateConfig` finds in `input` (a YAML file's content as parsed), in order. */
export function configProblems(input: Record<string, unknown>): string[] {
  try {
    validateConfig(input, { file: 'test.yaml', baseDir: '/tmp' })
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    return err.problems.map((p) => `${p.path ?? ''}: ${p.message}`)
  }
  return []
}
