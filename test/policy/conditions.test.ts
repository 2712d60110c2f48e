import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import type { ConfigError } from '../../gateway/config/errors.js'
import { decide, grantsOf } from '../../gateway/policy/evaluate.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import type { Policy } from '../../gateway/policy/policy.js'
import { policyDir, who } from './fixtures.js'

const POLICY = `roles:
  ops: ["ops:deploy"]
servers:
  s:
    tools:
      deploy:
        scopes: ["ops:deploy"]
        when: { client_id: [ci-bot, release-bot] }
      deploy_any:
        effect: deny
        when: { groups: contractors }
      deploy_any_: allow
      "deploy_*":
        effect: allow
        when: { groups: [sre], "org.team": platform }
      rollback:
        effect: allow
        when: { sub: alice, roles: ops }
`

describe('rules with conditions on claims', () => {
  const dir = policyDir()
  let policy: Policy
  before(async () => {
    policy = loadPolicy(await dir.file('p.yaml', POLICY))
  })

  const sre = { groups: ['sre', 'dev'], org: { team: 'platform' } }
  const cases = [
    {
      name: 'client_id matches: the scopes apply',
      who: { ...who([], ['ops']), clientId: 'ci-bot' },
      tool: 'deploy',
      expect: 'allow',
    },
    {
      name: 'client_id matches but the scope is missing: challenge',
      who: { ...who([]), clientId: 'release-bot' },
      tool: 'deploy',
      expect: 'challenge',
    },
    {
      name: 'another client: the rule does not match, nothing else does',
      who: { ...who([], ['ops']), clientId: 'laptop' },
      tool: 'deploy',
      expect: 'deny',
    },
    {
      name: 'a string condition on a list claim: deny for contractors',
      who: who([], [], 'c', { groups: ['contractors'] }),
      tool: 'deploy_any',
      expect: 'deny',
    },
    {
      name: 'all keys must hold: groups and a nested claim',
      who: who([], [], 'x', sre),
      tool: 'deploy_x',
      expect: 'allow',
    },
    {
      name: 'one key missing: no match',
      who: who([], [], 'x', { groups: ['sre'] }),
      tool: 'deploy_x',
      expect: 'deny',
    },
    {
      name: 'sub and roles conditions',
      who: who([], ['ops'], 'alice'),
      tool: 'rollback',
      expect: 'allow',
    },
    {
      name: 'sub matches, role does not',
      who: who([], [], 'alice'),
      tool: 'rollback',
      expect: 'deny',
    },
  ] as const
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(decide(policy, c.who, 's', 'tools', c.tool).effect, c.expect)
    })
  }

  test('a rule with both scopes and effect, or with neither, is a load error at its line', async () => {
    const file = await dir.file(
      'bad.yaml',
      'servers:\n  s:\n    tools:\n      a:\n        scopes: [x]\n        effect: allow\n        when: { sub: a }\n',
    )
    assert.throws(
      () => loadPolicy(file),
      (err: ConfigError) =>
        err.problems.some((p) => p.line === 4 && /either scopes or an effect/.test(p.message)),
    )
  })
})

describe('claims and scopes edge cases', () => {
  const dir = policyDir()
  let policy: Policy
  before(async () => {
    policy = loadPolicy(
      await dir.file(
        'edge.yaml',
        `roles:
  odd: ["a?*"]
  deployer: ["mcp:deploy"]
  root: ["*"]
servers:
  s:
    tools:
      by_scope:
        effect: allow
        when: { scope: mcp:deploy }
      by_scp:
        effect: allow
        when: { scp: [mcp:deploy, mcp:ship] }
      by_dotted_claim:
        effect: allow
        when: { "https://example.com/groups": admins }
`,
      ),
    )
  })

  const cases = [
    // `scope`/`scp` conditions read the granted scopes (the token's, within its roles), as
    // every other scope check does: the token's claim alone holds nothing.
    {
      name: 'when scope: the token claims it and a role grants it',
      who: who(['mcp:read', 'mcp:deploy'], ['deployer']),
      tool: 'by_scope',
      expect: 'allow',
    },
    {
      name: 'when scope: the token claims it, no role grants it',
      who: who(['mcp:read', 'mcp:deploy']),
      tool: 'by_scope',
      expect: 'deny',
    },
    {
      name: 'when scope: a role grants it, the token does not carry it (a narrower token)',
      who: who(['mcp:read'], ['deployer']),
      tool: 'by_scope',
      expect: 'deny',
    },
    {
      name: 'when scope: no scope claim, the roles decide',
      who: who([], ['deployer']),
      tool: 'by_scope',
      expect: 'allow',
    },
    {
      name: 'when scope: a granted wildcard holds it',
      who: who([], ['root']),
      tool: 'by_scope',
      expect: 'allow',
    },
    {
      name: 'when scope absent',
      who: who(['mcp:read'], ['deployer']),
      tool: 'by_scope',
      expect: 'deny',
    },
    {
      name: 'when scp: any one of its values granted',
      who: who(['mcp:deploy'], ['deployer']),
      tool: 'by_scp',
      expect: 'allow',
    },
    {
      name: 'when scp: claimed but not granted',
      who: who(['mcp:deploy', 'mcp:ship']),
      tool: 'by_scp',
      expect: 'deny',
    },
    {
      name: 'a claim name holding dots (Auth0 namespaced claim)',
      who: who([], [], 'u', { 'https://example.com/groups': ['admins'] }),
      tool: 'by_dotted_claim',
      expect: 'allow',
    },
  ] as const
  for (const c of cases) {
    test(c.name, () => assert.equal(decide(policy, c.who, 's', 'tools', c.tool).effect, c.expect))
  }

  test('in a granted scope only * is a wildcard; ? is literal', () => {
    const p = who([], ['odd'])
    assert.equal(grantsOf(policy, p).has('a?xyz'), true)
    assert.equal(grantsOf(policy, p).has('abxyz'), false)
  })
})
