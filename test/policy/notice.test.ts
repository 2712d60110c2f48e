// What becomes of a message a server sends on its own (policy/notice.ts), the one decision every
// relay of server notifications takes: withdrawn when the server is denied, challenged when a
// scope it needs is missing, an update of a
// URI not readable (in any spelling the server might read as it) dropped, the rest relayed.
import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { loadPolicy } from '../../gateway/policy/load.js'
import { noticeOf } from '../../gateway/policy/notice.js'
import type { Policy } from '../../gateway/policy/policy.js'
import { policyDir, who } from './fixtures.js'

const tmp = policyDir()
const WATCHED = 'test://watched-resource'
let policy: Policy
before(async () => {
  policy = loadPolicy(
    await tmp.file(
      'notice.yaml',
      `roles:
  reader: [mcp:read]
  root: ["*"]
servers:
  s:
    access: [mcp:read]
    resources:
      "${WATCHED}": deny
      "test://secret/*": [mcp:admin]
      "*": [mcp:read]
`,
    ),
  )
})

const reader = who([], ['reader'])
const updated = (uri: unknown) => ({ uri })

describe('noticeOf', () => {
  test('a server the policy denies the principal: everything it sends is withdrawn', () => {
    for (const [p, server] of [
      [reader, 'unknown-server'],
      [who([], ['root']), 'unknown-server'],
    ] as const) {
      for (const method of [
        'notifications/message',
        'notifications/progress',
        'notifications/tools/list_changed',
        'notifications/resources/updated',
        'sampling/createMessage',
      ])
        assert.equal(noticeOf(policy, p, server, method, updated('test://other')), 'withdrawn')
    }
  })

  test('a scope the server needs is missing (a step-up away): everything it sends is challenged', () => {
    for (const [p, server] of [
      [who([]), 's'],
      [who([], ['writer']), 's'],
      [who(['mcp:read']), 's'], // a scope the user's roles do not grant
    ] as const) {
      for (const method of [
        'notifications/message',
        'notifications/progress',
        'notifications/tools/list_changed',
        'notifications/resources/updated',
        'sampling/createMessage',
      ])
        assert.equal(noticeOf(policy, p, server, method, updated('test://other')), 'challenged')
    }
  })

  test('an update of a URI the principal may not read is dropped, whatever its spelling', () => {
    for (const uri of [
      WATCHED,
      `${WATCHED} `,
      ` ${WATCHED}`,
      `TEST://watched-resource`,
      `test://watched-resource/.`,
      `test://watched-%72esource`,
      `test://watched-resource\t`,
      'test://secret/plans',
      '',
      undefined,
      42,
    ])
      assert.equal(
        noticeOf(policy, reader, 's', 'notifications/resources/updated', updated(uri)),
        'drop',
        JSON.stringify(uri),
      )
    assert.equal(
      noticeOf(policy, reader, 's', 'notifications/resources/updated', undefined),
      'drop',
      'no params',
    )
  })

  test('updates of readable URIs, logs, progress and list changes are relayed', () => {
    assert.equal(
      noticeOf(policy, reader, 's', 'notifications/resources/updated', updated('test://other')),
      'relay',
    )
    assert.equal(
      noticeOf(
        policy,
        who([], ['root']),
        's',
        'notifications/resources/updated',
        updated('test://secret/plans'),
      ),
      'relay',
    )
    for (const method of [
      'notifications/message',
      'notifications/progress',
      'notifications/tools/list_changed',
      'notifications/resources/list_changed',
    ])
      assert.equal(noticeOf(policy, reader, 's', method, updated(WATCHED)), 'relay', method)
  })
})
