// The strings the gateway's source can print, read from its TypeScript files, and a matcher
// that says whether a text quoted in the README is one of them. A string literal is itself; a
// template literal is its text with each `${…}` part a wildcard; `'a' + x + 'b'` is one string
// with a wildcard for `x`. The README side has its own wildcards: its placeholders (`N`, `X`,
// `<server>`, `URL`, `…`). Two texts agree when some printed message fits both patterns.
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'

/** A pattern: literal text with wildcards (WILD) where a value goes. */
export type Pattern = string

/** Marks a wildcard inside a Pattern (a character neither the source nor the README uses). */
export const WILD = '\u0000'

export interface SourceString {
  file: string
  line: number
  pattern: Pattern
}

/** Every .ts (or .js) file under `dir`, recursively. */
export function sourceFiles(dir: string, ext: '.ts' | '.js'): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return sourceFiles(p, ext)
    return e.name.endsWith(ext) && !e.name.endsWith('.d.ts') ? [p] : []
  })
}

/** Tokens that, ending what precedes a `/`, make it a regular expression and not a division. */
const BEFORE_REGEX = new Set(['(', ',', '=', ':', '[', '!', '&', '|', '?', '{', '}', ';', '+', '-'])

/** The literal text of an escape sequence at `text[i]` (after the backslash); and its length. */
function unescape(text: string, i: number): [string, number] {
  const c = text[i]!
  const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '0': '\0', b: '\b' }
  if (c in simple) return [simple[c]!, 1]
  if (c === 'u') {
    const m = /^u\{([0-9a-fA-F]+)\}|^u([0-9a-fA-F]{4})/.exec(text.slice(i))
    if (m) return [String.fromCodePoint(parseInt(m[1] ?? m[2]!, 16)), m[0].length]
  }
  if (c === 'x') return [String.fromCharCode(parseInt(text.slice(i + 1, i + 3), 16)), 3]
  if (c === '\n') return ['', 1]
  return [c, 1]
}

/**
 * The string and template literals of one file, as patterns, with `+` chains joined.
 * Comments and regular expression literals are skipped.
 */
export function fileStrings(file: string, text: string): SourceString[] {
  // First pass: a token stream of strings, `+`, and "other" (an operand that is no string).
  type Tok = { kind: 'str'; pattern: string; line: number } | { kind: 'plus' | 'other' | 'end' }
  const toks: Tok[] = []
  let last = ';'
  let line = 1
  // Template nesting: for each open `${`, the brace depth it started at.
  const readString = (start: number): [string, number] => {
    const q = text[start]!
    let i = start + 1
    let out = ''
    while (i < text.length && text[i] !== q) {
      if (text[i] === '\\') {
        const [s, n] = unescape(text, i + 1)
        out += s
        i += 1 + n
      } else if (q === '`' && text[i] === '$' && text[i + 1] === '{') {
        // Skip the expression, balancing braces and nested strings.
        let depth = 1
        i += 2
        while (i < text.length && depth > 0) {
          const c = text[i]!
          if (c === '{') depth++
          else if (c === '}') depth--
          else if (c === "'" || c === '"' || c === '`') {
            i = readString(i)[1]
            continue
          }
          i++
        }
        out += WILD
      } else out += text[i++]
    }
    return [out, i + 1]
  }
  let i = 0
  let was = -1
  while (i < text.length) {
    if (i <= was) throw new Error(`${file}: the string reader is stuck at ${i}`)
    was = i
    const c = text[i]!
    if (c === '\n') {
      line++
      i++
      continue
    }
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (c === '/' && text[i + 1] === '/') {
      i = text.indexOf('\n', i)
      if (i < 0) break
      continue
    }
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2)
      if (end < 0) break
      line += text.slice(i, end).split('\n').length - 1
      i = end + 2
      continue
    }
    if (c === '/' && (BEFORE_REGEX.has(last) || /\b(return|typeof|case|of|in)$/.test(last))) {
      // A regular expression literal: to the closing slash outside a class.
      let j = i + 1
      let inClass = false
      while (j < text.length && text[j] !== '\n') {
        if (text[j] === '\\') j += 2
        else if (text[j] === '[') (inClass = true), j++
        else if (text[j] === ']') (inClass = false), j++
        else if (text[j] === '/' && !inClass) break
        else j++
      }
      i = j + 1
      while (/[a-z]/.test(text[i] ?? '')) i++
      last = 'regex'
      toks.push({ kind: 'other' })
      continue
    }
    if (c === "'" || c === '"' || c === '`') {
      const at = line
      const [s, end] = readString(i)
      line += text.slice(i, end).split('\n').length - 1
      toks.push({ kind: 'str', pattern: s, line: at })
      i = end
      last = 'str'
      continue
    }
    if (/[A-Za-z_$0-9]/.test(c)) {
      const m = /^[A-Za-z_$0-9.]+/.exec(text.slice(i))!
      // A call or index after the name belongs to the operand: skip it balanced.
      let j = i + m[0].length
      while (text[j] === '(' || text[j] === '[' || text[j] === '.' || text[j] === '?') {
        if (text[j] === '.' || text[j] === '?') {
          const n = /^[?.]+[A-Za-z_$0-9]*/.exec(text.slice(j))
          if (!n || n[0].length === 0) break
          j += n[0].length
          continue
        }
        const open = text[j]!
        const close = open === '(' ? ')' : ']'
        let depth = 0
        do {
          const d = text[j]!
          if (d === "'" || d === '"' || d === '`') {
            const [, end] = readString(j)
            line += text.slice(j, end).split('\n').length - 1
            j = end
            continue
          }
          if (d === '\n') line++
          if (d === open) depth++
          else if (d === close) depth--
          j++
        } while (depth > 0 && j < text.length)
      }
      const word = m[0]
      // Strings inside a call's arguments (or an index) are read too: re-scan them.
      if (j > i + word.length) {
        const inner = text.slice(i + word.length, j)
        const innerLine = line - (inner.split('\n').length - 1)
        for (const s of fileStrings(file, inner))
          toks.push({ kind: 'str', pattern: s.pattern, line: innerLine + s.line - 1 })
        toks.push({ kind: 'end' })
      }
      toks.push({ kind: 'other' })
      last = word
      i = j
      continue
    }
    if (c === '+' && text[i + 1] !== '+' && text[i + 1] !== '=') {
      toks.push({ kind: 'plus' })
      last = '+'
      i++
      continue
    }
    toks.push({ kind: 'end' })
    last = c
    i++
  }
  // Second pass: join `str (+ operand)* + str` chains; an operand is a wildcard.
  const out: SourceString[] = []
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!
    if (t.kind !== 'str') continue
    let pattern = t.pattern
    let n = k
    while (toks[n + 1]?.kind === 'plus' && ['str', 'other'].includes(toks[n + 2]?.kind ?? '')) {
      const next = toks[n + 2]!
      pattern += next.kind === 'str' ? next.pattern : WILD
      n += 2
    }
    out.push({ file, line: t.line, pattern })
    if (n > k) out.push({ file, line: t.line, pattern: t.pattern })
  }
  return out
}

