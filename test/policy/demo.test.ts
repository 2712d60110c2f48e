import assert from 'node:assert/strict'
import path from 'node:path'
import { describe, test } from 'node:test'
import type { Principal } from '../../gateway/auth/principal.js'
import { PACKAGE_ROOT } from '../../gateway/config/defaults.js'
import { decide, decideAccess, type Decision } from '../../gateway/policy/evaluate.js'
import { filterListResult } from '../../gateway/policy/filter.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import { who } from './fixtures.js'

const DEMO = path.join(PACKAGE_ROOT, 'policies', 'demo.yaml')
const policy = loadPolicy(DEMO)

const user = who([], ['mcp-user'])
const developer = who([], ['mcp-developer'])
const admin = who([], ['mcp-admin'])
const NOTES_TOOLS = ['list_notes', 'read_note', 'write_note', 'delete_note']

type Expect =
  | { effect: 'allow' | 'deny' }
  | { effect: 'challenge'; required: string[]; missing: string[] }

function shape(d: Decision): Expect {
  return d.effect === 'challenge'
    ? { effect: 'challenge', required: [...d.required], missing: [...d.missing] }
    : { effect: d.effect }
}

const allow: Expect = { effect: 'allow' }
const stepUp = (scope: string): Expect => ({
  effect: 'challenge',
  required: ['mcp:read', scope],
  missing: [scope],
})

const cases: { name: string; who: Principal; server: string; tool: string; expect: Expect }[] = [
  { name: 'mcp-user reads a note', who: user, server: 'notes', tool: 'read_note', expect: allow },
  { name: 'mcp-user lists notes', who: user, server: 'notes', tool: 'list_notes', expect: allow },
  {
    name: 'mcp-user is challenged on write_note',
    who: user,
    server: 'notes',
    tool: 'write_note',
    expect: stepUp('mcp:write'),
  },
  {
    name: 'mcp-user is challenged on delete_note',
    who: user,
    server: 'notes',
    tool: 'delete_note',
    expect: stepUp('mcp:admin'),
  },
  { name: 'mcp-user echoes', who: user, server: 'echo', tool: 'echo', expect: allow },
  {
    name: 'mcp-developer writes a note',
    who: developer,
    server: 'notes',
    tool: 'write_note',
    expect: allow,
  },
  {
    name: 'mcp-developer is challenged on delete_note',
    who: developer,
    server: 'notes',
    tool: 'delete_note',
    expect: stepUp('mcp:admin'),
  },
  ...NOTES_TOOLS.map((tool) => ({
    name: `mcp-admin may ${tool}`,
    who: admin,
    server: 'notes',
    tool,
    expect: allow,
  })),
  { name: 'mcp-admin echoes', who: admin, server: 'echo', tool: 'echo', expect: allow },
  {
    name: 'mcp-user lists tickets',
    who: user,
    server: 'tickets',
    tool: 'list_tickets',
    expect: allow,
  },
  {
    name: 'mcp-user is challenged on create_ticket',
    who: user,
    server: 'tickets',
    tool: 'create_ticket',
    expect: stepUp('mcp:write'),
  },
  {
    name: 'mcp-developer opens a ticket',
    who: developer,
    server: 'tickets',
    tool: 'create_ticket',
    expect: allow,
  },
  {
    name: 'a tickets tool the demo does not list is denied, even to mcp-admin',
    who: admin,
    server: 'tickets',
    tool: 'close_ticket',
    expect: { effect: 'deny' },
  },
  {
    name: 'a tool the demo does not list is denied, even to mcp-admin',
    who: admin,
    server: 'notes',
    tool: 'drop_all',
    expect: { effect: 'deny' },
  },
  {
    name: 'no role: challenged for server access',
    who: who(),
    server: 'notes',
    tool: 'read_note',
    expect: { effect: 'challenge', required: ['mcp:read'], missing: ['mcp:read'] },
  },
  {
    name: 'a server the demo does not cover is denied',
    who: admin,
    server: 'files',
    tool: 'read',
    expect: { effect: 'deny' },
  },
]

describe('policies/demo.yaml', () => {
  test('loads, with the demo roles and servers', () => {
    assert.deepEqual(policy.files, [DEMO])
    assert.deepEqual(
      [...policy.roles.keys()],
      ['mcp-admin', 'mcp-developer', 'mcp-tools', 'mcp-user'],
    )
    assert.deepEqual([...policy.servers.keys()], ['echo', 'notes', 'tickets'])
  })

  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(shape(decide(policy, c.who, c.server, 'tools', c.tool)), c.expect)
    })
  }

  test('the developer challenge names the delete_note rule', () => {
    const d = decide(policy, developer, 'notes', 'tools', 'delete_note')
    assert.deepEqual(d.source, { file: DEMO, line: 22 })
  })

  test('mcp-user sees only the notes tools it may call', () => {
    const listed = filterListResult(
      policy,
      'notes',
      'tools/list',
      { tools: NOTES_TOOLS.map((name) => ({ name })) },
      user,
    )
    assert.deepEqual(listed, { tools: [{ name: 'list_notes' }, { name: 'read_note' }] })
  })

  test('every demo role may open a session on every demo server', () => {
    for (const p of [user, developer, admin]) {
      for (const server of ['echo', 'notes', 'tickets']) {
        assert.equal(decideAccess(policy, p, server).effect, 'allow')
      }
    }
  })
})
