// The gateway's tool pins on their own: what a list shows, what a call may do, what is held in
// memory when the file cannot take it, and what is reported (a real pin file on disk).
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import type { Principal } from '../../gateway/auth/principal.js'
import { toolHash } from '../../gateway/pins/hash.js'
import { ToolPins, type PendingTool } from '../../gateway/pins/pins.js'

const ALICE = { iss: 'i', sub: 'alice', clientId: 'c' } as Principal
const T1 = { name: 'one', description: 'first' }
const T2 = { name: 'two', description: 'second' }

function setup(
  o: { learn?: boolean; maxPending?: number; file?: string; servers?: string[] } = {},
) {
  const file = o.file ?? join(mkdtempSync(join(tmpdir(), 'mcp-edge-pins-unit-')), 'pins.yaml')
  const reported: PendingTool[] = []
  const learned: string[] = []
  const logs: { level: number; msg: string }[] = []
  let now = Date.parse('2026-12-02T08:00:00.000Z')
  const pins = new ToolPins({
    file,
    learn: o.learn ?? true,
    maxFileBytes: 65536,
    maxPending: o.maxPending ?? 100,
    servers: new Set(o.servers ?? ['s']),
    now: () => now,
    log: pino({ level: 'debug' }, { write: (l: string) => void logs.push(JSON.parse(l)) }),
    events: {
      pending: (p) => void reported.push(p),
      learned: (_s, tool) => void learned.push(tool),
    },
  })
  pins.load()
  const list = (tools: unknown[], server = 's', method = 'tools/list') =>
    pins.filterList(server, method, { tools, nextCursor: 'n' }, ALICE) as {
      tools: { name: string }[]
      nextCursor?: string
    }
  const shown = (tools: unknown[]) => list(tools).tools.map((t) => t.name)
  return {
    pins,
    file,
    reported,
    learned,
    logs,
    list,
    shown,
    tick: (ms: number) => {
      now += ms
    },
  }
}

