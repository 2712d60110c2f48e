import { readFileSync, statSync } from 'node:fs'
import { ConfigError } from './errors.js'

/** A secret's source in the configuration: an environment variable or a file. */
export type SecretRef = { env: string } | { file: string }

/**
 * Reads a secret at start-up: the variable's value, or the file's content (trailing newline
 * trimmed, as mounted secrets often end with one). A missing or empty secret, or a file that
 * others may read, is a configuration error naming where it was looked for, never its value.
 * @throws ConfigError
 */
export function readSecret(
  ref: SecretRef,
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if ('env' in ref) {
    const value = env[ref.env]
    if (value === undefined || value === '')
      throw problem(path, `environment variable ${ref.env} is not set`)
    return value
  }
  let text: string
  try {
    const mode = statSync(ref.file).mode
    // A secret file readable by others is a leak waiting to happen (Kubernetes mounts 0644 by
    // default only when defaultMode says so; ask for 0400/0440).
    if ((mode & 0o004) !== 0)
      throw problem(path, `${ref.file} is readable by every user: chmod o-r it`)
    text = readFileSync(ref.file, 'utf8')
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw problem(path, `cannot read ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? err}`)
  }
  const value = text.replace(/\r?\n$/, '')
  if (value === '') throw problem(path, `${ref.file} is empty`)
  return value
}

function problem(path: string, message: string): ConfigError {
  return new ConfigError([{ file: 'configuration', path, message }])
}
