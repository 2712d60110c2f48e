// `servers.<name>.runAs` at start-up (config/run-as.ts): a hostile or impossible value is refused
// with its file and line, never half-loaded; a gateway that cannot run processes as other users
// (not root, without CAP_SETUID, CAP_SETGID and CAP_KILL) is refused naming the server, by
// `mcp-edge serve` and `mcp-edge validate` alike, run here as a real unprivileged user.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'
import type { RunAsHost } from '../../gateway/config/run-as.js'
import { readYamlFile } from '../../gateway/config/yaml.js'
import { CLI_MAIN, runCli } from '../helpers/cli-run.js'

const dir = mkdtempSync(join(tmpdir(), 'run-as-config-'))
// The unprivileged CLI reads its config file here.
chmodSync(dir, 0o755)
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

/** A gateway.yaml with one server `files` (and `more`, written as given) at known lines. */
function yaml(runAs: string, more = ''): string {
  const file = join(dir, `gateway-${files++}.yaml`)
  writeFileSync(
    file,
    [
      'auth: { issuer: "https://login.example" }',
      'servers:',
      '  files:',
      '    command: node',
      '    pool: { max: 10 }',
      `    runAs: ${runAs}`,
      more,
    ].join('\n'),
    { mode: 0o644 },
  )
  return file
}

/** A root gateway with every capability (as this machine's tests run). */
const ROOT: RunAsHost = { platform: 'linux', uid: 0, capabilities: 0x1ffffffffffn }

/** The problems loading `file` finds, as `line: path: message`; none when it loads. */
function problems(file: string, host: RunAsHost = ROOT): string[] {
  try {
    // As loadConfigFile does, checked against `host` instead of this process.
    const read = readYamlFile(file)
    validateConfig(read.value as object, { file, baseDir: dir, locate: read.locate, host })
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    return err.problems.map((p) => `${p.line}: ${p.path}: ${p.message}`)
  }
  return []
}

