// The audit line's exact bytes, pinned: ordinary and hostile events (quotes, control
// characters, values past `log.auditFieldMax`, a cut that would split a surrogate pair, lone
// surrogates, `__proto__`, every decision and outcome), through the main logger's stream and
// through a destination of its own, at a mocked clock. The lines are the ones the gateway wrote
// before its line building was made cheaper (perf42): any byte it changes fails here. Then the
// bytes that reach stdout through the buffered log are the lines handed to it, in order.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { after, describe, it, type TestContext } from 'node:test'
import type { Principal } from '../../gateway/auth/principal.js'
import { type AuditOutcome, auditAllowed } from '../../gateway/observability/allowed.js'
import {
  type AuditEvent,
  type AuditLog,
  createAuditLog,
} from '../../gateway/observability/audit.js'
import { createLogger } from '../../gateway/observability/logger.js'
import type { Decided } from '../../gateway/policy/decided.js'

const FIELD_MAX = 64
const NOW = Date.parse('2026-12-04T23:00:00.123Z')

const principal: Principal = {
  iss: 'https://idp.example.com/realms/acme',
  sub: '2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d',
  clientId: 'mcp-inspector',
  scopes: new Set(['mcp:tools', 'mcp:read']),
  hasScopeClaim: true,
  roles: new Set(['engineer', 'oncall']),
  exp: 2_000_000_000,
  claims: {},
}
const decided = (name?: string): Decided => ({
  decision: {
    effect: 'allow',
    reason: 'tools/call echo',
    source: { file: 'policies/team.yaml', line: 12 },
  },
  name,
})

/** An allowed call ending with `outcome`, 0.53 ms after its decision. */
const allowed =
  (outcome: AuditOutcome, o: { name?: string; method?: string; p?: Principal } = {}) =>
  (audit: AuditLog) =>
    auditAllowed(audit, undefined, {
      principal: o.p ?? principal,
      server: 'echo',
      method: o.method ?? 'tools/call',
      decided: decided(o.name ?? 'echo'),
      start: 100,
      end: 100.53,
      outcome,
    })
const recordedEvent: AuditEvent = {
  sub: principal.sub,
  iss: principal.iss,
  clientId: principal.clientId,
  server: 'echo',
  method: 'tools/call',
  name: 'echo',
  decision: 'deny',
  rule: 'policies/team.yaml:3 tools/call *',
  outcome: 'refused',
}
const recorded = (event: Partial<AuditEvent>) => (audit: AuditLog) =>
  audit.record({ ...recordedEvent, ...event })

const long = (c: string) => c.repeat(FIELD_MAX + 10)
// 63 characters, then an emoji: a cut at 64 would fall between its two halves.
const straddling = `${'s'.repeat(FIELD_MAX - 1)}😀tail`

