// README's troubleshooting table quotes what the gateway prints: every message quoted in it
// (a response's text, a log line, a page, a start-up problem) is a string of the gateway's source
// (or of oidc-provider, whose OAuth errors the broker passes on), its `${…}` parts standing for
// the README's placeholders (`N`, `X`, `<server>`, `…`). A message the code composes from two
// strings (`Unauthorized: ` + the reason, a page's title + its text, a problem's key + its
// message) is matched piece by piece; the commonest ones are also provoked from a real gateway
// below, and the README row must quote what came back.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { postMcp } from '../helpers/post-mcp.js'
import {
  fragmentsOf,
  type Quote,
  troubleshootingQuotes,
  troubleshootingRows,
} from '../helpers/readme-quotes.js'
import {
  literalLength,
  overlap,
  type Pattern,
  type SourceString,
  sourceFiles,
  sourceStrings,
  WILD,
  wordsOf,
} from '../helpers/source-strings.js'
import { type Stack, startStack } from '../helpers/stack.js'

/** The project root: this file runs as dist/test/cli/readme-troubleshooting.test.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8')

const SOURCES = sourceStrings(ROOT, ['gateway', 'servers', 'node_modules/oidc-provider/lib'])

/** The gateway's source, whole, for the numbers it uses. */
const SOURCE_TEXT = sourceFiles(path.join(ROOT, 'gateway'), '.ts')
  .map((f) => readFileSync(f, 'utf8'))
  .join('\n')

/** Source strings by the words of four letters or more they hold. */
const BY_WORD = new Map<string, SourceString[]>()
for (const s of SOURCES)
  for (const w of wordsOf(s.pattern)) {
    const list = BY_WORD.get(w) ?? []
    list.push(s)
    BY_WORD.set(w, list)
  }

/** Literal characters of a README pattern that must be the printed string's own: half. */
const needed = (text: Pattern) => {
  const n = literalLength(text)
  return Math.min(n, Math.max(8, n / 2))
}

/**
 * Whether `text` (a README pattern) occurs in `pattern` (a printed one): some message fits
 * both, and at least half of the README's literal characters (all, for a short text) are the
 * printed string's own, not a value standing in for its `${…}`.
 */
export function occursIn(text: Pattern, pattern: Pattern): boolean {
  return overlap(`${WILD}${text}${WILD}`, pattern) >= needed(text)
}

/** Source strings that may hold a README fragment: those with one of its rarest words. */
function candidates(fragment: Pattern): SourceString[] {
  const words = [...wordsOf(fragment)]
    .filter((w) => BY_WORD.has(w))
    .sort((a, b) => BY_WORD.get(a)!.length - BY_WORD.get(b)!.length)
  // A fragment of short words only (`for …`) is looked for everywhere.
  if (words.length === 0) return SOURCES
  return [...new Set(words.slice(0, 3).flatMap((w) => BY_WORD.get(w)!))]
}

/** A piece of a composed message: its ends' punctuation and spaces are the joiner's. */
const trimPiece = (p: Pattern) => p.replace(/^[\s:;,.()"]+|[\s:;,.()"]+$/g, '')

/** A problem's key as README writes it: dotted, placeholders allowed (`endpoints.X`). */
const KEY_LABEL = new RegExp(`^([\\w${WILD}]+)(\\.[\\w${WILD}]+)+$`)

/**
 * Where a fragment comes from: one source string; or, composed at run time, a label and a text
 * (`label: text`: a page's title and its text, an OAuth error and its description, a problem's
 * key and its message, the label a whole string of the source or a dotted key); or two pieces
 * joined at punctuation, where the first piece's string ends in a `${…}` (`Unauthorized:
 * ${reason}`) or the second's starts with one (`${message}, for ${audience}`), the other piece
 * found the same way (up to four strings deep). Undefined when it is none.
 */
