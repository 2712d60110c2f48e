// What README shows a user running runs as shown:
// - every transcript (a code block whose first line is `$ mcp-edge …`) prints what the block
//   shows after it, line for line (`…` stands for any text); the command is given to the real
//   CLI from the project root, its `<<< '…'` on stdin. A transcript reading a claims file
//   (`--claims claims.json`) is given the claims its own `caller` line names (sub, client_id,
//   realm roles), as the README's decode line would have written them from such a token.
// - the walkthrough's SDK snippet (the `ts` block importing `@modelcontextprotocol/client`) runs
//   against a real gateway, prints the tool's result and exits by itself; the token the
//   walkthrough gets for it (the last `TOKEN=$(… mcp-edge token --resource URL)` before it) is
//   for the URL it calls: a token for another server is refused there.
// - the five-minute walkthrough's shell blocks run, in order and in one shell, against the
//   embedded default gateway (`npm start`'s, on free ports: `127.0.0.1:8080` stands for its URL,
//   `npx mcp-edge` for the CLI); each `# ` comment after a command is found in what that command
//   printed (`…` any text, a comment's line break at most one space).
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freePort } from '../helpers/ports.js'
import { type Stack, startStack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

/** The project root: this file runs as dist/test/cli/readme-runs.test.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const MAIN = path.join(ROOT, 'dist/gateway/main.js')
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8')

interface Block {
  /** README line of the opening fence. */
  line: number
  lang: string
  lines: string[]
}

/** Every fenced code block of `text`. */
function blocksOf(text: string): Block[] {
  const out: Block[] = []
  let open: Block | undefined
  for (const [i, l] of text.split('\n').entries()) {
    if (!l.startsWith('```')) open?.lines.push(l)
    else if (open) {
      out.push(open)
      open = undefined
    } else open = { line: i + 1, lang: l.slice(3).trim(), lines: [] }
  }
  return out
}

interface Transcript {
  line: number
  /** The arguments after `mcp-edge`. */
  args: string[]
  stdin: string
  /** The lines README shows it printing. */
  shown: string[]
}

/** A command line split as a shell would: words, '…' and "…" quoting, and `<<<` (here-string). */
function shellWords(command: string): { words: string[]; stdin: string } {
  const words: string[] = []
  let stdin = ''
  const re = /<<<\s*(?:'([^']*)'|"([^"]*)"|(\S+))|'([^']*)'|"([^"]*)"|(\S+)/g
  for (const m of command.matchAll(re)) {
    if (m[0].startsWith('<<<')) stdin = `${m[1] ?? m[2] ?? m[3]}\n`
    else words.push(m[4] ?? m[5] ?? m[6]!)
  }
  return { words, stdin }
}

/** The `$ mcp-edge …` transcripts of `text`. */
export function transcriptsOf(text: string): Transcript[] {
  const out: Transcript[] = []
  for (const b of blocksOf(text)) {
    if (b.lang !== '' || !b.lines[0]?.startsWith('$ mcp-edge ')) continue
    let n = 0
    let command = ''
    do command += `${b.lines[n]!.replace(/\\$/, '')} `
    while (b.lines[n++]!.endsWith('\\'))
    const { words, stdin } = shellWords(command.slice(2))
    out.push({ line: b.line, args: words.slice(1), stdin, shown: b.lines.slice(n) })
  }
  return out
}

/** Where `printed` differs from `shown` (README's lines, `…` any text), or undefined. */
export function mismatch(shown: string[], printed: string[]): string | undefined {
  const expected = shown.map((l) => l.trimEnd()).filter((l) => l !== '')
  const actual = printed.map((l) => l.trimEnd()).filter((l) => l !== '')
  for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
    const want = expected[i]
    const got = actual[i]
    const pattern =
      want === undefined
        ? undefined
        : new RegExp(`^${want.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replaceAll('…', '.*?')}$`)
    if (got === undefined || pattern === undefined || !pattern.test(got))
      return `line ${i + 1}: README shows ${JSON.stringify(want ?? '(nothing)')}, printed ${JSON.stringify(got ?? '(nothing)')}`
  }
  return undefined
}

/** The claims a transcript's `caller` line names (its `…` elisions dropped). */
function callerClaims(shown: string[]): Record<string, unknown> {
  const caller = shown.find((l) => /^\s*caller\s/.test(l))
  const m = caller && /caller\s+sub (\S+), client_id (\S+), roles (.+)$/.exec(caller)
  assert.ok(m, `a transcript reading a claims file shows its caller: ${caller}`)
  return {
    sub: m[1]!.replaceAll('…', ''),
    client_id: m[2],
    realm_access: { roles: m[3]!.trim().split(/\s+/) },
  }
}

