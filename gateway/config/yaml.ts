import { readFileSync } from 'node:fs'
import { isMap, LineCounter, parseDocument, type Document } from 'yaml'
import { ConfigError, type ConfigProblem } from './errors.js'

/** A parsed YAML file, with a way back from a value's path to its line. */
export interface YamlFile {
  file: string
  value: unknown
  /** Line and column of the deepest node that exists on `path`. */
  locate(path: readonly PropertyKey[]): { line?: number; column?: number }
  /**
   * The keys of the mapping at `path` in document order (a JS object would list
   * integer-like keys first), or undefined when there is no mapping there.
   */
  keysAt(path: readonly PropertyKey[]): string[] | undefined
}

/**
 * Reads and parses one YAML file. Duplicate keys are errors.
 * @throws ConfigError with every syntax problem, located
 */
export function readYamlFile(file: string): YamlFile {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError([
      { file, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` },
    ])
  }
  return parseYamlText(file, text)
}

/**
 * Parses YAML text read from `file` (a caller that bounds what it reads). Duplicate keys are
 * errors.
 * @throws ConfigError with every syntax problem, located
 */
export function parseYamlText(file: string, text: string): YamlFile {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e): ConfigProblem => {
        const { line, col } = lines.linePos(e.pos[0])
        return { file, line, column: col, message: e.message.split('\n')[0]! }
      }),
    )
  }
  return {
    file,
    value: doc.toJS(),
    locate: (path) => locate(doc, lines, path),
    keysAt: (path) => {
      const node = path.length === 0 ? doc.contents : doc.getIn(path as unknown[], true)
      return isMap(node)
        ? node.items.map((p) => String((p.key as { value?: unknown } | null)?.value))
        : undefined
    },
  }
}

function locate(
  doc: Document,
  lines: LineCounter,
  path: readonly PropertyKey[],
): { line?: number; column?: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true)
    const key = n > 0 ? keyNode(doc, path.slice(0, n)) : undefined
    const range = ((n === path.length ? key : undefined) ?? node) as
      | { range?: [number, number, number] }
      | undefined
    if (range?.range) {
      const { line, col } = lines.linePos(range.range[0])
      return { line, column: col }
    }
  }
  return {}
}

function keyNode(doc: Document, path: readonly PropertyKey[]): unknown {
  const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1) as unknown[], true)
  if (!isMap(parent)) return undefined
  return parent.items.find((p) => (p.key as { value?: unknown } | null)?.value === path.at(-1))?.key
}
