// A process whose error reply has a `code` that cannot be made a string (an object whose
// `toString` is not a function: JSON can write it) is answered and audited on every transport
// and process model, and nothing it writes throws out of the audit step: before, the audit
// line's outcome text threw inside the child's stdout callback (an uncaught exception that ended
// the gateway and every session). Beneath it, an event the line cannot be made of (a BigInt, a
// getter that throws, a circular field) or a destination that throws is lost, counted and
// logged by its error's type, on every target: the audit log's record never throws.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { request } from 'undici'
import {
  type AuditEvent,
  type AuditLog,
  createAuditLog,
} from '../../gateway/observability/audit.js'
import { outcomeText } from '../../gateway/observability/allowed.js'
import { initBody } from '../checklist/open-session.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { waitFor } from '../helpers/wait-for.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { auditEvent } from '../helpers/audit-event.js'

/** The session-era initialize a raw-HTTP client sends first. */
const INIT = initBody()

const STRAY = join(import.meta.dirname, '../helpers/stray-server.js')
const ODD = { toString: 0, valueOf: 0 }
const allow = (s: string) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`
const SERVERS = ['stray', 'strayjson', 'strayshared']

// What the gateway throws where nobody catches it: a process (this one) that would have ended.
const thrown: unknown[] = []
const heard = (err: unknown) => void thrown.push(err)
let stack: Stack
before(async () => {
  process.on('uncaughtException', heard)
  process.on('unhandledRejection', heard)
  const server = { command: process.execPath, args: [STRAY] }
  stack = await startStack({
    policy: `${TEST_POLICY}${SERVERS.map(allow).join('')}`,
    servers: {
      stray: server,
      strayjson: { ...server, responses: 'json' },
      strayshared: { ...server, mode: 'shared' },
    },
    config: { endpoints: { strays: { servers: ['stray', 'strayshared'] } } },
  })
})
after(async () => {
  await stack.close()
  process.off('uncaughtException', heard)
  process.off('unhandledRejection', heard)
})

const CALL = { jsonrpc: '2.0', id: 2, method: 'tools/call' }

/** A session-era `odd` call (tool `name`) at `path` by Alice: its answer's JSON-RPC error. */
async function sessionCall(path: string, name: string): Promise<unknown> {
  const url = `${stack.url}/mcp/${path}`
  const auth = { authorization: `Bearer ${await stack.token('alice', { resource: url })}` }
  const init = await postMcp(url, INIT, auth)
  assert.equal(init.status, 200, init.text)
  const sid = { ...auth, 'mcp-session-id': init.headers['mcp-session-id'] as string }
  const ack = await postMcp(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
  assert.equal(ack.status, 202)
  const params = { name, arguments: { code: ODD } }
  const res = await postMcp(url, { ...CALL, params }, sid)
  assert.equal(res.status, 200, res.text)
  return res.json()
}

/** A 2026-07-28 `odd` call (tool `name`) at `path` by Alice: its answer's JSON-RPC error. */
async function modernCall(path: string, name: string): Promise<unknown> {
  const url = `${stack.url}/mcp/${path}`
  const token = await stack.token('alice', { resource: url })
  const res = await request(url, modernToolCall(token, name, { code: ODD }, { id: 2 }))
  const text = await res.body.text()
  assert.equal(res.statusCode, 200, text)
  const data = /^data: (.*)$/m.exec(text)?.[1] ?? text
  return JSON.parse(data)
}

const OUTCOME = 'error {"toString":0,"valueOf":0}'
/** Each case: the call, and its audit line's server and outcome (what the client got). */
const CASES: {
  what: string
  path: string
  tool: string
  call: typeof sessionCall
  server: string
  outcome: string
}[] = [
  {
    what: 'session, SSE reply',
    path: 'stray',
    tool: 'odd',
    call: sessionCall,
    server: 'stray',
    outcome: OUTCOME,
  },
  {
    what: 'session, JSON reply',
    path: 'strayjson',
    tool: 'odd',
    call: sessionCall,
    server: 'strayjson',
    outcome: OUTCOME,
  },
  {
    what: 'shared process',
    path: 'strayshared',
    tool: 'odd',
    call: sessionCall,
    server: 'strayshared',
    outcome: OUTCOME,
  },
  // The 2026-07-28 answer's code is an integer (-32603 for one that is not): the line says so.
  {
    what: '2026-07-28',
    path: 'stray',
    tool: 'odd',
    call: modernCall,
    server: 'stray',
    outcome: 'error -32603',
  },
  {
    what: 'endpoint, session',
    path: 'strays',
    tool: 'stray_odd',
    call: sessionCall,
    server: 'stray',
    outcome: OUTCOME,
  },
  {
    what: 'endpoint, 2026-07-28',
    path: 'strays',
    tool: 'strayshared_odd',
    call: modernCall,
    server: 'strayshared',
    outcome: 'error -32603',
  },
]

describe('an error code that cannot be made a string', () => {
  for (const c of CASES)
    it(`${c.what}: answered, audited once, nothing thrown`, async () => {
      thrown.length = 0
      const lines = stack.audit().length
      const answer = (await c.call(c.path, c.tool)) as { id: number; error?: { code: unknown } }
      assert.equal(answer.id, 2)
      assert.ok(answer.error !== undefined, JSON.stringify(answer))
      // The line is written after the reply: wait for it (or for what was thrown instead).
      const calls = () =>
        stack
          .audit()
          .slice(lines)
          .filter((l) => l.method === 'tools/call')
      await waitFor(() => thrown.length > 0 || calls().length > 0, 'the call audited')
      await new Promise((r) => setImmediate(r))
      assert.deepEqual(thrown.map(String), [], 'nothing thrown out of the audit step')
      const audited = calls()
      assert.equal(audited.length, 1)
      assert.equal(audited[0]!.server, c.server)
      assert.equal(audited[0]!.decision, 'allow')
      assert.equal(audited[0]!.outcome, c.outcome)
    })
})

describe('an error code too deep for JSON', () => {
  it('its outcome text is its type: built before the never-throwing audit step, it must not throw', () => {
    // No string form at the top, then nested past what JSON.stringify's recursion takes. A
    // process's line that deep is dropped by childMaxJsonDepth (at most 2048) before this, so
    // this holds the text builder itself to never throwing.
    let code: Record<string, unknown> = { toString: 0, valueOf: 0 }
    for (let i = 0; i < 100_000; i++) code = { toString: 0, valueOf: 0, inner: code }
    assert.throws(() => JSON.stringify(code), RangeError)
    assert.equal(outcomeText({ kind: 'error', code: code as never }), 'error object')
  })
})

const NO_RETRY = { next: () => 1_000, reset() {} }
const SECRET = 'tok_do-not-log-me'
const EVENT: AuditEvent = auditEvent('alice')
/** Events the line cannot be made of, each carrying the secret where an error may quote it. */
const UNWRITABLE: [string, () => AuditEvent][] = [
  ['a field that does not serialise (a BigInt)', () => ({ ...EVENT, durationMs: 1n as never })],
  [
    'a getter that throws',
    () =>
      Object.defineProperty({ ...EVENT }, 'name', {
        enumerable: true,
        get() {
          throw new Error(SECRET)
        },
      }),
  ],
  [
    'a circular field',
    () => {
      const c: Record<string, unknown> = { name: SECRET }
      c.self = c
      return { ...EVENT, credentials: c as never }
    },
  ],
]

describe('an audit event that cannot be written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-audit-throw-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  /** The targets: a real file, stdout (the main log's stream), a destination whose write throws. */
  const TARGETS: [
    string,
    (main: pino.Logger, lost: (n: number) => void) => AuditLog,
    () => string,
  ][] = [
    [
      'file',
      (main, lost) =>
        createAuditLog(join(dir, 'audit.log'), main, undefined, {
          retry: NO_RETRY,
          lost,
        }),
      () => readFileSync(join(dir, 'audit.log'), 'utf8'),
    ],
    [
      'stdout',
      (main, lost) => createAuditLog('stdout', main, undefined, { retry: NO_RETRY, lost }),
      () => '',
    ],
    [
      'a destination that throws',
      (main, lost) =>
        createAuditLog(
          'stderr',
          main,
          {
            write() {
              throw new Error(SECRET)
            },
          },
          { retry: NO_RETRY, lost },
        ),
      () => '',
    ],
  ]
  for (const [target, open, written] of TARGETS)
    it(`${target}: never throws; each lost event counted and logged by its error's type alone`, async () => {
      const mainLines: string[] = []
      const main = pino({ level: 'info' }, { write: (l: string) => void mainLines.push(l) })
      let lost = 0
      const audit = open(main, (n) => (lost += n))
      const events =
        target === 'a destination that throws' ? [() => EVENT] : UNWRITABLE.map((u) => u[1])
      for (const event of events) assert.doesNotThrow(() => audit.record(event()))
      assert.equal(lost, events.length)
      const failed = mainLines.filter((l) => l.includes('audit event could not be written'))
      assert.equal(failed.length, events.length)
      for (const l of failed) assert.equal(JSON.parse(l).level, 50)
      assert.ok(!mainLines.join('').includes(SECRET), mainLines.join(''))
      // The next event that can be written is.
      if (target !== 'a destination that throws') {
        audit.record({ ...EVENT, sub: 'after' })
        await audit.flush()
        const out = target === 'stdout' ? mainLines.join('') : written()
        assert.equal(out.split('"sub":"after"').length, 2, out)
        assert.ok(!out.includes(SECRET))
      }
      audit.close?.()
    })
})