/** Runs the CLI from the project root; resolves with its stdout, stderr and exit code. */
function run(
  args: string[],
  stdin: string,
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [MAIN, ...args],
      { cwd: ROOT, timeout: 60_000, env: { PATH: process.env.PATH ?? '' } },
      (err, stdout, stderr) =>
        resolve({ stdout, stderr, code: err ? Number((err as { code?: number }).code ?? 1) : 0 }),
    )
    child.stdin?.end(stdin)
  })
}

describe('README transcripts ($ mcp-edge …) print what they show', () => {
  const transcripts = transcriptsOf(README)
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-edge-readme-runs-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  /** A transcript's arguments, a claims file it names but the project lacks written to `dir`. */
  const argsOf = (t: Transcript): string[] =>
    t.args.map((a, i) => {
      if (t.args[i - 1] !== '--claims' || a === '-' || existsSync(path.join(ROOT, a))) return a
      const file = path.join(dir, `${t.line}-${path.basename(a)}`)
      writeFileSync(file, JSON.stringify(callerClaims(t.shown)))
      return file
    })

  test('there are transcripts, each with output', () => {
    assert.ok(transcripts.length >= 2, `${transcripts.length} transcripts`)
    for (const t of transcripts) assert.ok(t.shown.length > 0, `README.md:${t.line}`)
  })

  for (const t of transcripts)
    test(`README.md:${t.line}: mcp-edge ${t.args.slice(0, 2).join(' ')}`, async () => {
      const out = await run(argsOf(t), t.stdin)
      assert.equal(out.stderr, '', `README.md:${t.line}: nothing on stderr`)
      const wrong = mismatch(t.shown, out.stdout.split('\n'))
      assert.equal(wrong, undefined, `README.md:${t.line}: ${wrong}\n${out.stdout}`)
    })

  test('drift is caught: a line changed, left out or added, a stale rule line', async () => {
    const t = transcripts[0]!
    const printed = (await run(argsOf(t), t.stdin)).stdout.split('\n')
    assert.equal(mismatch(t.shown, printed), undefined)
    const rule = t.shown.findIndex((l) => /^\s*rule\s.*:\d+$/.test(l))
    assert.ok(rule > 0, 'the transcript shows a rule with its line')
    const stale = t.shown.map((l, i) => (i === rule ? l.replace(/\d+$/, (n) => `${+n + 1}`) : l))
    assert.match(mismatch(stale, printed) ?? '', new RegExp(`line ${rule + 1}:`))
    assert.ok(mismatch(t.shown.slice(0, -1), printed))
    assert.ok(mismatch([...t.shown, '  extra     line'], printed))
    assert.ok(mismatch(t.shown.toSpliced(1, 1), printed))
    assert.equal(mismatch(['a … c'], ['a b b c']), undefined, '… stands for any text')
    assert.ok(mismatch(['a … c'], ['a b b d']))
    assert.ok(mismatch(['a.c'], ['abc']), 'other characters are literal')
  })

  test('the reader splits a command as a shell does', () => {
    const [t] = transcriptsOf(
      '```\n$ mcp-edge policy check --claims - \\\n    --tool \'a b\' <<< \'{"sub":"x y"}\'\nallow\n```\n',
    )
    assert.deepEqual(t, {
      line: 1,
      args: ['policy', 'check', '--claims', '-', '--tool', 'a b'],
      stdin: '{"sub":"x y"}\n',
      shown: ['allow'],
    })
  })
})

