// The resource URIs and templates an aggregated endpoint shows, and the backend a URI a client reads goes to.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  buildUriTable,
  type BackendResources,
  type UriTable,
} from '../../gateway/bridge/endpoint-uris.js'

const backend = (
  server: string,
  uris: string[] = [],
  templates: string[] = [],
): BackendResources => ({ server, uris, templates })

/** publicUri gives `expected`, and resolveUri takes it back to the same server and URI. */
function roundTrip(table: UriTable, server: string, uri: string, expected: string): void {
  assert.equal(table.publicUri(server, uri), expected)
  assert.deepEqual(table.resolveUri(expected), { server, uri })
}

describe('listed URIs: their own form when one backend lists them, namespaced when several do', () => {
  test('unique URIs keep their form', () => {
    const t = buildUriTable([
      backend('notes', ['notes://1', 'file:///a']),
      backend('kb', ['kb://x']),
    ])
    roundTrip(t, 'notes', 'notes://1', 'notes://1')
    roundTrip(t, 'notes', 'file:///a', 'file:///a')
    roundTrip(t, 'kb', 'kb://x', 'kb://x')
  })

  test('a URI two backends list is namespaced for both, and its plain form belongs to nobody', () => {
    const t = buildUriTable([backend('a', ['file:///readme']), backend('b', ['file:///readme'])])
    roundTrip(t, 'a', 'file:///readme', 'mcp-edge://a/file:///readme')
    roundTrip(t, 'b', 'file:///readme', 'mcp-edge://b/file:///readme')
    assert.equal(t.resolveUri('file:///readme'), undefined)
  })

  test('a URI listed twice by one backend, or a server listed twice, is one', () => {
    const t = buildUriTable([backend('a', ['x://1', 'x://1']), backend('a', ['x://1', 'x://2'])])
    roundTrip(t, 'a', 'x://1', 'x://1')
    roundTrip(t, 'a', 'x://2', 'x://2')
  })

  test('the original is kept verbatim after the namespace, odd characters and all', () => {
    const odd = 'file:///dir with space/ü?q=1#frag'
    const t = buildUriTable([backend('a', [odd]), backend('b', [odd])])
    roundTrip(t, 'a', odd, `mcp-edge://a/${odd}`)
  })

  test("a backend that lists a URI in the gateway's own scheme cannot pass it off as another backend's", () => {
    const t = buildUriTable([
      backend('evil', ['mcp-edge://b/file:///secret', 'MCP-EDGE://b/x']),
      backend('b', ['file:///secret', 'x']),
    ])
    roundTrip(
      t,
      'evil',
      'mcp-edge://b/file:///secret',
      'mcp-edge://evil/mcp-edge://b/file:///secret',
    )
    roundTrip(t, 'evil', 'MCP-EDGE://b/x', 'mcp-edge://evil/MCP-EDGE://b/x')
    roundTrip(t, 'b', 'file:///secret', 'file:///secret')
    assert.deepEqual(t.resolveUri('mcp-edge://b/file:///secret'), {
      server: 'b',
      uri: 'file:///secret',
    })
    assert.equal(t.resolveUri('MCP-EDGE://b/x'), undefined)
  })

  test("a listed URI another backend's template could produce is namespaced", () => {
    const t = buildUriTable([
      backend('a', ['file:///readme']),
      backend('b', [], ['file:///{name}']),
    ])
    roundTrip(t, 'a', 'file:///readme', 'mcp-edge://a/file:///readme')
    roundTrip(t, 'b', 'file:///readme', 'file:///readme')
  })

  test("a listed URI its own backend's template produces keeps its form", () => {
    const t = buildUriTable([
      backend('a', ['file:///readme'], ['file:///{name}']),
      backend('b', ['file:///other']),
    ])
    roundTrip(t, 'a', 'file:///readme', 'file:///readme')
    roundTrip(t, 'a', 'file:///new', 'file:///new')
  })
})

