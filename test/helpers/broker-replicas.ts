// Two gateway replicas in broker mode behind one public URL, sharing a real redis-server: the
// same signing, cookie and sealing keys (secrets in environment variables, as in production),
// distinct replicaIds, and in front a tiny router standing in for nginx. A browser and a client
// only ever see the public URL; the router sends each request to the replica the test names in
// `x-test-replica`, or else to its default (one replica, or alternating).
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportJWK, generateKeyPair } from 'jose'
import { pino } from 'pino'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { BROKER_POLICY, TESTS_SIGN_INS_PER_MINUTE } from './broker-stack.js'
import { startRedis, type RedisServer } from './redis.js'
import { SERVERS_DIR } from './stack.js'
import { startEntraLike, type UpstreamIdp } from './upstream-idp.js'

export type ReplicaName = 'a' | 'b'

/** The header naming the replica a request goes to (the router removes it). */
export const REPLICA_HEADER = 'x-test-replica'

/** The stand-in for nginx: forwards each request, untouched, to one replica. */
export interface Router {
  url: string
  /** Where requests without {@link REPLICA_HEADER} go. */
  mode: ReplicaName | 'alternate'
  /** Requests each replica received through the router. */
  hits: Record<ReplicaName, number>
  close(): Promise<void>
}

/** One replica: its gateway, its own address, every log line it wrote. */
export interface Replica {
  id: ReplicaName
  gateway: Gateway
  url: string
  logLines: string[]
}

export interface BrokerReplicas {
  publicUrl: string
  router: Router
  redis: RedisServer
  idp: UpstreamIdp
  replicas: Record<ReplicaName, Replica>
  /** Every Redis key of this stack starts with it. */
  keyPrefix: string
  /** The environment variables holding the secrets, by what they hold. */
  env: {
    redisUrl: string
    signingKeys: string
    cookieKeys: string
    sealingKeys: string
    upstreamSecret: string
  }
  /** The raw configuration of a replica (edit it to start one that must be refused). */
  rawConfig(id: string): Record<string, unknown>
  /** Starts a gateway from a raw configuration (the caller closes it). */
  start(raw: Record<string, unknown>): Promise<Gateway>
  close(): Promise<void>
}

/**
 * Starts redis-server (with an append-only file, so a stopped Redis comes back with its data),
 * an Entra-like upstream, the router, and replicas `a` and `b`.
 */
