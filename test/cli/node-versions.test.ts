// The gateway on every Node it promises (package.json engines: 20.19+, 22.12+, 24): the suite runs
// on the Node on PATH (20 in CI); this file runs the built CLI, `mcp-edge serve`, on Node 22 and
// 24 from the registry (npx, fetched beforehand by .ci/run) with its servers on the same Node,
// and checks what leans on a version: the OAuth flow of a real SDK client (oidc-provider, jose,
// undici, @hono/node-server), a shared-mode call, stdout pacing (stdout-pacing.ts stops a pipe's
// reading on its handle, an internal of Node's) and a clean SIGTERM exit with no warning printed.
// Where npx cannot get a Node the test fails in CI (CI=true) and is skipped elsewhere.
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { PACE_AFTER_READS } from '../../gateway/bridge/stdout-pacing.js'
import { followToRedirectUri, request } from '../helpers/oauth-flow.js'
import { memoryProvider, REDIRECT } from '../helpers/oauth-provider.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const run = promisify(execFile)
const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
/** The versions besides the one on PATH; .ci/run fetches each with retries. */
const VERSIONS = ['22', '24']
/** Bytes of the drip server's reply text, each written to its stdout on its own. */
const DRIP_BYTES = 100

/**
 * The path of Node `major`'s binary from the registry, or why there is none. npx resolves the
 * range once: the binary it installed is then run directly, as the gateway would be.
 */
async function nodeBinary(major: string): Promise<string | Error> {
  try {
    const { stdout } = await run(
      'npx',
      ['-y', '-p', `node@${major}`, '--', 'node', '-p', 'process.execPath'],
      { timeout: 240_000 },
    )
    return stdout.trim()
  } catch (err) {
    return err as Error
  }
}

// A stdio MCP server in a few lines, no SDK: its one tool's reply is written a byte per
// write(2), a millisecond apart (the reads of a pipe still reading take them one by one).
const DRIP = `
const fs = require('node:fs')
let rest = ''
process.stdin.on('data', (c) => {
  const lines = (rest + c).split('\\n')
  rest = lines.pop()
  for (const l of lines) answer(JSON.parse(l))
})
function answer(m) {
  if (m.id === undefined) return
  const reply = (result) => JSON.stringify({ jsonrpc: '2.0', id: m.id, result }) + '\\n'
  if (m.method === 'initialize')
    return fs.writeSync(1, reply({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'drip', version: '0' } }))
  if (m.method === 'tools/list')
    return fs.writeSync(1, reply({ tools: [{ name: 'drip', inputSchema: { type: 'object' } }] }))
  const line = Buffer.from(reply({ content: [{ type: 'text', text: 'd'.repeat(${DRIP_BYTES}) }] }))
  let i = 0
  const next = () => {
    fs.writeSync(1, line.subarray(i, i + 1))
    if (++i < line.length) setTimeout(next, 1)
  }
  next()
}
`

// Preloaded into the gateway (--import): counts, for each pipe read by a 'data' listener, its
// reads and the times its reading was stopped and started on its handle, and writes them to
// MCP_EDGE_TEST_PIPES at exit. It changes nothing the gateway does.
const PROBE = `
import net from 'node:net'
import { writeFileSync } from 'node:fs'
const pipes = []
const on = net.Socket.prototype.on
net.Socket.prototype.on = function (event, listener) {
  const handle = this._handle
  if (event === 'data' && handle?.constructor?.name === 'Pipe' && !this.__probed) {
    this.__probed = true
    const p = { reads: 0, bytes: 0, stops: 0, starts: 0 }
    pipes.push(p)
    const { readStop, readStart } = handle
    handle.readStop = function () { p.stops++; return readStop.call(this) }
    handle.readStart = function () { p.starts++; return readStart.call(this) }
    on.call(this, 'data', (chunk) => {
      p.reads++
      p.bytes += chunk.length
    })
  }
  return on.call(this, event, listener)
}
process.on('exit', () => writeFileSync(process.env.MCP_EDGE_TEST_PIPES, JSON.stringify(pipes)))
`

