import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import type { Principal } from '../../gateway/auth/principal.js'
import { decide, decideAccess, grantsOf, type Decision } from '../../gateway/policy/evaluate.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import type { Feature, Policy } from '../../gateway/policy/policy.js'
import { policyDir, POLICY, who, yaml } from './fixtures.js'

const tmp = policyDir()
let policy: Policy
let file: string

before(async () => {
  file = await tmp.file('policy.yaml', POLICY)
  policy = loadPolicy(file)
})

const nobody = who()
const viewer = who([], ['viewer'])
const editor = who([], ['editor'])
const root = who([], ['root'])

/** The fields of a decision a case pins down; `line` is the deciding rule's line. */
type Expect =
  | { effect: 'allow' | 'deny'; line?: number }
  | { effect: 'challenge'; required: string[]; missing: string[]; line?: number }

function shape(d: Decision, e: Expect): Expect {
  const out: Record<string, unknown> = { effect: d.effect }
  if (d.effect === 'challenge') out.required = [...d.required]
  if (d.effect === 'challenge') out.missing = [...d.missing]
  if (e.line !== undefined) out.line = d.source?.line
  return out as Expect
}

const allow: Expect = { effect: 'allow' }
const deny: Expect = { effect: 'deny' }
const challenge = (required: string[], missing: string[], line?: number): Expect => ({
  effect: 'challenge',
  required,
  missing,
  ...(line ? { line } : {}),
})

interface Case {
  name: string
  who: Principal
  server?: string
  feature?: Feature
  input: string
  expect: Expect
}

const cases: Case[] = [
  {
    name: 'scope rule held (role grants it)',
    who: viewer,
    input: 'read_note',
    expect: { effect: 'allow', line: 17 },
  },
  {
    name: 'first match wins: write_* before *_note',
    who: viewer,
    input: 'write_note',
    expect: challenge(['mcp:read', 'mcp:write'], ['mcp:write'], 13),
  },
  { name: 'deny rule', who: viewer, input: 'danger_zone', expect: { effect: 'deny', line: 10 } },
  {
    name: 'explicit deny beats a later allow',
    who: viewer,
    input: 'danger_ok',
    expect: { effect: 'deny', line: 10 },
  },
  { name: 'deny is final even for *', who: root, input: 'danger_ok', expect: deny },
  { name: 'allow rule', who: viewer, input: 'public_info', expect: { effect: 'allow', line: 12 } },
  {
    name: 'allow still needs server access',
    who: nobody,
    input: 'public_info',
    expect: challenge(['mcp:read'], ['mcp:read'], 8),
  },
  { name: 'unmatched name denied', who: viewer, input: 'unknown_tool', expect: deny },
  { name: 'unmatched name denied even for *', who: root, input: 'unknown_tool', expect: deny },
  {
    name: 'scope list needs all: one missing',
    who: editor,
    input: 'both',
    expect: challenge(['mcp:read', 'mcp:write', 'mcp:admin'], ['mcp:admin']),
  },
  {
    name: 'scope list needs all: two missing',
    who: viewer,
    input: 'both',
    expect: challenge(['mcp:read', 'mcp:write', 'mcp:admin'], ['mcp:write', 'mcp:admin']),
  },
  {
    name: 'scope list held: token scopes all within the roles',
    who: who(['mcp:read', 'mcp:write', 'mcp:admin'], ['root']),
    input: 'both',
    expect: allow,
  },
  {
    name: 'token scopes without a role that grants them count for nothing',
    who: who(['mcp:read', 'mcp:write', 'mcp:admin']),
    input: 'both',
    // Access and the rule both lack scopes: one challenge for all (not access first, then more).
    expect: challenge(
      ['mcp:read', 'mcp:write', 'mcp:admin'],
      ['mcp:read', 'mcp:write', 'mcp:admin'],
    ),
  },
  {
    name: 'token scopes and role scopes do not add up: mcp:admin on the token, editor role',
    who: who(['mcp:read', 'mcp:write', 'mcp:admin'], ['editor']),
    input: 'both',
    expect: challenge(['mcp:read', 'mcp:write', 'mcp:admin'], ['mcp:admin']),
  },
  {
    name: 'a read-only token of an editor can only read',
    who: who(['mcp:read'], ['editor']),
    input: 'write_x',
    expect: challenge(['mcp:read', 'mcp:write'], ['mcp:write']),
  },
  {
    name: 'the same editor with no scope claim at all: roles decide',
    who: editor,
    input: 'write_x',
    expect: allow,
  },
  {
    name: 'an empty scope claim delegates nothing, whatever the roles',
    who: who([], ['root'], 'u', {}, true),
    input: 'read_note',
    expect: challenge(['mcp:read'], ['mcp:read']),
  },
  {
    name: 'an unrelated token scope does not count as the role scope',
    who: who(['openid', 'profile'], ['editor']),
    input: 'read_note',
    expect: challenge(['mcp:read'], ['mcp:read']),
  },
  { name: 'role expansion: editor may write', who: editor, input: 'write_x', expect: allow },
  {
    name: 'a role the policy does not define grants nothing',
    who: who([], ['ghost']),
    input: 'read_note',
    expect: challenge(['mcp:read'], ['mcp:read']),
  },
  { name: '* grant allows every scope rule', who: root, input: 'both', expect: allow },
  {
    name: 'wildcard grant tools:* covers tools:scoped (roles alone)',
    who: who([], ['viewer', 'tooler']),
    input: 'scoped',
    expect: allow,
  },
  {
    name: 'wildcard grant tools:* lets a token scope tools:scoped count',
    who: who(['mcp:read', 'tools:scoped'], ['viewer', 'tooler']),
    input: 'scoped',
    expect: allow,
  },
  {
    name: 'a token scope tools:* is literal: no wildcard from the token',
    who: who(['mcp:read', 'tools:*'], ['viewer', 'tooler']),
    input: 'scoped',
    expect: challenge(['mcp:read', 'tools:scoped'], ['tools:scoped']),
  },
  {
    name: 'tools:* does not cover mcp:write',
    who: who(['mcp:read', 'mcp:write'], ['viewer', 'tooler']),
    input: 'write_x',
    expect: challenge(['mcp:read', 'mcp:write'], ['mcp:write']),
  },
  {
    name: '? in a granted scope is not a wildcard',
    who: who(['mcp:read', 'tools:scope?'], ['viewer', 'tooler']),
    input: 'scoped',
    expect: challenge(['mcp:read', 'tools:scoped'], ['tools:scoped']),
  },
  {
    name: 'required has no duplicates',
    who: nobody,
    input: 'reread',
    expect: challenge(['mcp:read'], ['mcp:read']),
  },
  { name: 'prompt allowed', who: viewer, feature: 'prompts', input: 'greet', expect: allow },
  {
    name: 'tool rules do not apply to prompts',
    who: viewer,
    feature: 'prompts',
    input: 'public_info',
    expect: deny,
  },
  {
    name: 'resource by URI pattern',
    who: viewer,
    feature: 'resources',
    input: 'file:///public/a/b.txt',
    expect: allow,
  },
  {
    name: 'resource needing a scope',
    who: viewer,
    feature: 'resources',
    input: 'file:///private/k',
    expect: challenge(['mcp:read', 'mcp:admin'], ['mcp:admin']),
  },
  {
    name: 'resource matching no rule',
    who: root,
    feature: 'resources',
    input: 'file:///etc/passwd',
    expect: deny,
  },
  { name: 'server without policy: deny', who: root, server: 'nope', input: 'x', expect: deny },
  {
    name: 'server without access scopes: open to all',
    who: nobody,
    server: 'open',
    input: 'x',
    expect: allow,
  },
]

