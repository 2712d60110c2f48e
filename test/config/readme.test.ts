// The README cannot drift from the schema: every row of its limits table names a key the
// schema has, with the schema's default; every key with a default is documented (the limits
// table, or the annotated configuration reference); every key, with a default or not, is written
// by some example; every numeric key with a default (a limit) is a row of the limits table; the
// reference states defaults truly; the metrics reference lists exactly the gateway's metrics; and
// every YAML example loads with the gateway's own validators (config, policy, pin file).
//
// How the README writes things, and how this file reads them:
// - Limits table, key cell: one or more backticked keys; a later key is resolved against the
//   first one's parents (`store.connectTimeout`, `commandTimeout` is store.commandTimeout).
//   A `<…>` segment (`servers.<name>`, `output.tools.<pattern>`) stands for any record key.
// - Limits table, default cell: one value per key, or one value for all; `300 s`, `5000 ms`
//   are 300 and 5000 (the unit says what the key counts in, nothing is converted); `4 KiB`,
//   `1 MiB` are 4096 and 1048576; a trailing `(…)` is a remark (`0 (off)` is 0, `2500 (at
//   most)` is 2500); `none` and `off` mean the key has no default (unset: not applied).
// - Configuration reference (the annotated YAML under "Configuration reference", and the one
//   under "OAuth broker"): a value shown is the default, unless its line's comment says
//   `default` (then a value right after `default`, on a line of one key, must be the default;
//   `10 min` is 600000), or the default is an empty list or map (the entries are examples).
// - YAML examples are fragments: they are completed with what they refer to and leave out (a
//   server for each server name, an endpoint for each endpoint name, a minimal broker for
//   `broker: { … }`, the required keys of auth.broker.upstream and auth.tokenExchange), and an
//   elided hash (`sha256:3b1f…`) is padded to its 64 digits. Nothing they write is changed.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { z } from 'zod'
import { ConfigError, formatProblem } from '../../gateway/config/errors.js'
import { ENV_OVERRIDES, validateConfig } from '../../gateway/config/load.js'
import * as S from '../../gateway/config/schema.js'
import { parseYamlText } from '../../gateway/config/yaml.js'
import { createMetrics, zeroGauges } from '../../gateway/observability/metrics.js'
import { parsePins } from '../../gateway/pins/file.js'
import { loadPolicy } from '../../gateway/policy/load.js'

/** The project root: this file runs as dist/test/config/readme.test.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8')

// ---------------------------------------------------------------------------------------------
// The schema's keys and defaults.

interface SchemaKey {
  /** Whether leaving the key out gives it a value. */
  hasDefault: boolean
  default?: unknown
}

/** Every key of gateway.yaml, dotted, record keys as `<name>`. */
function schemaKeys(): Map<string, SchemaKey> {
  const keys = new Map<string, SchemaKey>()
  const walk = (schema: z.ZodType, at: string[], found?: SchemaKey): void => {
    const def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def
    const here = found ?? { hasDefault: false }
    if (at.length > 0 && !keys.has(at.join('.'))) keys.set(at.join('.'), here)
    switch (def.type) {
      case 'default':
        here.hasDefault = true
        here.default = def.defaultValue
        return walk(def.innerType as z.ZodType, at, here)
      case 'prefault':
      case 'optional':
        return walk(def.innerType as z.ZodType, at, here)
      case 'object':
        for (const [k, v] of Object.entries(def.shape as Record<string, z.ZodType>))
          walk(v, [...at, k])
        return
      case 'record':
        return walk(def.valueType as z.ZodType, [...at, '<name>'])
      default:
        return
    }
  }
  walk(S.configSchema, [])
  // Sections (objects that default to {} through their own defaults) are not keys with a
  // default of their own: what they hold is.
  for (const [k, v] of keys)
    if (v.hasDefault && [...keys.keys()].some((c) => c.startsWith(`${k}.`) && c !== `${k}.<name>`))
      v.hasDefault = false
  return keys
}

const KEYS = schemaKeys()

/** `servers.<pattern>.x` → `servers.<name>.x`. */
const normal = (key: string) => key.replace(/<[^>]+>/g, '<name>')

// ---------------------------------------------------------------------------------------------
// The README: its sections, code blocks and the limits table.

interface Block {
  /** 1-based line of the opening fence. */
  line: number
  lang: string
  text: string
  /** The nearest `##` heading above it. */
  section: string
}

