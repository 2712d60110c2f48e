// The pin file: what loads, what is refused (with file:line), and how it is rewritten.
import assert from 'node:assert/strict'
import {
  chmodSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ConfigError } from '../../gateway/config/errors.js'
import { addPending, approveTool, pinTool } from '../../gateway/pins/edits.js'
import { loadPins, parsePins } from '../../gateway/pins/file.js'
import { editPins } from '../../gateway/pins/write.js'

const A = `sha256:${'a'.repeat(64)}`
const B = `sha256:${'b'.repeat(64)}`
const dir = () => mkdtempSync(join(tmpdir(), 'mcp-edge-pinfile-'))

function problems(text: string): string[] {
  try {
    parsePins('pins.yaml', text)
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    return err.message
      .split('\n')
      .slice(1)
      .map((l) => l.trim())
  }
  return assert.fail('loaded')
}

describe('pin file: what loads', () => {
  /** Expected pins as [server, [tool, hash][]] (an object literal cannot hold `__proto__`). */
  const cases: [string, string, [string, [string, string][]][]][] = [
    ['an empty file', '', []],
    ['only a comment', '# nothing yet\n', []],
    ['a server with nothing under it', 'servers:\n  files:\n', [['files', []]]],
    [
      'empty sections',
      'version: 1\nservers:\n  files:\n    tools:\n    pending:\n',
      [['files', []]],
    ],
    [
      'pins',
      `servers:\n  files:\n    tools:\n      read: ${A}\n      "write file": ${B}\n`,
      [
        [
          'files',
          [
            ['read', A],
            ['write file', B],
          ],
        ],
      ],
    ],
    [
      'names that are Object.prototype members, numbers, unicode',
      `servers:\n  s:\n    tools:\n      __proto__: ${A}\n      constructor: ${A}\n      123: ${A}\n      "résumé ✓": ${A}\n`,
      [
        [
          's',
          [
            ['123', A],
            ['__proto__', A],
            ['constructor', A],
            ['résumé ✓', A],
          ],
        ],
      ],
    ],
  ]
  for (const [what, text, expected] of cases)
    it(what, () => {
      const pins = parsePins('pins.yaml', text)
      const got = [...pins.servers].map(([s, p]) => [s, [...p.tools].sort()])
      assert.deepEqual(got, expected)
    })

  it('pending entries, with and without what they replace', () => {
    const pins = parsePins(
      'pins.yaml',
      `servers:\n  s:\n    tools: { t: ${A} }\n    pending:\n      t: { hash: ${B}, seen: "2026-12-02T08:00:00.000Z", previous: ${A} }\n      n: { hash: ${A}, seen: "2026-12-02T08:00:00.000Z" }\n`,
    )
    const p = pins.servers.get('s')!.pending
    assert.deepEqual(p.get('t'), { hash: B, seen: '2026-12-02T08:00:00.000Z', previous: A })
    assert.deepEqual(p.get('n'), { hash: A, seen: '2026-12-02T08:00:00.000Z', previous: undefined })
  })
})

