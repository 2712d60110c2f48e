// The files of compose/, parsed, and the two substitutions they rely on: docker compose's
// `${VAR}` interpolation from .env, and Keycloak's `${VAR}` placeholders in a realm import.
import { spawn } from 'node:child_process'
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import { chmodSync, copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { validateConfig } from '../../gateway/config/load.js'
import type { GatewayConfig } from '../../gateway/config/schema.js'

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
  user?: string
  secrets?: string[]
}

/** docker-compose.yml. */
export const compose = parse(read('docker-compose.yml')) as {
  services: Record<string, Service>
  networks: Record<string, { internal?: boolean } | null>
  volumes: Record<string, unknown>
  secrets: Record<string, { file: string }>
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
  [...dotenvExample].map(([k, v]) => [k, v !== '' ? v : (DERIVED[k] ?? `test-${k.toLowerCase()}`)]),
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
  return value
    .split('$$')
    .map((part) => part.replace(COMPOSE_VAR, one))
    .join('$')
}

/** The environment a service's process gets, with .env made by setup.sh (or `dotenv`). */
export function envOf(name: string, dotenv: Map<string, string> = stackEnv): Map<string, string> {
  const env = Object.entries(service(name).environment ?? {})
  return new Map(env.map(([k, v]) => [k, interpolate(String(v), dotenv)]))
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
  'broker-client-secret',
  'broker-signing-keys.json',
  'broker-cookie-keys.json',
  'sealing-keys.json',
]

/** Runs compose/setup.sh in `dir` (a scratch copy of compose/ with setup.sh and .env.example). */
export async function runSetup(
  dir: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  for (const f of ['setup.sh', '.env.example']) {
    if (!existsSync(join(dir, f))) copyFileSync(join(COMPOSE, f), join(dir, f))
  }
  return run('bash', ['setup.sh'], { cwd: dir })
}

/** Where Compose mounts a service's file secret `name` (short syntax). */
export const secretPath = (name: string) => `/run/secrets/${name}`

/**
 * Writes the gateway's secret files into `dir` under the names setup.sh gives them, in its
 * formats, mode 0400: for tests that need them without running setup.sh.
 */
export function writeSecrets(dir: string, clientSecret = randomBytes(32).toString('hex')): void {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'jwk',
  })
  const files: Record<string, string> = {
    'broker-client-secret': `${clientSecret}\n`,
    'broker-signing-keys.json': `${JSON.stringify({ keys: [{ ...jwk, alg: 'ES256', use: 'sig', kid: randomUUID() }] })}\n`,
    'broker-cookie-keys.json': `${JSON.stringify([randomBytes(32).toString('hex')])}\n`,
    'sealing-keys.json': `${JSON.stringify({ k1: randomBytes(32).toString('base64url') })}\n`,
  }
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dir, name), text, { mode: 0o400 })
    chmodSync(join(dir, name), 0o400)
  }
}

/**
 * compose/gateway.yaml moved to loopback and validated: listening on 127.0.0.1, the demo
 * servers run from dist/, the repository's policies, logs off; every secret the stack mounts
 * at /run/secrets/<name> read from `secretsDir`, under the file name docker-compose.yml
 * mounts it from; `edit` changes the rest (the upstream, the CA, the public URL).
 */