interface Pipe {
  reads: number
  bytes: number
  stops: number
  starts: number
}

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-node-versions-'))
const running: ChildProcess[] = []
after(() => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

/** Starts `mcp-edge serve` on `node` with its dev IdP; resolves once it listens. */
async function serve(node: string, tag: string) {
  const probe = join(dir, `probe-${tag}.mjs`)
  const drip = join(dir, `drip-${tag}.cjs`)
  const policy = join(dir, `policy-${tag}.yaml`)
  const config = join(dir, `gateway-${tag}.yaml`)
  writeFileSync(probe, PROBE)
  writeFileSync(drip, DRIP)
  const rule = '{ access: ["mcp:read"], tools: { "*": ["mcp:read"] } }'
  writeFileSync(
    policy,
    `roles: { mcp-user: ["mcp:read"] }\nservers:\n  echo: ${rule}\n  shared: ${rule}\n  drip: ${rule}\n`,
  )
  const echo = JSON.stringify(join(SERVERS_DIR, 'echo.js'))
  writeFileSync(
    config,
    `listen: { port: 0 }
devIdp: { port: 0 }
servers:
  echo: { command: ${JSON.stringify(node)}, args: [${echo}] }
  shared: { command: ${JSON.stringify(node)}, args: [${echo}], mode: shared }
  drip: { command: ${JSON.stringify(node)}, args: [${JSON.stringify(drip)}] }
policies: ${JSON.stringify(policy)}
`,
  )
  const pipes = join(dir, `pipes-${tag}.json`)
  const env = { MCP_EDGE_DEV_IDP_STATE: join(dir, `devidp-${tag}.json`) }
  const p = spawn(node, ['--import', probe, MAIN, 'serve', '--config', config, '--dev-idp'], {
    env: { ...process.env, ...env, MCP_EDGE_TEST_PIPES: pipes },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.push(p)
  const lines: Record<string, unknown>[] = []
  let stderr = ''
  p.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)))
  const listening = new Promise<{ url: string }>((resolve, reject) => {
    createInterface({ input: p.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>
      lines.push(entry)
      if (entry.msg === 'listening') resolve(entry as never)
    })
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)))
  })
  const { url } = await listening
  return {
    url,
    lines,
    env,
    stderr: () => stderr,
    /** SIGTERM; resolves with the exit code and the probe's pipes. */
    async stop(): Promise<{ code: number | null; pipes: Pipe[] }> {
      p.kill('SIGTERM')
      const code = await exited
      return { code, pipes: JSON.parse(readFileSync(pipes, 'utf8')) as Pipe[] }
    },
  }
}

/** An SDK client on `url` with a bearer header. */
async function connect(url: string, token: string): Promise<Client> {
  const client = new Client({ name: 'node-versions', version: '0' })
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  return client
}

const textOf = (r: Awaited<ReturnType<Client['callTool']>>) =>
  (r.content as { type: string; text: string }[])[0]!.text

/** package.json's `engines.node` ranges (`^major.minor.patch`), as [major, minor] each. */
function engines(): [number, number][] {
  const pkg = fileURLToPath(new URL('../../../package.json', import.meta.url))
  const range = (JSON.parse(readFileSync(pkg, 'utf8')) as { engines: { node: string } }).engines
    .node
  return range.split('||').map((r) => {
    const m = /^\s*\^(\d+)\.(\d+)\.\d+\s*$/.exec(r)
    assert.ok(m, `engines.node: ${range}`)
    return [Number(m[1]), Number(m[2])]
  })
}

it('engines names the versions tested here and the Node on PATH', () => {
  const majors = engines().map(([major]) => major)
  for (const v of VERSIONS) assert.ok(majors.includes(Number(v)), `Node ${v} not in engines`)
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
  assert.ok(
    engines().some(([m, n]) => m === major && minor >= n),
    `${process.version} not in engines`,
  )
})