describe('pin file: what is refused, located', () => {
  const bomb = `a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`
  const cases: [string, string, RegExp[]][] = [
    ['bad YAML', 'servers:\n  s: [unclosed\n', [/^pins\.yaml:\d+:\d+: /]],
    ['a list at the top', '- a\n- b\n', [/^pins\.yaml:1:1: .*expected object/]],
    [
      'a duplicate tool',
      `servers:\n  s:\n    tools:\n      t: ${A}\n      t: ${B}\n`,
      [/^pins\.yaml:5:7: Map keys must be unique/],
    ],
    [
      'a duplicate server',
      'servers:\n  s: {}\n  s: {}\n',
      [/^pins\.yaml:3:3: Map keys must be unique/],
    ],
    [
      'a hash of the wrong form (md5)',
      'servers:\n  s:\n    tools:\n      t: md5:d41d8cd98f00b204e9800998ecf8427e\n',
      [/^pins\.yaml:4:7: servers\.s\.tools\.t: a pinned hash is "sha256:"/],
    ],
    [
      'a hash in capitals',
      `servers:\n  s:\n    tools:\n      t: ${A.toUpperCase()}\n`,
      [/^pins\.yaml:4:7: servers\.s\.tools\.t: a pinned hash/],
    ],
    [
      'a hash one digit short',
      `servers:\n  s:\n    tools:\n      t: ${A.slice(0, -1)}\n`,
      [/^pins\.yaml:4:7: .*a pinned hash/],
    ],
    [
      'a hash as a number',
      'servers:\n  s:\n    tools:\n      t: 42\n',
      [/^pins\.yaml:4:7: servers\.s\.tools\.t: /],
    ],
    [
      'a __proto__ tool with a bad hash',
      'servers:\n  s:\n    tools:\n      __proto__: nope\n',
      [/^pins\.yaml:4:7: servers\.s\.tools\.__proto__: a pinned hash/],
    ],
    [
      'tools as a list',
      `servers:\n  s:\n    tools: [${A}]\n`,
      [/^pins\.yaml:3:\d+: servers\.s\.tools: /],
    ],
    [
      'an unknown key',
      'servers:\n  s:\n    allow: all\n',
      [/^pins\.yaml:3:5: servers\.s: unknown key "allow"/],
    ],
    ['another version', 'version: 2\n', [/^pins\.yaml:1:\d+: version: the version is 1/]],
    [
      'a server name no config has',
      'servers:\n  Bad Name: {}\n',
      [/^pins\.yaml:2:\d+: servers\.Bad Name: a server name of the config/],
    ],
    [
      'a pending entry without seen',
      `servers:\n  s:\n    pending:\n      t: { hash: ${A} }\n`,
      [/^pins\.yaml:4:\d+: servers\.s\.pending\.t\.seen: /],
    ],
    [
      'a pending entry with a bad previous',
      `servers:\n  s:\n    pending:\n      t: { hash: ${A}, seen: x, previous: sha1:00 }\n`,
      [/^pins\.yaml:4:\d+: servers\.s\.pending\.t\.previous: a pinned hash/],
    ],
    [
      'several problems at once',
      `servers:\n  s:\n    tools:\n      a: bad\n      b: ${A}\n      c: worse\n`,
      [/^pins\.yaml:4:7: servers\.s\.tools\.a/, /^pins\.yaml:6:7: servers\.s\.tools\.c/],
    ],
    ['an alias bomb', bomb, [/^pins\.yaml: not loaded: Excessive alias count/]],
  ]
  for (const [what, text, expected] of cases)
    it(what, () => {
      const got = problems(text)
      assert.equal(got.length, expected.length, got.join('\n'))
      expected.forEach((re, i) => assert.match(got[i]!, re))
    })

  it('a file larger than the bound is not read', () => {
    const file = join(dir(), 'pins.yaml')
    writeFileSync(file, `# ${'x'.repeat(5000)}\n`)
    assert.throws(
      () => loadPins(file, 4096),
      /pins\.yaml: larger than toolPins\.maxFileBytes \(4096 bytes\)/,
    )
    assert.doesNotThrow(() => loadPins(file, 8192))
  })

  it('a missing file is nothing pinned; a folder in its place is refused', () => {
    const d = dir()
    assert.equal(loadPins(join(d, 'none.yaml'), 4096).servers.size, 0)
    assert.throws(() => loadPins(d, 4096), /cannot read: EISDIR/)
  })
})