describe('runAs in gateway.yaml: hostile values are refused with file and line', () => {
  const cases: [string, string, string[]][] = [
    ['a range', '{ uids: "200000-200009", gid: 200000 }', []],
    ['a range as a list', '{ uids: [200000, 200009], gid: 200000 }', []],
    ['spaces around the dash', '{ uids: " 200000 - 200009 ", gid: 200000 }', []],
    ['one user', '{ uid: 1001, gid: 1001 }', []],
    [
      'reversed',
      '{ uids: "200009-200000", gid: 200000 }',
      ['6: servers.files.runAs.uids: from must not exceed to (an empty range)'],
    ],
    [
      'reversed, as a list',
      '{ uids: [200009, 200000], gid: 200000 }',
      ['6: servers.files.runAs.uids: from must not exceed to (an empty range)'],
    ],
    [
      'empty',
      '{ uids: "", gid: 200000 }',
      ['6: servers.files.runAs.uids: a range "from-to" of uids, or [from, to]'],
    ],
    [
      'an empty list',
      '{ uids: [], gid: 200000 }',
      ['6: servers.files.runAs.uids: a range "from-to" of uids, or [from, to]'],
    ],
    [
      'starting at 0',
      '{ uids: "0-20", gid: 200000 }',
      ['6: servers.files.runAs.uids.0: never 0 (root)'],
    ],
    ['a uid of 0', '{ uid: 0, gid: 1001 }', ['6: servers.files.runAs.uid: never 0 (root)']],
    ['a gid of 0', '{ uid: 1001, gid: 0 }', ['6: servers.files.runAs.gid: never 0 (root)']],
    [
      'a uid as a string',
      '{ uid: "1001", gid: 1001 }',
      ['6: servers.files.runAs.uid: a number (a uid or gid)'],
    ],
    [
      'a name for a uid',
      '{ uid: nobody, gid: 1001 }',
      ['6: servers.files.runAs.uid: a number (a uid or gid)'],
    ],
    [
      'range bounds as strings',
      '{ uids: ["200000", "200009"], gid: 200000 }',
      [
        '6: servers.files.runAs.uids.0: a number (a uid or gid)',
        '6: servers.files.runAs.uids.1: a number (a uid or gid)',
      ],
    ],
    [
      'negative',
      '{ uids: "-5-20", gid: 200000 }',
      ['6: servers.files.runAs.uids: a range "from-to" of uids, or [from, to]'],
    ],
    [
      'negative, as a list',
      '{ uids: [-5, 20], gid: 200000 }',
      ['6: servers.files.runAs.uids.0: never 0 (root)'],
    ],
    ['a negative uid', '{ uid: -1, gid: 1001 }', ['6: servers.files.runAs.uid: never 0 (root)']],
    [
      'huge: (uid_t)-1',
      '{ uid: 4294967295, gid: 1001 }',
      ['6: servers.files.runAs.uid: at most 4294967294'],
    ],
    [
      'huge: past 32 bits',
      '{ uids: "200000-99999999999", gid: 200000 }',
      ['6: servers.files.runAs.uids: a range "from-to" of uids, or [from, to]'],
    ],
    [
      'huge, as a list',
      '{ uids: [200000, 1e20], gid: 200000 }',
      [
        '6: servers.files.runAs.uids.1: a whole number',
        '6: servers.files.runAs.uids.1: at most 4294967294',
      ],
    ],
    ['a fraction', '{ uid: 1001.5, gid: 1001 }', ['6: servers.files.runAs.uid: a whole number']],
    [
      'three bounds',
      '{ uids: [1, 2, 3], gid: 200000 }',
      ['6: servers.files.runAs.uids: a range "from-to" of uids, or [from, to]'],
    ],
    [
      'a range and a uid',
      '{ uids: "200000-200009", uid: 1001, gid: 200000 }',
      [
        '6: servers.files.runAs: runAs needs either uids (a range, a uid per process) or uid (one user), not both',
      ],
    ],
    [
      'neither',
      '{ gid: 200000 }',
      [
        '6: servers.files.runAs: runAs needs either uids (a range, a uid per process) or uid (one user), not both',
      ],
    ],
    ['no gid', '{ uid: 1001 }', ['6: servers.files.runAs.gid: a number (a uid or gid)']],
    [
      'an unknown key',
      '{ uid: 1001, gid: 1001, groups: [27] }',
      ['6: servers.files.runAs: unknown key "groups"'],
    ],
    [
      'fewer uids than pool.max',
      '{ uids: "200000-200008", gid: 200000 }',
      [
        '6: servers.files.runAs.uids: holds 9 uids, fewer than pool.max (10): each live process needs a uid of its own',
      ],
    ],
  ]
  for (const [name, runAs, want] of cases)
    it(name, () => assert.deepEqual(problems(yaml(runAs)), want))

  it('shared mode: the range holds its replicas', () => {
    assert.deepEqual(
      problems(yaml('{ uids: "200000-200002", gid: 200000 }', '    mode: shared\n    replicas: 4')),
      [
        '6: servers.files.runAs.uids: holds 3 uids, fewer than replicas (4): each live process needs a uid of its own',
      ],
    )
    assert.deepEqual(
      problems(yaml('{ uids: "200000-200003", gid: 200000 }', '    mode: shared\n    replicas: 4')),
      [],
    )
  })

  it("two servers' uids overlap (ranges, or a range and one user)", () => {
    for (const other of [
      '{ uids: "200009-200020", gid: 200000 }',
      '{ uids: [199990, 200000], gid: 7 }',
      '{ uid: 200005, gid: 7 }',
    ])
      assert.deepEqual(
        problems(
          yaml(
            '{ uids: "200000-200009", gid: 200000 }',
            `  other:\n    command: node\n    runAs: ${other}\n    pool: { max: 1 }`,
          ),
        ),
        [
          "9: servers.other.runAs: overlaps the uids of server files: a process of one could read the other's",
        ],
      )
    assert.deepEqual(
      problems(
        yaml(
          '{ uids: "200000-200009", gid: 200000 }',
          '  other:\n    command: node\n    runAs: { uids: "200010-200019", gid: 200000 }\n    pool: { max: 10 }',
        ),
      ),
      [],
    )
  })
})

