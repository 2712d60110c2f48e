// The names an aggregated endpoint shows for its backends' tools and prompts, and the way back.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import {
  buildNameTable,
  type BackendNames,
  type NameTable,
} from '../../gateway/bridge/endpoint-names.js'

const VALID = /^[A-Za-z0-9_.-]+$/
const named = (prefix = '{server}_', maxLength = 64) => ({ prefix, maxLength })

/** The documented hash, computed another way (bit string, not shifts): base32 of SHA-256 over JSON [server, name]. */
function hash(server: string, name: string, size: number): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([server, name]))
    .digest()
  const bits = [...digest].map((b) => b.toString(2).padStart(8, '0')).join('')
  let out = ''
  for (let i = 0; i < bits.length; i += 5)
    out += 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)]
  return out.slice(0, size)
}

/** Every public name of a table built from `backends`, as `server\0name → public`. */
function mapping(
  table: NameTable,
  backends: readonly BackendNames[],
): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>()
  for (const { server, names } of backends)
    for (const name of names) out.set(`${server}\0${name}`, table.publicName(server, name))
  return out
}

describe('publicName: the prefix, then the backend name, or a stable short form', () => {
  const long = 'x'.repeat(200)
  const table: [string, { prefix: string; maxLength: number }, string, string, string | RegExp][] =
    [
      ['prefix template', named(), 'notes', 'read_note', 'notes_read_note'],
      ['empty prefix keeps the name', named(''), 'notes', 'read_note', 'read_note'],
      ['a prefix without {server}', named('x.'), 'notes', 'read', 'x.read'],
      ['{server} twice', named('{server}.{server}-'), 'n', 'r', 'n.n-r'],
      ['dots and dashes are allowed', named(), 'my-notes', 'a.b-c', 'my-notes_a.b-c'],
      ['exactly maxLength stays', named(), 'notes', 'y'.repeat(58), `notes_${'y'.repeat(58)}`],
      [
        'one past maxLength: head cut to 55, _, 8-char hash',
        named(),
        'notes',
        'y'.repeat(59),
        `notes_${'y'.repeat(49)}_${hash('notes', 'y'.repeat(59), 8)}`,
      ],
      [
        'a 200-character name',
        named(),
        'notes',
        long,
        `notes_${'x'.repeat(49)}_${hash('notes', long, 8)}`,
      ],
      [
        'a space',
        named(),
        'notes',
        'read note',
        `notes_read_note_${hash('notes', 'read note', 8)}`,
      ],
      [
        'a slash (allowed by SEP-986 drafts, not by 2025-11-25)',
        named(),
        'fs',
        'dir/read',
        `fs_dir_read_${hash('fs', 'dir/read', 8)}`,
      ],
      ['unicode', named(), 'notes', 'café', `notes_caf_${hash('notes', 'café', 8)}`],
      [
        'an emoji only, empty prefix: an empty head',
        named(''),
        'n',
        '🙂',
        `_${hash('n', '🙂', 8)}`,
      ],
      [
        'a run of odd characters is one _',
        named(),
        'n',
        'a  ,;b',
        `n_a_b_${hash('n', 'a  ,;b', 8)}`,
      ],
      [
        'a trailing odd character leaves no double _',
        named(),
        'n',
        'abc!',
        `n_abc_${hash('n', 'abc!', 8)}`,
      ],
      [
        'a $ pattern in a server name is literal',
        named(),
        'a$&b',
        'x',
        `a_b_x_${hash('a$&b', 'x', 8)}`,
      ],
      [
        'a long server leaves a short name whole',
        named(),
        's'.repeat(60),
        'tool_name',
        `${'s'.repeat(46)}tool_name_${hash('s'.repeat(60), 'tool_name', 8)}`,
      ],
      [
        'a long server and a long name halve the head',
        named(),
        's'.repeat(60),
        'n'.repeat(60),
        `${'s'.repeat(28)}${'n'.repeat(27)}_${hash('s'.repeat(60), 'n'.repeat(60), 8)}`,
      ],
      [
        'maxLength 16: a head of 7, halved',
        named('{server}_', 16),
        'notes',
        'read_notes_x',
        `noterea_${hash('notes', 'read_notes_x', 8)}`,
      ],
      [
        'maxLength 128 keeps a 100-character name',
        named('{server}_', 128),
        'n',
        'z'.repeat(100),
        `n_${'z'.repeat(100)}`,
      ],
    ]
  for (const [name, o, server, backendName, expected] of table) {
    test(name, () => {
      const t = buildNameTable([{ server, names: [backendName] }], o)
      const got = t.publicName(server, backendName)
      assert.equal(got, expected)
      assert.ok(
        got !== undefined && VALID.test(got) && got.length <= o.maxLength,
        `${got} is a valid name of at most ${o.maxLength}`,
      )
      assert.deepEqual(t.resolve(got), { server, name: backendName })
    })
  }
})

