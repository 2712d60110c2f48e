import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import type { Principal } from '../../gateway/auth/principal.js'
import { filterListResult } from '../../gateway/policy/filter.js'
import { gatedTarget } from '../../gateway/policy/target.js'
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
    input: {
      tools: [
        { name: 'read_note', title: 'R' },
        ...tools('write_note', 'danger_x', 'public_a', 'unknown'),
      ],
      nextCursor: 'page-2',
      _meta: { k: 1 },
    },
    expect: {
      tools: [{ name: 'read_note', title: 'R' }, { name: 'public_a' }],
      nextCursor: 'page-2',
      _meta: { k: 1 },
    },
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
    name: 'a narrow token of an editor: write tools listed, marked for a step-up its roles allow',
    who: who(['mcp:read'], ['editor']),
    method: 'tools/list',
    input: {
      tools: [
        ...tools('read_note', 'danger_x'),
        { name: 'write_x', _meta: { keep: true } },
        ...tools('both'),
      ],
    },
    // both needs mcp:admin too, which no role of an editor grants: hidden.
    expect: {
      tools: [
        { name: 'read_note' },
        {
          name: 'write_x',
          _meta: { keep: true, 'mcp-edge/stepUp': { scopes: ['mcp:read', 'mcp:write'] } },
        },
      ],
    },
  },
  {
    name: 'the same editor with no scope claim: the roles decide, nothing to step up to',
    who: who([], ['editor']),
    method: 'tools/list',
    input: { tools: tools('read_note', 'write_x', 'both') },
    expect: { tools: tools('read_note', 'write_x') },
  },
  {
    name: 'a viewer: write tools hidden (no role reaches mcp:write)',
    who: who(['mcp:read'], ['viewer']),
    method: 'tools/list',
    input: { tools: tools('read_note', 'write_x') },
    expect: { tools: tools('read_note') },
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
    input: {
      resources: [
        { uri: 'file:///public/a', name: 'a' },
        { uri: 'file:///private/b', name: 'public_a' },
      ],
    },
    expect: { resources: [{ uri: 'file:///public/a', name: 'a' }] },
  },
  {
    name: 'resources/templates/list by uriTemplate',
    method: 'resources/templates/list',
    input: {
      resourceTemplates: [
        { uriTemplate: 'file:///public/{path}' },
        { uriTemplate: 'file:///etc/{x}' },
      ],
      nextCursor: 't',
    },
    expect: { resourceTemplates: [{ uriTemplate: 'file:///public/{path}' }], nextCursor: 't' },
  },
  {
    name: 'a server without policy lists nothing',
    server: 'nope',
    method: 'tools/list',
    input: { tools: tools('public_a') },
    expect: { tools: [] },
  },
  {
    name: 'other methods pass unchanged',
    method: 'tools/call',
    input: { content: [{ type: 'text', text: 'x' }] },
    expect: { content: [{ type: 'text', text: 'x' }] },
  },
  {
    name: 'a list result without its array passes unchanged',
    method: 'tools/list',
    input: { nextCursor: 'x' },
    expect: { nextCursor: 'x' },
  },
  {
    name: 'a non-array list passes unchanged',
    method: 'tools/list',
    input: { tools: 'oops' },
    expect: { tools: 'oops' },
  },
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
  const named = (feature: string, name: string) => ({ kind: 'named', feature, name })
  const invalid = (reason: RegExp) => ({ invalid: reason })
  const targets: {
    name: string
    method: string
    params?: Record<string, unknown>
    expect: unknown
  }[] = [
    {
      name: 'tools/call',
      method: 'tools/call',
      params: { name: 'echo', arguments: {} },
      expect: named('tools', 'echo'),
    },
    {
      name: 'tools/call without a name',
      method: 'tools/call',
      params: {},
      expect: invalid(/params\.name must be a non-empty string/),
    },
    {
      name: 'tools/call with an empty name',
      method: 'tools/call',
      params: { name: '' },
      expect: invalid(/params\.name/),
    },
    {
      name: 'tools/call with a list for a name',
      method: 'tools/call',
      params: { name: ['echo'] },
      expect: invalid(/params\.name/),
    },
    {
      name: 'tools/call with an object for a name',
      method: 'tools/call',
      params: { name: { toString: 'echo' } },
      expect: invalid(/params\.name/),
    },
    {
      name: 'tools/call with a number for a name',
      method: 'tools/call',
      params: { name: 7 },
      expect: invalid(/params\.name/),
    },
    { name: 'tools/call without params', method: 'tools/call', expect: invalid(/params\.name/) },
    {
      name: 'prompts/get',
      method: 'prompts/get',
      params: { name: 'greet' },
      expect: named('prompts', 'greet'),
    },
    {
      name: 'prompts/get with null for a name',
      method: 'prompts/get',
      params: { name: null },
      expect: invalid(/params\.name/),
    },
    {
      name: 'resources/read',
      method: 'resources/read',
      params: { uri: 'file:///a' },
      expect: named('resources', 'file:///a'),
    },
    {
      name: 'resources/subscribe',
      method: 'resources/subscribe',
      params: { uri: 'file:///a' },
      expect: named('resources', 'file:///a'),
    },
    {
      name: 'resources/read of a non-canonical URI',
      method: 'resources/read',
      params: { uri: 'file:///a ' },
      expect: invalid(/canonical/),
    },
    {
      name: 'resources/subscribe of a non-canonical URI',
      method: 'resources/subscribe',
      params: { uri: 'FILE:///a' },
      expect: invalid(/canonical/),
    },
    {
      name: 'resources/read with a list for a URI',
      method: 'resources/read',
      params: { uri: ['file:///a'] },
      expect: invalid(/params\.uri must be a string/),
    },
    { name: 'tools/list is not gated per name', method: 'tools/list', expect: undefined },
    {
      name: 'initialize is not gated per name',
      method: 'initialize',
      params: { name: 'x' },
      expect: undefined,
    },
    {
      name: 'a method differing in case is not gated (and the server knows no such method)',
      method: 'Tools/Call',
      params: { name: 'x' },
      expect: undefined,
    },
  ]
  const check = (got: unknown, want: unknown) => {
    if (want && typeof want === 'object' && 'invalid' in want) {
      assert.equal((got as { kind: string }).kind, 'invalid')
      assert.match((got as { reason: string }).reason, (want as { invalid: RegExp }).invalid)
    } else assert.deepEqual(got, want)
  }
  for (const c of targets) {
    test(c.name, () => check(gatedTarget(c.method, c.params), c.expect))
  }

  const completions = [
    {
      name: 'completion/complete for a prompt is gated by the prompt rules',
      params: { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'a', value: '' } },
      expect: named('prompts', 'greet'),
    },
    {
      name: 'completion/complete for a resource template is gated by the resource rules',
      params: {
        ref: { type: 'ref/resource', uri: 'file:///private/{k}' },
        argument: { name: 'k', value: '' },
      },
      expect: named('resources', 'file:///private/{k}'),
    },
    {
      name: 'completion/complete for a resource template with a trailing space is refused',
      params: {
        ref: { type: 'ref/resource', uri: 'file:///private/{k} ' },
        argument: { name: 'k', value: '' },
      },
      expect: invalid(/params\.ref\.uri: .*canonical/),
    },
    {
      name: 'completion/complete for a resource template in another scheme case is refused',
      params: { ref: { type: 'ref/resource', uri: 'FILE:///private/{k}' } },
      expect: invalid(/canonical/),
    },
    {
      name: 'completion/complete without a ref is refused',
      params: {},
      expect: invalid(/params\.ref must be an object/),
    },
    {
      name: 'completion/complete with an unknown ref type is refused',
      params: { ref: { type: 'ref/tool', name: 'x' } },
      expect: invalid(/ref\/prompt or ref\/resource/),
    },
  ]
  for (const c of completions) {
    test(c.name, () => check(gatedTarget('completion/complete', c.params), c.expect))
  }
})
