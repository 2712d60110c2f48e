import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, schemaProblems, type ConfigProblem } from '../config/errors.js'
import { readYamlFile, type YamlFile } from '../config/yaml.js'
import { ruleFinder } from './find.js'
import { compileGlob } from './glob.js'
import { compileRateRule, type RateRule } from './rate-limits.js'
import { compileImplies, type Implication } from './implies.js'
import type { Effect, Feature, Policy, Rule, ServerPolicy, Source } from './policy.js'
import { policyFileSchema, type PolicyFile, type RuleValue } from './schema.js'

const FEATURES: Feature[] = ['tools', 'prompts', 'resources']

/**
 * Loads a policy file, or every `*.yaml`/`*.yml` file of a folder (in name order), validates
 * each, and merges them. A role, a server or a scope's `implies` defined in two files is an
 * error naming both: one file never silently widens what another wrote. The merged `implies`
 * is compiled last, so a cycle running through several files is found and located.
 * @throws ConfigError with every problem, located to file and line
 */
export function loadPolicy(path: string): Policy {
  const files = policyFiles(path)
  const problems: ConfigProblem[] = []
  const roles = new Map<string, readonly string[]>()
  const roleFrom = new Map<string, string>()
  const servers = new Map<string, ServerPolicy>()
  const serverFrom = new Map<string, string>()
  const rateLimits: RateRule[] = []
  const rateFrom = new Map<string, string>()
  const implications = new Map<string, Implication>()
  for (const file of files) {
    let yaml: YamlFile
    try {
      yaml = readYamlFile(file)
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems)
      else throw err
      continue
    }
    const parsed = policyFileSchema.safeParse(yaml.value ?? {})
    if (!parsed.success) {
      problems.push(...schemaProblems(parsed.error.issues, file, yaml.locate))
      continue
    }
    const data: PolicyFile = parsed.data
    for (const [role, scopes] of Object.entries(data.roles)) {
      const other = roleFrom.get(role)
      if (other)
        problems.push({
          file,
          ...yaml.locate(['roles', role]),
          message: `role ${role} is also defined in ${other}`,
        })
      roles.set(role, scopes)
      roleFrom.set(role, file)
    }
    for (const [scope, implied] of Object.entries(data.implies)) {
      const other = implications.get(scope)
      const source = { file, line: yaml.locate(['implies', scope]).line }
      if (other)
        problems.push({
          file,
          line: source.line,
          message: `implies of ${scope} is also defined in ${other.source.file}`,
        })
      implications.set(scope, {
        scope,
        scopes: implied,
        source,
        itemSources: implied.map((_, i) => ({
          file,
          line: yaml.locate(['implies', scope, i]).line,
        })),
      })
    }
    for (const [name, server] of Object.entries(data.servers)) {
      const other = serverFrom.get(name)
      if (other)
        problems.push({
          file,
          ...yaml.locate(['servers', name]),
          message: `server ${name} is also defined in ${other}`,
        })
      const src = (path: PropertyKey[]): Source => ({ file, line: yaml.locate(path).line })
      const rules = {} as Record<Feature, Rule[]>
      for (const feature of FEATURES) {
        // First match wins, so the order is the file's, not the JS object's.
        const order = yaml.keysAt(['servers', name, feature]) ?? Object.keys(server[feature])
        rules[feature] = order.map((pattern) =>
          compileRule(pattern, server[feature][pattern]!, src(['servers', name, feature, pattern])),
        )
      }
      const find = {
        tools: ruleFinder(rules.tools),
        prompts: ruleFinder(rules.prompts),
        resources: ruleFinder(rules.resources),
      }
      servers.set(name, {
        access: server.access,
        accessSource: src(['servers', name, 'access']),
        rules,
        find,
      })
      serverFrom.set(name, file)
    }
    data.rateLimits.forEach((entry, i) => {
      const rule = compileRateRule(entry, { file, line: yaml.locate(['rateLimits', i]).line })
      const other = rateFrom.get(rule.id)
      if (other)
        problems.push({
          file,
          ...yaml.locate(['rateLimits', i]),
          message: `rate limit ${rule.id} is also defined in ${other}`,
        })
      rateFrom.set(rule.id, `${file}:${rule.source.line ?? '?'}`)
      rateLimits.push(rule)
    })
  }
  const implies = compileImplies([...implications.values()])
  for (const p of implies.problems) problems.push({ ...p.source, message: p.message })
  if (problems.length > 0) throw new ConfigError(problems)
  return { roles, implies: implies.hierarchy, servers, rateLimits, files }
}

function compileRule(pattern: string, value: RuleValue, source: Source): Rule {
  const matches = compileGlob(pattern)
  if (value === 'allow' || value === 'deny')
    return { pattern, matches, when: undefined, effect: { kind: value }, source }
  if (Array.isArray(value))
    return { pattern, matches, when: undefined, effect: { kind: 'scopes', scopes: value }, source }
  const effect: Effect = value.scopes
    ? { kind: 'scopes', scopes: value.scopes }
    : { kind: value.effect! }
  const when = new Map(
    Object.entries(value.when).map(([k, v]) => [k, new Set(typeof v === 'string' ? [v] : v)]),
  )
  return { pattern, matches, when, effect, source }
}

/**
 * The policy files `path` names: itself, or a folder's `*.yaml`/`*.yml` files in name order.
 * @throws ConfigError when it cannot be read or the folder holds none
 */
export function policyFiles(path: string): string[] {
  let stat: ReturnType<typeof statSync>
  try {
    stat = statSync(path)
  } catch (err) {
    throw new ConfigError([
      { file: path, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` },
    ])
  }
  if (!stat.isDirectory()) return [path]
  const files = readdirSync(path)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(path, f))
  if (files.length === 0)
    throw new ConfigError([{ file: path, message: 'the policy folder holds no .yaml file' }])
  return files
}