describe("README's SDK snippet runs against a gateway and exits", () => {
  const blocks = blocksOf(README)
  const at = blocks.findIndex(
    (b) =>
      b.lang === 'ts' && b.lines.some((l) => l.includes("from '@modelcontextprotocol/client'")),
  )
  const snippet = blocks[at]!
  const code = snippet.lines.join('\n')
  /** The URL the snippet calls. */
  const url = /new URL\('([^']+)'\)/.exec(code)?.[1]
  /** The `--resource` of the last `TOKEN=$(… mcp-edge token …)` README shows before it. */
  const resource = README.split('\n')
    .slice(0, snippet.line)
    .filter((l) => /TOKEN=\$\(.*mcp-edge token/.test(l))
    .map((l) => /--resource (\S+?)\)?$/.exec(l)?.[1] ?? 'http://127.0.0.1:8080/mcp/echo')
    .at(-1)

  let stack: Stack
  let dir: string
  before(async () => {
    stack = await startStack()
    dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-edge-readme-sdk-'))
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'))
  })
  after(async () => {
    await stack.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Runs `source` as an ES module with TOKEN set; resolves what it printed and its exit code. */
  async function runSnippet(source: string, token: string) {
    const file = path.join(dir, `snippet-${Math.random().toString(36).slice(2)}.mjs`)
    writeFileSync(file, source)
    const child = spawn(process.execPath, [file], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let exit: number | null | undefined
    try {
      // However long it takes to start: until it printed, failed or exited.
      await new Promise<void>((resolve) => {
        const done = () => {
          if (/hello/.test(stdout) || stderr !== '' || exit !== undefined) resolve()
        }
        child.stdout.on('data', (d: Buffer) => ((stdout += d), done()))
        child.stderr.on('data', (d: Buffer) => ((stderr += d), done()))
        child.on('exit', (c) => ((exit = c), done()))
      })
      // The bound starts once it has printed: a client left open never exits.
      await waitFor(
        () => exit !== undefined,
        () => `the snippet exited; it printed ${stdout}`,
      )
    } finally {
      child.kill('SIGKILL')
    }
    return { stdout, stderr, exit }
  }

  test('the walkthrough gets its token for the URL the snippet calls', () => {
    assert.ok(url, 'the snippet names its URL')
    assert.equal(resource, url, 'the token is for the server the snippet calls')
  })

  test('it prints the tool result and exits 0', async () => {
    const source = code.replaceAll(url!, stack.local('echo'))
    const out = await runSnippet(source, await stack.token('alice', { server: 'echo' }))
    assert.equal(out.stderr, '')
    assert.match(out.stdout, /text: 'hello'/)
    assert.equal(out.exit, 0)
  })

  test('drift is caught: without close it never exits; a token for another server is refused', async () => {
    const source = code.replaceAll(url!, stack.local('echo'))
    const open = source.replace(/^await client\.close\(\)$/m, '')
    assert.notEqual(open, source, 'the snippet closes its client')
    await assert.rejects(
      runSnippet(open, await stack.token('alice', { server: 'echo' })),
      /the snippet exited/,
    )
    const other = await runSnippet(source, await stack.token('alice', { server: 'notes' }))
    assert.match(other.stderr, /the token was issued for another resource/)
    assert.notEqual(other.exit, 0)
  })
})

/** One command (or several lines run together) of the walkthrough, and the comment after it. */
export interface Step {
  line: number
  script: string
  /** The output README shows for it (comment lines, `# ` dropped), if any. */
  shows?: string[]
}

/** The shell steps of the README section headed `heading`, in order. */
export function stepsOf(text: string, heading: string): Step[] {
  const start = text.indexOf(`\n${heading}\n`)
  const end = text.indexOf('\n## ', start + 1)
  const before = text.slice(0, start).split('\n').length
  const steps: Step[] = []
  for (const b of blocksOf(text.slice(start, end)).filter((b) => b.lang === 'sh')) {
    let step: Step | undefined
    for (const [i, l] of b.lines.entries()) {
      if (l.startsWith('#')) {
        if (step) (step.shows ??= []).push(l.replace(/^# ?/, ''))
        continue
      }
      if (!step || step.shows) {
        step = { line: before + b.line + i, script: '' }
        steps.push(step)
      }
      step.script += `${l}\n`
    }
  }
  return steps
}

/** Whether `printed` holds what `shows` shows: `…` any text, a line break at most one space. */
export function holds(shows: string[], printed: string): boolean {
  const pattern = shows
    .map((l) =>
      l
        .trim()
        .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        .replaceAll('…', '[\\s\\S]*?'),
    )
    .join(' ?')
  return new RegExp(pattern).test(printed)
}

describe('the five-minute walkthrough runs as written', () => {
  const steps = stepsOf(README, '## A five-minute walkthrough')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-edge-readme-walk-'))
  let url: string
  let gateway: ReturnType<typeof spawn>
  let log = ''
  /** What each step printed, by index; and the shell's stderr. */
  let printed: string[] = []
  let stderr = ''
  const env = { PATH: process.env.PATH ?? '', MCP_EDGE_DEV_IDP_STATE: path.join(dir, 'idp.json') }

  before(async () => {
    const [port, idpPort] = [await freePort(), await freePort()]
    url = `http://127.0.0.1:${port}`
    gateway = spawn(process.execPath, [MAIN, 'serve'], {
      cwd: ROOT,
      env: { ...env, MCP_EDGE_PORT: `${port}`, MCP_EDGE_DEV_IDP_PORT: `${idpPort}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    // Listening, or gone: told by its log line or its exit, however long start-up takes.
    await new Promise<void>((resolve, reject) => {
      const read = (d: Buffer) => {
        log += d
        if (/"msg":"listening"/.test(log)) resolve()
      }
      gateway.stdout!.on('data', read)
      gateway.stderr!.on('data', read)
      gateway.once('exit', (code) => reject(new Error(`the gateway exited ${code}: ${log}`)))
    })
    // Every step in one shell (its variables carry on), each followed by a marker.
    const script = steps
      .map((s, i) => `${ours(s.script)}\nprintf '\\n@@readme-step ${i}@@\\n'\n`)
      .join('')
    const out = await new Promise<{ stdout: string; stderr: string }>((resolve) =>
      execFile(
        'bash',
        ['--norc', '--noprofile', '-c', script],
        { cwd: ROOT, env, timeout: 120_000 },
        (_e, o, e) => resolve({ stdout: o, stderr: e }),
      ),
    )
    printed = out.stdout.split(/\n@@readme-step \d+@@\n/)
    stderr = out.stderr
  })
  after(async () => {
    if (gateway.exitCode === null) {
      const exited = new Promise((r) => gateway.once('exit', r))
      gateway.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })

  /** README's text with this gateway's URL and CLI. */
  const ours = (text: string) =>
    text
      .replaceAll('http://127.0.0.1:8080', url)
      .replaceAll('npx mcp-edge', `node ${JSON.stringify(MAIN)}`)

  test('there are steps, most of them showing output', () => {
    assert.ok(steps.length >= 10, `${steps.length} steps`)
    assert.ok(steps.filter((s) => s.shows).length >= 6)
  })

  test('every step ran, the shell saw no error', () => {
    assert.equal(printed.length, steps.length + 1, stderr)
    assert.equal(stderr, '')
  })

  for (const [i, s] of steps.entries())
    if (s.shows)
      test(`README.md:${s.line}: ${s.script.split('\n')[0]!.slice(0, 60)}`, () => {
        const shows = s.shows!.map(ours)
        assert.ok(
          holds(shows, printed[i]!),
          `README shows\n${shows.join('\n')}\nprinted\n${printed[i]}`,
        )
      })

  test("README's audit line has the fields of the walkthrough's own, in their order", () => {
    const example = blocksOf(README).find(
      (b) => b.lang === 'json' && b.lines.some((l) => l.includes('"log":"audit"')),
    )
    assert.ok(example, 'README shows an audit line')
    const shown = Object.keys(JSON.parse(example.lines.join('\n')) as object)
    const line = log
      .split('\n')
      .filter((l) => l.includes('"log":"audit"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((a) => a.method === 'tools/call' && a.decision === 'allow' && a.outcome === 'ok')
    assert.ok(line, `an allowed call was audited: ${log}`)
    assert.deepEqual(shown, Object.keys(line))
  })

  test("the troubleshooting row of /register's length refusals quotes what the broker answers", async () => {
    const row = README.split('\n').find(
      (l) => l.startsWith('| broker:') && /Content-Length/.test(l),
    )
    assert.ok(row, 'README has the row')
    const said = row.split(' | ')[0]!
    const register = (init: RequestInit) =>
      fetch(`${url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        ...init,
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, string> }))
    const chunked = await register({
      body: new Blob(['{"redirect_uris":["http://127.0.0.1:3000/cb"]}']).stream(),
      duplex: 'half',
    } as RequestInit)
    const large = await register({ body: ' '.repeat(70_000) })
    for (const [status, answer] of [
      [411, chunked],
      [413, large],
    ] as const) {
      assert.equal(answer.status, status, JSON.stringify(answer.body))
      const description = answer.body.error_description!.replace(/\d{3,}/, 'N')
      for (const shown of [`\`${status}\``, `\`${answer.body.error}\``, `\`${description}\``])
        assert.ok(said.includes(shown), `README.md row: ${said}\nlacks ${shown}`)
    }
  })

  test('drift is caught: a changed value, a changed message, a line break inside a word', () => {
    const i = steps.findIndex((s) => s.shows?.some((l) => l.includes('scopes_supported')))
    assert.ok(i >= 0, 'the metadata step')
    const shows = steps[i]!.shows!.map(ours)
    assert.ok(holds(shows, printed[i]!))
    assert.ok(
      !holds(
        shows.map((l) => l.replace('"mcp:read"', '"mcp:write"')),
        printed[i]!,
      ),
    )
    assert.ok(
      !holds(
        shows.map((l) => l.replace('notes: In-memory', 'notes: On-disk')),
        printed[i]!,
      ),
    )
    assert.ok(holds(['a', 'b'], 'a b') && holds(['a', 'b'], 'ab') && !holds(['a', 'b'], 'a  b'))
    assert.ok(holds(['x … z'], 'x y\ny z') && !holds(['x … z'], 'x y'))
  })
})
