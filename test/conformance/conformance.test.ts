// The official MCP conformance suite's server scenarios against the real gateway fronting
// servers/conformance (a session-era stdio server): the 2025-11-25 and 2026-07-28 requirement
// sets and the 2025-06-18 era, each against its own baseline of known failures. The suite
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
import { notScored, summary, tallies, type Tally } from './results.js'

/** The suite the tests pin, and the Node it runs on. */
export const CONFORMANCE = ['-y', '-p', 'node@24', '-p', '@modelcontextprotocol/conformance@0.2.0-alpha.12', '--', 'conformance']

/** One whole run of the suite, at most (it takes seconds; npx may first have to fetch). */
const RUN_TIMEOUT_MS = 240_000

const SERVER = fileURLToPath(new URL('../../servers/conformance.js', import.meta.url))
/** Baselines are read from the source tree: dist/test/conformance → test/conformance. */
const baseline = (name: string) => fileURLToPath(new URL(`../../../test/conformance/${name}`, import.meta.url))

/** Insecure-no-auth gives every caller every scope; the policy still needs rules that allow. */
const POLICY = `
servers:
  conformance:
    tools: { "*": allow }
    prompts: { "*": allow }
    resources: { "*": allow }
`

/**
 * The gateway on 127.0.0.1 (an ephemeral port, so dns-rebinding's "valid localhost" Host
 * passes) in front of the conformance server in `mode` with SSE replies. ssePolling
 * closes a POST stream still open after 500 ms, so test_reconnection (2 s) makes
 * server-sse-polling exercise a disconnect and a Last-Event-ID resume.
 */
async function gateway(dir: string, mode: 'session' | 'shared'): Promise<Gateway> {
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  const config = validateConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      servers: { conformance: { command: process.execPath, args: [SERVER], mode, ssePolling: { closeAfter: 500 } } },
      policies: join(dir, 'policy.yaml'),
    },
    { file: 'conformance test', baseDir: dir },
  )
  const sink = { write: () => {} }
  return startGateway(config, { log: pino({ level: 'silent' }), insecureNoAuth: true, auditDestination: sink })
}

/** Runs the suite's CLI in cwd; resolves with its exit code and output, never rejects on failure. */
function conformance(cwd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    // Its own process group: on timeout, npx and the Node it started are stopped together.
    const child = spawn('npx', [...CONFORMANCE, ...args], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), RUN_TIMEOUT_MS)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
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
    lines.push(`${mark} ${s.scenario}: ${s.passed}/${checks} checks passed${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`)
  }
  const { clean, scenarios, passed, checks } = scored
  lines.push(`scored: ${clean}/${scenarios} scenarios and ${passed}/${checks} checks passed; ${unscored.size} scenario(s) run but not scored`)
  return lines
}

// name → how the suite selects its scenarios (a requirement set also runs scenarios it does
// not score), and the baseline of known failures.
const RUNS: Array<[name: string, mode: 'session' | 'shared', select: string[], baseline: string]> = [
  ['2025-11-25 requirements (session era), session mode', 'session', ['--requirements', '2025-11-25'], 'baseline-session-2025-11-25.yml'],
  ['2026-07-28 requirements (sessionless), session mode', 'session', ['--requirements', '2026-07-28'], 'baseline-sessionless-2026-07-28.yml'],
  ['2025-06-18 scenarios (session era), session mode', 'session', ['--spec-version', '2025-06-18'], 'baseline-session-2025-06-18.yml'],
  ['2025-11-25 requirements (session era), shared mode', 'shared', ['--requirements', '2025-11-25'], 'baseline-shared-2025-11-25.yml'],
  ['2026-07-28 requirements (sessionless), shared mode', 'shared', ['--requirements', '2026-07-28'], 'baseline-shared-2026-07-28.yml'],
  ['2025-06-18 scenarios (session era), shared mode', 'shared', ['--spec-version', '2025-06-18'], 'baseline-shared-2025-06-18.yml'],
]

describe('MCP conformance suite against the gateway', { timeout: RUNS.length * RUN_TIMEOUT_MS }, () => {
  for (const [name, mode, select, file] of RUNS) {
    it(name, { timeout: RUN_TIMEOUT_MS + 30_000 }, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-conformance-'))
      const gw = await gateway(dir, mode)
      try {
        const url = `${gw.url}/mcp/conformance`
        const { code, out } = await conformance(dir, ['server', '--url', url, ...select, '--expected-failures', baseline(file), '-o', join(dir, 'results')])
        // With a baseline the run does not print which scenarios its set leaves unscored.
        const set = select[0] === '--requirements' ? select[1] : undefined
        const unscored = set === undefined ? new Map<string, string>() : notScored((await conformance(dir, ['list', '--requirements', set])).out)
        const results = join(dir, 'results')
        for (const line of report(existsSync(results) ? tallies(results) : [], unscored)) t.diagnostic(line)
        const lines = summary(out)
        for (const line of lines.filter((l) => /^(Total|Not scored|Baseline|Stale|Unexpected)/.test(l.trim()))) t.diagnostic(line.trim())
        assert.equal(code, 0, `conformance exited with ${code} against ${file}:\n${lines.join('\n')}`)
      } finally {
        await gw.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }
})
