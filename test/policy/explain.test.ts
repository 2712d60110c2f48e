import assert from 'node:assert/strict'
import path from 'node:path'
import { before, describe, test } from 'node:test'
import type { Principal } from '../../gateway/auth/principal.js'
import { PACKAGE_ROOT } from '../../gateway/config/defaults.js'
import { decide } from '../../gateway/policy/evaluate.js'
import { explain, principalFromClaims, type Explanation } from '../../gateway/policy/explain.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import type { Feature, Policy } from '../../gateway/policy/policy.js'
import { policyDir, who } from './fixtures.js'

// Line numbers matter: the cases name the rule lines.
const POLICY = `roles:
  viewer: [mcp:read]
  editor: [mcp:read, mcp:write]
  root: ["*"]
  ops: [ops:deploy]
servers:
  s:
    access: [mcp:read]
    tools:
      danger_*: deny
      ping: allow
      write_*: [mcp:write]
      deploy:
        scopes: [ops:deploy]
        when: { client_id: ci }
      "deploy*": deny
    prompts:
      greet: allow
    resources:
      "file:///private/*": [mcp:admin]
`

const withClient = (p: Principal, clientId: string): Principal => ({ ...p, clientId })

describe('explain', () => {
  const dir = policyDir()
  let policy: Policy
  let file = ''
  before(async () => {
    file = await dir.file('p.yaml', POLICY)
    policy = loadPolicy(file)
  })

  type Expect = Omit<Explanation, 'reason' | 'rule' | 'skipped' | 'basis' | 'implied'> & {
    reason: RegExp
    rule: { pattern?: string; line: number } | undefined
    skipped?: { pattern: string; line: number }[]
  }
  const cases: {
    name: string
    who: Principal
    server?: string
    feature?: Feature
    target: string
    expect: Expect
  }[] = [
    {
      name: 'allow by a scope rule: required is access plus the rule scopes',
      who: who([], ['editor']),
      target: 'write_note',
      expect: {
        decision: 'allow',
        reason: /scopes held for rule write_\*/,
        rule: { pattern: 'write_*', line: 12 },
        has: ['mcp:read', 'mcp:write'],
        required: ['mcp:read', 'mcp:write'],
        lacks: [],
      },
    },
    {
      name: 'allow by an allow rule: only access is required',
      who: who([], ['viewer']),
      target: 'ping',
      expect: {
        decision: 'allow',
        reason: /allowed by rule ping/,
        rule: { pattern: 'ping', line: 11 },
        has: ['mcp:read'],
        required: ['mcp:read'],
        lacks: [],
      },
    },
    {
      name: 'challenge: lacks the rule scope, required is the step-up list',
      who: who([], ['viewer']),
      target: 'write_x',
      expect: {
        decision: 'challenge',
        reason: /missing scope mcp:write for rule write_\*/,
        rule: { pattern: 'write_*', line: 12 },
        has: ['mcp:read'],
        required: ['mcp:read', 'mcp:write'],
        lacks: ['mcp:write'],
      },
    },
    {
      name: 'challenge on server access: the rule is the access line, no pattern',
      who: who(['other']),
      target: 'ping',
      expect: {
        decision: 'challenge',
        reason: /missing access scope mcp:read/,
        rule: { line: 8 },
        has: [],
        required: ['mcp:read'],
        lacks: ['mcp:read'],
      },
    },
    {
      name: 'deny by rule, even for "*": the rule and its line',
      who: who([], ['root']),
      target: 'danger_zone',
      expect: {
        decision: 'deny',
        reason: /denied by rule danger_\*/,
        rule: { pattern: 'danger_*', line: 10 },
        has: ['*'],
        required: [],
        lacks: [],
      },
    },
    {
      name: 'deny: no rule matches',
      who: who([], ['viewer']),
      target: 'unknown',
      expect: {
        decision: 'deny',
        reason: /no tools rule matches unknown/,
        rule: undefined,
        has: ['mcp:read'],
        required: [],
        lacks: [],
      },
    },
    {
      name: 'deny: no policy for the server',
      who: who([], ['root']),
      server: 'nope',
      target: 'ping',
      expect: {
        decision: 'deny',
        reason: /no policy for server nope/,
        rule: undefined,
        has: ['*'],
        required: [],
        lacks: [],
      },
    },
    {
      name: 'conditional rule holds: it decides',
      who: withClient(who([], ['viewer', 'ops']), 'ci'),
      target: 'deploy',
      expect: {
        decision: 'allow',
        reason: /scopes held for rule deploy$/,
        rule: { pattern: 'deploy', line: 13 },
        has: ['mcp:read', 'ops:deploy'],
        required: ['mcp:read', 'ops:deploy'],
        lacks: [],
      },
    },
    {
      name: 'conditional rule does not hold: skipped, the next match decides',
      who: withClient(who([], ['viewer', 'ops']), 'laptop'),
      target: 'deploy',
      expect: {
        decision: 'deny',
        reason: /denied by rule deploy\*/,
        rule: { pattern: 'deploy*', line: 16 },
        skipped: [{ pattern: 'deploy', line: 13 }],
        has: ['mcp:read', 'ops:deploy'],
        required: [],
        lacks: [],
      },
    },
    {
      name: 'has: the token scopes its roles grant, not the role scopes it lacks nor scopes no role grants',
      who: who(['z:token', 'mcp:read'], ['editor']),
      feature: 'prompts',
      target: 'greet',
      expect: {
        decision: 'allow',
        reason: /allowed by rule greet/,
        rule: { pattern: 'greet', line: 18 },
        has: ['mcp:read'],
        required: ['mcp:read'],
        lacks: [],
      },
    },
    {
      name: 'resources: a URI pattern challenge',
      who: who([], ['viewer']),
      feature: 'resources',
      target: 'file:///private/x',
      expect: {
        decision: 'challenge',
        reason: /missing scope mcp:admin/,
        rule: { pattern: 'file:///private/*', line: 20 },
        has: ['mcp:read'],
        required: ['mcp:read', 'mcp:admin'],
        lacks: ['mcp:admin'],
      },
    },
  ]
  for (const c of cases) {
    test(c.name, () => {
      const server = c.server ?? 's'
      const feature = c.feature ?? 'tools'
      const e = explain(policy, c.who, server, feature, c.target)
      assert.equal(
        e.decision,
        decide(policy, c.who, server, feature, c.target).effect,
        'explain agrees with decide',
      )
      assert.equal(e.decision, c.expect.decision)
      assert.match(e.reason, c.expect.reason)
      const { rule, skipped = [] } = c.expect
      assert.deepEqual(e.rule, rule && { ...rule, file })
      assert.deepEqual(
        e.skipped,
        skipped.map((r) => ({ ...r, file })),
      )
      assert.deepEqual(
        { has: e.has, required: e.required, lacks: e.lacks },
        { has: c.expect.has, required: c.expect.required, lacks: c.expect.lacks },
      )
      assert.equal(e.basis, c.who.hasScopeClaim ? 'scopes within roles' : 'roles')
      assert.deepEqual(e.implied, [], 'this policy has no implies:')
    })
  }
})

