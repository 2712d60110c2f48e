// The texts README's troubleshooting table quotes, as patterns for source-strings.ts: each
// backticked span of the table's cells that reads as a message (prose, not a key, a status, a
// header or a command), split at its `…` elisions, with the README's placeholders (`N`, `X`,
// `<server>`, `URL`) turned into wildcards and leading statuses and codes (`400 -32600 `) left
// off (they are checked as statuses, not text).
import { WILD, type Pattern } from './source-strings.js'

export interface Quote {
  /** 1-based README line of the row. */
  line: number
  /** The span as README writes it. */
  text: string
  /** Its parts between elisions, as patterns. */
  fragments: Pattern[]
}

/** The rows of the table under `## Troubleshooting`, with their README lines. */
export function troubleshootingRows(readme: string): { line: number; cells: string[] }[] {
  const lines = readme.split('\n')
  const start = lines.indexOf('## Troubleshooting')
  if (start < 0) throw new Error('README has no "## Troubleshooting" section')
  const rows: { line: number; cells: string[] }[] = []
  for (let i = start + 1; i < lines.length && !lines[i]!.startsWith('## '); i++) {
    const l = lines[i]!
    if (!l.startsWith('| ') || l.startsWith('| you see') || /^\|[-| ]+\|$/.test(l)) continue
    rows.push({ line: i + 1, cells: l.slice(2, -2).split(' | ') })
  }
  return rows
}

/** The backticked spans of a cell (`\`` inside a span is a backtick). */
export function spans(cell: string): string[] {
  return [...cell.matchAll(/`((?:\\`|[^`])+)`/g)].map((m) => m[1]!.replace(/\\`/g, '`'))
}

/**
 * Whether a span reads as a message: two words or more of prose, not a command line, a path,
 * a request line or a YAML fragment.
 */
export function isMessage(span: string): boolean {
  const s = stripStatus(span)
  if (!/[a-z]{2,} [a-z]{2,}/i.test(s)) return false
  if (/^(mcp-edge|npm|curl|GET|POST|DELETE|chmod|export) /.test(s)) return false
  if (/^[\w.<>-]+: [\w<>.-]+$/.test(s)) return false // key: value
  if (/^"[^"]*":/.test(s)) return false // a JSON fragment
  if (/^\w+: "[^"]*"$/.test(s)) return false // a log line's field and value
  if (/^[A-Z_]+=/.test(s)) return false // an environment assignment
  return true
}

/** The span without the HTTP status and JSON-RPC code it may start with. */
export function stripStatus(span: string): string {
  return span.replace(/^(\d{3} )?(-32\d{3} )?/, '')
}

/** README placeholders: a capital letter alone, `<…>` and `URL`, each a value of the message. */
const PLACEHOLDER = /\b[A-Z]\b|<[^>\s][^>]*>|\bURL\b/g

/** A span as patterns: one per part between elisions, placeholders wild. */
export function fragmentsOf(span: string): Pattern[] {
  return stripStatus(span)
    .split('…')
    .map((part) => part.trim())
    .filter((part) => /[a-z]{2,}.*[a-z]{2,}/i.test(part))
    .map((part) => part.replace(PLACEHOLDER, WILD))
}

/** A log line quoted as its JSON (`"msg":"audit events lost"`) is its message. */
const logMessage = (span: string) => /^"msg":"([^"]*)"$/.exec(span)?.[1] ?? span

/** Every message quoted in the troubleshooting table. */
export function troubleshootingQuotes(readme: string): Quote[] {
  return troubleshootingRows(readme).flatMap((row) =>
    row.cells.flatMap((cell) =>
      spans(cell)
        .map(logMessage)
        .filter(isMessage)
        .map((text) => ({ line: row.line, text, fragments: fragmentsOf(text) })),
    ),
  )
}