export async function startBrokerReplicas(
  o: {
    broker?: Record<string, unknown>
    upstream?: Record<string, unknown>
    /** Added to each replica's `store` section (lockWait, commandTimeout). */
    store?: Record<string, unknown>
    /** The URL the replicas reach Redis at, given its own (a proxy in front of it). */
    redisUrl?: (url: string) => string | Promise<string>
    /** The clock of the replicas' sign-in and registration counts' windows (default the real one). */
    signInClock?: () => number
    /** Added to each replica's top-level configuration (trustProxy). */
    config?: Record<string, unknown>
  } = {},
): Promise<BrokerReplicas> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-replicas-'))
  writeFileSync(join(dir, 'policy.yaml'), BROKER_POLICY)
  const redis = await startRedis({ persist: true })
  const targets: Partial<Record<ReplicaName, number>> = {}
  const router = await startRouter(targets)
  const publicUrl = router.url
  const idp = await startEntraLike({ callback: `${publicUrl}/oauth/callback` })

  const tag = randomBytes(4).toString('hex').toUpperCase()
  const env = {
    redisUrl: `MCP_EDGE_TEST_${tag}_REDIS_URL`,
    signingKeys: `MCP_EDGE_TEST_${tag}_SIGNING_KEYS`,
    cookieKeys: `MCP_EDGE_TEST_${tag}_COOKIE_KEYS`,
    sealingKeys: `MCP_EDGE_TEST_${tag}_SEALING_KEYS`,
    upstreamSecret: `MCP_EDGE_TEST_${tag}_UPSTREAM_SECRET`,
  }
  const { privateKey } = await generateKeyPair('ES256', { extractable: true })
  process.env[env.redisUrl] = o.redisUrl ? await o.redisUrl(redis.url) : redis.url
  process.env[env.signingKeys] = JSON.stringify({
    keys: [{ ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'ES256' }],
  })
  process.env[env.cookieKeys] = JSON.stringify([
    randomBytes(32).toString('base64url'),
    randomBytes(32).toString('base64url'),
  ])
  process.env[env.sealingKeys] = JSON.stringify({ k1: randomBytes(32).toString('base64url') })
  process.env[env.upstreamSecret] = 'entra-secret-0123456789'

  const keyPrefix = `mcp-edge-test-${tag.toLowerCase()}:`
  const node = process.execPath
  const rawConfig = (id: string): Record<string, unknown> => ({
    listen: { host: '127.0.0.1', port: 0 },
    publicUrl,
    replicaId: id,
    auth: {
      broker: {
        upstream: {
          issuer: idp.issuer,
          clientId: 'mcp-edge-entra-basic',
          clientSecret: { env: env.upstreamSecret },
          roleClaims: ['roles'],
          subjectClaim: 'oid',
          ...o.upstream,
        },
        signingKeys: { env: env.signingKeys },
        cookieKeys: { env: env.cookieKeys },
        signIn: { perAddressPerMinute: TESTS_SIGN_INS_PER_MINUTE },
        ...o.broker,
      },
    },
    store: { kind: 'redis', url: { env: env.redisUrl }, keyPrefix, ...o.store },
    secrets: { keys: { env: env.sealingKeys }, active: 'k1' },
    servers: {
      echo: { command: node, args: [join(SERVERS_DIR, 'echo.js')] },
      notes: { command: node, args: [join(SERVERS_DIR, 'notes.js')] },
    },
    policies: join(dir, 'policy.yaml'),
    log: { level: 'debug', audit: 'off' },
    ...o.config,
  })
  const logs: Record<ReplicaName, string[]> = { a: [], b: [] }
  const start = (raw: Record<string, unknown>, lines: string[] = []) =>
    startGateway(validateConfig(raw, { file: 'test', baseDir: dir }), {
      log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }),
      signInClock: o.signInClock,
    })

  const started: Gateway[] = []
  const cleanUp = async () => {
    await Promise.all(started.map((g) => g.close()))
    await router.close()
    await idp.close()
    await redis.close()
    for (const name of Object.values(env)) delete process.env[name]
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (const id of ['a', 'b'] as const) {
      const gateway = await start(rawConfig(id), logs[id])
      started.push(gateway)
      targets[id] = Number(new URL(gateway.url).port)
    }
  } catch (err) {
    await cleanUp()
    throw err
  }
  const replica = (id: ReplicaName, i: number): Replica => ({
    id,
    gateway: started[i]!,
    url: started[i]!.url,
    logLines: logs[id],
  })
  return {
    publicUrl,
    router,
    redis,
    idp,
    replicas: { a: replica('a', 0), b: replica('b', 1) },
    keyPrefix,
    env,
    rawConfig,
    start: (raw) => start(raw),
    close: cleanUp,
  }
}

/** The router: raw HTTP forwarding (Host and body as sent), like nginx's proxy_pass. */
async function startRouter(targets: Partial<Record<ReplicaName, number>>): Promise<Router> {
  let turn = 0
  const router: Router = { url: '', mode: 'a', hits: { a: 0, b: 0 }, close: async () => {} }
  const agent = new http.Agent({ keepAlive: true })
  const server = http.createServer((req, res) => {
    const named = req.headers[REPLICA_HEADER]
    delete req.headers[REPLICA_HEADER]
    const id: ReplicaName =
      named === 'a' || named === 'b'
        ? named
        : router.mode === 'alternate'
          ? turn++ % 2 === 0
            ? 'a'
            : 'b'
          : router.mode
    const port = targets[id]
    if (port === undefined) {
      res.writeHead(502).end('no such replica')
      return
    }
    router.hits[id]++
    const out = http.request(
      { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.rawHeaders)
        answer.pipe(res)
      },
    )
    out.on('error', () =>
      res.headersSent ? res.destroy() : res.writeHead(502).end('replica unreachable'),
    )
    req.pipe(out)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  router.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  router.close = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    agent.destroy()
    await closed
  }
  return router
}
