import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { request } from 'undici'
import { stringify } from 'yaml'
import { startDevIdp, type DevIdp } from '../../gateway/devidp/provider.js'
import { scopesForPolicy } from '../helpers/dev-roles.js'
import type { RowShape } from './http-targets.js'
import { cleanup, spawnTracked, stopTree } from './procs.js'
import { freePort } from '../helpers/ports.js'
import { awaitLine, httpTarget, pollReady, type Target } from './target.js'

/** The bench's users: client_credentials clients with the given roles, user 0 first. */
const client = (i: number, roles: readonly string[]) => ({
  clientId: i === 0 ? 'bench' : `bench-${i}`,
  clientSecret: randomBytes(24).toString('base64url'),
  roles: [...roles],
  subject: i === 0 ? 'bench-user' : `bench-user-${i}`,
})

/** A running mcp-edge process with a token for its echo server (or the resource at `path`). */
export interface Gateway {
  origin: string
  path: string
  child: ChildProcess
  /** The bearer header of user 0 for the resource at `path`. */
  headers: Record<string, string>
  /** The bearer header of each user (`users` of the options), in their order. */
  users: Record<string, string>[]
  problems: () => string[]
  recentLog: () => string[]
  /** Stops the gateway tree, the dev IdP, and removes the config. */
  stop: () => Promise<void>
}

/** Options of a gateway run: `server` and `limits` are merged into the generated config. */
export interface GatewayOptions {
  root: string
  echoJs: string
  server?: Record<string, unknown>
  limits?: Record<string, unknown>
  /** Every server of the config instead of the one echo server (`server` is then unused). */
  servers?: Record<string, Record<string, unknown>>
  /** `endpoints:` of the config. */
  endpoints?: Record<string, unknown>
  /** Policy YAML, written beside the config; default the shipped `policies/`. */
  policyYaml?: string
  /** The MCP path the tokens are for (their RFC 8707 resource); default `/mcp/echo`. */
  path?: string
  /** Each user's roles (one subject each) to get a token for; default one `mcp-user`. */
  users?: readonly (readonly string[])[]
  /** Node options of the gateway process (e.g. --cpu-prof), before BENCH_GATEWAY_NODE_ARGS. */
  nodeArgs?: readonly string[]
  /** Environment of the gateway process beside the bench's own (e.g. OTEL_* for tracing rows). */
  env?: Record<string, string>
}

/**
 * mcp-edge as its own process (`serve --config`), authenticating against a dev IdP in this
 * process. The port is fixed up front because the token's audience is the resource URL.
 * Env: BENCH_GATEWAY_LOG (default `info`, the shipped default: a line per request),
 * BENCH_GATEWAY_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  const port = await freePort()
  const publicUrl = `http://127.0.0.1:${port}`
  const path = o.path ?? '/mcp/echo'
  const resource = `${publicUrl}${path}`
  const clients = (o.users ?? [['mcp-user']]).map((roles, i) => client(i, roles))
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-bench-'))
  const removeDir = cleanup(() => rmSync(dir, { recursive: true, force: true }))
  const policies = o.policyYaml === undefined ? join(o.root, 'policies') : join(dir, 'policy.yaml')
  if (o.policyYaml !== undefined) writeFileSync(policies, o.policyYaml)
  let idp: DevIdp | undefined
  try {
    idp = await startDevIdp({
      port: 0,
      resources: [resource],
      clients,
      stateFile: false,
      scopesFor: scopesForPolicy(policies),
      logger: pino({ level: 'warn' }),
    })
    const level = process.env.BENCH_GATEWAY_LOG ?? 'info'
    const config = join(dir, 'gateway.yaml')
    const responses = process.env.BENCH_RESPONSES ?? 'sse'
    writeFileSync(
      config,
      stringify({
        listen: { host: '127.0.0.1', port },
        publicUrl,
        auth: { issuer: idp.issuer },
        servers: o.servers ?? {
          echo: { command: process.execPath, args: [o.echoJs], responses, ...o.server },
        },
        ...(o.endpoints ? { endpoints: o.endpoints } : {}),
        policies,
        ...(o.limits ? { limits: o.limits } : {}),
        log: { level, audit: process.env.BENCH_AUDIT ?? 'stdout' },
      }),
    )
    const main = join(o.root, 'dist/gateway/main.js')
    const { child, problems, recentLog } = await spawnGateway(main, config, {
      nodeArgs: o.nodeArgs ?? [],
      env: o.env,
      logsListening: ['info', 'debug', 'trace'].includes(level),
      healthz: `${publicUrl}/healthz`,
    })
    const issuer = idp.issuer
    const tokens = await Promise.all(
      clients.map((c) => clientCredentials(issuer, resource, c)),
    ).catch(async (err: unknown) => {
      await stopTree(child)
      throw err
    })
    const users = tokens.map((token) => ({ authorization: `Bearer ${token}` }))
    const closeIdp = idp
    return {
      origin: publicUrl,
      path,
      child,
      headers: users[0]!,
      users,
      problems,
      recentLog,
      stop: async () => {
        await stopTree(child)
        await closeIdp.close()
        removeDir()
      },
    }
  } catch (err) {
    await idp?.close()
    removeDir()
    throw err
  }
}

/**
 * The `edge` rows: the gateway with the echo server in its default (session) mode, all
 * sessions the one bench user's. `modern`: the same gateway serving sessionless 2026-07-28
 * requests, where a "session" is a client with its own principal: on one session, the one
 * principal's requests in flight (its lanes); as `principals` sessions, one request each.
 */