function origin(fragment: Pattern, depth = 0): SourceString[] | undefined {
  for (const f of new Set([fragment, trimPiece(fragment)])) {
    const one = candidates(f).find((s) => occursIn(f, s.pattern))
    if (one) return [one]
  }
  if (depth >= 3) return undefined
  const colon = fragment.indexOf(': ')
  if (colon > 0) {
    const label = fragment.slice(0, colon)
    const whole = KEY_LABEL.test(label)
      ? { file: 'README', line: 0, pattern: label }
      : candidates(label).find((s) => s.pattern === label)
    const rest = whole && origin(fragment.slice(colon + 2), depth + 1)
    if (whole && rest) return [whole, ...rest]
  }
  // Two strings joined at punctuation (`: `, `, `, `; `, `. `, `(`): never at a bare space,
  // where any word added to a message would pass as the start of another string.
  for (let k = 1; k < fragment.length; k++) {
    if (fragment[k - 1] !== ' ' || !/[:;,.()]\s*$/.test(fragment.slice(0, k))) continue
    const [a, b] = [trimPiece(fragment.slice(0, k)), trimPiece(fragment.slice(k))]
    if (!/[a-z]{2,}/i.test(a) || !/[a-z]{2,}/i.test(b)) continue
    // The pieces with their joiner: `Unauthorized: ` + …, … + `), for <audience>`.
    const aJoined = fragment.slice(0, k)
    const bJoined = fragment.slice(aJoined.trimEnd().search(/[:;,.()\s]*$/))
    // A piece is the string's own text at three quarters at least.
    const most = (p: Pattern) => literalLength(p.trim()) * 0.75
    const ends = (s: SourceString) =>
      s.pattern.endsWith(WILD) && overlap(`${WILD}${aJoined}`, s.pattern) >= most(aJoined)
    const starts = (s: SourceString) =>
      s.pattern.startsWith(WILD) && overlap(`${bJoined}${WILD}`, s.pattern) >= most(b)
    const first = candidates(a).find(ends)
    const rest = first && origin(b, depth + 1)
    if (first && rest) return [first, ...rest]
    const second = candidates(b).find(starts)
    const before = second && origin(a, depth + 1)
    if (second && before) return [...before, second]
  }
  return undefined
}

/** The quotes whose fragments come from no source string, one line each. */
function unprinted(quotes: Quote[]): string[] {
  return quotes.flatMap((q) =>
    q.fragments
      .filter((f) => origin(f) === undefined)
      .map((f) => `README.md:${q.line}: "${f.replaceAll(WILD, '…')}" (of \`${q.text}\`)`),
  )
}

describe('README troubleshooting quotes what the gateway prints', () => {
  const quotes = troubleshootingQuotes(README)

  test('the table quotes many messages', () => {
    assert.ok(quotes.length > 150, `${quotes.length} quotes`)
  })

  test('every quoted message is a string of the source, placeholders for its values', () => {
    assert.deepEqual(unprinted(quotes), [])
  })

  test('every JSON-RPC error code it quotes is one the gateway (or JSON-RPC itself) uses', () => {
    const codes = new Set(
      troubleshootingRows(README).flatMap((r) =>
        [...r.cells[0]!.matchAll(/`[^`]*?(-32\d{3})\b[^`]*`/g)].map((m) => m[1]!),
      ),
    )
    assert.ok(codes.size > 10, `${codes.size} codes`)
    const used = new Set(SOURCE_TEXT.match(/-32\d{3}\b/g))
    assert.deepEqual(
      [...codes].filter((c) => !used.has(c)),
      [],
    )
  })

  test('drift is caught: a changed word, a dropped one, an invented message', () => {
    const quote = (text: string): Quote => ({ line: 1, text, fragments: fragmentsOf(text) })
    const drifted = [
      // Each is a real message with one change.
      'the access token has expired already',
      'the token was issued by a different issuer',
      'the MCP server did not reply in time',
      '-32029 you started N server processes in W s, the most allowed; retry in S seconds',
      'you have N sessions in use on X, the maximum allowed',
      'audit log not writable: ENOSPC; audit events are lost',
      'the gateway is at its session cap; retry later',
      'tool pins reload refused; the previous pins stay',
      'no such MCP server named X',
      'Unauthorized: authorization required',
    ]
    for (const text of drifted)
      assert.equal(unprinted([quote(text)]).length, 1, `${text} was taken for printed`)
    const printed = [
      'the access token has expired',
      'you have N sessions in use on X',
      '-32029 you started N server processes in W s, the most allowed; retry in S s',
      'audit log not writable: ENOSPC; audit events are being lost',
      'Unauthorized: authentication required',
    ]
    for (const text of printed) assert.deepEqual(unprinted([quote(text)]), [], text)
  })
})