const cases: [string, (audit: AuditLog) => void][] = [
  ['ok', allowed({ kind: 'ok' })],
  ['error', allowed({ kind: 'error', code: -32603 })],
  ['error, a code of any type', allowed({ kind: 'error', code: 'x"y' })],
  ['filtered', allowed({ kind: 'filtered', kept: 2, of: 5 })],
  ['cancelled', allowed({ kind: 'cancelled' })],
  ['input_required', allowed({ kind: 'input_required', keys: ['a', 'b"c'] })],
  ['request_state invalid', allowed({ kind: 'request_state', refusal: 'invalid' })],
  ['request_state gone', allowed({ kind: 'request_state', refusal: 'gone' })],
  ['credential', allowed({ kind: 'credential', detail: 'missing GITHUB_TOKEN' })],
  ['status 200', allowed({ kind: 'status', status: 200 })],
  ['status 503', allowed({ kind: 'status', status: 503 })],
  ['left_out none', allowed({ kind: 'left_out', servers: [] })],
  ['left_out two', allowed({ kind: 'left_out', servers: ['a', 'b'] })],
  ['truncated', allowed({ kind: 'truncated', bytes: 100, of: 2000 })],
  ['too_large', allowed({ kind: 'too_large', of: 2000 })],
  [
    'credentials',
    (audit) =>
      auditAllowed(audit, undefined, {
        principal,
        server: 'echo',
        method: 'tools/call',
        decided: decided('echo'),
        start: 0,
        end: 12.3456,
        outcome: { kind: 'ok' },
        credentials: [
          { variable: 'GITHUB_TOKEN', source: 'exchange' },
          { variable: 'API_KEY', source: 'secret' },
          { variable: '__proto__', source: 'upstreamToken' },
        ],
      }),
  ],
  ['no client id, no name', recorded({ clientId: undefined, name: undefined })],
  ['deny', recorded({})],
  ['challenge', recorded({ decision: 'challenge', outcome: 'refused' })],
  ['filter', recorded({ decision: 'filter', durationMs: 3, outcome: 'kept 0 of 1' })],
  ['invalid', recorded({ decision: 'invalid', name: undefined, rule: 'invalid params' })],
  ['unapproved', recorded({ decision: 'unapproved', rule: 'tool not approved' })],
  ['rate_limited', recorded({ decision: 'rate_limited', rule: 'servers.echo.rate' })],
  ['a zero duration', recorded({ durationMs: 0 })],
  ['a negative zero duration', recorded({ durationMs: -0 })],
  ['a non-finite duration', recorded({ durationMs: Number.NaN })],
  ['an infinite duration', recorded({ durationMs: Number.POSITIVE_INFINITY })],
  ['a large duration', recorded({ durationMs: 1e21 })],
  [
    'quotes, backslashes, control characters',
    allowed(
      { kind: 'ok' },
      { name: 'a"b\\c\u0000\u0001\b\f\n\r\t\u001f\u007f', method: 'x\u001by' },
    ),
  ],
  [
    'unicode, U+2028, U+2029, bidi',
    allowed({ kind: 'ok' }, { name: 'zoë ツール \u2028\u2029\u202e' }),
  ],
  ['lone surrogates', allowed({ kind: 'ok' }, { name: 'a\ud800b\udc00c\udbff' })],
  ['a surrogate pair at the end', allowed({ kind: 'ok' }, { name: 'x😀' })],
  [
    '__proto__ and constructor',
    allowed({ kind: 'ok' }, { name: '__proto__', method: 'constructor' }),
  ],
  [
    'a subject of quotes and controls',
    allowed(
      { kind: 'ok' },
      { p: { ...principal, sub: '"\\\n\u2028', iss: 'i\ud800', clientId: '' } },
    ),
  ],
  ['a name at the cap', allowed({ kind: 'ok' }, { name: 'n'.repeat(FIELD_MAX) })],
  ['a name past the cap', allowed({ kind: 'ok' }, { name: long('n') })],
  ['a method past the cap', allowed({ kind: 'ok' }, { method: long('m') })],
  ['a rule past the cap', recorded({ rule: long('r') })],
  [
    'all three past the cap, escaped',
    allowed({ kind: 'ok' }, { name: long('"'), method: long('\n') }),
  ],
  ['a cut between a surrogate pair', allowed({ kind: 'ok' }, { name: straddling })],
  [
    'a cut after a lone high surrogate',
    recorded({ rule: `${'r'.repeat(FIELD_MAX - 1)}\ud800${'r'.repeat(9)}` }),
  ],
  ['a subject past the cap (not cut)', recorded({ sub: long('s') })],
  // Events whose keys are not AuditEvent's, or not in its order (every caller builds its own).
  [
    'an own __proto__ key',
    (audit) =>
      audit.record({
        ...(JSON.parse('{"__proto__":{"x":1},"sub":"s"}') as AuditEvent),
        iss: 'i',
        clientId: undefined,
        server: 'echo',
        method: 'tools/call',
        decision: 'deny',
        rule: 'r',
        outcome: 'refused',
      }),
  ],
  ['a key AuditEvent does not have', recorded({ ['extra"\n' as 'sub']: 'x' })],
  [
    'keys in another order, a function and a symbol left out',
    (audit) =>
      audit.record({
        outcome: 'ok',
        decision: 'allow',
        rule: 'r',
        method: 'm',
        server: 's',
        clientId: 'c',
        durationMs: (() => 1) as unknown as number,
        name: Symbol('n') as unknown as string,
        iss: 'i',
        sub: 'u',
      }),
  ],
  [
    'an enumerable key on Object.prototype',
    (audit) => {
      Object.defineProperty(Object.prototype, 'name', {
        value: 'polluted',
        enumerable: true,
        configurable: true,
      })
      try {
        const { name: _, ...nameless } = recordedEvent
        audit.record(nameless)
      } finally {
        delete (Object.prototype as Record<string, unknown>).name
      }
    },
  ],
]

