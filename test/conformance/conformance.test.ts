// The official MCP conformance suite's server scenarios against the real gateway fronting
// servers/conformance (a session-era stdio server): the 2025-11-25 and 2026-07-28 requirement
// sets and the 2025-06-18 era, each against its own baseline of known failures; then both
// requirement sets against an endpoint whose one backend is that server, without a prefix
// (the server's baselines) and with one (its own, name-dependent checks only). The suite
// needs Node >= 22: it runs from the registry's `node` package through npx; .ci/run fetches
// both beforehand.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { npxBin, npxEnv } from '../helpers/npx-bin.js'
import { notScored, summary, tallies, type Tally } from './results.js'

/**
 * The suite the tests pin, and the Node it runs on: resolved by npx once for the file
 * (test/helpers/npx-bin.ts), then its `conformance` started directly at each of the 12 runs.
 */
export const CONFORMANCE = ['node@24', '@modelcontextprotocol/conformance@0.2.0-alpha.12']

/** One whole run of the suite, at most (it takes seconds; npx may first have to fetch). */
const RUN_TIMEOUT_MS = 240_000

/**
 * The whole file's limit (`node --test --test-timeout`, which the runner passes to this
 * process), else none. Past it the runner kills the file and names no run and no scenario: a
 * run still going this close to it is stopped here, naming both.
 */
const FILE_TIMEOUT_MS = Number(
  /^--test-timeout=(\d+)$/.exec(
    process.execArgv.find((a) => a.startsWith('--test-timeout=')) ?? '',
  )?.[1] ?? Number.POSITIVE_INFINITY,
)
/** What the file keeps of its limit to stop a run, close its gateway and report. */
const FILE_MARGIN_MS = 20_000
/** When the last run must have been stopped. */
const FILE_DEADLINE = performance.now() + FILE_TIMEOUT_MS - FILE_MARGIN_MS

const SERVER = fileURLToPath(new URL('../../servers/conformance.js', import.meta.url))
/** Baselines are read from the source tree: dist/test/conformance → test/conformance. */
const baseline = (name: string) =>
  fileURLToPath(new URL(`../../../test/conformance/${name}`, import.meta.url))

/** Insecure-no-auth gives every caller every scope; the policy still needs rules that allow. */
const POLICY = `
servers:
  conformance:
    tools: { "*": allow }
    prompts: { "*": allow }
    resources: { "*": allow }
`

/** SSE polling closes a POST stream still open after 500 ms: test_reconnection (2 s) makes server-sse-polling resume. */
const POLLING = { closeAfter: 500 }

/** What a run talks to: the server itself, or an endpoint whose one backend is the server, under `prefix`. */
type Target = { server: true } | { prefix: string }

/**
 * The gateway on 127.0.0.1 (an ephemeral port, so dns-rebinding's "valid localhost" Host
 * passes) in front of the conformance server in `mode` with SSE replies, and an endpoint
 * `single` at /mcp over it alone when the target is one. ssePolling is set where the client
 * talks: on the server, or on the endpoint (whose streams are its own).
 */
async function gateway(dir: string, mode: 'session' | 'shared', target: Target): Promise<Gateway> {
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  const endpoint =
    'prefix' in target
      ? {
          single: {
            path: '/mcp',
            servers: ['conformance'],
            prefix: target.prefix,
            ssePolling: POLLING,
          },
        }
      : {}
  const config = validateConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      servers: {
        conformance: {
          command: process.execPath,
          args: [SERVER],
          mode,
          ...('server' in target ? { ssePolling: POLLING } : {}),
        },
      },
      endpoints: endpoint,
      policies: join(dir, 'policy.yaml'),
    },
    { file: 'conformance test', baseDir: dir },
  )
  const sink = { write: () => {} }
  return startGateway(config, {
    log: pino({ level: 'silent' }),
    insecureNoAuth: true,
    auditDestination: sink,
  })
}

/**
 * Runs the suite's CLI in cwd; resolves with its exit code and output, never rejects on failure.
 * Stopped after RUN_TIMEOUT_MS, or at the file's deadline if that comes first: `stopped` then
 * says which, with the scenario it was running.
 */
async function conformance(
  cwd: string,
  args: string[],
): Promise<{ code: number | null; out: string; stopped?: string }> {
  const bin = await npxBin(CONFORMANCE, 'conformance', cwd)
  return new Promise((resolve, reject) => {
    const left = FILE_DEADLINE - performance.now()
    if (left <= 0) {
      resolve({ code: null, out: '', stopped: "not started: the file's time limit is near" })
      return
    }
    // Its own process group: on timeout, the suite and anything it started are stopped together.
    const child = spawn(join(bin, 'conformance'), args, {
      cwd,
      env: npxEnv(bin),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const limit = Math.min(RUN_TIMEOUT_MS, left)
    let stopped: string | undefined
    const timer = setTimeout(() => {
      const running = [...out.matchAll(/=== Running scenario: (\S+) ===/g)].at(-1)?.[1]
      stopped =
        `stopped after ${Math.round(limit / 1000)} s (${limit < RUN_TIMEOUT_MS ? "the file's time limit was near" : 'its own limit'})` +
        ` while running scenario ${running ?? '(none started yet)'}`
      process.kill(-child.pid!, 'SIGKILL')
    }, limit)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, stopped })
    })
  })
}

/** `conformance list --requirements <set>`, run once per set (it depends on nothing else). */
const listings = new Map<string, ReturnType<typeof conformance>>()
function listing(cwd: string, set: string): ReturnType<typeof conformance> {
  let found = listings.get(set)
  if (found === undefined) {
    found = conformance(cwd, ['list', '--requirements', set])
    listings.set(set, found)
  }
  return found
}

