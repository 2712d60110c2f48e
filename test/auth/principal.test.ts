import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { JWTPayload } from 'jose'
import { toPrincipal, type RoleClaim } from '../../gateway/auth/principal.js'

const KEYCLOAK = ['realm_access.roles', 'resource_access.*.roles']
const BASE = { iss: 'http://idp', sub: 'u1', exp: 2_000_000_000 }

interface Case {
  name: string
  payload: JWTPayload
  roleClaims?: RoleClaim[]
  expect: { scopes?: string[]; roles?: string[]; clientId?: string | undefined }
}

const cases: Case[] = [
  {
    name: 'scope string',
    payload: { scope: 'mcp:read mcp:write' },
    expect: { scopes: ['mcp:read', 'mcp:write'] },
  },
  { name: 'scope with extra spaces', payload: { scope: ' a  b ' }, expect: { scopes: ['a', 'b'] } },
  { name: 'scp string', payload: { scp: 'a b' }, expect: { scopes: ['a', 'b'] } },
  { name: 'scp array', payload: { scp: ['a', 'b'] }, expect: { scopes: ['a', 'b'] } },
  {
    name: 'scope and scp merged',
    payload: { scope: 'a b', scp: ['b', 'c'] },
    expect: { scopes: ['a', 'b', 'c'] },
  },
  {
    name: 'scope array (non-standard) accepted',
    payload: { scope: ['a'] },
    expect: { scopes: ['a'] },
  },
  {
    name: 'junk in scp ignored',
    payload: { scp: ['a', 1, null, { x: 1 }, '', ['b']] },
    expect: { scopes: ['a'] },
  },
  {
    name: 'non-string scope ignored',
    payload: { scope: 42, scp: { a: 1 } },
    expect: { scopes: [] },
  },
  { name: 'no scopes', payload: {}, expect: { scopes: [], roles: [], clientId: undefined } },
  {
    name: 'azp wins over client_id',
    payload: { azp: 'web', client_id: 'cli' },
    expect: { clientId: 'web' },
  },
  { name: 'client_id when no azp', payload: { client_id: 'cli' }, expect: { clientId: 'cli' } },
  {
    name: 'empty azp falls back to client_id',
    payload: { azp: '', client_id: 'cli' },
    expect: { clientId: 'cli' },
  },
  {
    name: 'non-string azp falls back',
    payload: { azp: 7, client_id: 'cli' },
    expect: { clientId: 'cli' },
  },
  {
    name: 'non-string client_id ignored',
    payload: { client_id: ['cli'] },
    expect: { clientId: undefined },
  },
  {
    name: 'Keycloak realm roles',
    payload: { realm_access: { roles: ['mcp-user', 'offline_access'] } },
    expect: { roles: ['mcp-user', 'offline_access'] },
  },
  {
    name: 'Keycloak client roles of every client (wildcard)',
    payload: {
      resource_access: {
        gateway: { roles: ['mcp-admin'] },
        account: { roles: ['view-profile'] },
      },
    },
    expect: { roles: ['mcp-admin', 'view-profile'] },
  },
  {
    name: 'realm and client roles merged and deduplicated',
    payload: { realm_access: { roles: ['a'] }, resource_access: { c: { roles: ['a', 'b'] } } },
    expect: { roles: ['a', 'b'] },
  },
  {
    name: 'custom path groups (array)',
    roleClaims: ['groups'],
    payload: { groups: ['admins', 'devs'] },
    expect: { roles: ['admins', 'devs'] },
  },
  {
    name: 'custom path holding one string: not a role list, nothing',
    roleClaims: ['role'],
    payload: { role: 'admin' },
    expect: { roles: [] },
  },
  {
    name: 'deep custom path',
    roleClaims: ['a.b.c'],
    payload: { a: { b: { c: ['deep'] } } },
    expect: { roles: ['deep'] },
  },
  {
    name: 'paths not configured are not read',
    roleClaims: ['groups'],
    payload: { realm_access: { roles: ['x'] } },
    expect: { roles: [] },
  },
  {
    name: 'a list with any non-string member grants nothing; strings elsewhere are not lists',
    roleClaims: [...KEYCLOAK, 'groups'],
    payload: {
      realm_access: { roles: ['ok', 1, '', null, ['nested']] },
      resource_access: {
        c1: 'nope',
        c2: { roles: 'single' },
        c3: null,
        c4: [{ roles: ['arr'] }],
        c5: { roles: ['fine', ''] },
      },
      groups: { admins: true },
    },
    expect: { roles: ['fine'] },
  },
  {
    name: 'wildcard over an array does not index it',
    roleClaims: ['list.*.roles'],
    payload: { list: [{ roles: ['x'] }] },
    expect: { roles: [] },
  },
  {
    name: 'inherited properties are not claims',
    roleClaims: ['constructor.name', 'toString', '__proto__'],
    payload: {},
    expect: { roles: [] },
  },
]