// Generated from the implementation before perf42 (AUDIT_BYTES_PRINT=<file> writes the table).
const EXPECTED: Record<string, string> = {
  ok: '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  error:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"error -32603","msg":"audit"}\n',
  'error, a code of any type':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"error x\\"y","msg":"audit"}\n',
  filtered:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"filter","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"kept 2 of 5","msg":"audit"}\n',
  cancelled:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"cancelled","msg":"audit"}\n',
  input_required:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"input_required a,b\\"c","msg":"audit"}\n',
  'request_state invalid':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"refused requestState (invalid)","msg":"audit"}\n',
  'request_state gone':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"refused requestState (gone)","msg":"audit"}\n',
  credential:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"credential missing GITHUB_TOKEN","msg":"audit"}\n',
  'status 200':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'status 503':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"status 503","msg":"audit"}\n',
  'left_out none':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'left_out two':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"left out a,b","msg":"audit"}\n',
  truncated:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"truncated 100 of 2000 bytes","msg":"audit"}\n',
  too_large:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"refused 2000 bytes over the output cap","msg":"audit"}\n',
  credentials:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":12.35,"outcome":"ok","credentials":[{"name":"GITHUB_TOKEN","source":"exchange"},{"name":"API_KEY","source":"secret"},{"name":"__proto__","source":"upstreamToken"}],"msg":"audit"}\n',
  'no client id, no name':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","server":"echo","method":"tools/call","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","msg":"audit"}\n',
  deny: '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","msg":"audit"}\n',
  challenge:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"challenge","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","msg":"audit"}\n',
  filter:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"filter","rule":"policies/team.yaml:3 tools/call *","outcome":"kept 0 of 1","durationMs":3,"msg":"audit"}\n',
  invalid:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","decision":"invalid","rule":"invalid params","outcome":"refused","msg":"audit"}\n',
  unapproved:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"unapproved","rule":"tool not approved","outcome":"refused","msg":"audit"}\n',
  rate_limited:
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"rate_limited","rule":"servers.echo.rate","outcome":"refused","msg":"audit"}\n',
  'a zero duration':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","durationMs":0,"msg":"audit"}\n',
  'a negative zero duration':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","durationMs":0,"msg":"audit"}\n',
  'a non-finite duration':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","durationMs":null,"msg":"audit"}\n',
  'an infinite duration':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","durationMs":null,"msg":"audit"}\n',
  'a large duration':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","durationMs":1e+21,"msg":"audit"}\n',
  'quotes, backslashes, control characters':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"x\\u001by","name":"a\\"b\\\\c\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'unicode, U+2028, U+2029, bidi':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"zoë ツール   ‮","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'lone surrogates':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"a\\ud800b\\udc00c\\udbff","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'a surrogate pair at the end':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"x😀","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  '__proto__ and constructor':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"constructor","name":"__proto__","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'a subject of quotes and controls':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"\\"\\\\\\n ","iss":"i\\ud800","clientId":"","server":"echo","method":"tools/call","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'a name at the cap':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'a name past the cap':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn…[10 more characters]","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'a method past the cap':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm…[10 more characters]","name":"echo","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'a rule past the cap':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr…[10 more characters]","outcome":"refused","msg":"audit"}\n',
  'all three past the cap, escaped':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n…[10 more characters]","name":"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"\\"…[10 more characters]","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'a cut between a surrogate pair':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss…[6 more characters]","decision":"allow","rule":"policies/team.yaml:12 tools/call echo","durationMs":0.53,"outcome":"ok","msg":"audit"}\n',
  'a cut after a lone high surrogate':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr…[10 more characters]","outcome":"refused","msg":"audit"}\n',
  'a subject past the cap (not cut)':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","msg":"audit"}\n',
  'an own __proto__ key':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","__proto__":{"x":1},"sub":"s","iss":"i","server":"echo","method":"tools/call","decision":"deny","rule":"r","outcome":"refused","msg":"audit"}\n',
  'a key AuditEvent does not have':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","name":"echo","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","extra\\"\\n":"x","msg":"audit"}\n',
  'keys in another order, a function and a symbol left out':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","outcome":"ok","decision":"allow","rule":"r","method":"m","server":"s","clientId":"c","iss":"i","sub":"u","msg":"audit"}\n',
  'an enumerable key on Object.prototype':
    '{"level":"info","time":"2026-12-04T23:00:00.123Z","service":"mcp-edge","log":"audit","sub":"2f1c9a7e-55b3-4c1e-9d0a-8e6b1f2a3c4d","iss":"https://idp.example.com/realms/acme","clientId":"mcp-inspector","server":"echo","method":"tools/call","decision":"deny","rule":"policies/team.yaml:3 tools/call *","outcome":"refused","msg":"audit"}\n',
}

