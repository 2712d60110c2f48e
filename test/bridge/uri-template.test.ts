// Could a URI be an expansion of an RFC 6570 template: the matcher aggregated endpoints route by.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { matchesTemplate, parseTemplate } from '../../gateway/bridge/uri-template.js'

describe('matchesTemplate: expansions of levels 1–4 (RFC 6570 §3.2), read loosely', () => {
  const table: [string, string, boolean][] = [
    // literal only
    ['notes://index', 'notes://index', true],
    ['notes://index', 'notes://index2', false],
    ['notes://index', 'notes://inde', false],
    // simple {var}: unreserved and pct-encoded, no /
    ['file:///{path}', 'file:///readme', true],
    ['file:///{path}', 'file:///', true],
    ['file:///{path}', 'file:///a%2Fb', true],
    ['file:///{path}', 'file:///a/b', false],
    ['file:///{path}', 'file:///a b', false],
    ['file:///{path}', 'http:///readme', false],
    ['file:///{path}', 'file:///ü', true],
    ['notes://{id}/body', 'notes://42/body', true],
    ['notes://{id}/body', 'notes://42/other', false],
    ['notes://{id}/body', 'notes://4/2/body', false],
    ['{x,y}', '1,2', true],
    ['{x}', 'a=1', false],
    ['{x*}', 'a=1,b=2', true],
    ['{x:3}', 'abc', true],
    ['{a}{b}', 'ab', true],
    // reserved {+var}
    ['file:///{+path}', 'file:///a/b/c?d#e', true],
    ['file:///{+path}', 'file:///a b', false],
    ['{+base}/index', 'https://h/x/index', true],
    // fragment {#var}
    ['doc{#frag}', 'doc#a/b', true],
    ['doc{#frag}', 'doc', true],
    ['doc{#frag}', 'doc/a', false],
    // label {.var}
    ['x{.ext}', 'x.tar.gz', true],
    ['x{.ext}', 'x', true],
    ['x{.ext}', 'x-tar', false],
    // path {/var}
    ['repo{/owner,name}', 'repo/a/b', true],
    ['repo{/owner,name}', 'repo', true],
    ['repo{/owner,name}', 'repoa', false],
    ['repo{/path*}/raw', 'repo/a/b/c/raw', true],
    // path-style {;var}, query {?var}, continuation {&var}
    ['m{;x,y}', 'm;x=1;y', true],
    ['find{?q,lang}', 'find?q=1&lang=en', true],
    ['find{?q,lang}', 'find', true],
    ['find{?q,lang}', 'find?q=a b', false],
    ['find{?q}', 'find&q=1', false],
    ['find?fixed=1{&q}', 'find?fixed=1&q=2', true],
  ]
  for (const [template, uri, expected] of table) {
    test(`${template} ${expected ? 'matches' : 'does not match'} ${uri}`, () => {
      const parsed = parseTemplate(template)
      assert.ok(parsed !== undefined)
      assert.equal(matchesTemplate(parsed, uri), expected)
    })
  }
})

describe('parseTemplate refuses malformed templates', () => {
  for (const template of [
    '{',
    'a{b',
    'a}b',
    '{}',
    '{=x}',
    '{,x}',
    '{!x}',
    '{@x}',
    '{|x}',
    '{x y}',
    '{x,}',
    '{x:0}',
    '{x:10000}',
    '{a{b}}',
    '{.}',
  ]) {
    test(JSON.stringify(template), () => assert.equal(parseTemplate(template), undefined))
  }
  test('and reads well-formed ones', () => {
    for (const template of [
      '',
      'plain',
      '{x}',
      '{+x}',
      '{#x}',
      '{.x}',
      '{/x*}',
      '{;x:3}',
      '{?x,y}',
      '{&x}',
      '{x.y}',
      '{%41}',
    ]) {
      assert.ok(parseTemplate(template) !== undefined, template)
    }
  })
})

test('a template made to backtrack costs linear time per expression', () => {
  const template = parseTemplate('{+a}x'.repeat(40) + 'y')!
  const uri = 'x'.repeat(50_000)
  // No timing assertion: a backtracking matcher would simply never come back.
  assert.equal(matchesTemplate(template, uri), false)
  assert.equal(matchesTemplate(template, uri + 'y'), true)
})
