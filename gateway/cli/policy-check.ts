// `mcp-edge policy check`: what the gateway would decide for a caller, and why.
import { createReadStream, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import type { Principal, RoleClaim } from '../auth/principal.js'
import { loadConfigFile } from '../config/load.js'
import {
  DEFAULT_ROLE_CLAIMS,
  explain,
  principalFromClaims,
  type Explanation,
} from '../policy/explain.js'
import { loadPolicy } from '../policy/load.js'
import type { Feature, Policy } from '../policy/policy.js'
import { decideAccess, type ScopeBasis } from '../policy/evaluate.js'
import type { GatewayConfig } from '../config/schema.js'
import { endpointTarget, EndpointTargetError, type EndpointTarget } from './endpoint-target.js'
import { shown } from './shown.js'

/** Usage of the `policy` command, printed on any usage error. */
export const POLICY_USAGE = `\
usage: mcp-edge policy check [--policy FILE|DIR] [--config FILE] --claims FILE|- --server S
                             (--tool T | --prompt P | --resource URI) [--json]
       mcp-edge policy check --config FILE [--policy FILE|DIR] --claims FILE|- --endpoint E
                             [--server S] (--tool T | --prompt P | --resource URI) [--json]
       mcp-edge policy check [--policy FILE|DIR] [--config FILE] --batch FILE|-

  --policy    policy file or folder (default: the policies of --config)
  --config    gateway config, for its auth.roleClaims
              (default: ${DEFAULT_ROLE_CLAIMS.join(', ')})
  --claims    a JSON object of token claims, from a file or - for stdin
  --endpoint  an aggregated endpoint of --config: the name is the one its clients see
              (notes_read_note); with --server, that backend's own name (read_note)
  --json      print one JSON object instead of text
  --batch     JSON lines {"claims":{…},"server":"s","tool":"t"} (or "prompt" or "resource",
              "endpoint" instead of or with "server", optional "id"), from a file or - for
              stdin; one JSON line out per line in

exit: 0 allow, 1 deny or challenge, 2 usage or load error (--batch: 0 once every line
was answered, 2 if a line could not be: its output line holds "error")`

/** What one check names: a server's own tool, prompt or resource (reached through an endpoint). */
interface Target {
  server: string
  feature: Feature
  name: string
  via?: EndpointTarget
}

class UsageError extends Error {}

/**
 * Runs `mcp-edge policy <args>` and resolves with the exit code. Never throws: load errors
 * (with file:line) and usage errors go to stderr with exit code 2.
 */
export async function policyCommand(args: string[]): Promise<number> {
  try {
    const [sub, ...rest] = args
    if (sub === '-h' || sub === '--help') return await out(`${POLICY_USAGE}\n`, 0)
    if (sub === undefined) throw new UsageError('missing subcommand')
    if (sub !== 'check') throw new UsageError(`unknown subcommand ${sub}`)
    return await check(rest)
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      process.stderr.write(`mcp-edge policy: ${(err as Error).message}\n${POLICY_USAGE}\n`)
    } else {
      process.stderr.write(`mcp-edge: ${err instanceof Error ? err.message : String(err)}\n`)
    }
    return 2
  }
}