describe('collisions: every pair that would share a name moves, and nobody keeps it', () => {
  test('an empty prefix and one tool on two servers', () => {
    const t = buildNameTable(
      [
        { server: 'a', names: ['search', 'only_a'] },
        { server: 'b', names: ['search'] },
      ],
      named(''),
    )
    assert.equal(t.publicName('a', 'search'), `search_${hash('a', 'search', 8)}`)
    assert.equal(t.publicName('b', 'search'), `search_${hash('b', 'search', 8)}`)
    assert.equal(t.publicName('a', 'only_a'), 'only_a')
    assert.equal(t.resolve('search'), undefined)
    assert.deepEqual(t.resolve(t.publicName('b', 'search')!), { server: 'b', name: 'search' })
  })

  test('server names with _: a + b_c and a_b + c', () => {
    const t = buildNameTable(
      [
        { server: 'a', names: ['b_c'] },
        { server: 'a_b', names: ['c'] },
      ],
      named(),
    )
    assert.equal(t.publicName('a', 'b_c'), `a_b_c_${hash('a', 'b_c', 8)}`)
    assert.equal(t.publicName('a_b', 'c'), `a_b_c_${hash('a_b', 'c', 8)}`)
    assert.equal(t.resolve('a_b_c'), undefined)
  })

  test('server names with -: a-b + c and a + b-c', () => {
    const t = buildNameTable(
      [
        { server: 'a-b', names: ['c'] },
        { server: 'a', names: ['b-c'] },
      ],
      named('{server}-'),
    )
    assert.notEqual(t.publicName('a-b', 'c'), t.publicName('a', 'b-c'))
    assert.equal(t.resolve('a-b-c'), undefined)
  })

  test("a real name equal to another's short form: both move, the short form's hash grows to 16", () => {
    const long = 'q'.repeat(80)
    const short = buildNameTable([{ server: 'a', names: [long] }], named('')).publicName('a', long)!
    assert.equal(short.length, 64)
    const t = buildNameTable(
      [
        { server: 'a', names: [long] },
        { server: 'b', names: [short] },
      ],
      named(''),
    )
    assert.equal(t.publicName('a', long), `${'q'.repeat(47)}_${hash('a', long, 16)}`)
    assert.equal(
      t.publicName('b', short),
      `${short.slice(0, 55).replace(/_+$/, '')}_${hash('b', short, 8)}`,
    )
    assert.equal(t.resolve(short), undefined)
  })

  test('the same inside one backend', () => {
    const long = 'q'.repeat(80)
    const short = buildNameTable([{ server: 'a', names: [long] }], named('')).publicName('a', long)!
    const t = buildNameTable([{ server: 'a', names: [short, long] }], named(''))
    assert.equal(t.resolve(short), undefined)
    assert.deepEqual(t.resolve(t.publicName('a', long)!), { server: 'a', name: long })
    assert.deepEqual(t.resolve(t.publicName('a', short)!), { server: 'a', name: short })
  })

  test('a backend that lists every next form of a name pushes it to the full 52-character hash, never takes it', () => {
    const long = 'q'.repeat(80)
    const forms: string[] = []
    for (let i = 0; i < 3; i++)
      forms.push(
        buildNameTable(
          [
            { server: 'a', names: [long] },
            { server: 'evil', names: [...forms] },
          ],
          named(''),
        ).publicName('a', long)!,
      )
    assert.deepEqual(
      forms.map((f) => f.length - f.lastIndexOf('_') - 1),
      [8, 16, 32],
    )
    const t = buildNameTable(
      [
        { server: 'a', names: [long] },
        { server: 'evil', names: forms },
      ],
      named(''),
    )
    assert.equal(t.publicName('a', long), `${'q'.repeat(11)}_${hash('a', long, 52)}`)
    for (const f of forms) assert.deepEqual(t.resolve(f), undefined, `${f} belongs to nobody`)
    for (const f of forms)
      assert.deepEqual(t.resolve(t.publicName('evil', f)!), { server: 'evil', name: f })
  })

  test('at maxLength 16 the hash stops growing at 15 characters', () => {
    const t1 = buildNameTable([{ server: 'a', names: ['abcdefghijklmnopq'] }], named('', 16))
    const f1 = t1.publicName('a', 'abcdefghijklmnopq')!
    const t2 = buildNameTable(
      [
        { server: 'a', names: ['abcdefghijklmnopq'] },
        { server: 'b', names: [f1] },
      ],
      named('', 16),
    )
    assert.equal(t2.publicName('a', 'abcdefghijklmnopq'), `_${hash('a', 'abcdefghijklmnopq', 15)}`)
  })
})