describe('decide', () => {
  for (const c of cases) {
    test(c.name, () => {
      const d = decide(policy, c.who, c.server ?? 's', c.feature ?? 'tools', c.input)
      assert.deepEqual(shape(d, c.expect), c.expect)
      assert.ok(d.reason.length > 0)
      if (c.expect.line !== undefined) assert.equal(d.source?.file, file)
    })
  }

  test('challenge `required` is stable between calls and principals', () => {
    const runs = [viewer, viewer, who([], ['viewer']), who(['mcp:read'], ['viewer'])].map((p) =>
      decide(policy, p, 's', 'tools', 'both'),
    )
    for (const d of runs) {
      assert.equal(d.effect, 'challenge')
      const required = d.effect === 'challenge' ? [...d.required] : []
      assert.deepEqual(required, ['mcp:read', 'mcp:write', 'mcp:admin'])
    }
  })
})

describe('decideAccess', () => {
  const accessCases: { name: string; who: Principal; server: string; expect: Expect }[] = [
    { name: 'access scope held', who: viewer, server: 's', expect: { effect: 'allow', line: 8 } },
    {
      name: 'access scope missing: challenge',
      who: nobody,
      server: 's',
      expect: challenge(['mcp:read'], ['mcp:read'], 8),
    },
    { name: 'no policy for the server', who: root, server: 'nope', expect: deny },
    { name: 'no access scopes', who: nobody, server: 'open', expect: allow },
  ]
  for (const c of accessCases) {
    test(c.name, () => {
      assert.deepEqual(shape(decideAccess(policy, c.who, c.server), c.expect), c.expect)
    })
  }

  // Decisions are kept per principal and policy: a reloaded policy, another server or another
  // principal is decided again, never answered from what one of the others was told.
  test('a reloaded policy decides again for the same principal', async () => {
    const p = who([], ['viewer'])
    assert.equal(decideAccess(policy, p, 's').effect, 'allow')
    const stricter = loadPolicy(
      await tmp.file('stricter.yaml', POLICY.replace('access: [mcp:read]', 'access: [mcp:write]')),
    )
    assert.equal(decideAccess(stricter, p, 's').effect, 'challenge')
    assert.equal(decideAccess(policy, p, 's').effect, 'allow')
    assert.equal(decideAccess(stricter, p, 'open').effect, 'allow')
    assert.equal(decideAccess(stricter, p, 'nope').effect, 'deny')
  })

  test('each principal and server has its own decision', () => {
    const [a, b] = [who([], ['viewer'], 'a'), who([], [], 'b')]
    const steps: [Principal, string, string][] = [
      [a, 's', 'allow'],
      [b, 's', 'challenge'],
      [a, 's', 'allow'],
      [b, 'open', 'allow'],
      [b, 's', 'challenge'],
      [a, 'nope', 'deny'],
    ]
    for (const [p, server, effect] of steps)
      assert.equal(decideAccess(policy, p, server).effect, effect, `${p.sub} on ${server}`)
  })
})

