// Output caps: a result over its cap is cut at an item boundary with a notice, or refused.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  capError,
  capFinder,
  capResult,
  humanBytes,
  RESULT_TOO_LARGE,
  TRUNCATED_META,
  type OutputCap,
} from '../../gateway/bridge/result-cap.js'

const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v), 'utf8')
const text = (t: string) => ({ type: 'text', text: t })
const truncate = (maxBytes: number): OutputCap => ({ maxBytes, overflow: 'truncate' })
const refuse = (maxBytes: number): OutputCap => ({ maxBytes, overflow: 'refuse' })

/** A deterministic PRNG (mulberry32): the same cases on every run. */
function prng(seed: number) {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('humanBytes', () => {
  for (const [n, want] of [
    [0, '0 B'],
    [999, '999 B'],
    [1000, '1.0 kB'],
    [25_000, '25.0 kB'],
    [1_234_567, '1.2 MB'],
    [3_400_000, '3.4 MB'],
  ] as const)
    test(`${n} → ${want}`, () => assert.equal(humanBytes(n), want))
})

describe('capResult: within the cap', () => {
  test('the same object comes back, untouched', () => {
    const r = { content: [text('hello')] }
    const out = capResult('tools/call', r, truncate(size(r)))
    assert.ok('result' in out)
    assert.equal(out.result, r)
    assert.deepEqual(out.outcome, { kind: 'within' })
  })
  for (const method of ['tools/list', 'initialize', 'completion/complete', 'ping'])
    test(`${method} is never capped`, () => {
      const r = { content: [text('x'.repeat(10_000))] }
      const out = capResult(method, r, refuse(10))
      assert.ok('result' in out && out.result === r)
    })
  for (const hostile of [null, 'text', 42, true, undefined])
    test(`a result that is ${String(hostile)} passes as it is (the client judges it)`, () => {
      const out = capResult('tools/call', hostile, truncate(10))
      assert.ok('result' in out && out.result === hostile)
    })
})

describe('capResult: truncate', () => {
  const big = { content: [text('a'.repeat(400)), text('b'.repeat(400)), text('c'.repeat(400))] }

  test('keeps the longest prefix of whole items that fits, and says so', () => {
    const out = capResult('tools/call', big, truncate(1100))
    assert.ok('result' in out)
    const r = out.result as {
      content: [{ text: string }, { text: string }, { text: string }]
      _meta: Record<string, unknown>
    }
    assert.equal(r.content.length, 3, 'two items and the notice')
    assert.equal(r.content[0].text, 'a'.repeat(400))
    assert.equal(r.content[1].text, 'b'.repeat(400))
    assert.match(r.content[2].text, /^… truncated: \d+ B of 1\.\d kB; narrow the request$/)
    assert.equal(out.outcome.kind, 'truncated')
    assert.ok(size(r) <= 1100)
    const stated = r._meta[TRUNCATED_META] as { bytes: number; of: number }
    assert.equal(stated.of, size(big))
    assert.equal(stated.bytes, size(r), 'the size stated is the size sent')
    assert.deepEqual(out.outcome, { kind: 'truncated', bytes: size(r), of: size(big) })
    assert.ok(r.content[2].text.includes(`${size(r)} B`))
  })

  test('other fields and _meta keys are kept', () => {
    const r = { ...big, isError: false, _meta: { trace: 'x' }, extra: 1 }
    const out = capResult('tools/call', r, truncate(700))
    assert.ok('result' in out)
    const o = out.result as Record<string, unknown>
    assert.equal(o.isError, false)
    assert.equal(o.extra, 1)
    assert.equal((o._meta as Record<string, unknown>).trace, 'x')
  })

  test('a first item too large alone is cut when it is text', () => {
    const r = { content: [text('é'.repeat(5000))] }
    const out = capResult('tools/call', r, truncate(2000))
    assert.ok('result' in out)
    const c = (out.result as { content: { text: string }[] }).content as [
      { text: string },
      { text: string },
    ]
    assert.equal(c.length, 2)
    assert.ok(c[0].text.length > 100 && /^é+$/.test(c[0].text))
    assert.ok(size(out.result) <= 2000)
  })

  test('a first item too large alone that is not text leaves only the notice', () => {
    const r = { content: [{ type: 'image', data: 'A'.repeat(5000), mimeType: 'image/png' }] }
    const out = capResult('tools/call', r, truncate(1000))
    assert.ok('result' in out)
    const c = (out.result as { content: { type: string; text: string }[] }).content as unknown as [
      { text: string },
    ]
    assert.equal(c.length, 1)
    assert.match(c[0].text, /^… truncated/)
  })

  test('structuredContent too large to keep is refused, not broken', () => {
    const r = { content: [text('x')], structuredContent: { rows: 'y'.repeat(3000) } }
    const out = capResult('tools/call', r, truncate(1000))
    assert.ok('result' in out)
    assert.equal((out.result as { isError: boolean }).isError, true)
    assert.equal(out.outcome.kind, 'refused')
  })

  test('a cap smaller than the notice refuses', () => {
    const out = capResult('tools/call', big, truncate(50))
    assert.equal(out.outcome.kind, 'refused')
  })

  test('resources/read: contents keep their shape, the notice names the resource', () => {
    const r = {
      contents: [
        { uri: 'file:///a', mimeType: 'text/plain', text: 'a'.repeat(600) },
        { uri: 'file:///b', blob: 'B'.repeat(600) },
      ],
    }
    const out = capResult('resources/read', r, truncate(900))
    assert.ok('result' in out)
    const c = (out.result as { contents: { uri: string; text?: string }[] }).contents as [
      { uri: string; text?: string },
      { uri: string; text?: string },
    ]
    assert.equal(c.length, 2)
    assert.equal(c[0].uri, 'file:///a')
    assert.equal(c[1].uri, 'file:///a')
    assert.match(c[1].text ?? '', /^… truncated/)
  })

  test('prompts/get: messages keep their shape, a long first message is cut inside its content', () => {
    const r = { messages: [{ role: 'user', content: text('p'.repeat(5000)) }] }
    const out = capResult('prompts/get', r, truncate(1500))
    assert.ok('result' in out)
    type M = { role: string; content: { text: string } }
    const m = (out.result as { messages: M[] }).messages as [M, M]
    assert.equal(m.length, 2)
    assert.equal(m[0].role, 'user')
    assert.ok(/^p+$/.test(m[0].content.text))
    assert.match(m[1].content.text, /^… truncated/)
    assert.ok(size(out.result) <= 1500)
  })

  test('content that is not an array: only the notice', () => {
    const r = { content: 'x'.repeat(3000) }
    const out = capResult('tools/call', r, truncate(500))
    assert.ok('result' in out)
    const o = out.result as { content: unknown[] }
    assert.ok(Array.isArray(o.content) && o.content.length === 1)
  })

  test('hostile items (null, numbers, nested arrays) are kept or dropped whole, never crash', () => {
    const r = { content: [null, 7, [1, [2]], text('z'.repeat(2000)), { type: 'text', text: 9 }] }
    const out = capResult('tools/call', r, truncate(400))
    assert.ok('result' in out)
    assert.ok(size(out.result) <= 400)
  })

  // Whatever the text (escapes, controls, surrogate pairs, quotes), the result sent fits.
  const alphabet = ['a', 'é', '😀', '"', '\\', '\u0000', '\n', '\u2028', '\uD800', '中', ' ']
  for (let seed = 1; seed <= 40; seed++)
    test(`random results fit their cap (seed ${seed})`, () => {
      const rnd = prng(seed)
      const items = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () =>
        text(
          Array.from(
            { length: Math.floor(rnd() * 3000) },
            () => alphabet[Math.floor(rnd() * alphabet.length)],
          ).join(''),
        ),
      )
      const r = { content: items }
      const cap = 200 + Math.floor(rnd() * 4000)
      const out = capResult('tools/call', r, truncate(cap))
      assert.ok('result' in out)
      assert.ok(size(out.result) <= cap, `${size(out.result)} > ${cap}`)
      if (size(r) <= cap) assert.equal(out.result, r)
      else {
        assert.notEqual(out.outcome.kind, 'within')
        const sent = JSON.stringify(out.result)
        assert.ok(!/\\ud83d"|\\ud83d$/i.test(sent), 'no lone high surrogate at a cut')
      }
    })
})

describe('capResult: refuse', () => {
  const big = { content: [text('a'.repeat(3000))] }
  test('a tool result becomes an error result the model reads', () => {
    const out = capResult('tools/call', big, refuse(1000))
    assert.ok('result' in out)
    const r = out.result as { isError: boolean; content: [{ text: string }] }
    assert.equal(r.isError, true)
    assert.match(r.content[0].text, /3\.0 kB\) is larger than the 1\.0 kB .*narrow the request/)
    assert.deepEqual(out.outcome, { kind: 'refused', of: size(big) })
  })
  test('a task result too: an error result that still names its task, and nothing else of _meta', () => {
    const related = 'io.modelcontextprotocol/related-task'
    const task = { ...big, _meta: { [related]: { taskId: 't1', extra: 'x' }, other: 'y' } }
    const out = capResult('tasks/result', task, refuse(1000))
    assert.ok('result' in out)
    const r = out.result as { isError: boolean; _meta: unknown }
    assert.equal(r.isError, true)
    assert.deepEqual(r._meta, { [related]: { taskId: 't1' } })
    // A server's huge or non-string task id in _meta is no way around the cap.
    for (const taskId of ['t'.repeat(5000), 42]) {
      const hostile = capResult(
        'tasks/result',
        { ...big, _meta: { [related]: { taskId } } },
        refuse(1000),
      )
      assert.ok('result' in hostile)
      assert.equal((hostile.result as { _meta?: unknown })._meta, undefined)
    }
  })
  for (const method of ['resources/read', 'prompts/get'])
    test(`${method} becomes a JSON-RPC error`, () => {
      const r = { contents: [{ uri: 'x', text: 'a'.repeat(3000) }], messages: [] }
      const out = capResult(method, r, refuse(1000))
      assert.ok('error' in out)
      assert.equal(out.error.code, RESULT_TOO_LARGE)
      assert.match(out.error.message, /narrow the request/)
    })
})