describe('inputs that are left out or merged', () => {
  test('empty and non-string names are skipped; duplicates count once; a server listed twice is merged', () => {
    const names = ['', 'ok', 'ok', null, 42, { toString: () => 'x' }] as unknown as string[]
    const t = buildNameTable(
      [
        { server: 'a', names },
        { server: 'a', names: ['ok', 'more'] },
      ],
      named(),
    )
    assert.equal(t.publicName('a', ''), undefined)
    assert.equal(t.publicName('a', 'ok'), 'a_ok')
    assert.equal(t.publicName('a', 'more'), 'a_more')
    assert.equal(t.publicName('a', 'x'), undefined)
    assert.equal(t.publicName('a', '42'), undefined)
    assert.equal(t.resolve('a_'), undefined)
  })

  test('no backends, or backends without names', () => {
    for (const backends of [[], [{ server: 'a', names: [] }]]) {
      const t = buildNameTable(backends, named())
      assert.equal(t.resolve('a_x'), undefined)
      assert.equal(t.publicName('a', 'x'), undefined)
    }
  })

  test('resolve is a lookup, never a parse', () => {
    const t = buildNameTable(
      [{ server: 'notes', names: ['read', '__proto__', 'constructor'] }],
      named(),
    )
    for (const sent of [
      'read',
      'notes_',
      'notes_write',
      'NOTES_READ',
      'notes_read ',
      '__proto__',
      'constructor',
      'toString',
      '',
    ]) {
      assert.equal(t.resolve(sent), undefined, sent)
    }
    assert.deepEqual(t.resolve('notes___proto__'), { server: 'notes', name: '__proto__' })
    assert.deepEqual(t.resolve('notes_constructor'), { server: 'notes', name: 'constructor' })
    assert.equal(t.publicName('other', 'read'), undefined)
    assert.equal(t.publicName('notes', 'toString'), undefined)
  })
})

