// What the outside review of stop 21b tried against the day's guards of resources and lifetimes
// (the start-failure memory, lazy reapers, start-up abort, lane counters), on one real gateway in
// front of the real flaky fixture (it records each start in a file and reads what to do from
// another), with real tokens signed by the dev IdP's key. The backoff's clock is the test's.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { RevocationList } from '../../gateway/broker/revocations.js'
import { startGateway } from '../../gateway/gateway.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { freePort } from '../helpers/ports.js'
import { NO_REDIS, startRedis } from '../helpers/redis.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const V = '2026-07-28'
const ACCEPT = 'application/json, text/event-stream'
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop21b-'))
const file = (server: string, what: 'starts' | 'mode') => join(dir, `${server}-${what}`)
const flaky = (server: string, extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'flaky.js')],
  env: { FLAKY_STARTS_FILE: file(server, 'starts'), FLAKY_MODE_FILE: file(server, 'mode') },
  respawnBackoff: 1000,
  ...extra,
})
/** Times the fixture started so far. */
const starts = (server: string) =>
  existsSync(file(server, 'starts'))
    ? readFileSync(file(server, 'starts'), 'utf8').split('\n').filter(Boolean).length
    : 0

const now = Date.now()
let stack: Stack

before(async () => {
  // Started for mallory, it exits at once (her own state is broken); for anyone else it serves.
  writeFileSync(file('peruser', 'mode'), 'exit-for:mallory')
  stack = await startStack({
    servers: { peruser: flaky('peruser', { identityEnv: true }) },
    config: { endpoints: { mine: { path: '/mine', servers: ['echo', 'peruser'] } } },
    policy: `${TEST_POLICY}  peruser:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
    startClock: () => now,
  })
})
after(async () => {
  await stack.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A token of `sub` from one client app, the same scopes as every other user of it. */
const tokenOf = (sub: string, aud: string) =>
  stack.forge({ sub, azp: 'shared-app', aud, scope: 'mcp:read' })

let nextId = 1
/** A sessionless (2026-07-28) tools/list at `url` with `token`: status, Retry-After, tool names. */
async function toolsList(url: string, token: string) {
  const res = await request(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': V,
      'mcp-method': 'tools/list',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: nextId++,
      method: 'tools/list',
      params: {
        _meta: {
          'io.modelcontextprotocol/protocolVersion': V,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  })
  const text = await res.body.text()
  const data = text.startsWith('event:') || text.startsWith('id:') ? lastEvent(text) : text
  const json = (data ? JSON.parse(data) : {}) as { result?: { tools?: { name: string }[] } }
  return {
    status: res.statusCode,
    retryAfter: res.headers['retry-after'],
    tools: (json.result?.tools ?? []).map((t) => t.name),
    text,
  }
}

function lastEvent(text: string): string {
  const datas = text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6))
  return datas[datas.length - 1] ?? ''
}

describe('start failures under identityEnv: one user cannot get the server refused for others', () => {
  it("a start that fails for mallory's identity refuses mallory only, not alice of the same client and scopes", async () => {
    const server = stack.local('peruser')
    const aud = stack.endpoint('peruser')
    const mallory = await tokenOf('mallory', aud)
    const alice = await tokenOf('alice', aud)
    const first = await toolsList(server, mallory)
    assert.equal(first.status, 502, first.text)
    assert.equal(starts('peruser'), 1)
    // Mallory is inside her window: refused, nothing spawned.
    const again = await toolsList(server, mallory)
    assert.equal(again.status, 503, again.text)
    assert.equal(again.retryAfter, '1')
    assert.equal(starts('peruser'), 1)
    // Alice's process starts with another MCP_EDGE_SUBJECT: her start is not mallory's.
    const hers = await toolsList(server, alice)
    assert.equal(hers.status, 200, hers.text)
    assert.deepEqual(hers.tools, ['ping'])
    assert.equal(starts('peruser'), 2, "alice's own process was started")
  })

  it("an endpoint does not leave the server out of alice's list for mallory's failure", async () => {
    const aud = `${stack.url}/mine`
    const mallory = await tokenOf('mallory', aud)
    const bob = await tokenOf('bob', aud)
    const url = `${stack.url}/mine`
    const hers = await toolsList(url, mallory)
    assert.equal(hers.status, 200, hers.text)
    assert.ok(!hers.tools.some((t) => t.startsWith('peruser')), hers.text)
    const his = await toolsList(url, bob)
    assert.equal(his.status, 200, his.text)
    assert.ok(
      his.tools.some((t) => t.startsWith('peruser')),
      `bob's list has peruser's tools: ${his.text}`,
    )
  })
})

const LOGGER = fileURLToPath(new URL('../../gateway/observability/logger.js', import.meta.url))

// A slow reader of stdout: the reader has no room (a write refused, or a part written), and a
// line logged meanwhile is under the buffer size. Its flush timer hands it on behind the bytes
// waiting, and it must be written once the reader reads, without another line logged or a flush
// asked for (on an idle gateway, none comes). The child runs until the test has read the line:
// the exit's own write is not what wrote it. Refusals are seen by watching the stream's writes.
const SLOW_READER_CHILD = `
import fs from 'node:fs'
let refused = false
for (const name of ['writeSync', 'writevSync']) {
  const real = fs[name]
  fs[name] = function (fd, data, ...rest) {
    try {
      const n = real.call(this, fd, data, ...rest)
      const size = Array.isArray(data) ? data.reduce((t, b) => t + b.length, 0) : Buffer.byteLength(data)
      if (fd === 1 && n < size) refused = true
      return n
    } catch (err) {
      if (fd === 1 && err.code === 'EAGAIN') refused = true
      throw err
    }
  }
}
const { createLogger } = await import(${JSON.stringify(LOGGER)})
const log = createLogger({ level: 'info', bufferBytes: 1024, flushInterval: 10, format: 'json' })
while (!refused) {
  log.info('x'.repeat(2000))
  await new Promise((r) => setImmediate(r))
}
log.info('the tail')
process.stderr.write('behind\\n')
await new Promise((r) => process.stdin.once('data', r))
process.exit(0)
`

describe('buffered stdout log behind a slow reader', () => {
  it('a line logged while bytes wait is written once the reader reads, without another line', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', SLOW_READER_CHILD], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    let tailWhileRunning = false
    child.stdout.on('data', (d) => {
      out += d
      if (!tailWhileRunning && out.includes('"msg":"the tail"')) {
        tailWhileRunning = true
        child.stdin.end('go\n')
      }
    })
    // Not read until the child says it is behind (the pipe stays full meanwhile).
    child.stdout.pause()
    child.stderr.on('data', (d) => {
      err += d
      if (err.includes('behind\n')) child.stdout.resume()
    })
    const code = await new Promise((r) => child.once('exit', r))
    assert.equal(code, 0, err)
    assert.ok(tailWhileRunning, 'the tail came while the child ran')
  })
})

// A start-up that fails after the revocation list started (the broker's upstream refuses its
// discovery): what started is stopped, the list's heartbeat on the closed store included. Left
// running it wakes every heartbeat for the life of the embedding process, and says so in its log.
describe('start-up failing after the revocation list started', { skip: NO_REDIS }, () => {
  const HEARTBEAT = 100
  it('stops the list: no heartbeat runs on for a gateway that never started', async () => {
    const redis = await startRedis()
    const refused = await freePort()
    const lines: string[] = []
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) })
    process.env.MCP_EDGE_TEST_STOP21B_SECRET = 'upstream-secret'
    process.env.MCP_EDGE_TEST_STOP21B_REDIS = redis.url
    try {
      const config = validateConfig(
        {
          listen: { host: '127.0.0.1', port: 0 },
          store: {
            kind: 'redis',
            url: { env: 'MCP_EDGE_TEST_STOP21B_REDIS' },
            keyPrefix: 'stop21b:',
            heartbeat: HEARTBEAT,
          },
          auth: {
            broker: {
              upstream: {
                issuer: `http://127.0.0.1:${refused}`,
                clientId: 'mcp-edge',
                clientSecret: { env: 'MCP_EDGE_TEST_STOP21B_SECRET' },
              },
            },
          },
          servers: { echo: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] } },
        },
        { file: 'test', baseDir: dir },
      )
      await assert.rejects(startGateway(config, { log }))
      const failedAt = lines.length
      // Left running, its heartbeat on the closed store goes unheard and it says so two
      // intervals on. No clock decides when that is: a barrier list on the same heartbeat,
      // started now, counts its own beats (each one publish); in five of them the gateway's
      // list, started earlier, would have beaten at least four times and said so.
      let beats = 0
      const barrier = await RevocationList.start({
        store: {
          ...createMemoryStore(),
          broadcast: { publish: async () => void beats++, subscribe: async () => async () => {} },
        },
        ttlMs: 60_000,
        toleranceMs: 0,
        maxEntries: 10,
        tokensPerUser: 10,
        cookieKeys: ['k'.repeat(32)],
        log: pino({ level: 'silent' }),
        heartbeatMs: HEARTBEAT,
      })
      try {
        await waitFor(() => beats >= 5, 'the barrier list beat five times')
      } finally {
        await barrier.close()
      }
      const later = lines.slice(failedAt).filter((l) => l.includes('revocation list'))
      assert.deepEqual(later, [], 'nothing of the revocation list after start-up failed')
    } finally {
      delete process.env.MCP_EDGE_TEST_STOP21B_SECRET
      delete process.env.MCP_EDGE_TEST_STOP21B_REDIS
      await redis.close()
    }
  })
})
