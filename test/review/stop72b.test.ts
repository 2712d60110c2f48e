// Review stop 72: the log's stdout stream (observability/stdout-stream.ts) in a real process whose
// fd 1 is what an operator's supervisor may give it: a regular file, /dev/null, nothing (closed),
// a reader taking one byte at a time, a reader that never reads. Held: every line lands, whole and
// in order, where a reader reads; the process neither throws nor hangs where none does; what a
// reader that stops reading refuses costs log.maxPendingBytes at most (unbounded before bound71:
// 256 MB of lines, all held). And (held) a Client ID Metadata Document's hostile cache headers: cached
// within oidc-provider's 30 s floor and auth.broker.cimd.maxCacheAge, whatever they say.
// And (held) an inherited value a real process splits over stderr writes and lines is blotted.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { authorizeUrl, authParams, pkce, send } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { DEFAULT_LOG_MAX_PENDING_BYTES } from '../../gateway/config/schema.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { makeTestCa, type TestCa } from '../helpers/test-ca.js'
import { waitFor } from '../helpers/wait-for.js'

const STREAM = new URL('../../gateway/observability/stdout-stream.js', import.meta.url).href
const dir = mkdtempSync(join(tmpdir(), 'stop72b-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const line = (i: number) => `{"i":${i},"s":"${'é'.repeat(i % 50)}ツール😀${'x'.repeat(i % 300)}"}\n`
const LINES = 3000
const expected = Array.from({ length: LINES }, (_, i) => line(i)).join('')

/**
 * A process writing LINES lines through the stream to its fd 1 (half given while it runs, half
 * at exit), then saying on stderr what its flush came back with; `then` runs after (JS).
 */
const writer = (then = '') => `
import { bufferedStdout } from ${JSON.stringify(STREAM)}
const line = ${line.toString()}
const s = bufferedStdout({ bytes: 4096, interval: 1, wait: 60_000, maxPending: ${DEFAULT_LOG_MAX_PENDING_BYTES} })
for (let i = 0; i < ${LINES / 2}; i++) s.write(line(i))
// The stream's retries do not hold the process (a gateway's listeners do): this does.
const alive = setInterval(() => {}, 1 << 30)
s.flush((err) => {
  clearInterval(alive)
  process.stderr.write('flushed ' + (err?.code ?? 'ok') + '\\n')
  for (let i = ${LINES / 2}; i < ${LINES}; i++) s.write(line(i))
  ${then}
  process.exit(0)
})
`

/** Runs `sh -c script` with WRITER set to the writer's source: its exit code and stderr. */
function run(script: string, then?: string) {
  const child = spawn('sh', ['-c', script], {
    env: { ...process.env, WRITER: writer(then), NODE: process.execPath },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr += d
  })
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stderr })),
  )
}
const node = '"$NODE" --input-type=module -e "$WRITER"'

