// An audit event's method, name and rule are what a client wrote (a method or tool name may be
// as long as the body), and its outcome carries what a process wrote as an error code: each is
// cut at log.auditFieldMax, the rest counted, so one request cannot write megabytes of audit log. Through a real gateway, a real session and the audit
// line builder itself.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { DEFAULT_AUDIT_FIELD_MAX } from '../../gateway/config/schema.js'
import { type AuditEvent, createAuditLog } from '../../gateway/observability/audit.js'
import { openSession } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { startStack, type Stack } from '../helpers/stack.js'

const event: AuditEvent = {
  sub: 'alice',
  iss: 'https://idp.example',
  clientId: undefined,
  server: 'echo',
  method: 'tools/call',
  name: 'echo',
  decision: 'deny',
  rule: 'policies/team.yaml:3 tools/call echo',
  outcome: 'refused',
}

function lines(fieldMax?: number): { log: ReturnType<typeof createAuditLog>; out: string[] } {
  const out: string[] = []
  const main = pino({ level: 'silent' })
  const destination = { write: (l: string) => void out.push(l) }
  return { log: createAuditLog('stdout', main, destination, undefined, fieldMax), out }
}

describe('audit fields cut at log.auditFieldMax', () => {
  it('method, name and rule past the bound are cut and counted; the rest of the line is whole', () => {
    const { log, out } = lines(64)
    log.record({
      ...event,
      method: 'm'.repeat(100_000),
      name: 'n'.repeat(65),
      rule: `r${'😀'.repeat(40)}`,
    })
    const got = JSON.parse(out[0]!) as Record<string, string>
    assert.equal(got.method, `${'m'.repeat(64)}…[${100_000 - 64} more characters]`)
    assert.equal(got.name, `${'n'.repeat(64)}…[1 more characters]`)
    // Never inside a surrogate pair: 'r' then 31 whole emoji (63 units), the rest counted.
    assert.equal(got.rule, `r${'😀'.repeat(31)}…[${81 - 63} more characters]`)
    assert.equal(got.sub, 'alice')
    assert.equal(got.outcome, 'refused')
    assert.ok(out[0]!.length < 600, `line of ${out[0]!.length}`)
  })

  it("the outcome (a process's error code, any JSON it wrote) past the bound is cut and counted", () => {
    const { log, out } = lines(64)
    const code = JSON.stringify({ pad: 'c'.repeat(100_000) })
    log.record({ ...event, outcome: `error ${code}` })
    const got = JSON.parse(out[0]!) as Record<string, string>
    assert.equal(
      got.outcome,
      `error ${code.slice(0, 58)}…[${code.length + 6 - 64} more characters]`,
    )
    assert.ok(out[0]!.length < 600, `line of ${out[0]!.length}`)
    const within = lines(64)
    within.log.record({ ...event, outcome: 'error -32603' })
    assert.equal((JSON.parse(within.out[0]!) as Record<string, string>).outcome, 'error -32603')
  })

  it('fields within the bound, and an event with no name, are written as they are', () => {
    const { log, out } = lines(64)
    const exact = { ...event, method: 'm'.repeat(64), name: undefined }
    log.record(exact)
    const got = JSON.parse(out[0]!) as Record<string, unknown>
    assert.equal(got.method, 'm'.repeat(64))
    assert.ok(!('name' in got))
    assert.equal(DEFAULT_AUDIT_FIELD_MAX, 1024)
    const d = lines()
    d.log.record({ ...event, name: 'n'.repeat(1025) })
    assert.equal(
      (JSON.parse(d.out[0]!) as { name: string }).name,
      `${'n'.repeat(1024)}…[1 more characters]`,
    )
  })
})

describe('through a real gateway: a 200 kB method and tool name', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({ config: { log: { auditFieldMax: 100 } } })
  })
  after(() => stack.close())

  it('each audit line holds at most the bound of what the client wrote', async () => {
    const token = await stack.token('alice', { server: 'echo' })
    const sid = await openSession(stack, 'echo', token)
    const session = {
      authorization: `Bearer ${token}`,
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    }
    const post = (body: unknown) => postMcp(stack.local('echo'), body, session)
    const before = stack.audit().length
    const long = 'x'.repeat(200_000)
    const call = await post({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: long, arguments: {} },
    })
    assert.ok(
      call.status === 200 || call.status === 403,
      `${call.status} ${call.text.slice(0, 200)}`,
    )
    const custom = await post({ jsonrpc: '2.0', id: 2, method: `custom/${long}` })
    assert.equal(custom.status, 200, custom.text.slice(0, 200))
    const events = stack.audit().slice(before)
    const named = events.find((e) => typeof e.name === 'string' && e.name.startsWith('xxx'))
    assert.ok(named, JSON.stringify(events).slice(0, 500))
    assert.equal(named.name, `${'x'.repeat(100)}…[${200_000 - 100} more characters]`)
    const method = events.find((e) => String(e.method).startsWith('custom/'))
    assert.ok(method, JSON.stringify(events).slice(0, 500))
    assert.equal(method.method, `custom/${'x'.repeat(93)}…[${200_007 - 100} more characters]`)
    for (const e of events)
      assert.ok(JSON.stringify(e).length < 2_000, JSON.stringify(e).slice(0, 300))
  })
})