describe('runAs and the gateway that must do it', () => {
  const ok = yaml('{ uids: "200000-200009", gid: 200000 }')
  const needs =
    '6: servers.files.runAs: needs the gateway to run as root or with CAP_SETUID, CAP_SETGID and CAP_KILL'
  it('root with every capability: loads', () => assert.deepEqual(problems(ok), []))
  it('no capabilities (an unprivileged user), none readable, or only some: refused naming what lacks', () => {
    const host = (capabilities: bigint | undefined): RunAsHost => ({
      platform: 'linux',
      uid: 1000,
      capabilities,
    })
    assert.deepEqual(problems(ok, host(0n)), [
      `${needs}; it lacks CAP_SETUID, CAP_SETGID, CAP_KILL`,
    ])
    assert.deepEqual(problems(ok, host(undefined)), [
      `${needs}; it lacks CAP_SETUID, CAP_SETGID, CAP_KILL`,
    ])
    // CAP_SETUID and CAP_SETGID start it; without CAP_KILL the stop ladder could not end it.
    assert.deepEqual(problems(ok, host((1n << 6n) | (1n << 7n))), [`${needs}; it lacks CAP_KILL`])
    assert.deepEqual(problems(ok, host(1n << 5n)), [`${needs}; it lacks CAP_SETUID, CAP_SETGID`])
    assert.deepEqual(problems(ok, host((1n << 5n) | (1n << 6n) | (1n << 7n))), [])
  })
  it("a range or user holding the gateway's own uid", () => {
    const host: RunAsHost = { ...ROOT, uid: 200004 }
    assert.deepEqual(problems(ok, host), [
      "6: servers.files.runAs: holds the gateway's own uid 200004: its processes could read the gateway's secrets",
    ])
    assert.deepEqual(problems(yaml('{ uid: 200004, gid: 9 }'), host), [
      "6: servers.files.runAs: holds the gateway's own uid 200004: its processes could read the gateway's secrets",
    ])
  })
  it('not Linux', () => {
    assert.deepEqual(problems(ok, { ...ROOT, platform: 'darwin' }), [
      '6: servers.files.runAs: needs Linux',
    ])
  })

  it('mcp-edge validate run by an unprivileged user (nobody): exit 1, the server and what lacks named', async () => {
    const got = await runCli(['validate', '--config', ok, '--skip-secrets'], '', {
      uid: 65534,
      gid: 65534,
      cwd: '/',
    })
    assert.equal(got.code, 1, got.stdout + got.stderr)
    assert.equal(
      got.stderr,
      `mcp-edge: invalid configuration:\n  ${ok}:${needs.replace('6:', '6:5:')}; it lacks CAP_SETUID, CAP_SETGID, CAP_KILL\n`,
    )
    assert.equal(got.stdout, '')
    // Root: the same file is fine.
    const root = await runCli(['validate', '--config', ok, '--skip-secrets'])
    assert.equal(root.code, 0, root.stderr)
  })

  it('a command that only reads the file (tools pins) runs for anyone: runAs is what serve needs', async () => {
    const got = await runCli(['tools', 'pins', '--config', ok], '', {
      uid: 65534,
      gid: 65534,
      cwd: '/',
    })
    assert.equal(got.code, 0, got.stderr)
    assert.doesNotMatch(got.stderr, /runAs/)
  })

  const setpriv = '/usr/bin/setpriv'
  it('an unprivileged gateway given CAP_SETUID, CAP_SETGID and CAP_KILL (setpriv): loads; without CAP_KILL (it could not signal its processes): refused', {
    skip: !existsSync(setpriv) && 'setpriv (util-linux) not installed',
  }, async () => {
    /** `args` run by node as nobody with `caps` (inheritable and ambient: kept across exec). */
    const asNobody = (caps: string, args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(
          setpriv,
          [
            '--reuid=65534',
            '--regid=65534',
            '--clear-groups',
            `--inh-caps=${caps}`,
            `--ambient-caps=${caps}`,
            process.execPath,
            ...args,
          ],
          { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] },
        )
        let stdout = ''
        let stderr = ''
        p.stdout.on('data', (d: Buffer) => (stdout += d))
        p.stderr.on('data', (d: Buffer) => (stderr += d))
        p.on('close', (code) => resolve({ code, stdout, stderr }))
      })
    const as = (caps: string) =>
      asNobody(caps, [CLI_MAIN, 'validate', '--config', ok, '--skip-secrets'])
    // Why CAP_KILL: with the other two a gateway starts a process as another uid, and cannot
    // signal it (the stop ladder's SIGTERM and SIGKILL would fail with EPERM).
    const signals = async (caps: string) => {
      const code = `const c = require('node:child_process').spawn('sleep', ['600'], { uid: 200190, gid: 200190, stdio: 'ignore' })
c.on('spawn', () => { let said = 'signalled'; try { process.kill(c.pid, 'SIGKILL') } catch (e) { said = e.code }
  process.stdout.write(JSON.stringify({ pid: c.pid, said })); process.exit(0) })`
      const got = await asNobody(caps, ['-e', code])
      return JSON.parse(got.stdout) as { pid: number; said: string }
    }
    const without = await signals('+setuid,+setgid')
    try {
      assert.equal(without.said, 'EPERM')
    } finally {
      process.kill(without.pid, 'SIGKILL')
    }
    assert.equal((await signals('+setuid,+setgid,+kill')).said, 'signalled')
    const all = await as('+setuid,+setgid,+kill')
    assert.equal(all.code, 0, all.stderr)
    const noKill = await as('+setuid,+setgid')
    assert.equal(noKill.code, 1)
    assert.match(noKill.stderr, /runAs: needs the gateway .*; it lacks CAP_KILL\n$/)
  })
})