describe('stop72: the log stdout stream on what a supervisor gives a process as fd 1', () => {
  it('held: a regular file (appended to, as a supervisor opens it) gets every line, whole and in order', async () => {
    const file = join(dir, 'file.log')
    const got = await run(`printf 'before\\n' > '${file}'; ${node} >> '${file}'`)
    assert.equal(got.code, 0, got.stderr)
    assert.match(got.stderr, /flushed ok/)
    assert.equal(readFileSync(file, 'utf8'), `before\n${expected}`)
  })

  it('held: a reader taking one byte at a time gets every line, whole and in order', async () => {
    const file = join(dir, 'bytewise.log')
    const got = await run(`${node} | dd bs=1 status=none of='${file}'`)
    assert.equal(got.code, 0, got.stderr)
    assert.match(got.stderr, /flushed ok/)
    assert.equal(readFileSync(file, 'utf8'), expected)
  })

  it('held: /dev/null takes it all; so does a closed fd 1 (Node opens /dev/null there at start)', async () => {
    const devNull = await run(`${node} > /dev/null`)
    assert.equal(devNull.code, 0, devNull.stderr)
    assert.match(devNull.stderr, /flushed ok/)
    const closed = await run(`${node} >&-`)
    assert.equal(closed.code, 0, closed.stderr)
    assert.match(closed.stderr, /flushed ok/)
  })

  it('held: a reader gone mid-line (EPIPE) fails the flush; the process goes on and exits 0, what it got is a prefix of the lines', async () => {
    const file = join(dir, 'gone.log')
    const got = await run(`${node} | head -c 10001 > '${file}'`)
    assert.equal(got.code, 0, got.stderr)
    assert.match(got.stderr, /flushed EPIPE/)
    const read = readFileSync(file, 'utf8')
    assert.equal(Buffer.byteLength(read), 10001)
    assert.ok(expected.startsWith(read))
  })

  it('held (was medium, fixed by the lead at bound71): a reader that never reads costs log.maxPendingBytes, not every line given since', async () => {
    // 256 MB of lines while nobody reads fd 1 (a pipe to `sleep`, which never reads), then
    // what the process holds outside its heap (queued Buffers); killed there, in its own group.
    const grow = `
      import { bufferedStdout } from ${JSON.stringify(STREAM)}
      const s = bufferedStdout({ bytes: 4096, interval: 1, wait: 0, maxPending: ${DEFAULT_LOG_MAX_PENDING_BYTES} })
      const big = 'x'.repeat(1 << 16) + '\\n'
      for (let i = 0; i < 4096; i++) s.write(big)
      process.stderr.write('held ' + process.memoryUsage().arrayBuffers + '\\n')
      process.kill(process.pid, 'SIGKILL')`
    const child = spawn('sh', ['-c', `${node} | sleep 600`], {
      env: { ...process.env, WRITER: grow, NODE: process.execPath },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    })
    after(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // gone already
      }
    })
    let stderr = ''
    try {
      await new Promise<void>((resolve) => {
        child.stderr.on('data', (d) => {
          stderr += d
          if (/held \d+\n/.test(stderr)) resolve()
        })
        child.on('close', () => resolve())
      })
    } finally {
      process.kill(-child.pid!, 'SIGKILL')
    }
    const held = Number(/held (\d+)/.exec(stderr)?.[1])
    // Before the bound: 256 MB held. Now what waits, and a line's worth besides.
    assert.ok(held < DEFAULT_LOG_MAX_PENDING_BYTES + 2 ** 20, `${held} bytes held: ${stderr}`)
  })
})

