import assert from 'node:assert/strict'
import { test } from 'node:test'
import { scopesOfRoles } from '../../gateway/policy/role-scopes.js'

const ROLES = new Map<string, readonly string[]>([
  ['mcp-admin', ['*']],
  ['mcp-developer', ['mcp:read', 'mcp:write']],
  ['mcp-user', ['mcp:read']],
  ['tools', ['tools:*']],
  ['odd', ['a?c']],
])

const cases: { roles: string[]; scope: string; expect: boolean }[] = [
  { roles: ['mcp-user'], scope: 'mcp:read', expect: true },
  { roles: ['mcp-user'], scope: 'mcp:write', expect: false },
  { roles: ['mcp-user', 'mcp-developer'], scope: 'mcp:write', expect: true },
  { roles: ['mcp-user', 'mcp-developer'], scope: 'mcp:admin', expect: false },
  { roles: ['mcp-admin'], scope: 'mcp:admin', expect: true },
  { roles: ['mcp-admin'], scope: 'anything at all', expect: true },
  { roles: ['tools'], scope: 'tools:x', expect: true },
  { roles: ['tools'], scope: 'tool:x', expect: false },
  { roles: ['odd'], scope: 'abc', expect: false }, // `?` is literal in a granted scope
  { roles: ['odd'], scope: 'a?c', expect: true },
  { roles: ['unknown-role'], scope: 'mcp:read', expect: false },
  { roles: [], scope: 'mcp:read', expect: false },
]

for (const c of cases) {
  test(`roles [${c.roles.join(', ')}] ${c.expect ? 'grant' : 'do not grant'} ${c.scope}`, () => {
    assert.equal(scopesOfRoles(ROLES, c.roles).has(c.scope), c.expect)
  })
}

test('granted lists the role map entries as written', () => {
  assert.deepEqual(
    [...scopesOfRoles(ROLES, ['mcp-developer', 'tools', 'nope']).granted],
    ['mcp:read', 'mcp:write', 'tools:*'],
  )
})