describe('pin file: read-modify-write', () => {
  it('starts a new file with its header, and keeps an operator comment and hand edit', () => {
    const file = join(dir(), 'pins.yaml')
    editPins(file, 65536, (doc) => pinTool(doc, 's', 't', A))
    assert.match(readFileSync(file, 'utf8'), /^# mcp-edge tool pins/)
    const edited = readFileSync(file, 'utf8').replace(
      'servers:',
      '# checked 2026-12-01\nservers:\n  other:\n    tools:\n      x: ' + B,
    )
    writeFileSync(file, edited)
    const next = editPins(file, 65536, (doc) =>
      addPending(doc, 's', 't', { hash: B, seen: '2026-12-02T08:00:00.000Z', previous: A }),
    )
    const text = readFileSync(file, 'utf8')
    assert.match(text, /# checked 2026-12-01/)
    assert.equal(next?.servers.get('other')?.tools.get('x'), B)
    assert.equal(next?.servers.get('s')?.pending.get('t')?.hash, B)
    assert.equal(next?.servers.get('s')?.tools.get('t'), A)
  })

  it('approving moves the pending hash under tools', () => {
    const file = join(dir(), 'pins.yaml')
    editPins(file, 65536, (doc) => pinTool(doc, 's', 't', A))
    editPins(file, 65536, (doc) => addPending(doc, 's', 't', { hash: B, seen: 'now', previous: A }))
    const next = editPins(file, 65536, (doc) => approveTool(doc, 's', 't'))
    assert.equal(next?.servers.get('s')?.tools.get('t'), B)
    assert.equal(next?.servers.get('s')?.pending.size, 0)
    assert.equal(
      editPins(file, 65536, (doc) => approveTool(doc, 's', 't')),
      undefined,
    )
  })

  it('a pin file reached through links is rewritten where it lives; the links stay links', () => {
    const [real, mid, mounted] = [dir(), dir(), dir()]
    const target = join(real, 'pins.yaml')
    editPins(target, 65536, (doc) => pinTool(doc, 's', 't', A))
    symlinkSync(target, join(mid, 'pins.yaml'))
    symlinkSync(join(mid, 'pins.yaml'), join(mounted, 'pins.yaml'))
    const next = editPins(join(mounted, 'pins.yaml'), 65536, (doc) =>
      addPending(doc, 's', 't', { hash: B, seen: 'now', previous: A }),
    )
    assert.equal(next?.servers.get('s')?.pending.get('t')?.hash, B)
    assert.ok(lstatSync(join(mounted, 'pins.yaml')).isSymbolicLink())
    assert.ok(lstatSync(join(mid, 'pins.yaml')).isSymbolicLink())
    assert.deepEqual(readdirSync(mounted), ['pins.yaml'])
    assert.deepEqual(readdirSync(real), ['pins.yaml'])
    assert.equal(loadPins(target, 65536).servers.get('s')?.pending.get('t')?.hash, B)
  })

  it('an edit that changes nothing writes nothing', () => {
    const file = join(dir(), 'pins.yaml')
    editPins(file, 65536, (doc) => pinTool(doc, 's', 't', A))
    const before = statSync(file).mtimeMs
    const text = readFileSync(file, 'utf8')
    assert.equal(
      editPins(file, 65536, (doc) => pinTool(doc, 's', 't', A)),
      undefined,
    )
    assert.equal(readFileSync(file, 'utf8'), text)
    assert.equal(statSync(file).mtimeMs, before)
  })

  it('a concurrent edit between read and rename is not lost: the edit starts over', () => {
    const file = join(dir(), 'pins.yaml')
    editPins(file, 65536, (doc) => pinTool(doc, 's', 'a', A))
    let attempts = 0
    editPins(file, 65536, (doc) => {
      attempts++
      // Another writer (the CLI, an operator) lands while this edit is being made.
      if (attempts === 1) writeFileSync(file, `${readFileSync(file, 'utf8')}# the other writer\n`)
      return pinTool(doc, 's', 'b', B)
    })
    assert.equal(attempts, 2)
    const text = readFileSync(file, 'utf8')
    assert.match(text, /# the other writer/)
    assert.ok(text.includes(`b: ${B}`))
  })

  it('never writes over a file that does not load, nor past the size bound', () => {
    const d = dir()
    const file = join(d, 'pins.yaml')
    writeFileSync(file, 'servers: [broken\n')
    assert.throws(() => editPins(file, 65536, (doc) => pinTool(doc, 's', 't', A)), /pins\.yaml:\d+/)
    assert.equal(readFileSync(file, 'utf8'), 'servers: [broken\n')
    writeFileSync(file, '')
    assert.throws(
      () =>
        editPins(file, 1024, (doc) => {
          for (let i = 0; i < 50; i++) pinTool(doc, 's', `tool_${i}`, A)
          return true
        }),
      /would exceed toolPins\.maxFileBytes \(1024 bytes\); not written/,
    )
    assert.equal(readFileSync(file, 'utf8'), '')
    assert.deepEqual(readdirSync(d), ['pins.yaml'], 'no temporary file left behind')
  })

  it('keeps the permissions of the file it replaces', () => {
    const file = join(dir(), 'pins.yaml')
    editPins(file, 65536, (doc) => pinTool(doc, 's', 'a', A))
    chmodSync(file, 0o600)
    editPins(file, 65536, (doc) => pinTool(doc, 's', 'b', A))
    assert.equal(statSync(file).mode & 0o777, 0o600)
  })

  it('round-trips names YAML would read as something else', () => {
    const file = join(dir(), 'pins.yaml')
    const names = [
      '__proto__',
      'constructor',
      '123',
      'true',
      'null',
      '- dash',
      'a: b',
      '#hash',
      ' lead',
      'ünï ✓',
    ]
    const next = editPins(file, 65536, (doc) => {
      for (const n of names) pinTool(doc, 's', n, A)
      return true
    })
    assert.deepEqual([...next!.servers.get('s')!.tools.keys()].sort(), [...names].sort())
    assert.deepEqual(
      [...loadPins(file, 65536).servers.get('s')!.tools.keys()].sort(),
      [...names].sort(),
    )
  })
})