export function loopbackGateway(o: {
  secretsDir: string
  port?: number
  /** Environment overrides, as the gateway service's environment would set them. */
  env?: Map<string, string>
  edit?: (raw: Record<string, any>) => void
}): GatewayConfig {
  const file = parse(read('gateway.yaml')) as Record<string, any>
  const servers = Object.fromEntries(
    Object.entries(file.servers as Record<string, Record<string, unknown>>).map(([name, s]) => [
      name,
      {
        ...s,
        command: process.execPath,
        args: [join(ROOT, 'dist/servers', `${name}.js`)],
        pool: { min: 0 },
      },
    ]),
  )
  const hostFile = new Map(
    Object.entries(compose.secrets).map(([name, s]) => [secretPath(name), basename(s.file)]),
  )
  const local = JSON.parse(JSON.stringify(file), (_k, v: unknown) => {
    if (
      v !== null &&
      typeof v === 'object' &&
      'file' in v &&
      typeof v.file === 'string' &&
      hostFile.has(v.file)
    ) {
      return { file: join(o.secretsDir, hostFile.get(v.file)!) }
    }
    return v
  }) as Record<string, any>
  const raw = {
    ...local,
    listen: { host: '127.0.0.1', port: o.port ?? 0 },
    servers,
    policies: join(ROOT, 'policies'),
    log: { level: 'silent', audit: 'off' },
  }
  o.edit?.(raw)
  const env = o.env && Object.fromEntries(o.env)
  return validateConfig(raw, {
    file: 'compose/gateway.yaml (loopback copy)',
    baseDir: COMPOSE,
    ...(env ? { env } : {}),
  })
}

/** One `location` of an nginx server block: its modifier, pattern, and what it does. */
export interface NginxLocation {
  modifier: '=' | '^~' | '~' | '~*' | ''
  pattern: string
  /** proxy_pass target, or `return <status>`. */
  action: string
  body: string
}

/**
 * The locations of the nginx.conf server block that listens on `listen` (e.g. `443 ssl`), in
 * order; named locations (@…) are left out. Quoted strings may hold braces.
 */
export function nginxLocations(conf: string, listen: string): NginxLocation[] {
  const servers = blocks(conf, /\bserver\s*\{/g)
  const server = servers.find((b) => new RegExp(`^\\s*listen ${listen}\\b`, 'm').test(b))
  if (server === undefined) throw new Error(`no server listens on ${listen}`)
  const out: NginxLocation[] = []
  for (const m of server.matchAll(/\blocation\s+(=|\^~|~\*|~)?\s*(\S+)\s*\{/g)) {
    if (m[2]!.startsWith('@')) continue
    const body = blockAt(server, m.index! + m[0].length)
    const action =
      /\bproxy_pass\s+(\S+);/.exec(body)?.[1] ??
      `return ${/\breturn\s+(\d+)/.exec(body)?.[1] ?? '?'}`
    out.push({ modifier: (m[1] ?? '') as NginxLocation['modifier'], pattern: m[2]!, action, body })
  }
  return out
}

/**
 * The location nginx picks for `path` (nginx's rule: an exact match; else the longest prefix,
 * final with ^~; else the first matching regex in order; else that longest prefix).
 */
export function nginxRoute(locations: NginxLocation[], path: string): NginxLocation | undefined {
  const exact = locations.find((l) => l.modifier === '=' && l.pattern === path)
  if (exact) return exact
  const prefixes = locations
    .filter((l) => (l.modifier === '' || l.modifier === '^~') && path.startsWith(l.pattern))
    .sort((a, b) => b.pattern.length - a.pattern.length)
  if (prefixes[0]?.modifier === '^~') return prefixes[0]
  const regex = locations.find(
    (l) =>
      (l.modifier === '~' || l.modifier === '~*') &&
      new RegExp(l.pattern, l.modifier === '~*' ? 'i' : '').test(path),
  )
  return regex ?? prefixes[0]
}

/** The bodies of the blocks opened by `opener` (at the top level of `text` or nested). */
function blocks(text: string, opener: RegExp): string[] {
  return [...text.matchAll(opener)].map((m) => blockAt(text, m.index! + m[0].length))
}

/** The text from `start` (just after a `{`) to its matching `}`, skipping quoted strings and comments. */
function blockAt(text: string, start: number): string {
  let depth = 1
  for (let i = start; i < text.length; i++) {
    const ch = text[i]
    if (ch === '#') i = text.indexOf('\n', i) === -1 ? text.length : text.indexOf('\n', i)
    else if (ch === "'" || ch === '"') i = text.indexOf(ch, i + 1)
    else if (ch === '{') depth++
    else if (ch === '}' && --depth === 0) return text.slice(start, i)
  }
  throw new Error('unbalanced braces')
}
