// `mcp-edge tools`: the tool pins an operator approves (README "Tool pinning").
import { parseArgs } from 'node:util'
import { ConfigError } from '../config/errors.js'
import { defaultConfig } from '../config/defaults.js'
import { loadConfigFile } from '../config/load.js'
import { DEFAULT_TOOL_PINS_MAX_FILE_BYTES } from '../config/schema.js'
import { approveTool, pendingIn } from '../pins/edits.js'
import { loadPins } from '../pins/file.js'
import { PIN_HASH } from '../pins/hash.js'
import { editPins } from '../pins/write.js'
import { shown } from './shown.js'

/** Usage of the `tools` command, printed on any usage error. */
export const TOOLS_USAGE = `\
usage: mcp-edge tools pins [--config FILE | --file FILE] [--json]
       mcp-edge tools approve SERVER TOOL [--hash sha256:…] [--config FILE | --file FILE]
       mcp-edge tools approve --all [SERVER] [--config FILE | --file FILE]

  pins      list every pinned tool and every change waiting for approval
  approve   make the pending definition of TOOL (or every pending one, --all) the approved
            one; a running gateway reloads the file and shows the tool again
  --config  gateway config: its toolPins.file (default: the embedded default config)
  --file    the pin file itself (a copy of a read-only mounted one, say)
  --hash    approve this definition (from /readyz or the gateway's log) whatever is pending:
            how a change seen by a gateway with learn: false is approved

exit: 0 done, 1 nothing to approve, 2 usage or load error`

class UsageError extends Error {}

/**
 * Runs `mcp-edge tools <args>` and resolves with the exit code. Never throws: load errors
 * (with file:line) and usage errors go to stderr with exit code 2.
 */
export async function toolsCommand(args: string[]): Promise<number> {
  try {
    const [sub, ...rest] = args
    if (sub === '-h' || sub === '--help') return await out(`${TOOLS_USAGE}\n`, 0)
    if (sub === 'pins') return await pins(rest)
    if (sub === 'approve') return await approve(rest)
    throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand ${sub}`)
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err))
      process.stderr.write(`mcp-edge tools: ${(err as Error).message}\n${TOOLS_USAGE}\n`)
    else if (err instanceof ConfigError) process.stderr.write(`mcp-edge: ${err.message}\n`)
    else process.stderr.write(`mcp-edge: ${err instanceof Error ? err.message : String(err)}\n`)
    return 2
  }
}

const FILE_OPTIONS = { config: { type: 'string' }, file: { type: 'string' } } as const
/** `--help` (`-h`) after a subcommand: the usage, exit 0. */
const HELP = { help: { type: 'boolean', short: 'h' } } as const

/** The pin file named, its size cap, and the servers that pin (undefined with --file). */
function target(v: { config?: string; file?: string }): {
  file: string
  maxBytes: number
  pinned: Set<string> | undefined
} {
  if (v.config !== undefined && v.file !== undefined)
    throw new UsageError('--config and --file name the pin file twice; give one')
  if (v.file !== undefined)
    return { file: v.file, maxBytes: DEFAULT_TOOL_PINS_MAX_FILE_BYTES, pinned: undefined }
  const config = v.config === undefined ? defaultConfig() : loadConfigFile(v.config)
  return {
    file: config.toolPins.file,
    maxBytes: config.toolPins.maxFileBytes,
    pinned: new Set(
      Object.entries(config.servers)
        .filter(([, s]) => s.pinTools)
        .map(([name]) => name),
    ),
  }
}

async function pins(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { ...FILE_OPTIONS, ...HELP, json: { type: 'boolean' } },
  })
  if (v.help) return await out(`${TOOLS_USAGE}\n`, 0)
  if (positionals.length > 0) throw new UsageError(`unexpected ${positionals[0]}`)
  const t = target(v)
  const file = loadPins(t.file, t.maxBytes)
  if (v.json) {
    const servers = Object.fromEntries(
      [...file.servers].map(([server, p]) => [
        server,
        { tools: Object.fromEntries(p.tools), pending: Object.fromEntries(p.pending) },
      ]),
    )
    return out(`${JSON.stringify({ file: t.file, servers })}\n`, 0)
  }
  const lines = [`pin file: ${t.file}`]
  const names = new Set([...(t.pinned ?? []), ...file.servers.keys()])
  for (const server of [...names].sort()) {
    const p = file.servers.get(server)
    const note = t.pinned && !t.pinned.has(server) ? ' (pinTools is off in the config)' : ''
    lines.push(`${server}${note}`)
    for (const [tool, hash] of [...(p?.tools ?? [])].sort(byName))
      lines.push(`  pinned   ${shown(tool)}  ${hash}`)
    for (const [tool, pending] of [...(p?.pending ?? [])].sort(byName))
      lines.push(
        `  PENDING  ${shown(tool)}  ${pending.hash}  seen ${pending.seen}${pending.previous ? `  (approved: ${pending.previous})` : '  (new)'}`,
      )
    if (p === undefined || (p.tools.size === 0 && p.pending.size === 0))
      lines.push('  (nothing pinned yet)')
  }
  return out(`${lines.join('\n')}\n`, 0)
}

async function approve(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { ...FILE_OPTIONS, ...HELP, all: { type: 'boolean' }, hash: { type: 'string' } },
  })
  if (v.help) return await out(`${TOOLS_USAGE}\n`, 0)
  if (v.hash !== undefined && !PIN_HASH.test(v.hash))
    throw new UsageError('--hash is "sha256:" followed by 64 lowercase hex digits')
  if (v.all ? positionals.length > 1 || v.hash !== undefined : positionals.length !== 2)
    throw new UsageError(v.all ? '--all takes at most a SERVER (and no --hash)' : 'SERVER TOOL')
  const [server, tool] = positionals as [string | undefined, string | undefined]
  const t = target(v)
  if (server !== undefined && t.pinned && !t.pinned.has(server))
    throw new UsageError(`server ${server} does not pin its tools (pinTools) in the config`)
  const approved: string[] = []
  editPins(t.file, t.maxBytes, (doc) => {
    approved.length = 0
    const which = v.all
      ? pendingIn(doc).filter((p) => server === undefined || p.server === server)
      : [{ server: server!, tool: tool! }]
    for (const p of which)
      if (approveTool(doc, p.server, p.tool, v.hash))
        approved.push(`${p.server} ${JSON.stringify(p.tool)}`)
    return approved.length > 0
  })
  if (approved.length === 0) {
    process.stderr.write(
      v.all
        ? 'mcp-edge tools: nothing is pending\n'
        : `mcp-edge tools: nothing pending for ${server} ${JSON.stringify(tool)} (give --hash to pin a definition)\n`,
    )
    return 1
  }
  return out(`${approved.map((a) => `approved ${a}`).join('\n')}\n`, 0)
}

function byName(a: [string, unknown], b: [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

function out(text: string, code: number): Promise<number> {
  return new Promise((resolve) => process.stdout.write(text, () => resolve(code)))
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
}
