// `mcp-edge tools` and `validate` with a pin file, as operators run them: real processes,
// real exit codes, real output.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { runCli } from '../helpers/cli-run.js'

const A = `sha256:${'a'.repeat(64)}`
const B = `sha256:${'b'.repeat(64)}`
const C = `sha256:${'c'.repeat(64)}`

const run = runCli

/** A config whose `files` server pins its tools, and its pin file (next to it). */
function setup(pins: string) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-pins-cli-'))
  const config = join(dir, 'gateway.yaml')
  writeFileSync(
    config,
    'servers:\n  files: { command: /bin/true, pinTools: true }\n  plain: { command: /bin/true }\n',
  )
  writeFileSync(join(dir, 'tool-pins.yaml'), pins)
  return { config, pins: join(dir, 'tool-pins.yaml') }
}

const PENDING = `# reviewed weekly\nservers:\n  files:\n    tools:\n      read: ${A}\n      write: ${A}\n    pending:\n      read: { hash: ${B}, seen: "2026-12-02T08:00:00.000Z", previous: ${A} }\n      new_tool: { hash: ${C}, seen: "2026-12-02T08:01:00.000Z" }\n`

describe('mcp-edge tools', () => {
  it('pins: pinned and pending per server, from the config', async () => {
    const t = setup(PENDING)
    const r = await run(['tools', 'pins', '--config', t.config])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(
      r.stdout,
      [
        `pin file: ${t.pins}`,
        'files',
        `  pinned   read  ${A}`,
        `  pinned   write  ${A}`,
        `  PENDING  new_tool  ${C}  seen 2026-12-02T08:01:00.000Z  (new)`,
        `  PENDING  read  ${B}  seen 2026-12-02T08:00:00.000Z  (approved: ${A})`,
        '',
      ].join('\n'),
    )
    const json = await run(['tools', 'pins', '--file', t.pins, '--json'])
    assert.equal(JSON.parse(json.stdout).servers.files.tools.read, A)
  })

  it('approve --all SERVER approves every pending change, keeping the comment', async () => {
    const t = setup(PENDING)
    const r = await run(['tools', 'approve', '--all', 'files', '--config', t.config])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, 'approved files "read"\napproved files "new_tool"\n')
    const text = readFileSync(t.pins, 'utf8')
    assert.match(text, /^# reviewed weekly/)
    assert.ok(text.includes(`read: ${B}`) && text.includes(`new_tool: ${C}`))
    assert.doesNotMatch(text, /hash:/)
    const again = await run(['tools', 'approve', '--all', '--config', t.config])
    assert.equal(again.code, 1)
    assert.equal(again.stderr, 'mcp-edge tools: nothing is pending\n')
  })

  const refusals: [string, (t: ReturnType<typeof setup>) => string[], RegExp][] = [
    [
      'a server that does not pin',
      (t) => ['approve', 'plain', 'x', '--config', t.config],
      /plain does not pin its tools/,
    ],
    [
      'a bad --hash',
      (t) => ['approve', 'files', 'x', '--hash', 'sha256:XYZ', '--file', t.pins],
      /--hash is "sha256:"/,
    ],
    [
      'both --config and --file',
      (t) => ['pins', '--config', t.config, '--file', t.pins],
      /name the pin file twice/,
    ],
    ['approve without a tool', (t) => ['approve', 'files', '--file', t.pins], /SERVER TOOL/],
    ['an unknown subcommand', () => ['forget'], /unknown subcommand forget/],
    ['an unknown flag', (t) => ['pins', '--file', t.pins, '--yes'], /Unknown option '--yes'/],
  ]
  for (const [what, args, message] of refusals)
    it(`refuses ${what} (exit 2, usage)`, async () => {
      const r = await run(['tools', ...args(setup(PENDING))])
      assert.equal(r.code, 2)
      assert.match(r.stderr, message)
    })

  it('a broken pin file: exit 2 with file:line, and nothing written', async () => {
    const broken = `servers:\n  files:\n    tools:\n      read: ${A}\n      read: ${B}\n`
    const t = setup(broken)
    const r = await run(['tools', 'approve', 'files', 'read', '--hash', C, '--file', t.pins])
    assert.equal(r.code, 2)
    assert.match(r.stderr, new RegExp(`${t.pins}:5:7: Map keys must be unique`))
    assert.equal(readFileSync(t.pins, 'utf8'), broken)
  })
})

describe('mcp-edge validate', () => {
  it('checks the pin file of a config whose servers pin', async () => {
    const good = setup(PENDING)
    const ok = await run(['validate', '--config', good.config, '--skip-secrets'])
    assert.equal(ok.code, 0, ok.stderr)
    const bad = setup('servers:\n  files:\n    tools:\n      read: md5:00\n')
    const r = await run(['validate', '--config', bad.config, '--skip-secrets'])
    assert.equal(r.code, 1)
    assert.match(
      r.stderr,
      new RegExp(`${bad.pins}:4:7: servers\\.files\\.tools\\.read: a pinned hash`),
    )
  })
})
