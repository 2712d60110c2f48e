// `mcp-edge policy check` as operators run it: real processes, real exit codes, real output.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { runCli } from '../helpers/cli-run.js'

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-policy-check-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const run = runCli

// Line numbers matter: the cases name the rule lines.
const POLICY = file(
  'policy.yaml',
  `roles:
  mcp-user: [mcp:read]
  mcp-developer: [mcp:read, mcp:write]
servers:
  notes:
    access: [mcp:read]
    tools:
      delete_*: deny
      read_note: [mcp:read]
      write_note: [mcp:write]
      deploy:
        effect: allow
        when: { client_id: ci }
`,
)
const BROKEN = file('broken.yaml', 'servers:\n  notes:\n    tools:\n      x: [has space]\n')
const USER = JSON.stringify({ sub: 'alice', azp: 'laptop', realm_access: { roles: ['mcp-user'] } })
const USER_FILE = file('user.json', USER)
const CONFIG = file(
  'gateway.yaml',
  `auth:
  roleClaims: [groups]
servers:
  notes: { command: node }
policies: ./policy.yaml
`,
)

/** `s` as a regular expression source, matching itself. */
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const check = (...args: string[]) => ['policy', 'check', '--policy', POLICY, ...args]

describe('policy check: one question, human output and exit code', { concurrency: true }, () => {
  const cases = [
    {
      name: 'allow → 0, with the deciding rule at file:line',
      args: check('--claims', USER_FILE, '--server', 'notes', '--tool', 'read_note'),
      code: 0,
      out: [
        /^allow: tool read_note on server notes$/m,
        new RegExp(`^  rule +read_note at ${esc(POLICY)}:9$`, 'm'),
        /^ {2}caller +sub alice, client_id laptop, roles mcp-user$/m,
        /^ {2}has +mcp:read$/m,
        /^ {2}required +mcp:read$/m,
        /^ {2}lacks +\(none\)$/m,
        /^ {2}gateway +relayed to the server$/m,
      ],
    },
    {
      name: 'challenge → 1, naming what the caller lacks',
      args: check('--claims', USER_FILE, '--server', 'notes', '--tool', 'write_note'),
      code: 1,
      out: [
        /^challenge: tool write_note on server notes$/m,
        /^ {2}reason +missing scope mcp:write for rule write_note$/m,
        new RegExp(`^  rule +write_note at ${esc(POLICY)}:10$`, 'm'),
        /^ {2}required +mcp:read mcp:write$/m,
        /^ {2}lacks +mcp:write$/m,
        /^ {2}gateway +403 insufficient_scope, scope="mcp:read mcp:write", JSON-RPC error -32011$/m,
        /^ {2}from +what the roles grant \(the token carries no scope claim\)$/m,
      ],
    },
    {
      name: 'deny by rule → 1, with the rule',
      args: check('--claims', USER_FILE, '--server', 'notes', '--tool', 'delete_note'),
      code: 1,
      out: [
        /^deny: tool delete_note on server notes$/m,
        new RegExp(`^  rule +delete_\\* at ${esc(POLICY)}:8$`, 'm'),
        /^ {2}gateway +200, JSON-RPC error -32010 denied by policy$/m,
      ],
    },
    {
      name: 'deny, nothing matches: the skipped conditional rule is shown',
      args: check('--claims', USER_FILE, '--server', 'notes', '--tool', 'deploy'),
      code: 1,
      out: [
        /^deny: tool deploy on server notes$/m,
        /^ {2}rule +\(none\)$/m,
        new RegExp(`^  skipped +deploy at ${esc(POLICY)}:11 \\(its when does not hold\\)$`, 'm'),
      ],
    },
    {
      name: 'access missing → 1, the rule is the access line',
      args: check(
        '--claims',
        file('nobody.json', '{"sub":"x"}'),
        '--server',
        'notes',
        '--tool',
        'read_note',
      ),
      code: 1,
      out: [
        /^challenge: /m,
        new RegExp(`^  rule +access at ${esc(POLICY)}:6$`, 'm'),
        /^ {2}caller +sub x, client_id \(none\), roles \(none\)$/m,
      ],
    },
    {
      name: 'a read-only token of a developer: scopes within roles, explained',
      args: check('--claims', '-', '--server', 'notes', '--tool', 'write_note'),
      stdin: JSON.stringify({
        sub: 'dora',
        scope: 'mcp:read mcp:admin',
        realm_access: { roles: ['mcp-developer'] },
      }),
      code: 1,
      out: [
        /^challenge: tool write_note on server notes$/m,
        /^ {2}has +mcp:read$/m,
        /^ {2}lacks +mcp:write$/m,
        /^ {2}from +the token's scopes, only those its roles grant \(the token carries a scope claim\)$/m,
      ],
    },
    {
      name: 'claims from stdin',
      args: check('--claims', '-', '--server', 'notes', '--tool', 'write_note'),
      stdin: JSON.stringify({ sub: 'dora', realm_access: { roles: ['mcp-developer'] } }),
      code: 0,
      out: [/^allow: tool write_note on server notes$/m, /^ {2}has +mcp:read mcp:write$/m],
    },
    {
      name: '--config: its roleClaims and its policies',
      args: [
        'policy',
        'check',
        '--config',
        CONFIG,
        '--claims',
        '-',
        '--server',
        'notes',
        '--tool',
        'read_note',
      ],
      stdin: JSON.stringify({
        sub: 'g',
        groups: ['mcp-user'],
        realm_access: { roles: ['mcp-developer'] },
      }),
      code: 0,
      out: [
        /^allow: /m,
        /roles mcp-user$/m,
        new RegExp(`^  rule +read_note at ${esc(join(dir, 'policy.yaml'))}:9$`, 'm'),
      ],
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const res = await run(c.args, c.stdin)
      assert.equal(res.code, c.code, res.stderr)
      assert.equal(res.stderr, '')
      for (const re of c.out) assert.match(res.stdout, re)
    })
  }
})

