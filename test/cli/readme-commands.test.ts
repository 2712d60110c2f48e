// Every `mcp-edge` command line README shows (in code blocks and code spans) names a command
// the CLI has, a subcommand it has, and flags its parser takes: each command word and flag is
// given to the real CLI, which must not answer "unknown command", "unknown subcommand" or
// "Unknown option". A flag no parser knows is checked to get that answer, so the probe can fail.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

/** The project root: this file runs as dist/test/cli/readme-commands.test.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const MAIN = path.join(ROOT, 'dist/gateway/main.js')
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8')

/** Commands with subcommands, and what README may write as a subcommand's operand. */
const WITH_SUBCOMMANDS = new Set(['policy', 'secrets', 'tools'])

export interface Use {
  line: number
  command: string
  /** The subcommand the flag is given with (policy, secrets, tools), else ''. */
  sub: string
  /** A flag, with whether README writes a value after it; undefined for the command alone. */
  flag?: string
  value?: boolean
}

/** The text of every code span and code block line of a README, with its line. */
function codeTexts(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = []
  let inBlock = false
  for (const [i, l] of text.split('\n').entries()) {
    if (l.startsWith('```')) {
      inBlock = !inBlock
      continue
    }
    if (inBlock) out.push({ line: i + 1, text: l.replace(/\s#\s.*$/, '') })
    else for (const m of l.matchAll(/`([^`]+)`/g)) out.push({ line: i + 1, text: m[1]! })
  }
  return out
}

/** The command words and flags of each `mcp-edge …` invocation in `text`. */
export function usesOf(text: string): Use[] {
  const uses: Use[] = []
  for (const code of codeTexts(text))
    for (const m of code.text.matchAll(/(?:^|[\s($])mcp-edge +([a-z]+)((?: +[^\s`]+)*)/g)) {
      const command = m[1]!
      const words = m[2]!.trim().split(/ +/).filter(Boolean)
      let sub = ''
      uses.push({ line: code.line, command, sub })
      for (const [i, w] of words.entries()) {
        const prev = words[i - 1]
        // A subcommand: the first word, or the first after a `|` alternative.
        if (WITH_SUBCOMMANDS.has(command) && /^[a-z]+$/.test(w) && (i === 0 || prev === '|')) {
          sub = w
          uses.push({ line: code.line, command, sub })
        }
        const flag = /^\[?(--[a-z][a-z-]*)/.exec(w)?.[1]
        if (flag === undefined) continue
        const next = words[i + 1]
        const value = next !== undefined && !/[\]|]$/.test(w) && !/^(--|\[|\(|\||\\$)/.test(next)
        uses.push({ line: code.line, command, sub, flag, value })
      }
    }
  return uses
}

/** Runs the CLI; resolves with what it printed (both streams). */
function run(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [MAIN, ...args],
      {
        cwd: ROOT,
        timeout: 60_000,
        env: {
          PATH: process.env.PATH ?? '',
          MCP_EDGE_DEV_IDP_STATE: '/nonexistent/state.json',
          ...env,
        },
      },
      (_err, stdout, stderr) => resolve(`${stdout}${stderr}`),
    )
    child.stdin?.end()
  })
}

/**
 * The arguments that give a command (and subcommand) with `flags` to the CLI so that it stops
 * right after parsing: a config that does not exist (serve, validate, tools), an operand where
 * the subcommand needs one.
 */
function probe(command: string, sub: string, flags: Use[]): string[] {
  const args = [command]
  if (sub) args.push(sub)
  if (command === 'secrets' && sub !== '' && sub !== 'list') args.push('readme-name')
  if (command === 'tools' && sub === 'approve') args.push('s', 't')
  for (const f of flags) {
    args.push(f.flag!)
    if (f.value) args.push('readme-value')
  }
  const configured = flags.some((f) => f.flag === '--config' || f.flag === '--file')
  if ((command === 'serve' || command === 'validate' || sub !== '') && !configured)
    if (command !== 'secrets' && command !== 'token' && command !== 'policy')
      args.push('--config', '/nonexistent/gateway.yaml')
  return args
}

const REFUSED = /unknown command|unknown subcommand|Unknown option/i

