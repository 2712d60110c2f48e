// Log lines for people and for programs: which format is chosen where, secrets redacted in
// both, and a real gateway process printing readable lines on a pseudo-terminal (util-linux
// `script`) and JSON lines into a pipe.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, describe, it } from 'node:test'
import {
  createLogger,
  type LogFormat,
  resolveLogFormat,
} from '../../gateway/observability/logger.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const SERVERS_DIR = fileURLToPath(new URL('../../servers/', import.meta.url))
const POLICIES = fileURLToPath(new URL('../../../policies/', import.meta.url))
const ESC = '\x1b['

describe('resolveLogFormat', () => {
  const cases: {
    format: LogFormat
    isTTY: boolean | undefined
    env?: Record<string, string>
    expect: 'json' | 'pretty'
  }[] = [
    { format: 'auto', isTTY: true, expect: 'pretty' },
    { format: 'auto', isTTY: false, expect: 'json' },
    { format: 'auto', isTTY: undefined, expect: 'json' },
    { format: 'auto', isTTY: true, env: { CI: 'true' }, expect: 'json' },
    { format: 'auto', isTTY: true, env: { CI: '1' }, expect: 'json' },
    { format: 'auto', isTTY: true, env: { CI: 'false' }, expect: 'pretty' },
    { format: 'auto', isTTY: true, env: { CI: '' }, expect: 'pretty' },
    { format: 'json', isTTY: true, expect: 'json' },
    { format: 'pretty', isTTY: false, env: { CI: 'true' }, expect: 'pretty' },
  ]
  for (const c of cases) {
    it(`${c.format}, ${c.isTTY ? 'a terminal' : 'no terminal'}, ${JSON.stringify(c.env ?? {})} → ${c.expect}`, () => {
      assert.equal(resolveLogFormat(c.format, { isTTY: c.isTTY, env: c.env ?? {} }), c.expect)
    })
  }
})

describe('secrets stay redacted in either format', () => {
  const secrets = {
    authorization: 'Bearer s3cret-1',
    headers: { authorization: 'Bearer s3cret-2' },
    req: { headers: { authorization: 'Bearer s3cret-3', cookie: 's3cret-4' } },
    token: 's3cret-5',
    upstream: { access_token: 's3cret-6', clientSecret: 's3cret-7', client_secret: 's3cret-8' },
  }
  for (const format of ['json', 'pretty'] as const) {
    it(format, () => {
      const lines: string[] = []
      const log = createLogger(
        { level: 'info', bufferBytes: 0, flushInterval: 1000, format },
        { write: (l: string) => void lines.push(l) },
      )
      log.info(secrets, 'calling upstream')
      const out = lines.join('')
      assert.match(out, /calling upstream/)
      assert.doesNotMatch(out, /s3cret/)
      assert.equal(out.match(/\[redacted\]/g)?.length, 8)
      // The format asked for, and no other.
      if (format === 'json') assert.equal(JSON.parse(out).msg, 'calling upstream')
      else assert.throws(() => JSON.parse(out))
    })
  }
})

describe('a gateway process picks its format from its stdout', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-logger-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const config = join(dir, 'gateway.yaml')
  writeFileSync(
    config,
    `listen: { port: 0 }
servers:
  echo:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(join(SERVERS_DIR, 'echo.js'))}]
policies: ${JSON.stringify(POLICIES)}
`,
  )
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const command = [process.execPath, MAIN, 'serve', '--config', config, '--insecure-no-auth']

  /**
   * Runs the gateway until its `listening` line, then stops it with SIGTERM and resolves with
   * everything it printed. Under `script` the shell prints its pid and becomes the gateway
   * (`exec`), so the signal goes to the gateway itself, never to a group or a name.
   */
  function run(o: { tty: boolean; env: Record<string, string | undefined> }): Promise<string> {
    const env: NodeJS.ProcessEnv = { ...process.env, SHELL: '/bin/sh' }
    for (const [k, v] of Object.entries(o.env)) {
      if (v === undefined) delete env[k]
      else env[k] = v
    }
    const p = o.tty
      ? spawn(
          'script',
          ['-qfec', `echo "pid=$$"; exec ${command.map(quote).join(' ')}`, '/dev/null'],
          {
            env,
          },
        )
      : spawn(command[0]!, command.slice(1), { env })
    let out = ''
    let stopped = false
    return new Promise((resolve, reject) => {
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString('utf8')
        if (stopped || !/listening/.test(out)) return
        stopped = true
        const gateway = o.tty ? Number(/pid=(\d+)/.exec(out)?.[1]) : p.pid!
        process.kill(gateway, 'SIGTERM')
      })
      p.on('error', reject)
      p.on('close', () => (stopped ? resolve(out) : reject(new Error(`exited early: ${out}`))))
    })
  }

  it('on a terminal: readable, coloured lines', async () => {
    const out = await run({
      tty: true,
      env: { CI: undefined, NO_COLOR: undefined, MCP_EDGE_LOG_FORMAT: undefined, TERM: 'xterm' },
    })
    const listening = out.split(/\r?\n/).find((l) => l.includes('listening'))!
    assert.ok(listening.includes(ESC), `no colour in ${JSON.stringify(listening)}`)
    assert.match(listening, /INFO/)
    assert.ok(!out.split(/\r?\n/).some((l) => l.startsWith('{')), 'no JSON line')
  })

  it('into a pipe: JSON lines', async () => {
    const out = await run({ tty: false, env: { CI: undefined, MCP_EDGE_LOG_FORMAT: undefined } })
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.ok(lines.some((l) => l.msg === 'listening' && l.level === 'info'))
    assert.ok(!out.includes(ESC))
  })

  const forced: [string, Record<string, string | undefined>, boolean, 'json' | 'pretty'][] = [
    [
      'MCP_EDGE_LOG_FORMAT=json on a terminal',
      { MCP_EDGE_LOG_FORMAT: 'json', CI: undefined },
      true,
      'json',
    ],
    ['CI=true on a terminal', { CI: 'true', MCP_EDGE_LOG_FORMAT: undefined }, true, 'json'],
    ['MCP_EDGE_LOG_FORMAT=pretty into a pipe', { MCP_EDGE_LOG_FORMAT: 'pretty' }, false, 'pretty'],
  ]
  for (const [name, env, tty, expect] of forced) {
    it(`${name}: ${expect}`, async () => {
      const out = await run({ tty, env: { ...env, TERM: 'xterm' } })
      const line = out.split(/\r?\n/).find((l) => l.includes('listening'))!
      if (expect === 'json') assert.equal(JSON.parse(line).msg, 'listening')
      else assert.throws(() => JSON.parse(line), `a JSON line: ${line}`)
    })
  }
})