/**
 * Every string of the source files under `dirs` (relative to `root`): TypeScript, or JavaScript
 * for a dependency's folder (under node_modules).
 */
export function sourceStrings(root: string, dirs: string[]): SourceString[] {
  return dirs.flatMap((dir) =>
    sourceFiles(path.join(root, dir), dir.startsWith('node_modules') ? '.js' : '.ts').flatMap((f) =>
      fileStrings(path.relative(root, f), readFileSync(f, 'utf8')),
    ),
  )
}

/**
 * How many literal characters of `a` some text fitting both patterns matches against literal
 * characters of `b` (the most), or -1 when no text fits both. A WILD of `a` matches any text; a
 * WILD of `b` any text without a space (a value: `ENOSPC`, `256`, `/mcp/notes`), so that words
 * added to a message are not taken for the value of its `${…}`.
 */
export function overlap(a: Pattern, b: Pattern): number {
  const n = a.length
  const m = b.length
  const NO = -1
  // best[i][j]: most literal matches with a[0..i) and b[0..j) consumed.
  const best = new Int32Array((n + 1) * (m + 1)).fill(NO)
  const at = (i: number, j: number) => i * (m + 1) + j
  best[0] = 0
  const lift = (i: number, j: number, v: number) => {
    if (v > best[at(i, j)]!) best[at(i, j)] = v
  }
  for (let i = 0; i <= n; i++)
    for (let j = 0; j <= m; j++) {
      const v = best[at(i, j)]!
      if (v === NO) continue
      const ai = a[i]
      const bj = b[j]
      if (ai === WILD) {
        lift(i + 1, j, v)
        if (j < m) lift(i, j + 1, v)
      }
      if (bj === WILD) {
        lift(i, j + 1, v)
        // b's value is one token of a's text: a space in a's literal text is no value's.
        if (i < n && (ai === WILD || !/\s/.test(ai!))) lift(i + 1, j, v)
      }
      if (ai !== undefined && bj !== undefined && ai !== WILD && bj !== WILD && ai === bj)
        lift(i + 1, j + 1, v + 1)
    }
  return best[at(n, m)]!
}

/** The literal (non-wildcard) characters of a pattern. */
export const literalLength = (p: Pattern) => p.split(WILD).join('').length

/** Words of four letters or more in a pattern's literal parts. */
export const wordsOf = (p: Pattern) => new Set(p.match(/[A-Za-z_]{4,}/g) ?? [])
