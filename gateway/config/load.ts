import { dirname, isAbsolute, resolve } from 'node:path'
import { ConfigError, schemaProblems, type ConfigProblem } from './errors.js'
import { runAsHostProblems, type RunAsHost } from './run-as.js'
import { configSchema, type GatewayConfig } from './schema.js'
import { readYamlFile } from './yaml.js'

/** Environment variables that override one config field each, applied before validation. */
/** `list`: several values separated by commas or spaces. */
export const ENV_OVERRIDES: Record<string, { path: string[]; number?: boolean; list?: boolean }> = {
  MCP_EDGE_ISSUER: { path: ['auth', 'issuer'] },
  MCP_EDGE_AUDIENCE: { path: ['auth', 'audience'], list: true },
  MCP_EDGE_JWKS_URI: { path: ['auth', 'jwksUri'] },
  MCP_EDGE_UPSTREAM_ISSUER: { path: ['auth', 'broker', 'upstream', 'issuer'] },
  MCP_EDGE_POLICIES: { path: ['policies'] },
  MCP_EDGE_PUBLIC_URL: { path: ['publicUrl'] },
  MCP_EDGE_HOST: { path: ['listen', 'host'] },
  MCP_EDGE_PORT: { path: ['listen', 'port'], number: true },
  MCP_EDGE_LOG_LEVEL: { path: ['log', 'level'] },
  MCP_EDGE_LOG_FORMAT: { path: ['log', 'format'] },
  MCP_EDGE_REPLICA_ID: { path: ['replicaId'] },
  MCP_EDGE_DEV_IDP_PORT: { path: ['devIdp', 'port'], number: true },
}

/**
 * Reads, overrides from `env`, and validates a YAML config file. Relative paths (server
 * `cwd`, `policies`, `toolPins.file`) are resolved against the file's folder.
 * @throws ConfigError listing every problem with file and line
 */
export function loadConfigFile(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  host?: RunAsHost,
): GatewayConfig {
  const yaml = readYamlFile(file)
  const raw = yaml.value ?? {}
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ file, line: 1, message: 'the top level must be a mapping' }])
  }
  return validateConfig(raw, {
    file,
    baseDir: dirname(resolve(file)),
    env,
    locate: yaml.locate,
    ...(host ? { host } : {}),
  })
}

/**
 * Validates a config object (the embedded default, or a parsed file).
 * @throws ConfigError listing every problem
 */
export function validateConfig(
  raw: object,
  opts: {
    file: string
    baseDir: string
    env?: NodeJS.ProcessEnv
    locate?: (path: PropertyKey[]) => Partial<ConfigProblem>
    /**
     * The gateway process that will run the servers, checked for what `runAs` needs (serve,
     * validate); absent: not checked (a command that only reads the file, run by anyone).
     */
    host?: RunAsHost
  },
): GatewayConfig {
  const input = structuredClone(raw) as Record<string, unknown>
  const overridden = applyEnv(input, opts.env ?? {})
  const parsed = configSchema.safeParse(input)
  if (!parsed.success) {
    const fromEnv = parsed.error.issues.filter((i) => overridden.has(i.path.map(String).join('.')))
    const fromFile = parsed.error.issues.filter((i) => !fromEnv.includes(i))
    throw new ConfigError([
      ...fromEnv.map((i) => ({
        file: `environment variable ${overridden.get(i.path.map(String).join('.'))}`,
        message: i.message,
      })),
      ...schemaProblems(fromFile, opts.file, opts.locate),
    ])
  }
  const config = parsed.data
  // What this gateway may do, not what the file says: checked where it runs (serve, validate).
  const host = opts.host === undefined ? [] : runAsHostProblems(config.servers, opts.host)
  if (host.length > 0)
    throw new ConfigError(
      host.map((p) => ({
        file: opts.file,
        ...opts.locate?.(p.path),
        path: p.path.join('.'),
        message: p.message,
      })),
    )
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(opts.baseDir, p))
  if (config.policies) config.policies = abs(config.policies)
  // The pin file sits next to the config unless placed elsewhere.
  config.toolPins.file = abs(config.toolPins.file)
  // CA files, like every path in the file, are relative to it.
  if (config.auth.caFile) config.auth.caFile = abs(config.auth.caFile)
  const broker = config.auth.broker
  if (broker?.upstream.caFile) broker.upstream.caFile = abs(broker.upstream.caFile)
  if (broker?.cimd.caFile) broker.cimd.caFile = abs(broker.cimd.caFile)
  for (const server of Object.values(config.servers)) {
    if (server.cwd) server.cwd = abs(server.cwd)
  }
  // Servers, endpoints and hosts are looked up by names from request paths and Host headers:
  // `constructor` or `__proto__` must find nothing, not Object.prototype's members.
  config.servers = byName(config.servers)
  config.endpoints = byName(config.endpoints)
  config.hosts = byName(config.hosts)
  return config
}

/** The same entries in an object without a prototype. */
function byName<T>(record: Record<string, T>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, record)
}

function applyEnv(input: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, string> {
  const applied = new Map<string, string>()
  for (const [name, { path, number, list }] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name]
    if (value === undefined || value === '') continue
    let node = input
    for (const key of path.slice(0, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null) node[key] = {}
      node = node[key] as Record<string, unknown>
    }
    const values = list ? value.split(/[\s,]+/).filter((v) => v !== '') : []
    node[path.at(-1)!] =
      number && /^\d+$/.test(value)
        ? Number(value)
        : list
          ? values.length === 1
            ? values[0]
            : values
          : value
    applied.set(path.join('.'), name)
  }
  return applied
}