describe('templates: the same rule, and URIs read from them', () => {
  test('a unique template keeps its form and routes what it produces', () => {
    const t = buildUriTable([
      backend('notes', [], ['notes://{id}']),
      backend('fs', [], ['file:///{+path}']),
    ])
    assert.equal(t.publicTemplate('notes', 'notes://{id}'), 'notes://{id}')
    roundTrip(t, 'notes', 'notes://42', 'notes://42')
    roundTrip(t, 'fs', 'file:///a/b', 'file:///a/b')
    assert.equal(t.resolveUri('kb://1'), undefined)
    assert.equal(
      t.publicUri('notes', 'file:///a'),
      undefined,
      'not a URI notes lists or can produce',
    )
    assert.equal(t.publicTemplate('notes', 'file:///{+path}'), undefined)
  })

  test('a template two backends list is namespaced; a plain URI from it is ambiguous', () => {
    const t = buildUriTable([
      backend('a', [], ['notes://{id}']),
      backend('b', [], ['notes://{id}']),
    ])
    assert.equal(t.publicTemplate('a', 'notes://{id}'), 'mcp-edge://a/notes://{id}')
    assert.equal(t.publicTemplate('b', 'notes://{id}'), 'mcp-edge://b/notes://{id}')
    roundTrip(t, 'a', 'notes://42', 'mcp-edge://a/notes://42')
    roundTrip(t, 'b', 'notes://42', 'mcp-edge://b/notes://42')
    assert.equal(t.resolveUri('notes://42'), undefined)
    assert.equal(
      t.resolveUri('mcp-edge://a/kb://42'),
      undefined,
      'the rest must be something a lists or produces',
    )
  })

  test('different templates of two backends that both match a URI: ambiguous, refused, namespaced form offered', () => {
    const t = buildUriTable([
      backend('a', [], ['file:///{path}']),
      backend('b', [], ['file:///{+path}']),
    ])
    assert.equal(t.publicTemplate('a', 'file:///{path}'), 'file:///{path}')
    assert.equal(t.resolveUri('file:///x'), undefined)
    roundTrip(t, 'a', 'file:///x', 'mcp-edge://a/file:///x')
    roundTrip(t, 'b', 'file:///x', 'mcp-edge://b/file:///x')
    roundTrip(t, 'b', 'file:///x/y', 'file:///x/y') // only {+path} takes a /
  })

  test('two templates of one backend that both match a URI are not ambiguous', () => {
    const t = buildUriTable([
      backend('a', [], ['file:///{path}', 'file:///{+path}']),
      backend('b', ['b://1']),
    ])
    roundTrip(t, 'a', 'file:///x', 'file:///x')
  })

  test("a template that matches anything namespaces every other URI, and never claims the gateway's own scheme", () => {
    const t = buildUriTable([backend('any', [], ['{+uri}']), backend('b', ['b://1'])])
    roundTrip(t, 'any', 'whatever:1', 'whatever:1')
    roundTrip(t, 'b', 'b://1', 'mcp-edge://b/b://1')
    roundTrip(t, 'any', 'b://1', 'b://1')
    assert.equal(t.resolveUri('mcp-edge://zzz/x'), undefined)
    assert.equal(t.resolveUri('mcp-edge://b/b://2'), undefined)
    roundTrip(t, 'any', 'mcp-edge://b/b://1', 'mcp-edge://any/mcp-edge://b/b://1')
    // RFC 3986 §3.1: schemes are case-insensitive, so MCP-EDGE: is the gateway's too.
    assert.equal(t.resolveUri('MCP-EDGE://b/b://1'), undefined)
    roundTrip(t, 'any', 'MCP-EDGE://b/b://1', 'mcp-edge://any/MCP-EDGE://b/b://1')
  })

  test('a malformed template is shown but routes nothing', () => {
    const t = buildUriTable([backend('a', [], ['file:///{path'])])
    assert.equal(t.publicTemplate('a', 'file:///{path'), 'file:///{path')
    assert.equal(t.resolveUri('file:///x'), undefined)
    assert.equal(t.publicUri('a', 'file:///x'), undefined)
  })
})

