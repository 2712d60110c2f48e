import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { callersOf, locate, summarize, type CpuProfile } from './cpu-profile.js'

const ROOT = '/repo'

describe('locate: a call frame to its package and file', () => {
  const cases = [
    {
      name: 'V8 entry',
      url: '',
      fn: '(garbage collector)',
      pkg: '(garbage collector)',
      file: '(garbage collector)',
    },
    { name: 'native code', url: '', fn: 'writeUtf8String', pkg: '(native)', file: '(native)' },
    {
      name: 'Node internals',
      url: 'node:internal/streams/readable',
      fn: 'push',
      pkg: 'node (internals)',
      file: 'node:internal/streams/readable',
    },
    {
      name: 'a package',
      url: 'file:///repo/node_modules/pino/lib/tools.js',
      fn: 'asJson',
      pkg: 'pino',
      file: 'pino/lib/tools.js',
    },
    {
      name: 'a scoped package',
      url: 'file:///repo/node_modules/@hono/node-server/dist/index.mjs',
      fn: 'f',
      pkg: '@hono/node-server',
      file: '@hono/node-server/dist/index.mjs',
    },
    {
      name: 'a package nested in another',
      url: 'file:///repo/node_modules/a/node_modules/b/x.js',
      fn: 'f',
      pkg: 'b',
      file: 'b/x.js',
    },
    {
      name: 'the gateway, by folder',
      url: 'file:///repo/dist/gateway/bridge/jsonrpc.js',
      fn: 'envelope',
      pkg: 'mcp-edge gateway/bridge/',
      file: 'gateway/bridge/jsonrpc.js',
    },
    {
      name: 'a path with an escaped character',
      url: 'file:///repo/dist/gateway/a%20b.js',
      fn: 'f',
      pkg: 'mcp-edge gateway/',
      file: 'gateway/a b.js',
    },
    { name: 'elsewhere', url: 'file:///opt/x.js', fn: 'f', pkg: '/opt/x.js', file: '/opt/x.js' },
  ]
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(locate(c.url, c.fn, ROOT), { pkg: c.pkg, file: c.file })
    })
  }
})

const frame = (functionName: string, url: string, lineNumber = 0) => ({
  functionName,
  url,
  lineNumber,
})

/** A profile of four functions; samples every 100 µs from t = 1000 µs, in this order. */
function profile(): CpuProfile {
  const nodes = [
    { id: 1, callFrame: frame('(root)', '') },
    { id: 2, callFrame: frame('(idle)', '') },
    { id: 3, callFrame: frame('envelope', 'file:///repo/dist/gateway/bridge/jsonrpc.js', 9) },
    { id: 4, callFrame: frame('asJson', 'file:///repo/node_modules/pino/lib/tools.js', 99) },
    { id: 5, callFrame: frame('', 'file:///repo/dist/gateway/bridge/session.js', 4) },
  ]
  const samples = [3, 3, 4, 2, 5, 3, 2]
  return { nodes, startTime: 900, endTime: 1700, samples, timeDeltas: samples.map(() => 100) }
}

describe('summarize: self time of the samples', () => {
  test('whole profile: by function, file and package, idle apart, largest first', () => {
    const s = summarize([profile()], ROOT)
    assert.equal(s.samples, 7)
    // Each sample holds the gap to the next one; the last has none.
    assert.equal(s.idleMs, 0.1)
    assert.equal(s.busyMs, 0.5)
    assert.deepEqual(s.functions, [
      { name: 'envelope', where: 'gateway/bridge/jsonrpc.js:10', ms: 0.3 },
      { name: 'asJson', where: 'pino/lib/tools.js:100', ms: 0.1 },
      { name: '(anonymous)', where: 'gateway/bridge/session.js:5', ms: 0.1 },
    ])
    assert.deepEqual(s.packages, [
      { name: 'mcp-edge gateway/bridge/', ms: 0.4 },
      { name: 'pino', ms: 0.1 },
    ])
    assert.deepEqual(
      s.files.map((f) => f.name),
      ['gateway/bridge/jsonrpc.js', 'pino/lib/tools.js', 'gateway/bridge/session.js'],
    )
  })

  test('a window keeps only the samples stamped inside it', () => {
    // Samples at 1000, 1100, …, 1600 µs; [1150, 1450] holds the 3rd to 5th (asJson, idle, anonymous).
    const s = summarize([profile()], ROOT, () => [1150, 1450])
    assert.equal(s.samples, 3)
    assert.deepEqual(
      s.functions.map((f) => f.name),
      ['asJson', '(anonymous)'],
    )
    assert.equal(s.idleMs, 0.1)
  })

  test('several profiles add up', () => {
    const s = summarize([profile(), profile()], ROOT)
    assert.equal(s.samples, 14)
    assert.equal(s.functions[0]!.ms, 0.6)
  })
})

/**
 * A call tree: the gateway's sendReply and FrameWriter.write reach native writes through Node's
 * internals; one writev has no gateway frame above it. Samples every 100 µs from t = 1000 µs.
 */
function tree(): CpuProfile {
  const nodes = [
    { id: 1, callFrame: frame('(root)', ''), children: [2, 5, 8] },
    {
      id: 2,
      callFrame: frame('sendReply', 'file:///repo/dist/gateway/http/reply.js', 11),
      children: [3],
    },
    { id: 3, callFrame: frame('end', 'node:_http_outgoing', 1033), children: [4] },
    { id: 4, callFrame: frame('writev', '') },
    {
      id: 5,
      callFrame: frame('write', 'file:///repo/dist/gateway/bridge/stdio-frames.js', 244),
      children: [6],
    },
    { id: 6, callFrame: frame('', 'file:///repo/node_modules/x/index.js'), children: [7] },
    { id: 7, callFrame: frame('writev', '') },
    { id: 8, callFrame: frame('processTicks', 'node:internal/process/task_queues'), children: [9] },
    { id: 9, callFrame: frame('writev', '') },
  ]
  const samples = [4, 4, 7, 9, 3, 4, 2]
  return { nodes, startTime: 900, endTime: 1700, samples, timeDeltas: samples.map(() => 100) }
}

describe("callersOf: a function's self time by the gateway code above it", () => {
  test('each sample goes to the nearest gateway frame, past Node and packages; none: apart', () => {
    assert.deepEqual(callersOf([tree()], ROOT, 'writev'), [
      { name: 'sendReply', where: 'gateway/http/reply.js:12', ms: 0.3 },
      { name: 'write', where: 'gateway/bridge/stdio-frames.js:245', ms: 0.1 },
      { name: '(no gateway frame)', ms: 0.1 },
    ])
  })

  test('only the function named, and only within the window', () => {
    assert.deepEqual(callersOf([tree()], ROOT, 'end'), [
      { name: 'sendReply', where: 'gateway/http/reply.js:12', ms: 0.1 },
    ])
    // Samples at 1000, 1100, …; [1150, 1350] holds the 3rd and 4th (writev under write, under nothing).
    assert.deepEqual(
      callersOf([tree()], ROOT, 'writev', () => [1150, 1350]).map((c) => c.name),
      ['write', '(no gateway frame)'],
    )
    assert.deepEqual(callersOf([tree()], ROOT, 'nothing'), [])
  })
})