for (const c of cases) {
  test(`toPrincipal: ${c.name}`, () => {
    const p = toPrincipal({ ...BASE, ...c.payload }, c.roleClaims ?? KEYCLOAK)
    assert.deepEqual([p.iss, p.sub, p.exp], [BASE.iss, BASE.sub, BASE.exp])
    if (c.expect.scopes) assert.deepEqual([...p.scopes].sort(), c.expect.scopes)
    if (c.expect.roles) assert.deepEqual([...p.roles].sort(), c.expect.roles)
    if ('clientId' in c.expect) assert.equal(p.clientId, c.expect.clientId)
  })
}

test('toPrincipal keeps the verified claims (for policy conditions) and nothing else', () => {
  const payload = { ...BASE, scope: 'a', secret: 'x' }
  const p = toPrincipal(payload, KEYCLOAK)
  assert.deepEqual(Object.keys(p).sort(), [
    'claims',
    'clientId',
    'exp',
    'hasScopeClaim',
    'iss',
    'roles',
    'scopes',
    'sub',
  ])
  assert.deepEqual(p.claims, payload)
})

test('a role claim named with :// is one claim, taken whole (Auth0 namespaced claims)', () => {
  const p = toPrincipal({ ...BASE, 'https://example.com/roles': ['admin'] }, [
    'https://example.com/roles',
  ])
  assert.deepEqual([...p.roles], ['admin'])
})

// Look-alike claims: a path walks nested objects only, and the value must have the configured form.
const lookalikes: { name: string; roleClaims: RoleClaim[]; payload: Record<string, unknown> }[] = [
  {
    name: 'a top-level claim literally named realm_access.roles',
    roleClaims: ['realm_access.roles'],
    payload: { 'realm_access.roles': ['mcp-admin'] },
  },
  {
    name: 'a nested key holding the rest of the path with dots',
    roleClaims: ['resource_access.mcp-edge.roles'],
    payload: { resource_access: { 'mcp-edge.roles': ['mcp-admin'] } },
  },
  {
    name: 'a key holding the whole path one level down',
    roleClaims: ['resource_access.mcp-edge.roles'],
    payload: { resource_access: { mcp: { 'edge.roles': ['mcp-admin'] } } },
  },
  { name: 'a string-valued roles claim', roleClaims: ['roles'], payload: { roles: 'mcp-admin' } },
  {
    name: 'a space-separated string where a list is configured',
    roleClaims: ['roles'],
    payload: { roles: 'mcp-user mcp-admin' },
  },
  {
    name: 'a list hiding an admin role among non-strings',
    roleClaims: ['roles'],
    payload: { roles: ['mcp-admin', 1] },
  },
  {
    name: 'an object keyed by role',
    roleClaims: ['roles'],
    payload: { roles: { 'mcp-admin': true } },
  },
  { name: 'a nested list', roleClaims: ['roles'], payload: { roles: [['mcp-admin']] } },
  { name: 'a number', roleClaims: ['roles'], payload: { roles: 1 } },
  { name: 'a boolean', roleClaims: ['roles'], payload: { roles: true } },
  {
    name: 'a list where space-separated is configured',
    roleClaims: [{ path: 'roles', format: 'space-separated' }],
    payload: { roles: ['mcp-admin'] },
  },
  {
    name: 'the path through an array',
    roleClaims: ['realm_access.roles'],
    payload: { realm_access: [{ roles: ['mcp-admin'] }] },
  },
  {
    name: 'a dotted path named like a URL segment',
    roleClaims: ['https://example.com/roles'],
    payload: { 'https://example': { 'com/roles': ['mcp-admin'] } },
  },
  {
    name: 'inherited properties',
    roleClaims: ['constructor.prototype.roles', 'toString.roles'],
    payload: {},
  },
]
for (const c of lookalikes) {
  test(`look-alike role claims grant nothing: ${c.name}`, () => {
    assert.deepEqual([...toPrincipal({ ...BASE, ...c.payload }, c.roleClaims).roles], [])
  })
}

test('a space-separated role string is read only where configured so', () => {
  const p = toPrincipal({ ...BASE, roles: ' mcp-user  mcp-developer ' }, [
    { path: 'roles', format: 'space-separated' },
  ])
  assert.deepEqual([...p.roles].sort(), ['mcp-developer', 'mcp-user'])
})

test('hasScopeClaim: any scope or scp claim, even empty or junk; none otherwise', () => {
  const cases: [Record<string, unknown>, boolean][] = [
    [{}, false],
    [{ scope: '' }, true],
    [{ scope: 'a' }, true],
    [{ scp: [] }, true],
    [{ scp: 7 }, true],
    [{ scopes: 'a' }, false],
  ]
  for (const [claims, has] of cases)
    assert.equal(
      toPrincipal({ ...BASE, ...claims }, KEYCLOAK).hasScopeClaim,
      has,
      JSON.stringify(claims),
    )
})