describe('the namespace, and inputs left out', () => {
  test('namespaced forms that name no server, or no known one, or have no /', () => {
    const t = buildUriTable([
      backend('a', ['x://1', 'x://1/'], ['y://{id}']),
      backend('b', ['x://1']),
    ])
    for (const sent of [
      'mcp-edge://a',
      'mcp-edge://',
      'mcp-edge:///x://1',
      'mcp-edge://c/x://1',
      'mcp-edge://a/',
      'mcp-edge:a/x://1',
      'mcp-edge://a/x://2',
    ]) {
      assert.equal(t.resolveUri(sent), undefined, sent)
    }
    assert.deepEqual(t.resolveUri('mcp-edge://a/y://7'), { server: 'a', uri: 'y://7' })
  })

  test('empty and non-string URIs and templates are skipped', () => {
    const junk = ['', null, 7, {}] as unknown as string[]
    const t = buildUriTable([backend('a', [...junk, 'x://1'], [...junk, 'y://{id}'])])
    roundTrip(t, 'a', 'x://1', 'x://1')
    assert.equal(t.publicUri('a', ''), undefined)
    assert.equal(t.publicTemplate('a', ''), undefined)
    assert.equal(t.resolveUri(''), undefined)
  })

  test('no backends', () => {
    const t = buildUriTable([])
    assert.equal(t.resolveUri('x://1'), undefined)
    assert.equal(t.publicUri('a', 'x://1'), undefined)
  })

  test('a server name that cannot sit in a URI is a configuration error', () => {
    for (const server of ['', 'a/b', 'a b', 'a:b', 'ü'])
      assert.throws(() => buildUriTable([backend(server)]), TypeError, server)
  })
})

// A tiny seeded PRNG (mulberry32): the same cases on every run, another seed by env.
const SEED = Number(process.env.URIS_SEED ?? 20261125)
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test(`every URI a backend lists or produces goes back to it, whatever the order (seed ${SEED})`, () => {
  const random = prng(SEED)
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!
  const servers = ['a', 'b', 'a_b', 'c-d', 'notes', 'fs', 'kb', 'x']
  const uriPool = [
    'file:///readme',
    'file:///a/b',
    'notes://1',
    'notes://2',
    'kb://x y',
    'mcp-edge://a/notes://1',
    'db://t/1',
    'x:ü',
  ]
  const templatePool = [
    'file:///{path}',
    'file:///{+path}',
    'notes://{id}',
    'kb://{q}',
    'db://t/{id}',
    'db://{table}/{id}',
    'mcp-edge://a/{x}',
    '{+any}',
    'bad{',
  ]
  const samples = [
    'file:///readme',
    'file:///z',
    'file:///a/b/c',
    'notes://9',
    'kb://q',
    'db://t/9',
    'db://u/9',
    'zz:1',
    'mcp-edge://a/q',
    'mcp-edge://a/notes://1',
  ]
  let namespaced = 0
  let plain = 0
  for (let round = 0; round < 300; round++) {
    const backends = servers
      .filter(() => random() < 0.7)
      .map((server) => ({
        server,
        uris: uriPool
          .filter(() => random() < 0.3)
          .concat(Array.from({ length: 3 }, (_, i) => `${server}://own/${i}`)),
        templates: templatePool.filter(() => random() < 0.15),
      }))
    const table = buildUriTable(backends)
    const reversed = buildUriTable(
      [...backends]
        .reverse()
        .map((b) => ({ ...b, uris: [...b.uris].reverse(), templates: [...b.templates].reverse() })),
    )
    const given = new Map<string, string>()
    for (const { server, uris, templates } of backends) {
      for (const uri of [...uris, ...samples.filter(() => random() < 0.5), pick(samples)]) {
        const p = table.publicUri(server, uri)
        assert.equal(reversed.publicUri(server, uri), p, 'order does not matter')
        if (p === undefined) continue
        assert.deepEqual(table.resolveUri(p), { server, uri }, `${server} ${uri} → ${p}`)
        const key = `${server}\0${uri}`
        assert.ok(given.get(p) === undefined || given.get(p) === key, `${p} is given once`)
        given.set(p, key)
        if (p === uri) plain++
        else namespaced++
      }
      for (const template of templates) {
        const p = table.publicTemplate(server, template)
        assert.ok(p === template || p === `mcp-edge://${server}/${template}`)
        assert.equal(reversed.publicTemplate(server, template), p)
      }
    }
  }
  assert.ok(
    plain > 100 && namespaced > 100,
    `both forms occur (${plain} plain, ${namespaced} namespaced)`,
  )
})
