import { GatewayError } from '../errors.js'

/** One problem found in a configuration or policy file, located to a line where possible. */
export interface ConfigProblem {
  file: string
  line?: number
  column?: number
  path?: string
  message: string
}

/** Formats a problem as `file:line:col: path: message`, the shape editors jump to. */
export function formatProblem(p: ConfigProblem): string {
  const where =
    p.line === undefined ? p.file : `${p.file}:${p.line}${p.column ? `:${p.column}` : ''}`
  return `${where}: ${p.path ? `${p.path}: ` : ''}${p.message}`
}

/** A file that does not load. Carries every problem found, not just the first. */
export class ConfigError extends GatewayError<'config_invalid'> {
  readonly problems: ConfigProblem[]

  constructor(problems: ConfigProblem[]) {
    super('config_invalid', `invalid configuration:\n  ${problems.map(formatProblem).join('\n  ')}`)
    this.problems = problems
  }
}

/** A zod issue, as the loaders see it. */
interface SchemaIssue {
  code: string
  path: PropertyKey[]
  message: string
  keys?: string[]
  issues?: readonly { message: string }[]
}

/**
 * Turns schema issues into located problems. An unknown key is reported at the key itself,
 * not at its parent mapping.
 */
export function schemaProblems(
  issues: readonly SchemaIssue[],
  file: string,
  locate?: (path: PropertyKey[]) => { line?: number; column?: number },
): ConfigProblem[] {
  return issues.flatMap((issue) => {
    const at = (path: PropertyKey[], message: string): ConfigProblem => ({
      file,
      ...locate?.(path),
      path: issue.path.map(String).join('.') || undefined,
      message,
    })
    if (issue.code === 'unrecognized_keys' && issue.keys) {
      return issue.keys.map((key) => at([...issue.path, key], `unknown key "${key}"`))
    }
    // A bad record key: zod's own message is generic, the key schema's is the useful one.
    if (issue.code === 'invalid_key' && issue.issues?.[0])
      return [at(issue.path, issue.issues[0].message)]
    return [at(issue.path, issue.message)]
  })
}