describe('capFinder', () => {
  test('nothing configured: no finder at all (the relay does no work)', () => {
    assert.equal(capFinder({ overflow: 'truncate', tools: {} }), undefined)
  })
  const find = capFinder({
    maxResultBytes: 25_000,
    overflow: 'refuse',
    tools: { read_file: 100_000, 'search_*': 5_000, '*_dump': 1_000 },
  })!
  for (const [method, name, want] of [
    ['tools/call', 'read_file', 100_000],
    ['tools/call', 'search_docs', 5_000],
    ['tools/call', 'search_dump', 5_000], // first match wins
    ['tools/call', 'db_dump', 1_000],
    ['tools/call', 'READ_FILE', 25_000], // names are case-sensitive, as the policy's
    ['tools/call', 'read_file ', 25_000],
    ['tools/call', undefined, 25_000],
    ['resources/read', 'read_file', 25_000], // tool patterns are for tools
    ['prompts/get', 'x', 25_000],
    ['tools/list', 'read_file', undefined],
    // A task's result is its tool's: held to the tool's cap; an unknown task to the strictest.
    ['tasks/result', 'read_file', 100_000],
    ['tasks/result', 'db_dump', 1_000],
    ['tasks/result', 'other', 25_000],
    ['tasks/result', undefined, 1_000],
    ['tasks/get', 'read_file', undefined],
    ['tasks/list', undefined, undefined],
  ] as const)
    test(`${method} ${String(name)} → ${want}`, () => {
      const cap = find(method, name)
      assert.equal(cap?.maxBytes, want)
      if (cap) assert.equal(cap.overflow, 'refuse')
    })
  test('tool caps without a server-wide one cap only those tools', () => {
    const f = capFinder({ overflow: 'truncate', tools: { big: 10 } })!
    assert.equal(f('tools/call', 'big')?.maxBytes, 10)
    assert.equal(f('tools/call', 'other'), undefined)
    assert.equal(f('resources/read', undefined), undefined)
  })
  test('an unknown task gets the strictest cap, the server-wide one when that is smaller', () => {
    const tools = capFinder({ overflow: 'truncate', tools: { big: 10 } })!
    assert.equal(tools('tasks/result', 'other'), undefined, 'its tool is known and uncapped')
    assert.equal(tools('tasks/result', undefined)?.maxBytes, 10)
    const all = capFinder({ maxResultBytes: 5, overflow: 'refuse', tools: { big: 10 } })!
    assert.deepEqual(all('tasks/result', undefined), { maxBytes: 5, overflow: 'refuse' })
  })
})