describe('grantsOf', () => {
  const grantCases: { name: string; who: Principal; input: string; expect: boolean }[] = [
    {
      name: 'token scope within a role',
      who: who(['mcp:read'], ['viewer']),
      input: 'mcp:read',
      expect: true,
    },
    {
      name: 'token scope outside every role',
      who: who(['mcp:admin'], ['viewer']),
      input: 'mcp:admin',
      expect: false,
    },
    {
      name: 'role scope not on a token that has a scope claim',
      who: who(['mcp:read'], ['editor']),
      input: 'mcp:write',
      expect: false,
    },
    { name: 'role scope', who: editor, input: 'mcp:write', expect: true },
    { name: 'neither', who: editor, input: 'mcp:admin', expect: false },
    { name: '* grants anything', who: root, input: 'whatever:else', expect: true },
    {
      name: 'a token scope * grants only the scope named *',
      who: who(['*'], ['root']),
      input: 'mcp:read',
      expect: false,
    },
    {
      name: 'allScopes (--insecure-no-auth) grants anything',
      who: { ...who([]), allScopes: true },
      input: 'x:y',
      expect: true,
    },
    { name: 'tools:* grants tools:x', who: who([], ['tooler']), input: 'tools:x', expect: true },
    {
      name: 'tools:* does not grant toolsx',
      who: who([], ['tooler']),
      input: 'toolsx',
      expect: false,
    },
  ]
  for (const c of grantCases) {
    test(c.name, () => assert.equal(grantsOf(policy, c.who).has(c.input), c.expect))
  }

  test('effective scopes and their basis', () => {
    const cases: [Principal, string[], string][] = [
      [who([], ['editor']), ['mcp:read', 'mcp:write'], 'roles'],
      [who(['x', 'mcp:read'], ['editor']), ['mcp:read'], 'scopes within roles'],
      [who(['x', 'mcp:read']), [], 'scopes within roles'],
      [{ ...who([]), allScopes: true }, [], 'all'],
    ]
    for (const [p, scopes, basis] of cases) {
      const g = grantsOf(policy, p)
      assert.deepEqual([...g.scopes].sort(), scopes)
      assert.equal(g.basis, basis)
    }
  })

  test('a policy that maps no roles has no ceiling: the token scopes decide', async () => {
    const noRoles = loadPolicy(
      await tmp.file(
        'no-roles.yaml',
        yaml('servers:', '  s:', '    access: [mcp:read]', '    tools: { w: [mcp:write] }'),
      ),
    )
    const p = who(['mcp:read', 'mcp:write'], ['editor'])
    assert.equal(grantsOf(noRoles, p).basis, 'scopes')
    assert.equal(decide(noRoles, p, 's', 'tools', 'w').effect, 'allow')
    assert.equal(decide(noRoles, who([], ['editor']), 's', 'tools', 'w').effect, 'challenge')
  })

  test('recomputed for another policy (reload), not served from the cache', async () => {
    const p = who([], ['viewer'])
    assert.equal(grantsOf(policy, p).has('mcp:write'), false)
    const text = yaml('roles:', '  viewer: [mcp:read, mcp:write]')
    const reloaded = loadPolicy(await tmp.file('reloaded.yaml', text))
    assert.equal(grantsOf(reloaded, p).has('mcp:write'), true)
    assert.equal(grantsOf(policy, p).has('mcp:write'), false)
  })
})