// ---------------------------------------------------------------------------------------------
// Messages composed at run time, provoked from a real gateway.

/** The README quote (of the troubleshooting table) that has `part`; exactly one. */
function quoteWith(part: string): Quote {
  const found = troubleshootingQuotes(README).filter((q) => q.text.includes(part))
  assert.equal(found.length, 1, `one troubleshooting quote with "${part}": ${found.length}`)
  return found[0]!
}

/** Whether every fragment of a README quote occurs in what the gateway said. */
const saysQuote = (q: Quote, said: string) => q.fragments.every((f) => occursIn(f, said))

describe('README troubleshooting quotes what a real gateway answers', () => {
  let stack: Stack
  let session: Record<string, string>
  before(async () => {
    stack = await startStack()
    const token = await stack.token('alice', { server: 'notes' })
    const auth = { authorization: `Bearer ${token}` }
    const init = await postMcp(
      stack.local('notes'),
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 't', version: '1' },
        },
      },
      auth,
    )
    assert.equal(init.status, 200, init.text)
    session = {
      ...auth,
      'mcp-session-id': String(init.headers['mcp-session-id']),
      'mcp-protocol-version': '2025-11-25',
    }
  })
  after(() => stack?.close())

  /** Each case: the README row (by a part of its quote), the request, the status expected. */
  const cases: {
    quote: string
    status: number
    send: () => Promise<{ status: number; text: string }>
  }[] = [
    {
      quote: 'authentication required',
      status: 401,
      send: () => postMcp(stack.local('notes'), { jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    },
    {
      quote: 'params.name',
      status: 200,
      send: () =>
        postMcp(
          stack.local('notes'),
          { jsonrpc: '2.0', id: 2, method: 'tools/call', params: {} },
          session,
        ),
    },
    {
      quote: 'params.uri',
      status: 200,
      send: () =>
        postMcp(
          stack.local('notes'),
          { jsonrpc: '2.0', id: 3, method: 'resources/read', params: { uri: 'NOTE://A/../b c' } },
          session,
        ),
    },
    {
      quote: 'not a JSON-RPC 2.0 request',
      status: 400,
      send: () =>
        postMcp(stack.local('notes'), { jsonrpc: '2.0', id: null, method: 'tools/list' }, session),
    },
    {
      quote: 'Mcp-Session-Id header is required',
      status: 400,
      send: () =>
        postMcp(
          stack.local('notes'),
          { jsonrpc: '2.0', id: 4, method: 'tools/list' },
          {
            authorization: session.authorization!,
          },
        ),
    },
  ]
  for (const c of cases)
    test(`the row quoting "${c.quote}" says what the gateway answers`, async () => {
      const q = quoteWith(c.quote)
      const answer = await c.send()
      assert.equal(answer.status, c.status, answer.text)
      const message = String(JSON.parse(answer.text.replace(/^[\s\S]*?data: /, '')).error?.message)
      assert.ok(
        saysQuote(q, message),
        `README.md:${q.line} quotes \`${q.text}\`; the gateway says "${message}"`,
      )
    })
})