describe('capError', () => {
  const cap = { maxBytes: 2048, overflow: 'truncate' as const }
  test('no cap, or within it: undefined (the error passes as it is)', () => {
    assert.equal(capError(undefined, { code: 1, message: 'x'.repeat(10_000) }), undefined)
    assert.equal(capError(cap, { code: 1, message: 'short', data: { a: 1 } }), undefined)
  })
  test('larger: the code, the start of the message, no data, within the cap', () => {
    const cut = capError(cap, { code: -32000, message: 'E'.repeat(9000), data: 'D'.repeat(9000) })!
    assert.equal(cut.code, -32000)
    assert.match(cut.message, /^E+ … \(error truncated: 18\.\d kB over the output cap\)$/)
    assert.ok(Buffer.byteLength(JSON.stringify(cut)) <= 2048)
  })
  for (const hostile of [
    { code: 'x', message: 5, data: 'D'.repeat(5000) },
    { message: '😀'.repeat(3000) },
    { code: -1, message: null, data: [['D'.repeat(5000)]] },
  ])
    test(`hostile error ${JSON.stringify(hostile).slice(0, 30)}: a number code, a string message`, () => {
      const cut = capError(cap, hostile)!
      assert.equal(typeof cut.code, 'number')
      assert.equal(typeof cut.message, 'string')
      assert.ok(!/[\uD800-\uDBFF] …/.test(cut.message), 'no lone high surrogate at the cut')
    })
})