for (const major of VERSIONS) {
  describe(`mcp-edge serve on Node ${major}`, { timeout: 300_000 }, () => {
    let node: string | Error | undefined
    const binary = async (t: { skip(reason: string): void }) => {
      node ??= await nodeBinary(major)
      if (typeof node === 'string') return node
      // CI has fetched it (.ci/run): not getting it there is a failure, not a reason to skip.
      if (process.env.CI === 'true') throw new Error(`npx could not get node@${major}: ${node}`)
      t.skip(`npx could not get node@${major} (no registry?)`)
      return undefined
    }

    it('OAuth with a real SDK client, a shared-mode call, paced stdout, a clean SIGTERM exit', async (t) => {
      const node = await binary(t)
      if (node === undefined) return
      const { stdout: version } = await run(node, ['--version'])
      const [, minor] = version.trim().slice(1).split('.').map(Number)
      assert.ok(
        engines().some(([m, n]) => m === Number(major) && minor! >= n),
        `${version.trim()} is not in engines`,
      )
      const gw = await serve(node, major)

      // The whole flow: 401, metadata, registration, authorization code with PKCE, token.
      const url = new URL(`${gw.url}/mcp/echo`)
      const { provider, saved } = memoryProvider(`node ${major}`)
      const client = new Client({ name: 'node-versions', version: '0' })
      await assert.rejects(
        client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider })),
        /Unauthorized/,
      )
      const callback = await followToRedirectUri(provider.authorizationUrl!.href, REDIRECT)
      const transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
      await transport.finishAuth(callback.searchParams)
      assert.ok(saved.tokens, 'a token')
      await client.connect(transport)
      const echoed = await client.callTool({ name: 'echo', arguments: { text: `on ${major}` } })
      assert.equal(textOf(echoed), `on ${major}`)
      await client.close()

      // Tokens for the other servers from the CLI, on the same Node.
      const token = async (server: string) =>
        (
          await run(node, [MAIN, 'token', '--resource', `${gw.url}/mcp/${server}`], {
            env: { ...process.env, ...gw.env },
          })
        ).stdout.trim()

      const [shared, dripToken] = await Promise.all([token('shared'), token('drip')])

      // Shared mode: two sessions on one process, each answered its own.
      const a = await connect(`${gw.url}/mcp/shared`, shared)
      const b = await connect(`${gw.url}/mcp/shared`, shared)
      const [ra, rb] = await Promise.all([
        a.callTool({ name: 'echo', arguments: { text: 'a' } }),
        b.callTool({ name: 'echo', arguments: { text: 'b' } }),
      ])
      assert.deepEqual([textOf(ra), textOf(rb)], ['a', 'b'])
      await Promise.all([a.close(), b.close()])

      // The 2026-07-28 era: one POST, no session.
      const sessionless = await request(`${gw.url}/mcp/shared`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${shared}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'echo',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: {
            name: 'echo',
            arguments: { text: 'no session' },
            _meta: {
              'io.modelcontextprotocol/protocolVersion': '2026-07-28',
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          },
        }),
      })
      assert.equal(sessionless.statusCode, 200)
      assert.match(await sessionless.body.text(), /no session/)

      // A reply written a byte at a time arrives whole.
      const d = await connect(`${gw.url}/mcp/drip`, dripToken)
      const dripped = await d.callTool({ name: 'drip', arguments: {} })
      assert.equal(textOf(dripped), 'd'.repeat(DRIP_BYTES))
      await d.close()

      const { code, pipes } = await gw.stop()
      assert.equal(code, 0, gw.stderr())
      // Nothing on stderr: no deprecation or experimental warning for a user to see.
      assert.equal(gw.stderr(), '')
      assert.ok(gw.lines.some((l) => l.msg === 'stopped'))
      assert.deepEqual(
        gw.lines.filter((l) => l.level === 'error' || l.level === 'fatal'),
        [],
      )
      // Every process it started (sessions, the shared one) is gone with it.
      const pids = new Set(gw.lines.filter((l) => typeof l.pid === 'number').map((l) => l.pid))
      assert.ok(pids.size >= 3, `processes: ${[...pids]}`)
      for (const pid of pids) assert.throws(() => process.kill(pid as number, 0), /ESRCH/)

      // Paced: one pipe, the drip process's stdout, stopped reading on its handle (once
      // PACE_AFTER_READS small reads of its line had come) and started again after each rest.
      // Its batches are stdout-pacing.test.ts's to show (below): here a rest is PACE_MS.
      const rested = pipes.filter((p) => p.stops > 0)
      assert.equal(rested.length, 1, `one pipe rested: ${JSON.stringify(pipes)}`)
      const drip = rested[0]!
      assert.equal(drip.starts, drip.stops, JSON.stringify(drip))
      assert.ok(drip.reads > PACE_AFTER_READS, JSON.stringify(drip))
    })

    it('the unit tests of what depends on Node itself: stdout pacing, stdout framing', async (t) => {
      const node = await binary(t)
      if (node === undefined) return
      // stdout-pacing.test.ts holds reading at rest itself (no timer): a line in 1-byte writes
      // is read in one batch once reading resumes. stdio-frames.test.ts checks what a process's
      // reader keeps (Node 24's buffer pool has 64 KiB slabs). Run by their own runner (not as
      // subtests of this one), each file in a process of its own.
      const { NODE_TEST_CONTEXT: _, ...env } = process.env
      const files = ['stdout-pacing', 'stdio-frames'].map((f) =>
        fileURLToPath(new URL(`../bridge/${f}.test.js`, import.meta.url)),
      )
      // stdio-frames: only its tests of what is kept (its fuzz and cost tests are Node's own).
      const only = ['--test-name-pattern', 'stdout pacing|far past the cap|held across reads']
      const res = await run(node, ['--test', '--test-reporter=tap', ...only, ...files], {
        env,
        timeout: 120_000,
      }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? String(err) }))
      const failed = res.stdout.split('\n').filter((l) => /^\s*not ok /.test(l))
      assert.deepEqual(failed, [], res.stdout.slice(-4000))
      assert.match(res.stdout, /^# fail 0$/m)
      // Both files' tests ran: pacing's three, framing's two.
      assert.ok(Number(/^# pass (\d+)$/m.exec(res.stdout)?.[1]) >= 5, res.stdout.slice(-4000))
    })
  })
}
