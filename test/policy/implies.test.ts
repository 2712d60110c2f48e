// `implies:` in policy files: load errors located to file and line, the compiled hierarchy,
// and every place scopes are decided (decide, conditions, lists, challenges, explain, broker).
import assert from 'node:assert/strict'
import path from 'node:path'
import { before, describe, test } from 'node:test'
import { grantableScopes, serverScopes } from '../../gateway/broker/scopes.js'
import { ConfigError, type ConfigProblem } from '../../gateway/config/errors.js'
import { decide, decideAccess, grantsOf } from '../../gateway/policy/evaluate.js'
import { explain } from '../../gateway/policy/explain.js'
import { filterListResult, STEP_UP_META } from '../../gateway/policy/filter.js'
import { compileImplies, type Implication } from '../../gateway/policy/implies.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import type { Policy } from '../../gateway/policy/policy.js'
import { scopesOfRoles } from '../../gateway/policy/role-scopes.js'
import { policyDir, who, yaml } from './fixtures.js'

const tmp = policyDir()

/** The problems of the ConfigError `fn` throws. */
function problemsOf(fn: () => unknown): ConfigProblem[] {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`)
    return err.problems
  }
  assert.fail('expected a ConfigError')
}

/** Entries as compileImplies takes them, without sources that matter. */
function entries(map: Record<string, string[]>): Implication[] {
  const source = { file: 'x', line: undefined }
  return Object.entries(map).map(([scope, scopes]) => ({
    scope,
    scopes,
    source,
    itemSources: scopes.map(() => source),
  }))
}

describe('compileImplies: the hierarchy', () => {
  const cases: {
    name: string
    implies: Record<string, string[]>
    below: Record<string, string[]>
    without?: [string[], string[]]
  }[] = [
    {
      name: 'a chain is transitive, and never reflexive or upward',
      implies: { 'mcp:admin': ['mcp:write'], 'mcp:write': ['mcp:read'] },
      below: {
        'mcp:admin': ['mcp:write', 'mcp:read'],
        'mcp:write': ['mcp:read'],
        'mcp:read': [],
        'mcp:other': [],
      },
      without: [
        ['mcp:read', 'mcp:admin', 'mcp:write', 'x'],
        ['mcp:admin', 'x'],
      ],
    },
    {
      name: 'a diamond reaches its bottom once, through both sides',
      implies: { top: ['left', 'right'], left: ['bottom'], right: ['bottom'] },
      below: { top: ['left', 'right', 'bottom'], left: ['bottom'], right: ['bottom'] },
      without: [
        ['bottom', 'left', 'right'],
        ['left', 'right'],
      ],
    },
    {
      name: 'duplicates in a list count once; repeats are dropped',
      implies: { a: ['b', 'b', 'c'] },
      below: { a: ['b', 'c'] },
      without: [['b', 'b', 'a', 'a'], ['a']],
    },
    {
      name: 'scopes are case-sensitive (RFC 6749 §3.3): MCP:ADMIN is another scope',
      implies: { 'mcp:admin': ['mcp:read'], 'MCP:Admin': ['mcp:write'] },
      below: { 'mcp:admin': ['mcp:read'], 'MCP:Admin': ['mcp:write'], 'MCP:ADMIN': [] },
      without: [
        ['MCP:ADMIN', 'mcp:read'],
        ['MCP:ADMIN', 'mcp:read'],
      ],
    },
  ]
  for (const c of cases) {
    test(c.name, () => {
      const { hierarchy, problems } = compileImplies(entries(c.implies))
      assert.deepEqual(problems, [])
      for (const [scope, want] of Object.entries(c.below))
        assert.deepEqual([...hierarchy.below(scope)].sort(), [...want].sort(), scope)
      if (c.without) assert.deepEqual(hierarchy.withoutImplied(c.without[0]), c.without[1])
    })
  }
})

interface ErrorCase {
  name: string
  files: Record<string, string>
  expect: (f: Record<string, string>) => Partial<ConfigProblem>[]
}

const SCOPE = 'a scope is printable ASCII without spaces, quotes or backslashes'
const MAPPING = 'implies is a mapping of scope → list of scopes'
const LIST = 'implies maps a scope to a list of the scopes it implies'
const WILD = (s: string) => `${s}: implies names scopes, not patterns (wildcards belong to roles:)`

const errorCases: ErrorCase[] = [
  {
    name: 'a scope implying itself (a cycle of length 1), at the item',
    files: { 'p.yaml': yaml('implies:', '  mcp:a:', '    - mcp:b', '    - mcp:a') },
    expect: (f) => [{ file: f['p.yaml'], line: 4, message: 'mcp:a implies itself' }],
  },
  {
    name: 'a cycle of length 2, at the entry closing it, each step located',
    files: { 'p.yaml': yaml('implies:', '  a: [b]', '  b: [a]') },
    expect: (f) => [
      {
        file: f['p.yaml'],
        line: 3,
        message: `implies cycle: a → b (${f['p.yaml']}:2) → a (${f['p.yaml']}:3)`,
      },
    ],
  },
  {
    name: 'a cycle of length 3 running through two files',
    files: {
      'a.yaml': yaml('implies:', '  a: [b]'),
      'b.yaml': yaml('# b', 'implies:', '  b: [c]', '  c: [a, d]'),
    },
    expect: (f) => [
      {
        file: f['b.yaml'],
        line: 4,
        message: `implies cycle: a → b (${f['a.yaml']}:2) → c (${f['b.yaml']}:3) → a (${f['b.yaml']}:4)`,
      },
    ],
  },
  {
    name: 'a cycle below an acyclic part is still found; the acyclic part is no problem',
    files: { 'p.yaml': yaml('implies:', '  top: [x, y]', '  x: [y]', '  y: [z]', '  z: [x]') },
    expect: (f) => [
      {
        file: f['p.yaml'],
        line: 5,
        message: `implies cycle: x → y (${f['p.yaml']}:3) → z (${f['p.yaml']}:4) → x (${f['p.yaml']}:5)`,
      },
    ],
  },
  {
    name: 'wildcards: as the implying scope, and as an implied one',
    files: {
      'p.yaml': yaml(
        'implies:',
        '  "*": [mcp:read]',
        '  "tools:*": [mcp:read]',
        '  mcp:admin:',
        '    - mcp:write',
        '    - "mcp:*"',
      ),
    },
    expect: (f) => [
      { file: f['p.yaml'], line: 2, message: WILD('*') },
      { file: f['p.yaml'], line: 3, message: WILD('tools:*') },
      { file: f['p.yaml'], line: 6, message: WILD('mcp:*') },
    ],
  },
  {
    name: 'the same scope in two files names both',
    files: {
      'a.yaml': yaml('implies:', '  mcp:admin: [mcp:write]'),
      'b.yaml': yaml('implies:', '  mcp:read: [x]', '  mcp:admin: [mcp:read]'),
    },
    expect: (f) => [
      {
        file: f['b.yaml'],
        line: 3,
        message: `implies of mcp:admin is also defined in ${f['a.yaml']}`,
      },
    ],
  },
  {
    name: 'the same scope twice in one file (a duplicate key)',
    files: { 'p.yaml': yaml('implies:', '  a: [b]', '  a: [c]') },
    expect: (f) => [{ file: f['p.yaml'], line: 3, message: 'Map keys must be unique' }],
  },
  {
    name: 'hostile shapes: a string, a list, null',
    files: {
      'a.yaml': yaml('implies: "mcp:admin"'),
      'b.yaml': yaml('implies: [mcp:admin, mcp:write]'),
      'c.yaml': yaml('implies:'),
    },
    expect: (f) => [
      { file: f['a.yaml'], line: 1, path: 'implies', message: MAPPING },
      { file: f['b.yaml'], line: 1, path: 'implies', message: MAPPING },
      { file: f['c.yaml'], line: 1, path: 'implies', message: MAPPING },
    ],
  },
  {
    name: 'hostile values: a string, a number, null, a mapping, an empty list, a number item',
    files: {
      'p.yaml': yaml(
        'implies:',
        '  a: b',
        '  c: 3',
        '  d: null',
        '  e: { f: [g] }',
        '  h: []',
        '  i: [1, true]',
      ),
    },
    expect: (f) => [
      { file: f['p.yaml'], line: 2, path: 'implies.a', message: LIST },
      { file: f['p.yaml'], line: 3, path: 'implies.c', message: LIST },
      { file: f['p.yaml'], line: 4, path: 'implies.d', message: LIST },
      { file: f['p.yaml'], line: 5, path: 'implies.e', message: LIST },
      {
        file: f['p.yaml'],
        line: 6,
        path: 'implies.h',
        message: 'an implies entry lists at least one scope; remove it instead',
      },
      { file: f['p.yaml'], line: 7, path: 'implies.i.0' },
      { file: f['p.yaml'], line: 7, path: 'implies.i.1' },
    ],
  },
  {
    name: 'whitespace and quotes in scope strings, on either side',
    files: {
      'p.yaml': yaml('implies:', '  " mcp:admin": [mcp:write]', '  mcp:write: ["mcp:read "]'),
    },
    expect: (f) => [
      { file: f['p.yaml'], line: 2, path: 'implies. mcp:admin', message: SCOPE },
      { file: f['p.yaml'], line: 3, path: 'implies.mcp:write.0', message: SCOPE },
    ],
  },
]

describe('loadPolicy: implies: errors carry file and line', () => {
  let n = 0
  for (const c of errorCases) {
    test(c.name, async () => {
      const folder = `implies-errors-${++n}`
      const files: Record<string, string> = {}
      for (const [name, text] of Object.entries(c.files))
        files[name] = await tmp.file(`${folder}/${name}`, text)
      const problems = problemsOf(() => loadPolicy(path.join(tmp.dir, folder)))
      const want = c.expect(files)
      const got = problems.map((p, i) =>
        Object.fromEntries(Object.keys(want[i] ?? p).map((k) => [k, p[k as keyof ConfigProblem]])),
      )
      assert.deepEqual(got, want)
    })
  }

  test('an anchor and alias for a shared list is accepted like the list itself', async () => {
    const text = yaml('implies:', '  mcp:admin: &w [mcp:write, mcp:read]', '  mcp:owner: *w')
    const policy = loadPolicy(await tmp.file('alias/p.yaml', text))
    assert.deepEqual([...policy.implies.below('mcp:owner')], ['mcp:write', 'mcp:read'])
  })
})

// Line numbers matter: explain cases name the implies lines.
const POLICY = `roles:
  viewer: [mcp:read]
  writer: [mcp:write]
  admin: [mcp:admin]
  root: ["*"]
  ops: ["ops:*"]
  biller: [billing:read]
implies:
  mcp:admin: [mcp:write]
  mcp:write: [mcp:read]
  ops:all: [billing:read]
servers:
  s:
    access: [mcp:read]
    tools:
      read: [mcp:read]
      write: [mcp:write]
      nuke: [mcp:admin]
      report: [mcp:read, billing:read]
      scoped:
        scopes: [billing:read]
        when: { scope: mcp:read }
      "*": deny
`

type Outcome = { effect: string; required?: string[]; missing?: string[] }

describe('decisions account for implied scopes', () => {
  let policy: Policy
  let file = ''
  before(async () => {
    file = await tmp.file('decide/p.yaml', POLICY)
    policy = loadPolicy(file)
  })
  const allow: Outcome = { effect: 'allow' }
  const challenge = (required: string[], missing: string[]): Outcome => ({
    effect: 'challenge',
    required,
    missing,
  })
  const cases: {
    name: string
    scopes?: string[]
    roles: string[]
    tool: string
    expect: Outcome
  }[] = [
    {
      name: 'mcp:write implies the read a rule asks for',
      scopes: ['mcp:write'],
      roles: ['writer'],
      tool: 'read',
      expect: allow,
    },
    {
      name: 'mcp:admin implies mcp:read through mcp:write (a chain)',
      scopes: ['mcp:admin'],
      roles: ['admin'],
      tool: 'read',
      expect: allow,
    },
    {
      name: 'the challenge names the missing scope itself, never a broader one',
      scopes: ['mcp:read'],
      roles: ['admin'],
      tool: 'write',
      expect: challenge(['mcp:write'], ['mcp:write']),
    },
    {
      name: 'a held access scope is covered by the broader missing one',
      scopes: ['mcp:read'],
      roles: ['admin'],
      tool: 'nuke',
      expect: challenge(['mcp:admin'], ['mcp:admin']),
    },
    {
      name: 'a scope held through an implication is named by the held scope, not itself',
      scopes: ['mcp:write'],
      roles: ['writer'],
      tool: 'report',
      expect: challenge(['mcp:write', 'billing:read'], ['billing:read']),
    },
    {
      name: 'a token scope outside the roles still implies what the roles allow',
      scopes: ['mcp:admin'],
      roles: ['writer'],
      tool: 'write',
      expect: allow,
    },
    {
      name: '...but never itself, and the challenge names it (the user lacks the role)',
      scopes: ['mcp:admin'],
      roles: ['writer'],
      tool: 'nuke',
      expect: challenge(['mcp:admin'], ['mcp:admin']),
    },
    {
      name: 'no scope claim: a role granting mcp:admin grants what it implies',
      roles: ['admin'],
      tool: 'read',
      expect: allow,
    },
    {
      name: 'no scope claim: a narrower role does not reach the broader scope',
      roles: ['writer'],
      tool: 'nuke',
      expect: challenge(['mcp:admin'], ['mcp:admin']),
    },
    {
      name: 'a role pattern (ops:*) holds ops:all, so what ops:all implies',
      roles: ['viewer', 'ops'],
      tool: 'report',
      expect: allow,
    },
    {
      name: 'case variants imply nothing: MCP:WRITE is not mcp:write',
      scopes: ['MCP:WRITE', 'mcp:read'],
      roles: ['root'],
      tool: 'write',
      expect: challenge(['mcp:write'], ['mcp:write']),
    },
    {
      name: 'a when: { scope } condition holds through an implication',
      scopes: ['mcp:write', 'billing:read'],
      roles: ['writer', 'biller'],
      tool: 'scoped',
      expect: allow,
    },
    {
      name: 'an explicit deny stays a deny whatever is implied',
      scopes: ['mcp:admin'],
      roles: ['root'],
      tool: 'other',
      expect: { effect: 'deny' },
    },
  ]
  for (const c of cases) {
    test(c.name, () => {
      const p = who(c.scopes ?? [], c.roles)
      const d = decide(policy, p, 's', 'tools', c.tool)
      const got: Outcome =
        d.effect === 'challenge'
          ? { effect: d.effect, required: [...d.required], missing: [...d.missing] }
          : { effect: d.effect }
      assert.deepEqual(got, c.expect)
    })
  }

  test('access: a token holding only a broader scope opens the server', () => {
    assert.equal(decideAccess(policy, who(['mcp:admin'], ['admin']), 's').effect, 'allow')
    const d = decideAccess(policy, who(['billing:read'], ['root']), 's')
    assert.equal(d.effect, 'challenge')
    assert.deepEqual(d.effect === 'challenge' && [...d.required], ['mcp:read'])
  })

  test('the policy maps no roles: the token scopes and what they imply decide', async () => {
    const text = POLICY.replace(/^roles:[\s\S]*?(?=implies:)/m, '')
    const noRoles = loadPolicy(await tmp.file('decide/noroles.yaml', text))
    assert.equal(noRoles.roles.size, 0)
    assert.equal(decide(noRoles, who(['mcp:admin']), 's', 'tools', 'read').effect, 'allow')
    assert.equal(decide(noRoles, who(['mcp:write']), 's', 'tools', 'nuke').effect, 'challenge')
  })

  test('random callers: a challenge is exactly enough, never an implied held scope', () => {
    const random = prng(0x5eed)
    const SCOPES = ['mcp:read', 'mcp:write', 'mcp:admin', 'billing:read', 'ops:all', 'x']
    const ROLES = ['viewer', 'writer', 'admin', 'ops', 'biller']
    const TOOLS = ['read', 'write', 'nuke', 'report', 'scoped']
    let challenges = 0
    for (let i = 0; i < 2000; i++) {
      const scopes = SCOPES.filter(() => random() < 0.3)
      const roles = ROLES.filter(() => random() < 0.4)
      const tool = TOOLS[Math.floor(random() * TOOLS.length)]!
      const p = who(scopes, roles, 'u', {}, true)
      const d = decide(policy, p, 's', 'tools', tool)
      if (d.effect !== 'challenge') continue
      challenges++
      const g = grantsOf(policy, p)
      const why = `#${i} scopes [${scopes}] roles [${roles}] ${tool}: required [${d.required}]`
      // Never a scope the caller holds only through an implication from a scope it may use
      // (that one is named instead; a token scope outside the roles cannot be).
      const ownImplies = (s: string) => [...g.scopes].some((t) => policy.implies.below(t).has(s))
      assert.ok(
        d.required.every((s) => !(g.implied.has(s) && ownImplies(s))),
        `${why} names an implied scope`,
      )
      // Never two scopes one of which implies the other.
      assert.deepEqual(policy.implies.withoutImplied(d.required), [...d.required], why)
      // A token carrying exactly the challenged scopes, under roles granting them, may do it
      // (an access challenge names the access scopes only: then it may open the server).
      const stepped = who([...d.required], [...roles, 'root'], 'u', {}, true)
      const access = decideAccess(policy, p, 's').effect === 'allow'
      const after = access
        ? decide(policy, stepped, 's', 'tools', tool)
        : decideAccess(policy, stepped, 's')
      assert.equal(after.effect, 'allow', why)
    }
    assert.ok(challenges > 100, `only ${challenges} challenges in the sample`)
  })

  test('lists keep what is held through an implication, and mark the step-up narrowly', () => {
    const result = {
      tools: ['read', 'write', 'nuke', 'other'].map((name) => ({ name })),
    }
    const filtered = filterListResult(
      policy,
      's',
      'tools/list',
      result,
      who(['mcp:write'], ['admin']),
    ) as { tools: { name: string; _meta?: Record<string, unknown> }[] }
    assert.deepEqual(
      filtered.tools.map((t) => [t.name, t._meta?.[STEP_UP_META] ?? null]),
      [
        ['read', null],
        ['write', null],
        ['nuke', { scopes: ['mcp:admin'] }],
      ],
    )
  })

  test('explain says which implication granted a needed scope, with file and line', () => {
    const e = explain(policy, who(['mcp:admin'], ['admin']), 's', 'tools', 'read')
    assert.equal(e.decision, 'allow')
    assert.deepEqual(e.implied, [
      {
        scope: 'mcp:read',
        from: 'mcp:admin',
        chain: [
          { from: 'mcp:admin', to: 'mcp:write', file, line: 9 },
          { from: 'mcp:write', to: 'mcp:read', file, line: 10 },
        ],
      },
    ])
    const held = explain(policy, who(['mcp:read'], ['viewer']), 's', 'tools', 'read')
    assert.deepEqual(held.implied, [], 'a scope held as written needs no explanation')
  })

  test('role scopes: a role grants what its scopes imply; a pattern what its matches imply', () => {
    const admin = scopesOfRoles(policy.roles, ['admin'], policy.implies)
    assert.deepEqual(Object.fromEntries(admin.implied), {
      'mcp:write': 'mcp:admin',
      'mcp:read': 'mcp:admin',
    })
    assert.equal(admin.has('mcp:read'), true)
    assert.equal(admin.has('billing:read'), false)
    assert.equal(scopesOfRoles(policy.roles, ['ops'], policy.implies).has('billing:read'), true)
    // "*" holds everything itself: nothing is held "through" an implication.
    assert.equal(scopesOfRoles(policy.roles, ['root'], policy.implies).implied.size, 0)
    assert.equal(scopesOfRoles(policy.roles, ['admin']).has('mcp:read'), false, 'no hierarchy')
  })

  test('broker: a server speaks of the broader scopes too; roles grant through them', () => {
    assert.deepEqual(serverScopes(policy, 's').sort(), [
      'billing:read',
      'mcp:admin',
      'mcp:read',
      'mcp:write',
      'ops:all',
    ])
    assert.deepEqual(grantableScopes(policy, 's', ['writer']).sort(), ['mcp:read', 'mcp:write'])
  })
})

/** mulberry32: a small seeded PRNG, uniform on [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}