describe('principalFromClaims', () => {
  const cases = [
    {
      name: "default role claims: realm roles and the mcp-edge client's roles, no other client's",
      claims: {
        sub: 'a',
        realm_access: { roles: ['r1'] },
        resource_access: { 'mcp-edge': { roles: ['r2'] }, other: { roles: ['r3'] } },
      },
      roleClaims: undefined,
      expect: { sub: 'a', clientId: undefined, roles: ['r1', 'r2'], scopes: [] },
    },
    {
      name: 'configured role claims replace the defaults',
      claims: { sub: 'a', groups: ['g1'], realm_access: { roles: ['r1'] } },
      roleClaims: ['groups'],
      expect: { sub: 'a', clientId: undefined, roles: ['g1'], scopes: [] },
    },
    {
      name: 'azp is the client; scope and scp are the token scopes',
      claims: { sub: 'a', azp: 'ci', client_id: 'other', scope: 'x y', scp: ['z'] },
      roleClaims: undefined,
      expect: { sub: 'a', clientId: 'ci', roles: [], scopes: ['x', 'y', 'z'] },
    },
    {
      name: 'no sub or iss: empty, so no sub condition accepts it',
      claims: { client_id: 'c' },
      roleClaims: undefined,
      expect: { sub: '', clientId: 'c', roles: [], scopes: [] },
    },
  ]
  for (const c of cases) {
    test(c.name, () => {
      const p = principalFromClaims(c.claims, c.roleClaims)
      assert.deepEqual(
        {
          sub: p.sub,
          clientId: p.clientId,
          roles: [...p.roles].sort(),
          scopes: [...p.scopes].sort(),
        },
        c.expect,
      )
      assert.equal(typeof p.iss, 'string')
      assert.equal(p.allScopes, undefined)
    })
  }
})