/** Each case's line, through the main logger's stream and through a destination of its own. */
function lines(t: TestContext, record: (a: AuditLog) => void) {
  t.mock.timers.enable({ apis: ['Date'], now: NOW })
  const out: string[] = []
  const capture = { write: (line: string) => void out.push(line) }
  const main = createLogger({ level: 'error', bufferBytes: 0, flushInterval: 1000 }, capture)
  record(createAuditLog('stdout', main, undefined, undefined, FIELD_MAX))
  record(createAuditLog('/unused', main, capture, undefined, FIELD_MAX))
  return out
}

describe('audit line bytes, pinned', () => {
  for (const [name, record] of cases)
    it(name, (t) => {
      if (process.env.AUDIT_BYTES_PRINT)
        appendFileSync(
          process.env.AUDIT_BYTES_PRINT,
          `  ${JSON.stringify(name)}: ${JSON.stringify(lines(t, record)[0])},\n`,
        )
      const [stdout, own] = lines(t, record)
      assert.equal(stdout, EXPECTED[name])
      assert.equal(own, EXPECTED[name])
    })
  it('one log, every case in a row, forward then backward: each line as pinned', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: NOW })
    const out: string[] = []
    const capture = { write: (line: string) => void out.push(line) }
    const main = createLogger({ level: 'error', bufferBytes: 0, flushInterval: 1000 }, capture)
    const logs = [
      createAuditLog('stdout', main, undefined, undefined, FIELD_MAX),
      createAuditLog('/unused', main, capture, undefined, FIELD_MAX),
    ]
    const order = [...cases, ...cases.toReversed()]
    for (const [, record] of order) for (const log of logs) record(log)
    assert.deepEqual(
      out,
      order.flatMap(([name]) => [EXPECTED[name], EXPECTED[name]]),
    )
  })
  it('every case is pinned', () => {
    assert.deepEqual(Object.keys(EXPECTED).sort(), cases.map(([n]) => n).sort())
  })
})

const LOGGER = fileURLToPath(new URL('../../gateway/observability/logger.js', import.meta.url))
const AUDIT = fileURLToPath(new URL('../../gateway/observability/audit.js', import.meta.url))
const PINO = createRequire(import.meta.url).resolve('pino')

