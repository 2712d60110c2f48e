import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import type { Principal } from '../../gateway/auth/principal.js'
import { decide } from '../../gateway/policy/evaluate.js'
import { filterListResult, gatedTarget } from '../../gateway/policy/filter.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import type { Policy } from '../../gateway/policy/policy.js'
import { policyDir, POLICY, who } from './fixtures.js'

const tmp = policyDir()
let policy: Policy

before(async () => {
  policy = loadPolicy(await tmp.file('policy.yaml', POLICY))
})

const viewer = who([], ['viewer'])
const tools = (...names: string[]) => names.map((name) => ({ name }))

interface Case {
  name: string
  who?: Principal
  server?: string
  method: string
  input: unknown
  expect: unknown
}

const cases: Case[] = [
  {
    name: 'tools/list keeps allowed tools, nextCursor and other fields',
    method: 'tools/list',
    input: { tools: [{ name: 'read_note', title: 'R' }, ...tools('write_note', 'danger_x',
      'public_a', 'unknown')], nextCursor: 'page-2', _meta: { k: 1 } },
    expect: { tools: [{ name: 'read_note', title: 'R' }, { name: 'public_a' }],
      nextCursor: 'page-2', _meta: { k: 1 } },
  },
  {
    name: 'tools/list drops items without a string name',
    method: 'tools/list',
    input: { tools: [{ name: 5 }, null, {}, 'public_a', { name: 'public_a' }] },
    expect: { tools: tools('public_a') },
  },
  {
    name: 'tools/list for a caller with every scope still drops denied tools',
    who: who([], ['root']),
    method: 'tools/list',
    input: { tools: tools('danger_ok', 'both') },
    expect: { tools: tools('both') },
  },
  {
    name: 'tools/list without server access: empty, cursor kept',
    who: who(),
    method: 'tools/list',
    input: { tools: tools('public_a'), nextCursor: 'c' },
    expect: { tools: [], nextCursor: 'c' },
  },
  {
    name: 'prompts/list by name',
    method: 'prompts/list',
    input: { prompts: [{ name: 'greet' }, { name: 'read_note' }], nextCursor: 'p' },
    expect: { prompts: [{ name: 'greet' }], nextCursor: 'p' },
  },
  {
    name: 'resources/list by uri',
    method: 'resources/list',
    input: { resources: [{ uri: 'file:///public/a', name: 'a' },
      { uri: 'file:///private/b', name: 'public_a' }] },
    expect: { resources: [{ uri: 'file:///public/a', name: 'a' }] },
  },
  {
    name: 'resources/templates/list by uriTemplate',
    method: 'resources/templates/list',
    input: { resourceTemplates: [{ uriTemplate: 'file:///public/{path}' },
      { uriTemplate: 'file:///etc/{x}' }], nextCursor: 't' },
    expect: { resourceTemplates: [{ uriTemplate: 'file:///public/{path}' }], nextCursor: 't' },
  },
  { name: 'a server without policy lists nothing', server: 'nope', method: 'tools/list',
    input: { tools: tools('public_a') }, expect: { tools: [] } },
  { name: 'other methods pass unchanged', method: 'tools/call',
    input: { content: [{ type: 'text', text: 'x' }] },
    expect: { content: [{ type: 'text', text: 'x' }] } },
  { name: 'a list result without its array passes unchanged', method: 'tools/list',
    input: { nextCursor: 'x' }, expect: { nextCursor: 'x' } },
  { name: 'a non-array list passes unchanged', method: 'tools/list',
    input: { tools: 'oops' }, expect: { tools: 'oops' } },
  { name: 'null result', method: 'tools/list', input: null, expect: null },
]

describe('filterListResult', () => {
  for (const c of cases) {
    test(c.name, () => {
      const input = structuredClone(c.input)
      const out = filterListResult(policy, c.server ?? 's', c.method, input, c.who ?? viewer)
      assert.deepEqual(out, c.expect)
      assert.deepEqual(input, c.input, 'the input is not mutated')
    })
  }
})

describe('gatedTarget', () => {
  const targets: {
    name: string
    method: string
    params?: Record<string, unknown>
    expect: unknown
  }[] = [
    { name: 'tools/call', method: 'tools/call', params: { name: 'echo', arguments: {} },
      expect: { feature: 'tools', name: 'echo' } },
    { name: 'tools/call without a name', method: 'tools/call', params: {},
      expect: { feature: 'tools', name: '' } },
    { name: 'tools/call with a non-string name', method: 'tools/call', params: { name: ['echo'] },
      expect: { feature: 'tools', name: '' } },
    { name: 'tools/call without params', method: 'tools/call',
      expect: { feature: 'tools', name: '' } },
    { name: 'prompts/get', method: 'prompts/get', params: { name: 'greet' },
      expect: { feature: 'prompts', name: 'greet' } },
    { name: 'resources/read', method: 'resources/read', params: { uri: 'file:///a' },
      expect: { feature: 'resources', name: 'file:///a' } },
    { name: 'resources/subscribe', method: 'resources/subscribe', params: { uri: 'file:///a' },
      expect: { feature: 'resources', name: 'file:///a' } },
    { name: 'tools/list is not gated per name', method: 'tools/list', expect: undefined },
    { name: 'initialize is not gated per name', method: 'initialize', params: { name: 'x' },
      expect: undefined },
  ]
  for (const c of targets) {
    test(c.name, () => assert.deepEqual(gatedTarget(c.method, c.params), c.expect))
  }

  test('a nameless tools/call is denied unless a * rule allows it', () => {
    const t = gatedTarget('tools/call', {})!
    assert.equal(decide(policy, who(), 'open', t.feature, t.name).effect, 'allow')
    assert.equal(decide(policy, viewer, 's', t.feature, t.name).effect, 'deny')
  })

  const completions = [
    { name: 'completion/complete for a prompt is gated by the prompt rules',
      params: { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'a', value: '' } },
      expect: { feature: 'prompts', name: 'greet' } },
    { name: 'completion/complete for a resource template is gated by the resource rules',
      params: { ref: { type: 'ref/resource', uri: 'file:///private/{k}' },
        argument: { name: 'k', value: '' } },
      expect: { feature: 'resources', name: 'file:///private/{k}' } },
  ]
  for (const c of completions) {
    test(c.name, () => {
      assert.deepEqual(gatedTarget('completion/complete', c.params), c.expect)
    })
  }
})