export async function gatewayTarget(
  o: GatewayOptions,
  shape: RowShape,
  modern = false,
  principals = 1,
): Promise<Target> {
  const gw = await startGateway({
    ...o,
    users: Array.from({ length: principals }, () => ['mcp-user']),
  })
  return httpTarget({
    ...shape,
    modern,
    ...(principals > 1 ? { concurrencyMode: `${principals} principals, 1 in flight each` } : {}),
    origin: gw.origin,
    path: gw.path,
    child: gw.child,
    headers: (k) => gw.users[k % gw.users.length]!,
    problems: gw.problems,
    recentLog: gw.recentLog,
    stop: gw.stop, // httpTarget stops the tree first; stopping it again is a no-op
  })
}

/**
 * Runs `fn` against a fresh gateway and stops it afterwards, even on failure; on failure the
 * gateway's warn/error lines and latest log lines go to stderr before the error is rethrown.
 */
export async function withGateway<T>(
  o: GatewayOptions,
  fn: (gw: Gateway) => Promise<T>,
): Promise<T> {
  const gw = await startGateway(o)
  try {
    return await fn(gw)
  } catch (err) {
    for (const p of gw.problems()) console.error(`  ${p}`)
    console.error('  latest log lines (access log left out):')
    for (const l of gw.recentLog()) console.error(`    ${l}`)
    throw err
  } finally {
    await gw.stop()
  }
}

/**
 * Starts `main.js serve --config` and waits for its "listening" log line (logged at info;
 * at quieter levels /healthz is polled). Every later warn/error line is kept for the report.
 */
async function spawnGateway(
  main: string,
  config: string,
  o: {
    nodeArgs: readonly string[]
    env: Record<string, string> | undefined
    logsListening: boolean
    healthz: string
  },
): Promise<{ child: ChildProcess; problems: () => string[]; recentLog: () => string[] }> {
  const env = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
  const nodeArgs = [...o.nodeArgs, ...env]
  const child = spawnTracked(process.execPath, [...nodeArgs, main, 'serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(o.env && { env: { ...process.env, ...o.env } }),
  })
  const seen: string[] = []
  const recent: string[] = []
  let lines = 0
  const onLine = (line: string) => {
    lines++
    if (/"level":"(warn|error|fatal)"/.test(line) && seen.length < 20) seen.push(line.slice(0, 400))
    // Lines other than the per-request access log: context when a row fails.
    if (!line.includes('"msg":"request"') && recent.push(line.slice(0, 400)) > 20) recent.shift()
  }
  const isListening = (line: string) => o.logsListening && line.includes('"msg":"listening"')
  const listening = awaitLine(child, (line) => (isListening(line) ? true : undefined), onLine)
  try {
    if (o.logsListening) {
      await listening
    } else {
      listening.catch(() => {}) // never matches: it only feeds onLine
      await pollReady(o.healthz, () => child.exitCode !== null || child.signalCode !== null)
    }
  } catch (err) {
    await stopTree(child)
    throw new Error(`mcp-edge: ${(err as Error).message}`)
  }
  const problems = () => [...seen, `log lines after start: ${lines}`]
  return { child, problems, recentLog: () => [...recent] }
}

/**
 * A real access token: client_credentials (RFC 6749 §4.4) for the resource (RFC 8707), no
 * scope requested, so access rests on the client's role `mcp-user` through the policy.
 */
async function clientCredentials(
  issuer: string,
  resource: string,
  c: { clientId: string; clientSecret: string },
): Promise<string> {
  const meta = await request(`${issuer}/.well-known/openid-configuration`)
  const { token_endpoint: endpoint } = (await meta.body.json()) as { token_endpoint: string }
  const basic = Buffer.from(`${c.clientId}:${c.clientSecret}`).toString('base64')
  const res = await request(endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource }).toString(),
  })
  const body = (await res.body.json()) as { access_token?: string }
  if (res.statusCode !== 200 || !body.access_token) {
    throw new Error(`token request failed: HTTP ${res.statusCode} ${JSON.stringify(body)}`)
  }
  return body.access_token
}
