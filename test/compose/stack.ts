// The files of compose/, parsed, and the two substitutions they rely on: docker compose's
// `${VAR}` interpolation from .env, and Keycloak's `${VAR}` placeholders in a realm import.
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

/** The repository root (this file is dist/test/compose/stack.js). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
/** The compose/ folder. */
export const COMPOSE = join(ROOT, 'compose')

/** The text of a file in compose/. */
export function read(name: string): string {
  return readFileSync(join(COMPOSE, name), 'utf8')
}

/** One service of docker-compose.yml, in the forms the stack uses. */
export interface Service {
  image?: string
  build?: { context: string; dockerfile: string }
  command?: string[]
  restart?: string
  environment?: Record<string, string>
  volumes?: string[]
  ports?: string[]
  networks?: string[]
  depends_on?: Record<string, { condition: string; restart?: boolean }>
  healthcheck?: { test?: string[] }
  network_mode?: string
}

/** docker-compose.yml. */
export const compose = parse(read('docker-compose.yml')) as {
  services: Record<string, Service>
  networks: Record<string, { internal?: boolean } | null>
  volumes: Record<string, unknown>
}

/** A service that must exist. */
export function service(name: string): Service {
  const s = compose.services[name]
  if (s === undefined) throw new Error(`docker-compose.yml has no service ${name}`)
  return s
}

/** The lines of a file that are not comments. */
export function code(text: string): string[] {
  return text.split('\n').filter((l) => !l.trimStart().startsWith('#'))
}

/** KEY=VALUE lines of a dotenv file. */
export function parseDotenv(text: string): Map<string, string> {
  const vars = new Map<string, string>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line)
    if (m) vars.set(m[1]!, m[2]!)
  }
  return vars
}

/** .env.example: an empty value is a secret setup.sh generates, or one it derives (DERIVED). */
export const dotenvExample = parseDotenv(read('.env.example'))

/** Empty in .env.example but not secrets: setup.sh derives them (here: what root would get). */
export const DERIVED: Record<string, string> = { MCP_EDGE_USER: '1000:1000' }

/** The names of the secrets setup.sh generates into .env. */
export const generatedSecrets = [...dotenvExample]
  .filter(([k, v]) => v === '' && !Object.hasOwn(DERIVED, k))
  .map(([k]) => k)

/** The .env setup.sh would write: the example's defaults, each secret a distinct stand-in. */
export const stackEnv = new Map(
  [...dotenvExample].map(([k, v]) => [k, v !== '' ? v : DERIVED[k] ?? `test-${k.toLowerCase()}`]),
)

/** ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}. */
export const COMPOSE_VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g

/** Compose interpolation of one value (`$$` is a literal `$`); an unset variable throws. */
export function interpolate(value: string, env: Map<string, string>): string {
  const one = (_: string, name: string, op: string | undefined, arg: string | undefined) => {
    const v = env.get(name)
    if (op?.startsWith(':') ? v : v !== undefined) return v!
    if (op?.endsWith('-')) return arg ?? ''
    throw new Error(`${name} is not set${arg ? `: ${arg}` : ''}`)
  }
  return value.split('$$').map((part) => part.replace(COMPOSE_VAR, one)).join('$')
}

/** The environment a service's process gets, with .env made by setup.sh. */
export function envOf(name: string): Map<string, string> {
  const env = Object.entries(service(name).environment ?? {})
  return new Map(env.map(([k, v]) => [k, interpolate(String(v), stackEnv)]))
}

/**
 * Keycloak's realm-import placeholders: `${VAR}` or `${VAR:default}` from its environment; an
 * unknown name stays as written (Keycloak's own `${client_id}` in mapper claim names).
 */
export function keycloakResolve(text: string, env: Map<string, string>): string {
  const placeholder = /\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^}]*))?\}/g
  const value = (whole: string, name: string, def?: string) => env.get(name) ?? def ?? whole
  return text.replace(placeholder, value)
}

/** Runs a command to completion. */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (status) => resolve({ code: status, stdout, stderr }))
  })
}

/** True when `cmd` is an executable on PATH. */
export function onPath(cmd: string): boolean {
  const dirs = (process.env.PATH ?? '').split(':').filter((d) => d !== '')
  return dirs.some((dir) => existsSync(join(dir, cmd)))
}

/** The secret files setup.sh writes into secrets/, which the gateway reads. */
export const SECRET_FILES = [
  'broker-client-secret', 'broker-signing-keys.json', 'broker-cookie-keys.json', 'sealing-keys.json',
]

/** Runs compose/setup.sh in `dir` (a scratch copy of compose/ with setup.sh and .env.example). */
export async function runSetup(dir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  for (const f of ['setup.sh', '.env.example']) {
    if (!existsSync(join(dir, f))) copyFileSync(join(COMPOSE, f), join(dir, f))
  }
  return run('bash', ['setup.sh'], { cwd: dir })
}