async function check(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    strict: true,
    options: {
      policy: { type: 'string' },
      config: { type: 'string' },
      claims: { type: 'string' },
      server: { type: 'string' },
      tool: { type: 'string' },
      prompt: { type: 'string' },
      resource: { type: 'string' },
      json: { type: 'boolean' },
      batch: { type: 'string' },
      endpoint: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (v.help) return await out(`${POLICY_USAGE}\n`, 0)
  const config = v.config === undefined ? undefined : loadConfigFile(v.config)
  const policyPath = v.policy ?? config?.policies
  if (policyPath === undefined) {
    const noPolicies = `${v.config} names no policies; give --policy`
    throw new UsageError(v.config === undefined ? '--policy is required' : noPolicies)
  }
  const roleClaims = config?.auth.roleClaims ?? DEFAULT_ROLE_CLAIMS

  if (v.batch !== undefined) {
    const extra = (
      ['claims', 'server', 'endpoint', 'tool', 'prompt', 'resource', 'json'] as const
    ).filter((k) => v[k] !== undefined)
    if (extra.length > 0) {
      throw new UsageError(`--batch takes its input from lines, not --${extra.join(', --')}`)
    }
    return batch(loadPolicy(policyPath), roleClaims, config, v.batch)
  }
  if (v.claims === undefined) throw new UsageError('--claims is required')
  if (v.server === undefined && v.endpoint === undefined)
    throw new UsageError('--server or --endpoint is required')
  const target = targetOf(config, { server: v.server, endpoint: v.endpoint, ...pick(v) })
  const policy = loadPolicy(policyPath)
  const claims = parseClaims(await readInput(v.claims), v.claims)
  const principal = principalFromClaims(claims, roleClaims)
  const result = explain(policy, principal, target.server, target.feature, target.name)
  const text = v.json
    ? `${JSON.stringify(report(target, principal, result, hiddenOn(policy, principal, target)))}\n`
    : human(target, principal, result, hiddenOn(policy, principal, target))
  return out(text, result.decision === 'allow' ? 0 : 1)
}

/** A server's own target, read back from an endpoint's name when the check names one. */
function targetOf(
  config: GatewayConfig | undefined,
  t: { server?: string | undefined; endpoint?: string | undefined; feature: Feature; name: string },
): Target {
  if (t.endpoint === undefined) return { server: t.server!, feature: t.feature, name: t.name }
  if (config === undefined)
    throw new UsageError('--endpoint needs --config (endpoints are defined there)')
  try {
    const via = endpointTarget(config, t.endpoint, t.feature, t.name, t.server)
    return { server: via.server, feature: t.feature, name: via.name, via }
  } catch (err) {
    if (err instanceof EndpointTargetError) throw new UsageError(err.message)
    throw err
  }
}

/** Exactly one of --tool, --prompt, --resource (or the same keys of a batch line). */
function pick(o: { tool?: unknown; prompt?: unknown; resource?: unknown }): Omit<Target, 'server'> {
  const given = (['tool', 'prompt', 'resource'] as const).filter((k) => o[k] !== undefined)
  if (given.length !== 1) throw new UsageError('give exactly one of tool, prompt, resource')
  const key = given[0]!
  const name = o[key]
  if (typeof name !== 'string') throw new UsageError(`${key} must be a string`)
  return { feature: `${key}s` as Feature, name }
}

async function batch(
  policy: Policy,
  roleClaims: readonly RoleClaim[],
  config: GatewayConfig | undefined,
  from: string,
): Promise<number> {
  const input = from === '-' ? process.stdin : createReadStream(from)
  let failed = false
  let n = 0
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++
    if (line.trim() === '') continue
    let result: Record<string, unknown>
    try {
      const entry = jsonObject(JSON.parse(line), 'a line')
      if (entry.endpoint !== undefined && typeof entry.endpoint !== 'string')
        throw new Error('endpoint must be a string')
      if (entry.server !== undefined && typeof entry.server !== 'string')
        throw new Error('server must be a string')
      if (entry.server === undefined && entry.endpoint === undefined)
        throw new Error('server or endpoint is required')
      const t = targetOf(config, {
        server: entry.server as string | undefined,
        endpoint: entry.endpoint as string | undefined,
        ...pick(entry),
      })
      const principal = principalFromClaims(jsonObject(entry.claims, 'claims'), roleClaims)
      const e = explain(policy, principal, t.server, t.feature, t.name)
      const id = entry.id === undefined ? {} : { id: entry.id }
      result = { line: n, ...id, ...report(t, principal, e, hiddenOn(policy, principal, t)) }
    } catch (err) {
      failed = true
      result = { line: n, error: (err as Error).message }
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
  }
  return out('', failed ? 2 : 0)
}

/**
 * True when the check goes through an endpoint to a backend the caller may not access: the
 * endpoint never opens that backend for them, so it answers as for a name it does not know.
 */
function hiddenOn(policy: Policy, p: Principal, t: Target): boolean {
  return t.via !== undefined && decideAccess(policy, p, t.server).effect !== 'allow'
}

function report(t: Target, p: Principal, e: Explanation, hidden: boolean) {
  const { via, ...target } = t
  const endpoint =
    via === undefined ? {} : { endpoint: via.endpoint, publicName: via.publicName, hidden }
  // JSON has no undefined: a decision without a rule says null.
  return { ...target, ...endpoint, caller: caller(p), ...e, rule: e.rule ?? null }
}

function caller(p: Principal) {
  return { sub: p.sub, client_id: p.clientId ?? null, roles: [...p.roles].sort() }
}

/** How `has` was formed, in words (README "Scopes and roles"). */
const BASIS: Record<ScopeBasis, string> = {
  'scopes within roles':
    "the token's scopes, only those its roles grant (the token carries a scope claim)",
  roles: 'what the roles grant (the token carries no scope claim)',
  scopes: "the token's scopes alone (the policy maps no roles)",
  all: 'every scope (--insecure-no-auth)',
}

const SINGULAR: Record<Feature, string> = {
  tools: 'tool',
  prompts: 'prompt',
  resources: 'resource',
}

function human(t: Target, p: Principal, e: Explanation, hidden: boolean): string {
  const list = (xs: readonly string[]) => (xs.length > 0 ? xs.join(' ') : '(none)')
  const where = (r: { pattern?: string; file: string; line: number | undefined }) =>
    `${r.pattern ?? 'access'} at ${r.file}${r.line === undefined ? '' : `:${r.line}`}`
  const c = caller(p)
  const answer = hidden
    ? `200, JSON-RPC error -32602, not found (endpoint ${t.via!.endpoint} does not open server ${t.server} for this caller)`
    : e.decision === 'allow'
      ? 'relayed to the server'
      : e.decision === 'deny'
        ? '200, JSON-RPC error -32010 denied by policy'
        : `403 insufficient_scope, scope="${e.required.join(' ')}", JSON-RPC error -32011`
  const lines = [
    `${e.decision}: ${SINGULAR[t.feature]} ${t.name} on server ${t.server}`,
    ...(t.via === undefined
      ? []
      : [`  endpoint  ${t.via.endpoint}, where clients see it as ${t.via.publicName}`]),
    `  reason    ${e.reason}`,
    `  rule      ${e.rule === undefined ? '(none)' : where(e.rule)}`,
    ...e.skipped.map((r) => `  skipped   ${where(r)} (its when does not hold)`),
    `  caller    sub ${c.sub ? shown(c.sub) : '(none)'}, client_id ${c.client_id === null ? '(none)' : shown(c.client_id)}, ` +
      `roles ${list(c.roles.map(shown))}`,
    `  has       ${list(e.has.map(shown))}`,
    ...e.implied.map(
      (i) =>
        `  implied   ${i.scope} through ${i.from}: ` +
        i.chain
          .map(
            (c) =>
              `${c.from} implies ${c.to} at ${c.file}${c.line === undefined ? '' : `:${c.line}`}`,
          )
          .join(', '),
    ),
    `  from      ${BASIS[e.basis]}`,
    `  required  ${list(e.required)}`,
    `  lacks     ${list(e.lacks)}`,
    `  gateway   ${answer}`,
  ]
  return `${lines.join('\n')}\n`
}

async function readInput(from: string): Promise<string> {
  if (from !== '-') {
    try {
      return readFileSync(from, 'utf8')
    } catch (err) {
      throw new Error(`${from}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`)
    }
  }
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function parseClaims(text: string, from: string): Record<string, unknown> {
  const where = from === '-' ? '(stdin)' : from
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new Error(`${where}: the claims are not JSON: ${(err as Error).message}`)
  }
  try {
    return jsonObject(value, 'the claims')
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`)
  }
}

function jsonObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new Error(`${what} must be a JSON object`)
  }
  return v as Record<string, unknown>
}

/** Writes `text` and resolves with `code` once stdout took it all (pipes may be asynchronous). */
function out(text: string, code: number): Promise<number> {
  return new Promise((resolve) => process.stdout.write(text, () => resolve(code)))
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
}