describe('policy check --json', { concurrency: true }, () => {
  it('prints one JSON object', async () => {
    const res = await run(
      check('--claims', USER_FILE, '--server', 'notes', '--tool', 'write_note', '--json'),
    )
    assert.equal(res.code, 1)
    assert.equal(res.stdout.trim().split('\n').length, 1)
    assert.deepEqual(JSON.parse(res.stdout), {
      server: 'notes',
      feature: 'tools',
      name: 'write_note',
      caller: { sub: 'alice', client_id: 'laptop', roles: ['mcp-user'] },
      decision: 'challenge',
      reason: 'missing scope mcp:write for rule write_note',
      rule: { pattern: 'write_note', file: POLICY, line: 10 },
      has: ['mcp:read'],
      basis: 'roles',
      required: ['mcp:read', 'mcp:write'],
      lacks: ['mcp:write'],
      skipped: [],
      implied: [],
    })
  })

  it('no matching rule: rule is null', async () => {
    const res = await run(
      check('--claims', USER_FILE, '--server', 'notes', '--prompt', 'p', '--json'),
    )
    assert.equal(res.code, 1)
    const out = JSON.parse(res.stdout)
    assert.equal(out.decision, 'deny')
    assert.equal(out.feature, 'prompts')
    assert.equal(out.rule, null)
  })
})

describe('policy check with implies:', { concurrency: true }, () => {
  // Line numbers matter: the output names the implies lines.
  const HIERARCHY = file(
    'hierarchy.yaml',
    `roles:
  mcp-admin: [mcp:admin]
  mcp-user: [mcp:read]
implies:
  mcp:admin: [mcp:write]
  mcp:write: [mcp:read]
servers:
  notes:
    access: [mcp:read]
    tools:
      read_note: [mcp:read]
      write_note: [mcp:write]
      audit: [mcp:read, billing:read]
`,
  )
  const ADMIN = JSON.stringify({
    sub: 'ada',
    scope: 'mcp:admin',
    realm_access: { roles: ['mcp-admin'] },
  })
  const at = (line: number) => `${esc(HIERARCHY)}:${line}`

  it('says which implication granted a needed scope', async () => {
    const res = await run(
      [
        'policy',
        'check',
        '--policy',
        HIERARCHY,
        '--claims',
        '-',
        '--server',
        'notes',
        '--tool',
        'read_note',
      ],
      ADMIN,
    )
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^allow: tool read_note on server notes$/m)
    assert.match(
      res.stdout,
      new RegExp(
        `^  implied   mcp:read through mcp:admin: mcp:admin implies mcp:write at ${at(5)}, mcp:write implies mcp:read at ${at(6)}$`,
        'm',
      ),
    )
  })

  it('--json: the challenge names the held broader scope, and the chain', async () => {
    const res = await run(
      [
        'policy',
        'check',
        '--policy',
        HIERARCHY,
        '--claims',
        '-',
        '--server',
        'notes',
        '--tool',
        'audit',
        '--json',
      ],
      ADMIN,
    )
    assert.equal(res.code, 1, res.stderr)
    const out = JSON.parse(res.stdout)
    assert.equal(out.decision, 'challenge')
    assert.deepEqual(out.required, ['mcp:admin', 'billing:read'])
    assert.deepEqual(out.lacks, ['billing:read'])
    assert.deepEqual(out.implied, [
      {
        scope: 'mcp:read',
        from: 'mcp:admin',
        chain: [
          { from: 'mcp:admin', to: 'mcp:write', file: HIERARCHY, line: 5 },
          { from: 'mcp:write', to: 'mcp:read', file: HIERARCHY, line: 6 },
        ],
      },
    ])
  })

  it('a cycle is a load error with file and line; exit 2', async () => {
    const cyclic = file('cycle.yaml', 'implies:\n  a: [b]\n  b: [a]\n')
    const res = await run(
      ['policy', 'check', '--policy', cyclic, '--claims', '-', '--server', 'notes', '--tool', 't'],
      USER,
    )
    assert.equal(res.code, 2)
    assert.match(res.stderr, new RegExp(`${esc(cyclic)}:3: implies cycle: a → b`))
  })
})