describe('the reference policy (policies/examples/reference.yaml)', () => {
  const file = path.join(PACKAGE_ROOT, 'policies', 'examples', 'reference.yaml')
  const policy = loadPolicy(file)
  const claims = (roles: string[], extra: Record<string, unknown> = {}) =>
    principalFromClaims({ sub: 'someone', realm_access: { roles }, ...extra })

  test('is not part of the default policies folder', () => {
    const folder = loadPolicy(path.join(PACKAGE_ROOT, 'policies'))
    assert.ok(!folder.files.includes(file))
    assert.ok(!folder.servers.has('deploy'))
  })

  const cases: {
    name: string
    p: Principal
    server: string
    feature?: Feature
    target: string
    expect: string
  }[] = [
    {
      name: 'viewer reads a note',
      p: claims(['viewer']),
      server: 'notes',
      target: 'read_note',
      expect: 'allow',
    },
    {
      name: 'viewer is challenged on write_note',
      p: claims(['viewer']),
      server: 'notes',
      target: 'write_note',
      expect: 'challenge',
    },
    {
      name: 'operator runs a shell tool: shell:admin implies shell:use',
      p: claims(['operator']),
      server: 'shell',
      target: 'ls',
      expect: 'allow',
    },
    {
      name: 'operator is still refused a denied shell tool',
      p: claims(['operator']),
      server: 'shell',
      target: 'rm',
      expect: 'deny',
    },
    {
      name: 'developer writes',
      p: claims(['developer']),
      server: 'notes',
      target: 'write_note',
      expect: 'allow',
    },
    {
      name: 'delete_note is denied even to "*"',
      p: claims(['platform-admin']),
      server: 'notes',
      target: 'delete_note',
      expect: 'deny',
    },
    {
      name: '? matches one character',
      p: claims(['viewer']),
      server: 'notes',
      target: 'note_v1',
      expect: 'allow',
    },
    {
      name: '? does not match two',
      p: claims(['viewer']),
      server: 'notes',
      target: 'note_v10',
      expect: 'deny',
    },
    {
      name: 'tools:* grants tools:export',
      p: claims(['viewer', 'tool-runner']),
      server: 'notes',
      target: 'export_csv',
      expect: 'allow',
    },
    {
      name: 'tool-runner alone lacks access',
      p: claims(['tool-runner']),
      server: 'notes',
      target: 'export_csv',
      expect: 'challenge',
    },
    {
      name: 'unmatched prompt falls to "*"',
      p: claims(['viewer']),
      server: 'notes',
      feature: 'prompts',
      target: 'draft',
      expect: 'challenge',
    },
    {
      name: 'public resource',
      p: claims(['viewer']),
      server: 'notes',
      feature: 'resources',
      target: 'notes://public/a',
      expect: 'allow',
    },
    {
      name: 'deny list before the catch-all',
      p: claims(['platform-admin']),
      server: 'shell',
      target: 'sudo_su',
      expect: 'deny',
    },
    {
      name: 'catch-all after the deny list',
      p: claims(['platform-admin']),
      server: 'shell',
      target: 'ls',
      expect: 'allow',
    },
    {
      name: 'CI client deploys to prod',
      p: claims(['release'], { azp: 'ci-pipeline' }),
      server: 'deploy',
      target: 'deploy_prod',
      expect: 'allow',
    },
    {
      name: 'another client does not',
      p: claims(['release'], { azp: 'laptop' }),
      server: 'deploy',
      target: 'deploy_prod',
      expect: 'deny',
    },
    {
      name: 'release-bot deploys to staging',
      p: claims([], { azp: 'release-bot' }),
      server: 'deploy',
      target: 'deploy_staging',
      expect: 'allow',
    },
    {
      name: 'sub and role both hold',
      p: claims(['release'], { sub: 'alice' }),
      server: 'deploy',
      target: 'rollback',
      expect: 'allow',
    },
    {
      name: 'sub holds, role does not',
      p: claims([], { sub: 'alice' }),
      server: 'deploy',
      target: 'rollback',
      expect: 'deny',
    },
    {
      name: 'group claim',
      p: claims([], { groups: ['dev', 'sre'] }),
      server: 'deploy',
      target: 'audit_log',
      expect: 'allow',
    },
    {
      name: 'group claim missing',
      p: claims([], { groups: ['dev'] }),
      server: 'deploy',
      target: 'audit_log',
      expect: 'deny',
    },
    {
      name: 'nested claim path',
      p: claims([], { org: { tier: 'trial' } }),
      server: 'deploy',
      target: 'status',
      expect: 'deny',
    },
    {
      name: 'nested claim path, other value',
      p: claims([], { org: { tier: 'paid' } }),
      server: 'deploy',
      target: 'status',
      expect: 'allow',
    },
    {
      name: 'unknown server',
      p: claims(['platform-admin']),
      server: 'nope',
      target: 'x',
      expect: 'deny',
    },
  ]
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(
        explain(policy, c.p, c.server, c.feature ?? 'tools', c.target).decision,
        c.expect,
      )
    })
  }
})
