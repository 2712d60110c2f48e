import assert from 'node:assert/strict'
import path from 'node:path'
import { describe, test } from 'node:test'
import { ConfigError, type ConfigProblem } from '../../gateway/config/errors.js'
import { decide } from '../../gateway/policy/evaluate.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import { policyDir, POLICY, who, yaml } from './fixtures.js'

const tmp = policyDir()

/** The problems of the ConfigError `fn` throws. */
function problemsOf(fn: () => unknown): ConfigProblem[] {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`)
    assert.equal(err.code, 'config_invalid')
    return err.problems
  }
  assert.fail('expected a ConfigError')
}

describe('loadPolicy: one file', () => {
  test('compiles roles, servers and rule sources', async () => {
    const file = await tmp.file('one/policy.yaml', POLICY)
    const policy = loadPolicy(file)
    assert.deepEqual(policy.files, [file])
    assert.deepEqual(Object.fromEntries(policy.roles), {
      viewer: ['mcp:read'],
      editor: ['mcp:read', 'mcp:write'],
      tooler: ['tools:*'],
      root: ['*'],
    })
    assert.deepEqual([...policy.servers.keys()], ['s', 'open'])
    const s = policy.servers.get('s')!
    assert.deepEqual(s.access, ['mcp:read'])
    assert.deepEqual(s.accessSource, { file, line: 8 })
    assert.deepEqual(
      s.rules.tools.map((r) => [r.pattern, r.effect, r.source.line]),
      [
        ['danger_*', { kind: 'deny' }, 10],
        ['danger_ok', { kind: 'allow' }, 11],
        ['public_*', { kind: 'allow' }, 12],
        ['write_*', { kind: 'scopes', scopes: ['mcp:write'] }, 13],
        ['both', { kind: 'scopes', scopes: ['mcp:write', 'mcp:admin'] }, 14],
        ['scoped', { kind: 'scopes', scopes: ['tools:scoped'] }, 15],
        ['reread', { kind: 'scopes', scopes: ['mcp:read', 'mcp:read'] }, 16],
        ['*_note', { kind: 'scopes', scopes: ['mcp:read'] }, 17],
      ],
    )
    assert.deepEqual(policy.servers.get('open')!.access, [])
  })

  test('an empty file is an empty policy', async () => {
    const policy = loadPolicy(await tmp.file('empty.yaml', ''))
    assert.deepEqual([policy.roles.size, policy.servers.size], [0, 0])
  })

  test('rules keep the order they are written in, numeric names included', async () => {
    const text = yaml('servers:', '  s:', '    tools:', '      "*": deny', '      "7": allow')
    const policy = loadPolicy(await tmp.file('order.yaml', text))
    assert.deepEqual(
      policy.servers.get('s')!.rules.tools.map((r) => r.pattern),
      ['*', '7'],
    )
    assert.equal(decide(policy, who(), 's', 'tools', '7').effect, 'deny')
  })
})

describe('loadPolicy: a folder', () => {
  test('merges every .yaml/.yml file in name order, ignoring others', async () => {
    const a = await tmp.file(
      'merge/a.yaml',
      yaml(
        'roles:',
        '  viewer: [mcp:read]',
        'servers:',
        '  echo:',
        '    tools:',
        '      echo: allow',
      ),
    )
    const b = await tmp.file(
      'merge/b.yml',
      yaml(
        'roles:',
        '  editor: [mcp:write]',
        'servers:',
        '  notes:',
        '    tools:',
        '      "*": deny',
      ),
    )
    await tmp.file('merge/README.md', 'not: [a policy')
    await tmp.file('merge/c.yaml.bak', 'not: [a policy')
    const policy = loadPolicy(path.dirname(a))
    assert.deepEqual(policy.files, [a, b])
    assert.deepEqual([...policy.roles.keys()], ['viewer', 'editor'])
    assert.deepEqual([...policy.servers.keys()], ['echo', 'notes'])
    assert.equal(policy.servers.get('notes')!.rules.tools[0]!.source.file, b)
  })
})

interface ErrorCase {
  name: string
  files: Record<string, string>
  /** Expected problems, given the absolute path of each file of `files`. */
  expect: (f: Record<string, string>) => Partial<ConfigProblem>[]
}

const RULE = 'a rule is allow, deny, a list of scopes, or { scopes | effect, when }'
const SCOPE = 'a scope is printable ASCII without spaces, quotes or backslashes'

const errorCases: ErrorCase[] = [
  {
    name: 'the same server in two files names both',
    files: {
      'a.yaml': yaml('servers:', '  echo:', '    tools: {}'),
      'b.yaml': yaml('# b', 'servers:', '  echo:', '    access: []'),
    },
    expect: (f) => [
      { file: f['b.yaml'], line: 3, message: `server echo is also defined in ${f['a.yaml']}` },
    ],
  },
  {
    name: 'the same role in two files names both',
    files: {
      'a.yaml': yaml('roles:', '  admin: ["*"]'),
      'b.yaml': yaml('roles:', '  user: [x]', '  admin: [y]'),
    },
    expect: (f) => [
      { file: f['b.yaml'], line: 3, message: `role admin is also defined in ${f['a.yaml']}` },
    ],
  },
  {
    name: 'unknown key, at its line',
    files: { 'p.yaml': yaml('servers:', '  s:', '    tools:', '      a: allow', '    tool: {}') },
    expect: (f) => [
      { file: f['p.yaml'], line: 5, path: 'servers.s', message: 'unknown key "tool"' },
    ],
  },
  {
    name: 'unknown top-level key, at its line',
    files: { 'p.yaml': yaml('roles: {}', 'server: {}') },
    expect: (f) => [{ file: f['p.yaml'], line: 2, message: 'unknown key "server"' }],
  },
  {
    name: 'bad rule values, each at its line',
    files: {
      'p.yaml': yaml(
        'servers:',
        '  s:',
        '    tools:',
        '      a: maybe',
        '      b: []',
        '      c: ["has space"]',
        '      d: 3',
      ),
    },
    expect: (f) => [
      { file: f['p.yaml'], line: 4, path: 'servers.s.tools.a', message: RULE },
      {
        file: f['p.yaml'],
        line: 5,
        path: 'servers.s.tools.b',
        message: 'a scope list needs at least one scope; use allow or deny instead',
      },
      { file: f['p.yaml'], line: 6, path: 'servers.s.tools.c.0', message: SCOPE },
      { file: f['p.yaml'], line: 7, path: 'servers.s.tools.d', message: RULE },
    ],
  },
  {
    name: 'bad access scope',
    files: { 'p.yaml': yaml('servers:', '  s:', '    access: ["a\\\\b"]') },
    expect: (f) => [{ file: f['p.yaml'], line: 3, path: 'servers.s.access.0', message: SCOPE }],
  },
  {
    name: 'problems of every file are reported together',
    files: {
      'a.yaml': yaml('servers:', '  s: {tools: {x: allow}'),
      'b.yaml': yaml('roles:', '  r: "mcp:read"'),
    },
    expect: (f) => [
      { file: f['a.yaml'], line: 3 },
      {
        file: f['b.yaml'],
        line: 2,
        path: 'roles.r',
        message: 'Invalid input: expected array, received string',
      },
    ],
  },
  {
    name: 'duplicate key in a file',
    files: { 'p.yaml': yaml('servers:', '  s: {}', '  s: {}') },
    expect: (f) => [{ file: f['p.yaml'], line: 3, message: 'Map keys must be unique' }],
  },
]

describe('loadPolicy: errors carry file and line', () => {
  let n = 0
  for (const c of errorCases) {
    test(c.name, async () => {
      const folder = `errors-${++n}`
      const files: Record<string, string> = {}
      for (const [name, text] of Object.entries(c.files)) {
        files[name] = await tmp.file(`${folder}/${name}`, text)
      }
      const problems = problemsOf(() => loadPolicy(path.join(tmp.dir, folder)))
      const want = c.expect(files)
      const got = problems.map((p, i) =>
        Object.fromEntries(Object.keys(want[i] ?? p).map((k) => [k, p[k as keyof ConfigProblem]])),
      )
      assert.deepEqual(got, want)
    })
  }

  test('a missing path', () => {
    const missing = path.join(tmp.dir, 'absent')
    assert.deepEqual(
      problemsOf(() => loadPolicy(missing)),
      [{ file: missing, message: 'cannot read: ENOENT' }],
    )
  })

  test('a folder without policy files', async () => {
    const dir = path.dirname(await tmp.file('nofiles/notes.txt', 'x'))
    assert.deepEqual(
      problemsOf(() => loadPolicy(dir)),
      [{ file: dir, message: 'the policy folder holds no .yaml file' }],
    )
  })
})