describe('policy check --batch', { concurrency: true }, () => {
  const line = (o: Record<string, unknown>) => JSON.stringify(o)
  const user = JSON.parse(USER) as Record<string, unknown>

  it('one JSON line per input line, in order, ids echoed; exit 0', async () => {
    const input = [
      line({ id: 'a', claims: user, server: 'notes', tool: 'read_note' }),
      '',
      line({ claims: user, server: 'notes', tool: 'write_note' }),
      line({ claims: { sub: 'x' }, server: 'notes', resource: 'notes://x' }),
      line({ claims: user, server: 'other', prompt: 'p' }),
    ].join('\n')
    const res = await run(['policy', 'check', '--policy', POLICY, '--batch', '-'], input)
    assert.equal(res.code, 0, res.stderr)
    const out = res.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.deepEqual(
      out.map((o) => [o.line, o.id, o.feature, o.decision]),
      [
        [1, 'a', 'tools', 'allow'],
        [3, undefined, 'tools', 'challenge'],
        [4, undefined, 'resources', 'challenge'],
        [5, undefined, 'prompts', 'deny'],
      ],
    )
  })

  it('a bad line gets an error line, the rest are still answered; exit 2', async () => {
    const input = [
      'not json',
      line({ claims: user, server: 'notes' }),
      line({ claims: 1, server: 'notes', tool: 't' }),
      line({ claims: user, server: 'notes', tool: 'read_note' }),
    ].join('\n')
    const res = await run([
      'policy',
      'check',
      '--policy',
      POLICY,
      '--batch',
      file('batch.jsonl', input),
    ])
    assert.equal(res.code, 2)
    const out = res.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.equal(out.length, 4)
    assert.match(String(out[0]!.error), /JSON/)
    assert.match(String(out[1]!.error), /exactly one of tool, prompt, resource/)
    assert.match(String(out[2]!.error), /claims must be a JSON object/)
    assert.equal(out[3]!.decision, 'allow')
  })
})

describe('policy check: usage and load errors exit 2', { concurrency: true }, () => {
  const cases = [
    {
      name: 'broken policy file: file:line on stderr',
      args: [
        'policy',
        'check',
        '--policy',
        BROKEN,
        '--claims',
        USER_FILE,
        '--server',
        'notes',
        '--tool',
        'x',
      ],
      err: new RegExp(`${esc(BROKEN)}:4:\\d+: servers\\.notes\\.tools\\.x`),
    },
    {
      name: 'missing policy path',
      args: [
        'policy',
        'check',
        '--policy',
        join(dir, 'nope.yaml'),
        '--claims',
        USER_FILE,
        '--server',
        'notes',
        '--tool',
        'x',
      ],
      err: /nope\.yaml: cannot read: ENOENT/,
    },
    {
      name: 'unknown flag → usage',
      args: check('--claims', USER_FILE, '--server', 'notes', '--tool', 'x', '--verbose'),
      err: /Unknown option '--verbose'[\s\S]*usage: mcp-edge policy check/,
    },
    {
      name: 'no target → usage',
      args: check('--claims', USER_FILE, '--server', 'notes'),
      err: /exactly one of tool, prompt, resource[\s\S]*usage:/,
    },
    {
      name: 'two targets → usage',
      args: check('--claims', USER_FILE, '--server', 'notes', '--tool', 'a', '--prompt', 'b'),
      err: /exactly one of/,
    },
    {
      name: 'no --claims → usage',
      args: check('--server', 'notes', '--tool', 'a'),
      err: /--claims is required[\s\S]*usage:/,
    },
    {
      name: 'no --policy and no --config → usage',
      args: ['policy', 'check', '--claims', USER_FILE, '--server', 'notes', '--tool', 'a'],
      err: /--policy is required/,
    },
    {
      name: 'claims not JSON',
      args: check('--claims', '-', '--server', 'notes', '--tool', 'a'),
      stdin: '{nope',
      err: /\(stdin\): the claims are not JSON/,
    },
    {
      name: 'claims not an object',
      args: check('--claims', file('list.json', '[]'), '--server', 'notes', '--tool', 'a'),
      err: /list\.json: the claims must be a JSON object/,
    },
    {
      name: '--batch with --tool → usage',
      args: check('--batch', '-', '--tool', 'a'),
      err: /--batch takes its input from lines, not --tool/,
    },
    {
      name: 'unknown subcommand → usage',
      args: ['policy', 'explain'],
      err: /unknown subcommand explain[\s\S]*usage:/,
    },
    { name: 'no subcommand → usage', args: ['policy'], err: /missing subcommand/ },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const res = await run(c.args, c.stdin)
      assert.equal(res.code, 2, res.stdout)
      assert.equal(res.stdout, '')
      assert.match(res.stderr, c.err)
    })
  }

  it('policy --help prints the usage and exits 0; the top-level usage lists the command', async () => {
    const help = await run(['policy', '--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /^usage: mcp-edge policy check/)
    const top = await run(['--help'])
    assert.match(top.stdout, /^ {2}policy +check /m)
  })
})