function readmeBlocks(text: string): Block[] {
  const blocks: Block[] = []
  let section = ''
  let open: Block | undefined
  for (const [i, line] of text.split('\n').entries()) {
    if (open) {
      if (line.startsWith('```')) {
        blocks.push(open)
        open = undefined
      } else open.text += `${line}\n`
    } else if (line.startsWith('```'))
      open = { line: i + 1, lang: line.slice(3).trim(), text: '', section }
    else if (/^## /.test(line)) section = line.slice(3).trim()
  }
  return blocks
}

const BLOCKS = readmeBlocks(README)

interface LimitRow {
  line: number
  keyCell: string
  defaultCell: string
}

/** The rows of the table under "### Limits". */
function limitRows(text: string): LimitRow[] {
  const lines = text.split('\n')
  const heading = lines.indexOf('### Limits')
  assert.ok(heading >= 0, 'README has a "### Limits" section')
  const header = lines.findIndex((l, i) => i > heading && l.startsWith('| key | default |'))
  assert.ok(header > heading, 'the Limits section has a | key | default | table')
  const rows: LimitRow[] = []
  for (let i = header + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const [, keyCell, defaultCell] = lines[i]!.split('|').map((c) => c.trim())
    rows.push({ line: i + 1, keyCell: keyCell!, defaultCell: defaultCell! })
  }
  return rows
}

/** A key cell's keys, or undefined when the row names no key (a fixed bound). */
function rowKeys(cell: string): string[] | undefined {
  if (!/^`[^`]+`(, `[^`]+`)*$/.test(cell)) return undefined
  const names = [...cell.matchAll(/`([^`]+)`/g)].map((m) => normal(m[1]!))
  const first = names[0]!.split('.')
  return names.map((name, i) => {
    if (i === 0) return name
    // A later name sits beside the first, under its nearest parent that has it.
    for (let n = first.length - 1; n >= 0; n--) {
      const key = [...first.slice(0, n), name].join('.')
      if (KEYS.has(key)) return key
    }
    return name
  })
}

const NONE = Symbol('no default')

/** A default cell's value, normalised as the header comment says. */
function cellValue(part: string): number | typeof NONE {
  const v = part.replace(/\s*\([^)]*\)$/, '').trim()
  if (v === 'none' || v === 'off') return NONE
  const m = /^(\d+)(?: (s|ms|KiB|MiB))?$/.exec(v)
  if (!m) throw new Error(`cannot read the default "${part}": teach readme.test.ts its notation`)
  const unit = { KiB: 1024, MiB: 1024 * 1024 }[m[2] as 'KiB' | 'MiB'] ?? 1
  return Number(m[1]) * unit
}

/**
 * Rows that name no settable key: a bound fixed on purpose, shown in the table so operators
 * know it. Checked against the constant where the schema module has one.
 */
const FIXED_ROWS: Record<string, number | { unchecked: string }> = {
  'tasks remembered per session (fixed)': S.DEFAULT_TASKS_PER_SESSION,
  'task `statusMessage` characters (fixed)': S.DEFAULT_MAX_TASK_STATUS_LENGTH,
  '`taskId` length (fixed)': S.DEFAULT_MAX_TASK_ID_LENGTH,
  'tracing (fixed, not configurable)': {
    unchecked: 'three bounds of observability/otel-attributes.ts, not of the config schema',
  },
}

/** What disagrees between limits table rows and the schema, one line each. */
function limitProblems(rows: LimitRow[]): string[] {
  const problems: string[] = []
  for (const row of rows) {
    const at = `README.md:${row.line}`
    const keys = rowKeys(row.keyCell)
    if (keys === undefined) {
      const fixed = FIXED_ROWS[row.keyCell]
      if (fixed === undefined)
        problems.push(`${at}: "${row.keyCell}" names no key; list it in FIXED_ROWS with why`)
      else if (typeof fixed === 'number' && cellValue(row.defaultCell) !== fixed)
        problems.push(`${at}: ${row.keyCell} is ${row.defaultCell}, the code says ${fixed}`)
      continue
    }
    const parts = row.defaultCell.split(', ')
    if (parts.length !== 1 && parts.length !== keys.length) {
      problems.push(`${at}: ${keys.length} keys but ${parts.length} defaults`)
      continue
    }
    for (const [i, key] of keys.entries()) {
      const schema = KEYS.get(key)
      if (schema === undefined) {
        problems.push(`${at}: ${key} is not a key of the schema`)
        continue
      }
      const stated = cellValue(parts[parts.length === 1 ? 0 : i]!)
      if (stated === NONE) {
        if (schema.hasDefault)
          problems.push(`${at}: ${key} says no default, the schema's is ${show(schema.default)}`)
      } else if (!schema.hasDefault) problems.push(`${at}: ${key} has no default in the schema`)
      else if (stated !== schema.default)
        problems.push(
          `${at}: ${key} says ${stated}, the schema's default is ${show(schema.default)}`,
        )
    }
  }
  return problems
}