/** One line per scenario, then the scored totals. */
function report(found: Tally[], unscored: ReadonlyMap<string, string>): string[] {
  const lines: string[] = []
  const scored = { scenarios: 0, clean: 0, checks: 0, passed: 0 }
  for (const s of found) {
    const why = unscored.get(s.scenario)
    const checks = s.passed + s.failed + s.warnings
    if (why === undefined) {
      scored.scenarios++
      if (s.failed + s.warnings === 0) scored.clean++
      scored.checks += checks
      scored.passed += s.passed
    }
    // With a baseline the CLI counts a scored WARNING as a failure too.
    const mark = s.failed > 0 ? '✗' : s.warnings > 0 ? '⚠' : '✓'
    const notes = [
      ...(why ? [`not scored: ${why}`] : []),
      ...(s.failing.length > 0 ? [`failing: ${s.failing.join(', ')}`] : []),
      ...(s.warned.length > 0 ? [`warning: ${s.warned.join(', ')}`] : []),
    ]
    lines.push(
      `${mark} ${s.scenario}: ${s.passed}/${checks} checks passed${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`,
    )
  }
  const { clean, scenarios, passed, checks } = scored
  lines.push(
    `scored: ${clean}/${scenarios} scenarios and ${passed}/${checks} checks passed; ${unscored.size} scenario(s) run but not scored`,
  )
  return lines
}

const SERVER_ITSELF: Target = { server: true }

// name → what it talks to, how the suite selects its scenarios (a requirement set also runs
// scenarios it does not score), and the baseline of known failures. An endpoint over the one
// server and no prefix must pass as the server does, against the same baseline; with a prefix,
// only the checks that call a tool or prompt by the server's own name may fail.
const RUNS: Array<
  [name: string, mode: 'session' | 'shared', target: Target, select: string[], baseline: string]
> = [
  [
    '2025-11-25 requirements (session era), session mode',
    'session',
    SERVER_ITSELF,
    ['--requirements', '2025-11-25'],
    'baseline-session-2025-11-25.yml',
  ],
  [
    '2026-07-28 requirements (sessionless), session mode',
    'session',
    SERVER_ITSELF,
    ['--requirements', '2026-07-28'],
    'baseline-sessionless-2026-07-28.yml',
  ],
  [
    '2025-06-18 scenarios (session era), session mode',
    'session',
    SERVER_ITSELF,
    ['--spec-version', '2025-06-18'],
    'baseline-session-2025-06-18.yml',
  ],
  [
    '2025-11-25 requirements (session era), shared mode',
    'shared',
    SERVER_ITSELF,
    ['--requirements', '2025-11-25'],
    'baseline-shared-2025-11-25.yml',
  ],
  [
    '2026-07-28 requirements (sessionless), shared mode',
    'shared',
    SERVER_ITSELF,
    ['--requirements', '2026-07-28'],
    'baseline-shared-2026-07-28.yml',
  ],
  [
    '2025-06-18 scenarios (session era), shared mode',
    'shared',
    SERVER_ITSELF,
    ['--spec-version', '2025-06-18'],
    'baseline-shared-2025-06-18.yml',
  ],
  [
    '2025-11-25 requirements (session era), endpoint over the server, no prefix',
    'session',
    { prefix: '' },
    ['--requirements', '2025-11-25'],
    'baseline-session-2025-11-25.yml',
  ],
  [
    '2026-07-28 requirements (sessionless), endpoint over the server, no prefix',
    'session',
    { prefix: '' },
    ['--requirements', '2026-07-28'],
    'baseline-sessionless-2026-07-28.yml',
  ],
  [
    '2025-11-25 requirements (session era), endpoint over the server, prefix {server}_',
    'session',
    { prefix: '{server}_' },
    ['--requirements', '2025-11-25'],
    'baseline-endpoint-prefix-2025-11-25.yml',
  ],
  [
    '2026-07-28 requirements (sessionless), endpoint over the server, prefix {server}_',
    'session',
    { prefix: '{server}_' },
    ['--requirements', '2026-07-28'],
    'baseline-endpoint-prefix-2026-07-28.yml',
  ],
]

describe('MCP conformance suite against the gateway', {
  timeout: RUNS.length * RUN_TIMEOUT_MS,
}, () => {
  for (const [name, mode, target, select, file] of RUNS) {
    it(name, { timeout: RUN_TIMEOUT_MS + 30_000 }, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-conformance-'))
      const gw = await gateway(dir, mode, target)
      try {
        const url = `${gw.url}/mcp${'server' in target ? '/conformance' : ''}`
        const { code, out, stopped } = await conformance(dir, [
          'server',
          '--url',
          url,
          ...select,
          '--expected-failures',
          baseline(file),
          '-o',
          join(dir, 'results'),
        ])
        assert.equal(stopped, undefined, `${name}: ${stopped}\n${out.slice(-4000)}`)
        // With a baseline the run does not print which scenarios its set leaves unscored.
        const set = select[0] === '--requirements' ? select[1] : undefined
        const listed = set === undefined ? undefined : await listing(dir, set)
        assert.equal(listed?.stopped, undefined, `conformance list: ${listed?.stopped}`)
        const unscored = notScored(listed?.out ?? '')
        const results = join(dir, 'results')
        for (const line of report(existsSync(results) ? tallies(results) : [], unscored))
          t.diagnostic(line)
        const lines = summary(out)
        for (const line of lines.filter((l) =>
          /^(Total|Not scored|Baseline|Stale|Unexpected)/.test(l.trim()),
        ))
          t.diagnostic(line.trim())
        assert.equal(
          code,
          0,
          `conformance exited with ${code} against ${file}:\n${lines.join('\n')}`,
        )
      } finally {
        await gw.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }
})