describe('tool pins', () => {
  it('learn on: pins on first sight, shows, allows; keeps the other members of the result', () => {
    const t = setup()
    const r = t.list([T1, T2])
    assert.deepEqual(r.tools, [T1, T2])
    assert.equal(r.nextCursor, 'n')
    assert.deepEqual(t.learned, ['one', 'two'])
    assert.equal(t.pins.refusal('s', 'one'), undefined)
    assert.match(readFileSync(t.file, 'utf8'), new RegExp(`one: ${toolHash(T1)}`))
  })

  it('a change hides the tool and refuses its call until approved; a second change is reported again', () => {
    const t = setup()
    t.shown([T1, T2])
    const changed = { ...T1, description: 'first, and also exfiltrate' }
    assert.deepEqual(t.shown([changed, T2]), ['two'])
    assert.deepEqual(t.pins.refusal('s', 'one'), { kind: 'changed', server: 's', tool: 'one' })
    assert.deepEqual(
      t.reported.map((p) => [p.tool, p.hash, p.previous, p.where]),
      [['one', toolHash(changed), toolHash(T1), 'file']],
    )
    // Seen again: nothing new to report.
    t.shown([changed, T2])
    assert.equal(t.reported.length, 1)
    // The approved definition again, while a change is pending: still hidden (an operator decides).
    assert.deepEqual(t.shown([T1, T2]), ['two'])
    // Another definition: reported again, the pending entry replaced, `previous` still the approved one.
    const again = { ...T1, description: 'third try' }
    t.shown([again, T2])
    assert.equal(t.reported.length, 2)
    assert.deepEqual(
      t.pins.pending().map((p) => [p.tool, p.hash, p.previous]),
      [['one', toolHash(again), toolHash(T1)]],
    )
  })

  it('one name listed twice with two definitions: never both shown, and hidden once seen again', () => {
    const t = setup()
    const evil = { ...T1, description: 'first, but poisoned' }
    assert.deepEqual(
      t.list([T1, evil]).tools,
      [evil],
      'first sight: the last one pinned, only it shown',
    )
    assert.deepEqual(t.shown([T1, evil]), [], 'then a change is pending: neither')
    assert.ok(t.pins.refusal('s', 'one'))
    const u = setup()
    u.shown([T1])
    assert.deepEqual(u.shown([T1, evil]), [], 'the approved one is not shown beside a change')
  })

  it('a tool never listed is decided on the file alone', () => {
    const t = setup()
    assert.deepEqual(t.pins.refusal('s', 'never'), {
      kind: 'unapproved',
      server: 's',
      tool: 'never',
    })
    t.shown([T1])
    assert.equal(t.pins.refusal('s', 'one'), undefined)
  })

  it('servers that do not pin, and other lists, pass untouched (the same object)', () => {
    const t = setup()
    const result = { tools: [T1] }
    assert.equal(t.pins.filterList('other', 'tools/list', result, ALICE), result)
    assert.equal(t.pins.filterList('s', 'prompts/list', result, ALICE), result)
    assert.equal(t.pins.refusal('other', 'anything'), undefined)
    assert.deepEqual(t.learned, [])
  })

  it('hides what it cannot hash, and items with no name', () => {
    const t = setup()
    let deep: Record<string, unknown> = {}
    const tool = { name: 'deep', inputSchema: deep }
    for (let i = 0; i < 200_000; i++) deep = deep.x = {} as Record<string, unknown>
    assert.deepEqual(t.shown([tool, { description: 'no name' }, T1]), ['one'])
  })

  it('learn off: an unknown tool is pending in memory, nothing is written, approval by file edit', () => {
    const d = mkdtempSync(join(tmpdir(), 'mcp-edge-pins-unit-'))
    const file = join(d, 'pins.yaml')
    const seeded = `servers:\n  s:\n    tools:\n      one: ${toolHash(T1)}\n`
    writeFileSync(file, seeded)
    const t = setup({ learn: false, file })
    assert.deepEqual(t.shown([T1, T2]), ['one'])
    assert.equal(readFileSync(file, 'utf8'), seeded)
    assert.deepEqual(
      t.pins.pending().map((p) => [p.tool, p.where, p.previous]),
      [['two', 'memory', undefined]],
    )
    assert.deepEqual(t.pins.refusal('s', 'two'), { kind: 'unapproved', server: 's', tool: 'two' })
    writeFileSync(file, `${seeded}      two: ${toolHash(T2)}\n`)
    assert.deepEqual(t.pins.reload(), { ok: true })
    assert.deepEqual(t.pins.pending(), [])
    assert.deepEqual(t.shown([T1, T2]), ['one', 'two'])
  })

  it('held changes are bounded; past the bound tools are hidden all the same, warned once', () => {
    const t = setup({ learn: false, maxPending: 2 })
    const many = Array.from({ length: 5 }, (_, i) => ({ name: `t${i}` }))
    assert.deepEqual(t.shown(many), [])
    t.shown(many)
    assert.equal(t.pins.pending().length, 2)
    assert.equal(t.reported.length, 2)
    for (let i = 0; i < 5; i++) assert.ok(t.pins.refusal('s', `t${i}`))
    assert.equal(t.logs.filter((l) => /too many pending changes/.test(l.msg)).length, 1)
  })

  it('past the bound, an approved tool whose change could not be held is refused too (review)', () => {
    const d = mkdtempSync(join(tmpdir(), 'mcp-edge-pins-unit-'))
    const file = join(d, 'pins.yaml')
    writeFileSync(file, `servers:\n  s:\n    tools:\n      one: ${toolHash(T1)}\n`)
    const t = setup({ learn: false, maxPending: 1, file })
    assert.equal(t.pins.refusal('s', 'one'), undefined)
    // Memory fills with another change first; then `one` changes and cannot be held.
    t.shown([T1, T2])
    assert.deepEqual(t.shown([{ ...T1, description: 'poisoned' }, T2]), [])
    assert.deepEqual(t.pins.refusal('s', 'one'), { kind: 'changed', server: 's', tool: 'one' })
  })

  it('a pin file broken by hand: the last good pins stay, new tools are held in memory and hidden', () => {
    const t = setup()
    t.shown([T1])
    writeFileSync(t.file, 'servers: [half an edit\n')
    const r = t.pins.reload()
    assert.equal(r.ok, false)
    assert.match((r as { problems: string[] }).problems[0]!, /pins\.yaml:\d+:\d+: /)
    assert.deepEqual(t.shown([T1, T2]), ['one'])
    assert.equal(readFileSync(t.file, 'utf8'), 'servers: [half an edit\n')
    assert.deepEqual(
      t.pins.pending().map((p) => [p.tool, p.where]),
      [['two', 'memory']],
    )
    assert.ok(t.pins.refusal('s', 'two'))
    // Each list tries again; the failure is logged once, and its end too.
    t.shown([T1, T2, { name: 'three' }])
    assert.equal(t.logs.filter((l) => /pin file was not written/.test(l.msg)).length, 1)
    writeFileSync(t.file, `servers:\n  s:\n    tools:\n      one: ${toolHash(T1)}\n`)
    assert.deepEqual(t.pins.reload(), { ok: true })
    assert.deepEqual(t.shown([T1, { name: 'four' }]), ['one', 'four'])
    assert.equal(t.logs.filter((l) => /written again/.test(l.msg)).length, 1)
  })
})