describe('README limits table', () => {
  const rows = limitRows(README)

  test('the table has rows', () => {
    assert.ok(rows.length > 50, `${rows.length} rows`)
  })

  test('every row names schema keys, with the schema defaults', () => {
    assert.deepEqual(limitProblems(rows), [])
  })

  test('the notations read as the header comment says', () => {
    const cases: [string, number | typeof NONE][] = [
      ['1048576', 1048576],
      ['300 s', 300],
      ['5000 ms', 5000],
      ['4 KiB', 4096],
      ['1 MiB', 1048576],
      ['0 (off)', 0],
      ['2500 (at most)', 2500],
      ['none', NONE],
      ['off', NONE],
    ]
    for (const [cell, value] of cases) assert.equal(cellValue(cell), value, cell)
    assert.throws(() => cellValue('about 5'), /teach readme.test.ts its notation/)
    assert.deepEqual(rowKeys('`store.connectTimeout`, `commandTimeout`'), [
      'store.connectTimeout',
      'store.commandTimeout',
    ])
    assert.deepEqual(rowKeys('`servers.<name>.output.maxResultBytes`, `output.tools.<pattern>`'), [
      'servers.<name>.output.maxResultBytes',
      'servers.<name>.output.tools.<name>',
    ])
    assert.equal(rowKeys('tasks remembered per session (fixed)'), undefined)
  })

  test('drift is caught: each kind of wrong row is a problem', () => {
    const row = (keyCell: string, defaultCell: string): LimitRow => ({
      line: 1,
      keyCell,
      defaultCell,
    })
    const cases: [LimitRow, RegExp][] = [
      [row('`limits.maxBatch`', '99'), /limits.maxBatch says 99, the schema's default is 100/],
      [row('`limits.maxBatchSize`', '100'), /limits.maxBatchSize is not a key of the schema/],
      [row('`servers.<name>.maxSessions`', '200'), /has no default in the schema/],
      [row('`servers.<name>.requestTimeout`', 'none'), /says no default/],
      [
        row('`store.connectTimeout`, `commandTimeout`', '5000, 5000'),
        /store.commandTimeout says 5000/,
      ],
      [row('`log.bufferBytes`, `flushInterval`', '16384, 200, 1'), /2 keys but 3 defaults/],
      [row('sessions per tenant (fixed)', '10'), /names no key; list it in FIXED_ROWS/],
      [row('tasks remembered per session (fixed)', '999'), /the code says 1000/],
    ]
    for (const [r, problem] of cases) {
      const found = limitProblems([r])
      assert.equal(found.length, 1, `${r.keyCell}: ${found}`)
      assert.match(found[0]!, problem)
    }
    assert.deepEqual(limitProblems([row('`limits.maxBatch`', '100')]), [])
  })
})

// ---------------------------------------------------------------------------------------------
// The annotated configuration reference.

/** The reference blocks: the first YAML block of each of these sections. */
const REFERENCE_SECTIONS = ['Configuration reference', 'OAuth broker']

const referenceBlocks = () =>
  REFERENCE_SECTIONS.map((section) => {
    const block = BLOCKS.find((b) => b.lang === 'yaml' && b.section === section)
    assert.ok(block, `a yaml block under "## ${section}"`)
    return block
  })

interface Shown {
  /** Normalised dotted key. */
  key: string
  value: unknown
  line: number
  comment: string
}

/** Every key a YAML block writes, with its value and the comment on its line. */
function shownKeys(block: Block): Shown[] {
  const yaml = parseYamlText(`README.md:${block.line}`, block.text)
  const lines = block.text.split('\n')
  const shown: Shown[] = []
  const visit = (value: unknown, raw: string[], at: string[]) => {
    if (at.length > 0) {
      const line = yaml.locate(raw).line ?? 0
      const text = lines[line - 1] ?? ''
      const hash = text.search(/\s#\s/)
      shown.push({
        key: at.join('.'),
        value,
        line: block.line + line,
        comment: hash < 0 ? '' : text.slice(hash).trim(),
      })
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return
    for (const [k, v] of Object.entries(value)) {
      const key = [...at, k].join('.')
      const named = [...at, '<name>'].join('.')
      // Keys inside a record (env, credentials, output.tools) are the user's, not the schema's.
      if (KEYS.has(key)) visit(v, [...raw, k], [...at, k])
      else if (KEYS.has(named)) visit(v, [...raw, k], [...at, '<name>'])
    }
  }
  visit(yaml.value, [], [])
  return shown
}

/**
 * What a comment says the default is (`default 8080;`, `(default sub)`), as text; `N min` is
 * N × 60000 (only ms keys are given in minutes). Undefined when it names none.
 */
function statedDefault(comment: string): string | undefined {
  const m = /\bdefault:?\s+([^\s;,)]+)( min\b)?/.exec(comment)
  if (!m) return undefined
  return m[2] ? String(Number(m[1]) * 60_000) : m[1]
}

const isEmpty = (v: unknown) =>
  (Array.isArray(v) && v.length === 0) ||
  (v !== null && typeof v === 'object' && Object.keys(v).length === 0)

/** What a reference block shows wrongly about defaults, one line each. */
function referenceProblems(block: Block): string[] {
  const problems: string[] = []
  const shown = shownKeys(block)
  for (const s of shown) {
    const schema = KEYS.get(s.key)
    if (!schema?.hasDefault) continue
    const at = `README.md:${s.line}`
    // A comment on a line of several keys (`{ a: 1, b: 2 }  # …`) names no one key's default.
    const alone = shown.filter((o) => o.line === s.line).length === 1
    const stated = alone ? statedDefault(s.comment) : undefined
    if (
      stated !== undefined &&
      typeof schema.default !== 'object' &&
      stated !== String(schema.default)
    )
      problems.push(
        `${at}: ${s.key} comment says default ${stated}, the schema's is ${show(schema.default)}`,
      )
    const same = JSON.stringify(s.value) === JSON.stringify(schema.default)
    if (!same && !isEmpty(schema.default) && !/\bdefault\b/.test(s.comment))
      problems.push(
        `${at}: ${s.key} shows ${show(s.value)} as if the default; the schema's is ${show(schema.default)}`,
      )
  }
  return problems
}

describe('README configuration reference', () => {
  test('a value shown is the default, or its comment says what the default is', () => {
    assert.deepEqual(referenceBlocks().flatMap(referenceProblems), [])
  })

  test('drift is caught: each kind of wrong line is a problem', () => {
    const block = (text: string): Block => ({ line: 1, lang: 'yaml', text, section: '' })
    const cases: [string, RegExp | undefined][] = [
      ['limits:\n  maxBatch: 100          # per batch\n', undefined],
      [
        'limits:\n  maxBatch: 99           # per batch\n',
        /shows 99 as if the default; the schema's is 100/,
      ],
      ['limits:\n  maxBatch: 99           # per batch (default 100)\n', undefined],
      ['limits:\n  maxBatch: 99           # per batch (default 98)\n', /comment says default 98/],
      ['listen:\n  host: 0.0.0.0        # default 127.0.0.1\n', undefined],
      ['listen:\n  host: 0.0.0.0        # default 0.0.0.0\n', /comment says default 0.0.0.0/],
      ['log:\n  level: debug\n', /log.level shows "debug"/],
      ['servers:\n  x:\n    idleTimeout: 600000   # default 10 min\n', undefined],
      [
        'servers:\n  x:\n    idleTimeout: 600000   # default 5 min\n',
        /comment says default 300000/,
      ],
      ['servers:\n  x:\n    args: [a, b]\n', undefined],
      [
        'servers:\n  x:\n    stderr: { linesPerWindow: 50, window: 10000 }   # (default 1)\n',
        undefined,
      ],
    ]
    for (const [text, problem] of cases) {
      const found = referenceProblems(block(text))
      if (problem === undefined) assert.deepEqual(found, [], text)
      else {
        assert.equal(found.length, 1, `${text}: ${found}`)
        assert.match(found[0]!, problem)
      }
    }
  })
})

/**
 * Keys with a default documented in neither the limits table nor a reference block, each with
 * the place that documents it instead.
 */
const UNDOCUMENTED: Record<string, string> = {
  'auth.tokenExchange.clientAuth':
    'shown with its default in the tokenExchange example under "Per-user credentials", where the reference sends its other keys',
  // The reference: `resumability: { enabled: true }   # … as a server's (defaults alike)`.
  'endpoints.<name>.resumability.maxEvents': "the server's, documented once (checked below)",
  'endpoints.<name>.resumability.maxBytes': "the server's, documented once (checked below)",
  'endpoints.<name>.resumability.maxAge': "the server's, documented once (checked below)",
  'endpoints.<name>.ssePolling.retry': "the server's, documented once (checked below)",
}

describe('README documents every key that has a default', () => {
  test('each is in the limits table or a reference block', () => {
    const documented = new Set<string>()
    for (const row of limitRows(README))
      for (const k of rowKeys(row.keyCell) ?? []) documented.add(k)
    for (const block of referenceBlocks()) for (const s of shownKeys(block)) documented.add(s.key)
    const missing = [...KEYS]
      .filter(([key, k]) => k.hasDefault && !documented.has(key) && !(key in UNDOCUMENTED))
      .map(([key]) => key)
    assert.deepEqual(missing, [])
  })

  test('every numeric key with a default (a limit) is a row of the limits table', () => {
    // Not limits: where to listen. An endpoint's replay and polling bounds are a server's.
    const notLimits = new Set(['listen.port', 'devIdp.port'])
    const inTable = new Set(limitRows(README).flatMap((row) => rowKeys(row.keyCell) ?? []))
    const missing = [...KEYS]
      .filter(([key, k]) => typeof k.default === 'number' && !inTable.has(key))
      .map(([key]) => key)
      .filter((key) => !notLimits.has(key) && !(key in UNDOCUMENTED))
    assert.deepEqual(missing, [])
  })

  test('every exception is still a key with a default', () => {
    for (const key of Object.keys(UNDOCUMENTED)) assert.ok(KEYS.get(key)?.hasDefault, key)
  })

  test('an endpoint\'s resumability and SSE polling defaults are a server\'s ("defaults alike")', () => {
    const own = [...KEYS].filter(([k]) => /^endpoints\.<name>\.(resumability|ssePolling)\./.test(k))
    assert.ok(own.length >= 4)
    for (const [key, k] of own) {
      const server = KEYS.get(key.replace(/^endpoints\./, 'servers.'))
      assert.deepEqual([server?.hasDefault, server?.default], [k.hasDefault, k.default], key)
    }
  })
})

/**
 * Every key of the file a YAML example writes (any section's, a broker recipe's `upstream:`
 * fragment as auth.broker.upstream), dotted as KEYS names them.
 */
function keysWritten(block: Block): string[] {
  let value: unknown
  try {
    value = parseYamlText(`README.md:${block.line}`, block.text).value
  } catch {
    return []
  }
  const root = obj(value)
  const tree =
    'upstream' in root ? { ...root, auth: { broker: { upstream: root.upstream } } } : root
  const found: string[] = []
  const visit = (v: unknown, at: string[]) => {
    if (at.length > 0) found.push(at.join('.'))
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return
    for (const [k, x] of Object.entries(v)) {
      const key = [...at, k].join('.')
      const named = [...at, '<name>'].join('.')
      if (KEYS.has(key)) visit(x, [...at, k])
      else if (KEYS.has(named)) visit(x, [...at, '<name>'])
    }
  }
  visit(tree, [])
  return found
}

/** Keys with no default that no example writes, each with where the README says them instead. */
const UNWRITTEN: Record<string, string> = {
  'auth.tokenExchange.tokenEndpoint':
    'a comment of the tokenExchange example ("# tokenEndpoint: … default: the issuer\'s discovery document"): setting it in the example would hide the default',
}

describe('README documents every key', () => {
  test('each key, with a default or not, is written by an example or in the limits table', () => {
    const documented = new Set<string>()
    for (const row of limitRows(README))
      for (const k of rowKeys(row.keyCell) ?? []) documented.add(k)
    for (const block of BLOCKS.filter((b) => b.lang === 'yaml'))
      for (const k of keysWritten(block)) documented.add(k)
    const missing = [...KEYS.keys()].filter(
      (key) =>
        !documented.has(key) &&
        !(key in UNWRITTEN) &&
        !(key in UNDOCUMENTED) &&
        // A record's entries are the user's (env, authorizeParams): the record is the key.
        !(key.endsWith('.<name>') && documented.has(key.slice(0, -'.<name>'.length))),
    )
    assert.deepEqual(missing, [])
  })

  test('every exception is still a key no example writes', () => {
    const written = new Set(BLOCKS.filter((b) => b.lang === 'yaml').flatMap(keysWritten))
    for (const key of Object.keys(UNWRITTEN)) {
      assert.ok(KEYS.has(key), key)
      assert.ok(!written.has(key), `${key} is written by an example now: drop the exception`)
    }
  })

  test('drift is caught: a key no example writes is missing, a recipe fragment counts', () => {
    const block = (text: string): Block => ({ line: 1, lang: 'yaml', text, section: 'x' })
    assert.deepEqual(keysWritten(block('upstream: { caFile: ./ca.pem }\n')), [
      'auth',
      'auth.broker',
      'auth.broker.upstream',
      'auth.broker.upstream.caFile',
    ])
    assert.deepEqual(keysWritten(block('servers:\n  x: { command: y, env: { A: b } }\n')), [
      'servers',
      'servers.<name>',
      'servers.<name>.command',
      'servers.<name>.env',
      'servers.<name>.env.<name>',
    ])
    assert.deepEqual(keysWritten(block('auth: { nosuchkey: 1 }\n')), ['auth'])
  })
})

// ---------------------------------------------------------------------------------------------
// The metrics reference: a row for every metric the gateway defines, none for one it does not.

/** Metric names in the first cell of the rows under "## Metrics reference". */
function metricRows(text: string): string[] {
  const start = text.indexOf('\n## Metrics reference\n')
  assert.ok(start >= 0, 'README has a "## Metrics reference" section')
  const end = text.indexOf('\n## ', start + 1)
  return text
    .slice(start, end)
    .split('\n')
    .filter((l) => l.startsWith('| `mcp_edge_'))
    .flatMap((l) => [...l.split('|')[1]!.matchAll(/`(mcp_edge_\w+)`/g)].map((m) => m[1]!))
}

describe('README metrics reference', () => {
  test('each metric the gateway defines (prom-client defaults aside) is a row, and only those', () => {
    const metrics = createMetrics(zeroGauges())
    const defined = metrics.registry
      .getMetricsAsArray()
      .map((m) => m.name)
      .filter((name) => !/^mcp_edge_(process_|nodejs_)/.test(name))
    assert.ok(defined.length > 20, `${defined.length} metrics`)
    assert.deepEqual([...new Set(metricRows(README))].sort(), defined.sort())
  })
})

// ---------------------------------------------------------------------------------------------
// Environment overrides: the paragraph that lists them names each variable and its key.

describe('README environment overrides', () => {
  test('the list is ENV_OVERRIDES, each variable with its key', () => {
    const start = README.indexOf('Environment overrides, applied before validation:')
    assert.ok(start >= 0, 'README has the "Environment overrides" paragraph')
    const paragraph = README.slice(start, README.indexOf('\n\n', start))
    const listed = Object.fromEntries(
      [...paragraph.matchAll(/`(MCP_EDGE_\w+)`\s+\(`([^`]+)`\)/g)].map((m) => [m[1], m[2]]),
    )
    const code = Object.fromEntries(
      Object.entries(ENV_OVERRIDES).map(([name, o]) => [name, o.path.join('.')]),
    )
    assert.deepEqual(listed, code)
    for (const key of Object.values(code)) assert.ok(KEYS.has(key), key)
  })
})

// ---------------------------------------------------------------------------------------------
// Every YAML example loads.

const POLICY_KEYS = new Set(['roles', 'implies', 'servers', 'rateLimits'])
const CONFIG_KEYS = new Set(Object.keys(S.configSchema.shape))

/** YAML blocks that are none of the gateway's files, by section, and why. */
const OTHER_BLOCKS: Record<string, string> = {
  Deployment: 'a Kubernetes Deployment fragment (env of the container), not a gateway file',
}

type Kind = 'config' | 'policy' | 'policy rules' | 'pins' | 'other' | 'not YAML'

function kindOf(block: Block): Kind {
  // An indented block is a server's rules in a policy file (`tools:` under servers.<name>).
  if (/^\s/.test(block.text)) return 'policy rules'
  let value: Record<string, unknown>
  try {
    value = parseYamlText(`README.md:${block.line}`, block.text).value as Record<string, unknown>
  } catch {
    return 'not YAML'
  }
  const keys = Object.keys(value ?? {})
  if (keys.includes('version')) return 'pins'
  const servers = Object.values((value?.servers ?? {}) as Record<string, object>)
  if (keys.every((k) => POLICY_KEYS.has(k)) && servers.every((s) => !('command' in (s ?? {}))))
    return 'policy'
  if (keys.every((k) => CONFIG_KEYS.has(k) || k === 'upstream')) return 'config'
  return 'other'
}

const MINIMAL_UPSTREAM = {
  issuer: 'https://idp.example.com',
  clientId: 'readme-test',
  clientSecret: { env: 'README_TEST_SECRET' },
}

type Obj = Record<string, unknown>
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' ? (v as Obj) : {})

/** A config fragment completed with what it refers to (see the header comment). */
function completeConfig(fragment: Obj): Obj {
  const c: Obj = structuredClone(fragment)
  if ('upstream' in c) {
    c.auth = { broker: { upstream: c.upstream } }
    delete c.upstream
  }
  const auth = obj((c.auth ??= {}))
  const servers = obj((c.servers ??= {}))
  const endpoints = obj(c.endpoints)
  const credentials = Object.values(servers).flatMap((s) => Object.values(obj(obj(s).credentials)))
  if (credentials.some((x) => 'exchange' in obj(x))) auth.tokenExchange ??= {}
  if (credentials.some((x) => 'upstreamToken' in obj(x))) auth.broker ??= {}
  if (auth.broker !== undefined) {
    const broker = obj(auth.broker)
    if ('…' in broker) delete broker['…']
    const up = obj((broker.upstream ??= {}))
    if (up.issuer === undefined && up.endpoints === undefined) up.issuer = MINIMAL_UPSTREAM.issuer
    up.clientId ??= MINIMAL_UPSTREAM.clientId
    if (up.clientSecret === undefined && up.privateKey === undefined)
      up.clientSecret = MINIMAL_UPSTREAM.clientSecret
    auth.broker = broker
  }
  if (auth.tokenExchange !== undefined) {
    const x = obj(auth.tokenExchange)
    x.clientId ??= 'readme-test'
    if (x.clientAuth !== 'none') x.clientSecret ??= { env: 'README_TEST_SECRET' }
  }
  const named = new Set<string>()
  for (const e of Object.values(endpoints)) {
    const list = obj(e).servers
    if (Array.isArray(list)) for (const s of list) named.add(String(s))
  }
  for (const route of Object.values(obj(c.hosts))) {
    const r = obj(route)
    if (typeof r.server === 'string') named.add(r.server)
    if (typeof r.endpoint === 'string' && !(r.endpoint in endpoints)) {
      endpoints[r.endpoint] = { servers: '*' }
      c.endpoints = endpoints
    }
  }
  if (named.size === 0 && Object.keys(servers).length === 0) named.add('example')
  for (const name of named) servers[name] ??= { command: 'readme-example' }
  return c
}

/** Elided pin hashes (`sha256:3b1f…`) padded to their 64 digits. */
const padHashes = (text: string) =>
  text.replace(/sha256:([0-9a-f]*)…/g, (_, hex: string) => `sha256:${hex.padEnd(64, '0')}`)

const problemsOf = (err: unknown) =>
  err instanceof ConfigError ? err.problems.map(formatProblem).join('\n') : String(err)

/**
 * Loads a block as the gateway would load what it is.
 * @throws ConfigError (or an assertion) naming what does not load
 */
function loadBlock(block: Block): void {
  const file = `README.md:${block.line}`
  const kind = kindOf(block)
  switch (kind) {
    case 'config': {
      const raw = parseYamlText(file, block.text).value as Obj
      validateConfig(completeConfig(raw), { file, baseDir: ROOT, env: {} })
      return
    }
    case 'policy':
    case 'policy rules': {
      const text =
        kind === 'policy' ? block.text : `servers:\n  example:\n${dedentTo(block.text, 4)}`
      const dir = mkdtempSync(path.join(os.tmpdir(), 'readme-policy-'))
      try {
        writeFileSync(path.join(dir, 'policy.yaml'), text)
        loadPolicy(path.join(dir, 'policy.yaml'))
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
      return
    }
    case 'pins':
      parsePins(file, padHashes(block.text))
      return
    case 'not YAML':
      parseYamlText(file, block.text)
      return assert.fail('parsed the second time')
    case 'other':
      assert.ok(
        block.section in OTHER_BLOCKS,
        `no gateway file the test knows: list its section in OTHER_BLOCKS with why`,
      )
      return
  }
}

describe('README YAML examples load', () => {
  const yamlBlocks = BLOCKS.filter((b) => b.lang === 'yaml')

  test('there are examples of every kind', () => {
    const kinds = new Set(yamlBlocks.map(kindOf))
    for (const k of ['config', 'policy', 'policy rules', 'pins'] as const)
      assert.ok(kinds.has(k), k)
  })

  for (const block of yamlBlocks) {
    const kind = kindOf(block)
    test(`README.md:${block.line} (${block.section}): ${kind}`, () => {
      try {
        loadBlock(block)
      } catch (err) {
        assert.fail(`README.md:${block.line} (${kind}) does not load:\n${problemsOf(err)}`)
      }
    })
  }

  test('drift is caught: a block that would not load is refused, completion hides nothing', () => {
    const block = (text: string, section = 'Examples'): Block => ({
      line: 1,
      lang: 'yaml',
      text,
      section,
    })
    const cases: [string, RegExp][] = [
      ['limits:\n  maxBatchSize: 1\n', /maxBatchSize/],
      ['limits:\n  maxBatch: 0\n', /limits.maxBatch: Too small/],
      [
        'servers:\n  files:\n    command: x\n    pool: { min: 2 }\n    credentials:\n      T: { secret: t }\n',
        /credentials need pool.min: 0/,
      ],
      [
        'endpoints:\n  all: { servers: [files], path: /metrics }\n',
        /one of the gateway's own paths/,
      ],
      ['auth:\n  broker: { … }\n  tokenExchange: { clientId: x, clientAuth: nne }\n', /clientAuth/],
      [
        'upstream: { issuer: https://idp.example.com, clientId: x, privateKey: { env: K }, clientSecret: { env: S } }\n',
        /exactly one of clientSecret or privateKey/,
      ],
      ['roles: { dev: [mcp:read] }\nservers:\n  files:\n    access: []\n    tool: {}\n', /tool/],
      ['    tools:\n      rm: maybe\n', /a rule is allow, deny/],
      ['version: 2\nservers: {}\n', /the version is 1/],
      [
        'version: 1\nservers:\n  files:\n    tools:\n      x: sha256:12…\n      y: md5:ab\n',
        /sha256/,
      ],
      ['kind: Deployment\n', /OTHER_BLOCKS/],
      ['a: [b, [c\n', /Flow sequence/],
    ]
    for (const [text, problem] of cases) {
      assert.throws(
        () => {
          try {
            loadBlock(block(text))
          } catch (err) {
            throw new Error(problemsOf(err))
          }
        },
        problem,
        text,
      )
    }
  })
})

/** The block re-indented so its least indented line starts at `spaces`. */
function dedentTo(text: string, spaces: number): string {
  const lines = text.split('\n')
  const least = Math.min(
    ...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length),
  )
  return lines.map((l) => (l.trim() === '' ? l : ' '.repeat(spaces) + l.slice(least))).join('\n')
}

function show(v: unknown): string {
  return JSON.stringify(v)
}

// ---------------------------------------------------------------------------------------------
// Keys and metrics named anywhere in the README (prose, tables, troubleshooting), not only in
// the reference: each is one the gateway has.

/** The top-level keys of gateway.yaml. */
const TOP_KEYS = new Set([...KEYS.keys()].map((k) => k.split('.')[0]!))

/**
 * The schema key a dotted name of the README stands for, or undefined when none: `<…>`
 * segments and record entries (`servers.notes.mode`) are `<name>`; a trailing `*` is any key
 * that starts so (`limits.streamQueue*`).
 */
export function keyFor(name: string): string | undefined {
  const parts = normal(name).split('.')
  const resolve = (at: number, done: string[]): string | undefined => {
    if (at === parts.length) return done.join('.')
    const part = parts[at]!
    if (part.endsWith('*')) {
      const prefix = [...done, part.slice(0, -1)].join('.')
      return [...KEYS.keys()].find((k) => k.startsWith(prefix))
    }
    for (const p of [part, '<name>']) {
      const key = [...done, p].join('.')
      if (KEYS.has(key)) {
        const found = resolve(at + 1, [...done, p])
        if (found) return found
      }
    }
    return undefined
  }
  return resolve(0, [])
}

/** Backticked dotted names whose first segment is a top-level key: `limits.maxBatch`. */
function namedKeys(text: string): { line: number; name: string }[] {
  return text.split('\n').flatMap((l, i) =>
    [...l.matchAll(/`([a-z]\w*(?:\.[\w<>*-]+)+)`/gi)]
      .map((m) => m[1]!)
      .filter((name) => TOP_KEYS.has(name.split('.')[0]!))
      .map((name) => ({ line: i + 1, name })),
  )
}

/** Metric names anywhere in the README, histogram series (`_bucket`, `_sum`, `_count`) as theirs. */
function namedMetrics(text: string): { line: number; name: string }[] {
  return text
    .split('\n')
    .flatMap((l, i) =>
      [...l.matchAll(/(?<!\$)\bmcp_edge_\w+/g)].map((m) => ({ line: i + 1, name: m[0] })),
    )
}

describe('README names only keys and metrics the gateway has', () => {
  test('every dotted key named in the README is a key of the schema', () => {
    const named = namedKeys(README)
    assert.ok(named.length > 100, `${named.length} keys named`)
    const unknown = named.filter((k) => keyFor(k.name) === undefined)
    assert.deepEqual(
      unknown.map((k) => `README.md:${k.line}: ${k.name}`),
      [],
    )
  })

  test('every metric named in the README is registered', () => {
    const registered = new Set(
      createMetrics(zeroGauges())
        .registry.getMetricsAsArray()
        .map((m) => m.name),
    )
    const series = (name: string) =>
      registered.has(name) || registered.has(name.replace(/_(bucket|sum|count)$/, ''))
    const named = namedMetrics(README)
    assert.ok(named.length > 30, `${named.length} metric names`)
    assert.deepEqual(
      named.filter((m) => !series(m.name)).map((m) => `README.md:${m.line}: ${m.name}`),
      [],
    )
  })

  test('drift is caught: a key or metric that is not the gateway’s', () => {
    assert.equal(keyFor('limits.maxBatch'), 'limits.maxBatch')
    assert.equal(keyFor('servers.notes.maxSubscriptions'), 'servers.<name>.maxSubscriptions')
    assert.equal(keyFor('servers.<name>.pool.max'), 'servers.<name>.pool.max')
    assert.ok(keyFor('limits.streamQueue*')?.startsWith('limits.streamQueue'))
    for (const wrong of ['limits.maxBatchSize', 'servers.notes.maxSubscription', 'log.audits'])
      assert.equal(keyFor(wrong), undefined, wrong)
    assert.deepEqual(namedKeys('`limits.maxBatch` and `mcp.example.com`'), [
      { line: 1, name: 'limits.maxBatch' },
    ])
    assert.deepEqual(namedMetrics('`mcp_edge_no_such_total`'), [
      { line: 1, name: 'mcp_edge_no_such_total' },
    ])
  })
})