describe('stop72: hostile cache headers of a Client ID Metadata Document, maxCacheAge 600', () => {
  const REDIRECT = 'http://127.0.0.1:43150/cb'
  let ca: TestCa
  let stack: BrokerStack
  let docs: https.Server
  let origin = ''
  const routes = new Map<string, Record<string, string | string[]>>()
  const hits = new Map<string, number>()
  let unique = 0

  before(async () => {
    ca = makeTestCa()
    const caFile = join(dir, 'cimd-ca.pem')
    writeFileSync(caFile, ca.ca)
    docs = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
      const path = req.url ?? '/'
      hits.set(path, (hits.get(path) ?? 0) + 1)
      const headers = routes.get(path)
      if (headers === undefined) return void res.writeHead(404).end()
      const body = JSON.stringify({
        client_id: `${origin}${path}`,
        client_name: 'stop72',
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
      })
      res.writeHead(200, { 'content-type': 'application/json', ...headers }).end(body)
    })
    docs.listen(0, '127.0.0.1')
    await once(docs, 'listening')
    origin = `https://127.0.0.1:${(docs.address() as AddressInfo).port}`
    stack = await startBrokerStack({
      broker: {
        cimd: { caFile, allowPrivate: ['127.0.0.1/32'], timeout: 2000, maxCacheAge: 600 },
      },
    })
  })
  after(async () => {
    await stack?.close()
    docs?.closeAllConnections()
    docs?.close()
  })

  const authorize = (clientId: string) =>
    send(
      authorizeUrl(
        stack,
        authParams(stack, { clientId, redirectUri: REDIRECT, challenge: pkce().challenge }),
      ),
    )

  // Each: the headers, and how long (s) the document is then cached.
  const cases: [string, Record<string, string | string[]>, number][] = [
    ['a max-age past any integer', { 'cache-control': `max-age=${'9'.repeat(400)}` }, 600],
    ['a negative max-age (not one: the floor)', { 'cache-control': 'max-age=-5' }, 30],
    [
      'max-age with a fraction (its whole part, raised to the floor)',
      { 'cache-control': 'max-age=1.5e9' },
      30,
    ],
    ['s-maxage only (not max-age: the floor)', { 'cache-control': 's-maxage=100000' }, 30],
    ['no-store (the floor, not every request)', { 'cache-control': 'no-store, no-cache' }, 30],
    [
      'two Cache-Control headers (the first max-age)',
      { 'cache-control': ['max-age=100', 'max-age=100000'] },
      100,
    ],
    ['Expires in the past', { expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }, 30],
    ['Expires far ahead', { expires: 'Fri, 31 Dec 9999 23:59:59 GMT' }, 600],
    ['Expires garbage', { expires: '0' }, 30],
    [
      'max-age=0 beside a far Expires (max-age wins, raised to the floor)',
      { 'cache-control': 'max-age=0', expires: 'Fri, 31 Dec 9999 23:59:59 GMT' },
      30,
    ],
  ]
  for (const [name, headers, age] of cases) {
    it(`held: ${name}: cached ${age} s, never past maxCacheAge`, async (t) => {
      const path = `/doc-${++unique}.json`
      routes.set(path, headers)
      t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 1000) * 1000 })
      assert.equal((await authorize(`${origin}${path}`)).status, 303)
      t.mock.timers.tick((age - 1) * 1000)
      assert.equal((await authorize(`${origin}${path}`)).status, 303)
      assert.equal(hits.get(path), 1, `still cached at ${age - 1} s`)
      t.mock.timers.tick(2000)
      assert.equal((await authorize(`${origin}${path}`)).status, 303)
      assert.equal(hits.get(path), 2, `fetched again at ${age + 1} s`)
    })
  }
})

describe('stop72: an inherited value split over stderr writes and lines, by a real process', () => {
  const TOKEN = 'stop72-inherited-token-0123456789abcdef'
  /** Writes TOKEN split over separate writes, over two lines and over three, then a marker. */
  const SPLITS = `
const t = process.env.STOP72_TOKEN
const parts = [
  'one ' + t.slice(0, 9), t.slice(9) + ' end\\n',
  'two ' + t.slice(0, 14) + '\\n', t.slice(14) + ' end\\n',
  'three ' + t.slice(0, 7) + '\\n' + t.slice(7, 20) + '\\n', t.slice(20) + ' end\\n',
  'stop72-done\\n',
]
const next = () => parts.length > 0 && process.stderr.write(parts.shift(), () => setTimeout(next, 5))
next()
setInterval(() => {}, 1 << 30)
`
  let stack: Stack
  const saved = process.env.STOP72_TOKEN
  before(async () => {
    process.env.STOP72_TOKEN = TOKEN
    stack = await startStack({
      servers: {
        splits: {
          command: process.execPath,
          args: ['-e', SPLITS],
          inheritEnv: ['STOP72_TOKEN'],
          pool: { min: 1, preinitialize: true },
        },
      },
    })
  })
  after(async () => {
    await stack?.close()
    if (saved === undefined) delete process.env.STOP72_TOKEN
    else process.env.STOP72_TOKEN = saved
  })

  it('held: no part of it long enough to say anything reaches the log', async () => {
    await waitFor(
      () => stack.logLines.some((l) => l.includes('stop72-done')),
      'the marker line was logged',
    )
    const lines = stack.logLines.filter((l) => /"(one|two|three) |end"|[0-9a-f]{6}/.test(l))
    assert.ok(lines.some((l) => l.includes('one ')) && lines.some((l) => l.includes(' end')))
    // Every run of 8 characters of the value (MIN_ANYWHERE: a shorter run says little).
    for (let i = 0; i + 8 <= TOKEN.length; i++)
      for (const l of stack.logLines) assert.ok(!l.includes(TOKEN.slice(i, i + 8)), l)
  })
})
