// SIGTERM while `mcp-edge serve` is still starting: the real CLI stops what has started (the
// dev IdP and its state file, the Redis connection, the listener) and exits 0, saying so,
// instead of dying of the signal (exit 143). The signal is sent when the gateway connects to
// Redis, a stage after the listener and the dev IdP are up and before it serves.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const POLICIES = fileURLToPath(new URL('../../../policies/', import.meta.url))

type Line = Record<string, unknown>

/**
 * A loopback port standing in for Redis: on the gateway's first connection it calls
 * `onConnect`, then relays to `upstream` (Redis answers, start-up completes) or holds the
 * connection unanswered (start-up waits for its connect timeout, then fails).
 */
async function redisFront(
  upstream: number | undefined,
  onConnect: () => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  let first = true
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    if (first) onConnect()
    first = false
    if (upstream === undefined) return
    const redis = connect(upstream, '127.0.0.1')
    redis.on('error', () => socket.destroy())
    socket.on('close', () => redis.destroy())
    socket.pipe(redis).pipe(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      }),
  }
}

// Bounded: a gateway that does not stop fails here in a minute, not at the suite's timeout.
describe('a signal during start-up', { skip: NO_REDIS, timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-startup-signal-'))
  const keys = join(dir, 'sealing-keys.json')
  let redis: RedisServer
  before(async () => {
    writeFileSync(keys, JSON.stringify({ k1: randomBytes(32).toString('base64url') }), {
      mode: 0o600,
    })
    redis = await startRedis()
  })
  after(async () => {
    await redis?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Serves with the dev IdP and a Redis store at `front`; SIGTERM on its first connection. */
  async function serveAndSignal(name: string, relay: boolean) {
    const state = join(dir, `${name}-devidp.json`)
    let gateway: ReturnType<typeof spawn> | undefined
    let signalled = false
    const front = await redisFront(relay ? redis.port : undefined, () => {
      signalled = gateway?.kill('SIGTERM') === true
    })
    const { port } = front
    const config = join(dir, `${name}.yaml`)
    writeFileSync(
      config,
      `listen: { port: 0 }
devIdp: { port: 0 }
store: { kind: redis, url: { env: MCP_EDGE_TEST_REDIS_URL }, keyPrefix: "${name}:", connectTimeout: 1000 }
secrets: { keys: { file: ${JSON.stringify(keys)} }, active: k1 }
servers:
  echo:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(join(SERVERS_DIR, 'echo.js'))}]
    credentials:
      ECHO_TOKEN: { secret: echo_token }
  warm:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(join(SERVERS_DIR, 'echo.js'))}]
    pool: { min: 1 }
policies: ${JSON.stringify(POLICIES)}
`,
    )
    gateway = spawn(process.execPath, [MAIN, 'serve', '--config', config, '--dev-idp'], {
      env: {
        ...process.env,
        MCP_EDGE_DEV_IDP_STATE: state,
        MCP_EDGE_TEST_REDIS_URL: `redis://127.0.0.1:${port}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const lines: Line[] = []
    let stderr = ''
    createInterface({ input: gateway.stdout! }).on('line', (l) => lines.push(JSON.parse(l)))
    gateway.stderr!.on('data', (d) => (stderr += d))
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      gateway.once('close', (c, s) => resolve([c, s])),
    )
    await front.close()
    assert.ok(
      signalled,
      `not signalled: ${code} ${stderr} ${JSON.stringify(lines.map((l) => l.msg))}`,
    )
    return { code, signal, lines, stderr, state }
  }

  for (const c of [
    { name: 'redis-answers', relay: true, started: true },
    { name: 'redis-silent', relay: false, started: false },
  ]) {
    it(`${c.started ? 'Redis answers' : 'Redis is silent (start-up abandons the wait)'}: after SIGTERM what started stops, exit 0`, async () => {
      const r = await serveAndSignal(c.name, c.relay)
      const msgs = r.lines.map((l) => l.msg)
      assert.deepEqual([r.code, r.signal], [0, null], `exit; stderr: ${r.stderr}`)
      const at = msgs.indexOf('signal during start-up: stopping once what has started can be')
      assert.ok(at >= 0, JSON.stringify(msgs))
      assert.equal(r.lines[at]!.signal, 'SIGTERM')
      assert.ok(msgs.includes('dev IdP listening'), 'the dev IdP was up when the signal came')
      assert.equal(msgs.at(-1), 'start-up interrupted: stopped')
      // Redis answering may or may not have started the gateway before the signal was handled;
      // Redis silent, start-up never got that far.
      if (!c.started) assert.equal(msgs.includes('listening'), false)
      assert.equal(existsSync(r.state), false, 'the dev IdP state file is removed with it')
    })
  }
})

/** A loopback port that accepts connections and never answers; `onConnect` on the first. */
async function silentPeer(onConnect: () => void): Promise<{ port: number; close(): void }> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    if (sockets.size === 0) onConnect()
    sockets.add(socket)
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      server.close()
      for (const s of sockets) s.destroy()
    },
  }
}

/** Pids of live processes whose environment holds `marker` (the gateway's children carry it). */
function processesWith(marker: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(marker)) pids.push(+entry)
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return pids
}

// Start-up waiting on an IdP that took the connection and says nothing: the step's own limit
// (120 s here, and the shutdown deadline 100 s) is far past this suite's timeout, so only a
// stop that abandons the step (the broker's upstream discovery) or aborts the fetch (the
// issuer's keys, fetched while start-up goes on) ends the process in time: by the exit event.
describe('a signal while start-up waits on a silent IdP', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-startup-silent-'))
  const running = new Set<ReturnType<typeof spawn>>()
  after(() => {
    for (const g of running) g.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })

  const auth = {
    'broker upstream discovery': (port: number) => `auth:
  broker:
    upstream:
      issuer: "http://127.0.0.1:${port}"
      clientId: mcp-edge
      clientSecret: { env: MCP_EDGE_TEST_UPSTREAM_SECRET }
      timeout: 120000
      recheckLock: 130000
`,
    'issuer signing keys': (
      port: number,
    ) => `auth: { issuer: "http://127.0.0.1:${port}", idpTimeout: 120000 }
`,
  }
  for (const [name, authYaml] of Object.entries(auth)) {
    it(`${name}: SIGTERM on the IdP's first connection exits 0 at once, children ended`, async () => {
      const marker = `MCP_EDGE_TEST_MARK_${randomBytes(8).toString('hex')}`
      let gateway: ReturnType<typeof spawn> | undefined
      let signalled = false
      const idp = await silentPeer(() => {
        signalled = gateway?.kill('SIGTERM') === true
      })
      const config = join(dir, `${name.replaceAll(' ', '-')}.yaml`)
      writeFileSync(
        config,
        `listen: { port: 0 }
${authYaml(idp.port)}limits: { shutdownDeadline: 100000 }
servers:
  warm:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(join(SERVERS_DIR, 'echo.js'))}]
    env: { ${marker}: "1" }
    pool: { min: 2 }
policies: ${JSON.stringify(POLICIES)}
`,
      )
      gateway = spawn(process.execPath, [MAIN, 'serve', '--config', config], {
        env: { ...process.env, MCP_EDGE_TEST_UPSTREAM_SECRET: 'upstream-secret' },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      running.add(gateway)
      const lines: Line[] = []
      let stderr = ''
      createInterface({ input: gateway.stdout! }).on('line', (l) => lines.push(JSON.parse(l)))
      gateway.stderr!.on('data', (d) => (stderr += d))
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
        gateway.once('close', (c, s) => resolve([c, s])),
      )
      running.delete(gateway)
      idp.close()
      const msgs = lines.map((l) => l.msg)
      assert.ok(signalled, `not signalled: ${code} ${stderr} ${JSON.stringify(msgs)}`)
      assert.deepEqual([code, signal], [0, null], `exit; stderr: ${stderr} ${JSON.stringify(msgs)}`)
      assert.ok(
        ['stopped', 'start-up interrupted: stopped'].includes(String(msgs.at(-1))),
        JSON.stringify(msgs),
      )
      assert.deepEqual(processesWith(marker), [], 'every child ended with the gateway')
    })
  }
})
