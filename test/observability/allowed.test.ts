// The audit outcome of an allowed request is a value (observability/allowed.ts): its text is
// what operators and tests read in the audit line, and whether the policy filtered the answer
// is its kind, never read back from the text.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  auditAllowed,
  auditEndpoint,
  listOutcome,
  outcomeText,
  type AuditOutcome,
} from '../../gateway/observability/allowed.js'
import type { AuditEvent } from '../../gateway/observability/audit.js'
import { principal } from '../helpers/principal.js'

const ALICE = principal()

describe('audit outcome: text and decision', () => {
  const cases: { outcome: AuditOutcome; text: string; decision: AuditEvent['decision'] }[] = [
    { outcome: { kind: 'ok' }, text: 'ok', decision: 'allow' },
    { outcome: { kind: 'error', code: -32001 }, text: 'error -32001', decision: 'allow' },
    { outcome: { kind: 'filtered', kept: 2, of: 5 }, text: 'kept 2 of 5', decision: 'filter' },
    { outcome: { kind: 'cancelled' }, text: 'cancelled', decision: 'allow' },
    {
      outcome: { kind: 'input_required', keys: ['a', 'b'] },
      text: 'input_required a,b',
      decision: 'allow',
    },
    {
      outcome: { kind: 'request_state', refusal: 'gone' },
      text: 'refused requestState (gone)',
      decision: 'allow',
    },
    {
      outcome: { kind: 'credential', detail: 'missing (URL elicitation required)' },
      text: 'credential missing (URL elicitation required)',
      decision: 'allow',
    },
    { outcome: { kind: 'status', status: 200 }, text: 'ok', decision: 'allow' },
    { outcome: { kind: 'status', status: 429 }, text: 'status 429', decision: 'allow' },
    { outcome: { kind: 'left_out', servers: ['a', 'b'] }, text: 'left out a,b', decision: 'allow' },
    { outcome: { kind: 'left_out', servers: [] }, text: 'ok', decision: 'allow' },
    // Adversarial: a server's text that looks like a filtered list is not a filter decision.
    {
      outcome: { kind: 'credential', detail: 'kept 1 of 2' },
      text: 'credential kept 1 of 2',
      decision: 'allow',
    },
  ]
  for (const c of cases) {
    it(c.text, () => {
      assert.equal(outcomeText(c.outcome), c.text)
      const events: AuditEvent[] = []
      const counted: unknown[] = []
      auditAllowed(
        { record: (e) => void events.push(e), flush() {} },
        { decisions: { inc: (l: unknown) => void counted.push(l) } } as never,
        {
          principal: ALICE,
          server: 's',
          method: 'tools/list',
          decided: {
            decision: { effect: 'allow', reason: 'tools *', source: { file: 'p.yaml', line: 3 } },
            name: 'x',
          },
          start: performance.now(),
          outcome: c.outcome,
          credentials: [{ variable: 'TOKEN', source: 'secret' }],
        },
      )
      assert.equal(events.length, 1)
      const { durationMs, ...rest } = events[0]!
      assert.equal(typeof durationMs, 'number')
      assert.deepEqual(rest, {
        sub: 'alice',
        iss: 'https://idp.test',
        clientId: 'app',
        server: 's',
        method: 'tools/list',
        name: 'x',
        decision: c.decision,
        rule: 'p.yaml:3 tools *',
        outcome: c.text,
        credentials: [{ name: 'TOKEN', source: 'secret' }],
      })
      assert.deepEqual(counted, [{ server: 's', decision: c.decision }])
    })
  }

  it('an endpoint request no single policy decided is recorded as filter', () => {
    const events: AuditEvent[] = []
    auditEndpoint(
      { record: (e) => void events.push(e), flush() {} },
      {
        principal: ALICE,
        endpoint: 'all',
        method: 'tools/list',
        start: performance.now(),
        outcome: { kind: 'left_out', servers: ['notes'] },
      },
    )
    const { durationMs: _, ...rest } = events[0]!
    assert.deepEqual(rest, {
      sub: 'alice',
      iss: 'https://idp.test',
      clientId: 'app',
      server: 'all',
      method: 'tools/list',
      decision: 'filter',
      rule: "endpoint: each backend's policy",
      outcome: 'left out notes',
    })
  })

  it('listOutcome counts the list entries before and after', () => {
    assert.deepEqual(listOutcome({ tools: [1, 2, 3] }, { tools: [1] }), {
      kind: 'filtered',
      kept: 1,
      of: 3,
    })
  })
})