describe('README command lines', () => {
  const uses = usesOf(README)
  /** Each command and subcommand README shows, with the flags it shows for it (once each). */
  const groups = new Map<string, { command: string; sub: string; line: number; flags: Use[] }>()
  for (const u of uses) {
    const key = `${u.command} ${u.sub}`.trim()
    const g = groups.get(key) ?? { command: u.command, sub: u.sub, line: u.line, flags: [] }
    if (u.flag && !g.flags.some((f) => f.flag === u.flag)) g.flags.push(u)
    groups.set(key, g)
  }
  const distinct = [...groups.values()].flatMap((g) => [g, ...g.flags])
  const bogus: Use = { line: 0, command: '', sub: '', flag: '--readme-no-such-flag', value: true }
  /**
   * Every probe the tests ask about, by key: each group's with its flags, each group's with a
   * flag no parser knows (`policy`, `secrets`, `tools` alone take no flag before their
   * subcommand), and a subcommand and a command the CLI does not have.
   */
  const probes: [string, string[]][] = [
    ...[...groups].map(([key, g]): [string, string[]] => [key, probe(g.command, g.sub, g.flags)]),
    ...[...groups]
      .filter(([, g]) => !(WITH_SUBCOMMANDS.has(g.command) && g.sub === ''))
      .map(([key, g]): [string, string[]] => [`drift: ${key}`, probe(g.command, g.sub, [bogus])]),
    ['drift: tools pin', ['tools', 'pin']],
    ['drift: secret list', ['secret', 'list']],
  ]
  /** What the CLI said to each probe, all run two at a time from the start. */
  const said = new Map<string, Promise<string>>()
  const queue = [...probes]
  const runNext = async (): Promise<void> => {
    const next = queue.shift()
    if (!next) return
    const out = run(next[1])
    said.set(next[0], out)
    await out
    return runNext()
  }
  const done = Promise.all([runNext(), runNext()])
  const answer = async (key: string) => {
    await done
    return said.get(key)!
  }

  test('README shows every command', () => {
    const commands = new Set(uses.map((u) => u.command))
    for (const c of ['serve', 'token', 'validate', 'policy', 'secrets', 'tools'])
      assert.ok(commands.has(c), c)
    assert.ok(distinct.length > 25, `${distinct.length} command words and flags`)
  })

  test('the command line reader sees subcommands, flags and values', () => {
    const shown = (t: string) =>
      usesOf(`\`${t}\``).map((u) => [u.command, u.sub, u.flag ?? '', u.value ?? false].join(' '))
    assert.deepEqual(
      shown('mcp-edge tools    approve SERVER TOOL [--hash sha256:…] | approve --all [SERVER]'),
      [
        'tools   false',
        'tools approve  false',
        'tools approve --hash true',
        'tools approve  false',
        'tools approve --all false',
      ],
    )
    assert.deepEqual(shown('mcp-edge token --scope "a b" --user ada'), [
      'token   false',
      'token  --scope true',
      'token  --user true',
    ])
  })

  for (const [key, g] of groups)
    test(`README.md:${g.line}: mcp-edge ${key} is a command`, async () => {
      assert.doesNotMatch(await answer(key), /unknown (sub)?command/i)
    })
  for (const [key, g] of groups)
    for (const f of g.flags)
      test(`README.md:${f.line}: mcp-edge ${key} ${f.flag}`, async () => {
        const out = await answer(key)
        assert.doesNotMatch(out, new RegExp(`Unknown option '${f.flag}'`), out)
        if (f.value) assert.doesNotMatch(out, /Unexpected argument 'readme-value'/, out)
      })

  test('drift is caught: a flag, a subcommand and a command the CLI does not have', async () => {
    let flagged = 0
    for (const [key, g] of groups) {
      if (!probes.some(([k]) => k === `drift: ${key}`)) continue
      flagged++
      const out = await answer(`drift: ${key}`)
      assert.match(out, /Unknown option '--readme-no-such-flag'/, `${g.command} ${g.sub}: ${out}`)
    }
    assert.ok(flagged >= 6, `${flagged} commands given an unknown flag`)
    assert.match(await answer('drift: tools pin'), REFUSED)
    assert.match(await answer('drift: secret list'), REFUSED)
  })
})