describe('configuration refused at build', () => {
  const cases: [string, { prefix: string; maxLength: number }][] = [
    ['maxLength 15', named('', 15)],
    ['maxLength 129', named('', 129)],
    ['maxLength 64.5', named('', 64.5)],
    ['maxLength NaN', named('', Number.NaN)],
    ['a prefix with a space', named('{server}: ')],
    ['a misspelt placeholder', named('{srv}_')],
    ['a prefix with unicode', named('é_')],
  ]
  for (const [name, o] of cases)
    test(name, () =>
      assert.throws(() => buildNameTable([{ server: 'a', names: ['b'] }], o), RangeError),
    )
  test('the bounds themselves are accepted', () => {
    for (const maxLength of [16, 128])
      assert.equal(
        buildNameTable([{ server: 'a', names: ['b'] }], named('', maxLength)).publicName('a', 'b'),
        'b',
      )
  })
})

// A tiny seeded PRNG (mulberry32): the same cases on every run, another seed by env.
const SEED = Number(process.env.NAMES_SEED ?? 20261125)
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** 20 servers × 500 names, hostile on purpose: shared names, odd characters, long names, each other's forms. */
function hostileBackends(random: () => number): BackendNames[] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!
  const servers = [
    'a',
    'a_b',
    'b',
    'b_c',
    'a-b',
    'notes',
    'notes_x',
    'x',
    'github',
    'git',
    'fs',
    'fs_1',
    'db',
    'db-2',
    's'.repeat(63),
    'ab',
    'a_b_c',
    'c',
    'kb',
    'tickets',
  ]
  const chars = [...'abcdefghijklmnopqrstuvwxyz_-.0123456789', ' ', '/', 'é', '🙂', ':', '_', '_']
  const shared = ['search', 'read', 'b_c', 'c', 'x_read', 'read_note', 'q'.repeat(70)]
  return servers.map((server) => {
    const names: string[] = []
    for (let i = 0; i < 500; i++) {
      const r = random()
      if (r < 0.1) names.push(pick(shared))
      else if (r < 0.15) names.push(`${pick(servers)}_${pick(shared)}`)
      else {
        const length =
          random() < 0.1 ? 60 + Math.floor(random() * 140) : 1 + Math.floor(random() * 30)
        names.push(Array.from({ length }, () => pick(chars)).join(''))
      }
    }
    return { server, names }
  })
}

function shuffled<T>(xs: readonly T[], random: () => number): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

describe(`10,000 hostile names (seed ${SEED})`, () => {
  for (const o of [named(), named(''), named('{server}_', 16), named('{server}.', 128)]) {
    test(`prefix ${JSON.stringify(o.prefix)}, maxLength ${o.maxLength}`, (t) => {
      const random = prng(SEED)
      const backends = hostileBackends(random)
      const started = performance.now()
      const table = buildNameTable(backends, o)
      t.diagnostic(`built in ${(performance.now() - started).toFixed(1)} ms`)
      const seen = new Map<string, string>()
      let shortForms = 0
      for (const { server, names } of backends) {
        for (const name of names) {
          const p = table.publicName(server, name)
          assert.ok(p !== undefined, `${server}/${name} has a public name`)
          assert.ok(
            VALID.test(p) && p.length <= o.maxLength,
            `${JSON.stringify(p)} is valid and at most ${o.maxLength}`,
          )
          assert.deepEqual(table.resolve(p), { server, name })
          const key = `${server}\0${name}`
          assert.ok(seen.get(p) === undefined || seen.get(p) === key, `${p} is given once`)
          seen.set(p, key)
          if (p !== o.prefix.split('{server}').join(server) + name) shortForms++
        }
      }
      assert.ok(
        shortForms > 0 && shortForms < seen.size,
        'the cases hold both plain names and short forms',
      )
      const reordered = shuffled(backends, random).map((b) => ({
        server: b.server,
        names: shuffled(b.names, random),
      }))
      assert.deepEqual(
        mapping(buildNameTable(reordered, o), backends),
        mapping(table, backends),
        'order does not matter',
      )
    })
  }
})