// The child's one thread-pool thread held from here, opening a FIFO no one writes. At exit,
// after the log's own exit write (its listener comes first), a writer opens the FIFO: node joins
// the pool's threads as it ends, so a write still queued there would be made then, behind the
// exit write (the order the log must keep) and not lost.
// The writer's open fails (ENXIO) until the pool's thread is in its open of the FIFO: tried again
// until then (the thread may not have got there yet on a loaded machine; left in it, the exit
// would wait for ever).
const BUSY = (fifo: string) => `
open(${JSON.stringify(fifo)}, 'r', () => process.exit(3))
process.on('exit', () => {
  const pause = new Int32Array(new SharedArrayBuffer(4))
  for (;;) {
    try {
      return closeSync(openSync(${JSON.stringify(fifo)}, constants.O_WRONLY | constants.O_NONBLOCK))
    } catch (err) {
      if (err.code !== 'ENXIO') throw err
      Atomics.wait(pause, 0, 0, 1)
    }
  }
})
`

// A gateway's stdout: log and audit lines (non-ASCII, so bytes are not characters) past the
// buffer many times over, a timer's flush, a flush asked for, then the exit: with the exit's
// flush, or straight away (pino's sync flush at exit). What reaches the pipe must be every line
// handed to the stream, in order, byte for byte. With `busy`, the child's one thread-pool thread
// is held from before the last lines to the exit (BUSY): a write handed to the pool is not made
// before the exit, which cannot know that its bytes are not out.
const STDOUT_CHILD = (bytes: number, exit: 'flush' | 'sync', busy?: string) => `
import { createRequire } from 'node:module'
import { closeSync, constants, open, openSync } from 'node:fs'
const { pino } = createRequire(import.meta.url)(${JSON.stringify(PINO)})
const { createLogger } = await import(${JSON.stringify(LOGGER)})
const { createAuditLog } = await import(${JSON.stringify(AUDIT)})
const log = createLogger({ level: 'info', bufferBytes: ${bytes}, flushInterval: 10, format: 'json' })
const audit = createAuditLog('stdout', log)
const stream = log[pino.symbols.streamSym]
const given = []
const write = stream.write
stream.write = (chunk) => (given.push(chunk), write.call(stream, chunk))
const event = (i) => ({ sub: 'zoë', iss: 'https://idp', clientId: undefined, server: 'echo',
  method: 'tools/call', name: 'ツール😀'.repeat(i % 7), decision: 'allow', rule: 'r', durationMs: i / 3, outcome: 'ok' })
const burst = (n, from) => { for (let i = from; i < from + n; i++) { log.info({ i, s: 'é'.repeat(i % 50) }, 'line'); audit.record(event(i)) } }
burst(300, 0)
await new Promise((r) => setTimeout(r, 50))
burst(5, 300)
await new Promise((r) => log.flush(r))
${busy === undefined ? '' : BUSY(busy)}
burst(100, 305)
const done = () => { process.stderr.write(JSON.stringify(given)); process.exit(0) }
${exit === 'flush' ? 'log.flush(done)' : 'done()'}
`

describe('the bytes on stdout are the lines handed to the log, in order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-audit-bytes-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const fifo = join(dir, 'never-written')
  execFileSync('mkfifo', [fifo])
  for (const busy of [false, true])
    for (const bytes of [0, 4096, 16_384])
      for (const exit of ['flush', 'sync'] as const)
        it(`buffer ${bytes}, exit ${exit}${busy ? ', the thread pool busy' : ''}`, async () => {
          const child = spawn(
            process.execPath,
            ['--input-type=module', '-e', STDOUT_CHILD(bytes, exit, busy ? fifo : undefined)],
            {
              stdio: ['ignore', 'pipe', 'pipe'],
              env: busy ? { ...process.env, UV_THREADPOOL_SIZE: '1' } : process.env,
            },
          )
          const out: Buffer[] = []
          let err = ''
          child.stdout.on('data', (d: Buffer) => out.push(d))
          child.stderr.on('data', (d) => (err += d))
          const code = await new Promise((r) => child.once('close', r))
          assert.equal(code, 0, err)
          const given = JSON.parse(err) as string[]
          assert.equal(given.length, 810)
          assert.ok(Buffer.concat(out).equals(Buffer.from(given.join(''))))
        })
})
