// Log budgets the per-process budgets (log-window.ts) had left out: an idle warm-pool process
// (no owner yet) has its suppressed lines counted in mcp_edge_log_lines_suppressed_total; an
// endpoint session's warnings about messages it cannot pass on are budgeted like a process's,
// the rest counted when the session ends; a warm process's refused request is logged with its
// method cut to 120 characters. Real processes, a real logger; every wait is for a log line.
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { AggregateSession } from '../../gateway/bridge/aggregate-session.js'
import { ProcessPool } from '../../gateway/bridge/pool.js'
import {
  configSchema,
  DEFAULT_WARNINGS_PER_WINDOW,
  type ServerConfig,
} from '../../gateway/config/schema.js'
import { createMetrics, zeroGauges, type Metrics } from '../../gateway/observability/metrics.js'
import { recorder } from '../helpers/log-recorder.js'
import { principal } from '../helpers/principal.js'

async function suppressed(metrics: Metrics, server: string, source: string): Promise<number> {
  const m = await metrics.logLinesSuppressed.get()
  return m.values.find((v) => v.labels.server === server && v.labels.source === source)?.value ?? 0
}

function script(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'log-budgets-')), name)
  writeFileSync(file, text)
  return file
}

function serverConfig(name: string, server: Record<string, unknown>): ServerConfig {
  return configSchema.parse({ servers: { [name]: server } }).servers[name]!
}

describe('log budgets: an idle warm-pool process', () => {
  // Writes STDERR_LINES lines to stderr as it starts, then answers every request with {}.
  const STDERR_LINES = 7
  const NOISY = `
import { createInterface } from 'node:readline'
for (let i = 0; i < ${STDERR_LINES}; i++) process.stderr.write('noise ' + i + '\\n')
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.id !== undefined) process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {} }) + '\\n')
})
`
  it('its suppressed stderr lines are counted in mcp_edge_log_lines_suppressed_total, with no owner', async () => {
    const { log, line } = recorder()
    const metrics = createMetrics(zeroGauges())
    const config = serverConfig('noisy', {
      command: process.execPath,
      args: [script('noisy.mjs', NOISY)],
      pool: { min: 1 },
      stderr: { linesPerWindow: 1, window: 3_600_000, keepLast: 0 },
    })
    const pool = new ProcessPool({ name: 'noisy', config, log, metrics })
    pool.start()
    await line(/^warm server process ready$/)
    // Ended while it waits in the pool: its window ends with its stderr, and is counted.
    await pool.close()
    const told = await line(/more server stderr lines suppressed/)
    assert.equal(told.suppressed, STDERR_LINES - 1)
    assert.equal(await suppressed(metrics, 'noisy', 'stderr'), STDERR_LINES - 1)
  })
})

describe('log budgets: an endpoint session', () => {
  const LINES = 100
  /** An endpoint session whose client transport serializes as the real one does, and throws. */
  function session() {
    const { log, lines, line } = recorder()
    const metrics = createMetrics(zeroGauges())
    const config = configSchema.parse({ servers: { a: { command: 'x' } } })
    const s = new AggregateSession({
      id: 'sess-1',
      agg: {
        name: 'ep',
        endpoint: { maxSubscriptions: 10, resumability: { enabled: false } },
      } as never,
      owner: principal('alice'),
      config,
      lanes: { onEventOf: () => () => {} } as never,
      log,
      metrics,
      budget: {} as never,
      transport: () =>
        ({
          send: (m: JSONRPCMessage) => void JSON.stringify(m),
          close() {},
        }) as never,
      onclose() {},
    })
    return { s, lines, line, metrics }
  }

  it(`warnings about messages it cannot pass on: ${DEFAULT_WARNINGS_PER_WINDOW} a window, the rest counted when it ends`, async () => {
    const { s, lines, line, metrics } = session()
    // A notification a backend wrote that cannot be serialized (a BigInt stands for any).
    const bad = {
      jsonrpc: '2.0',
      method: 'notifications/message',
      params: { n: 1n },
    } as unknown as JSONRPCMessage
    for (let i = 0; i < LINES; i++) s.tell(bad)
    const warned = () =>
      lines.filter((l) => l.msg === 'a message could not be serialized for the client; dropped')
    assert.equal(warned().length, DEFAULT_WARNINGS_PER_WINDOW)
    await s.close()
    const told = await line(/more warnings about what the endpoint session could not pass on/)
    assert.equal(told.suppressed, LINES - DEFAULT_WARNINGS_PER_WINDOW)
    assert.equal(warned().length, DEFAULT_WARNINGS_PER_WINDOW)
    assert.equal(await suppressed(metrics, 'ep', 'warnings'), LINES - DEFAULT_WARNINGS_PER_WINDOW)
  })
})

describe('log budgets: a warm process asking', () => {
  // Once initialized, asks with a method name of METHOD_CHARS characters.
  const METHOD_CHARS = 50_000
  const ASKS = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: {}, serverInfo: { name: 'asks', version: '0' } } })
  else if (m.method === 'notifications/initialized')
    out({ jsonrpc: '2.0', id: 'ask-1', method: 'x'.repeat(${METHOD_CHARS}) })
  else if (m.id !== undefined && m.method !== undefined) out({ jsonrpc: '2.0', id: m.id, result: {} })
})
`
  it('its refused request is logged with the method cut to 120 characters', async () => {
    const { log, line } = recorder()
    const config = serverConfig('asks', {
      command: process.execPath,
      args: [script('asks.mjs', ASKS)],
      pool: { min: 1, preinitialize: true },
    })
    const pool = new ProcessPool({ name: 'asks', config, log })
    pool.start()
    try {
      const asked = await line(/^warm server process asked; refused$/)
      assert.equal(asked.method, 'x'.repeat(120))
    } finally {
      await pool.close()
    }
  })
})
