// An operator's `mcp-edge secrets purge` leaves one audit line where the gateway writes its own
// (`log.audit`): who ran it, whose secrets, which names (as the command printed them, a planted
// name's control and bidi characters escaped), whether the user was signed out, the outcome;
// never a value. With `log.auditOnFailure: refuse` an audit file that cannot be written stops
// the purge before it deletes anything; with `continue` the purge is done and says the line is
// missing. The built CLI against a real Redis. (Refusals' lines: secrets-purge.test.ts.)
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { initBody } from '../checklist/open-session.js'
import { operator } from '../../gateway/cli/purge-audit.js'
import { shown } from '../../gateway/cli/shown.js'
import { UserSecrets, type SecretOwner } from '../../gateway/credentials/secrets.js'
import { markKeys } from '../../gateway/store/key-check.js'
import { createSealer } from '../../gateway/store/sealed.js'
import type { Store } from '../../gateway/store/store.js'
import { CLI_MAIN, runCli } from '../helpers/cli-run.js'
import { postMcp } from '../helpers/post-mcp.js'
import { NO_REDIS, redisStoreAt, startRedis, type RedisServer } from '../helpers/redis.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

// A suite run through sudo inherits SUDO_USER and SUDO_UID: the cases that need them set them.
delete process.env.SUDO_USER
delete process.env.SUDO_UID

const ISS = 'https://idp.example'
const alice: SecretOwner = { iss: ISS, sub: 'alice' }
const PREFIX = 'purge-audit:'
const REDIS_ENV = 'MCP_EDGE_TEST_PURGE_AUDIT_REDIS'
const VALUES = ['ghp_alice-secret-value', 'jira-alice-secret-value']
const POLICIES = fileURLToPath(new URL('../../../policies/', import.meta.url))
/** The gateway's user in the cases run as root: not root, owning the audit file's folder. */
const NOBODY = 65534
const IS_ROOT = process.getuid?.() === 0
/** What the purge says of an audit file that is not there. */
const NONE = 'ENOENT: there is no such file, and the purge never makes it: the gateway does'
const NO_READER = 'ENXIO: a FIFO no one reads'

describe('the audit line of mcp-edge secrets purge (real Redis, the built CLI)', {
  skip: NO_REDIS,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-purge-audit-'))
  const key = randomBytes(32)
  const keysFile = join(dir, 'keys.json')
  writeFileSync(keysFile, JSON.stringify({ k1: key.toString('base64url') }), { mode: 0o600 })
  // The gateway's audit file, as the gateway made it: the purge appends only to one there.
  const auditFile = join(dir, 'audit.log')
  writeFileSync(auditFile, '')
  let configs = 0
  /** The gateway's config with `log` (and `more`) as given, as a file (JSON is YAML). */
  const configFile = (
    log: Record<string, unknown> = { audit: auditFile },
    more: Record<string, unknown> = {},
    keys = keysFile,
  ) => {
    const path = join(dir, `gateway-${++configs}.yaml`)
    const config = {
      store: { kind: 'redis', url: { env: REDIS_ENV }, keyPrefix: PREFIX, connectTimeout: 500 },
      secrets: { keys: { file: keys }, active: 'k1' },
      servers: { vault: { command: process.execPath } },
      log,
      ...more,
    }
    writeFileSync(path, JSON.stringify(config))
    return path
  }
  const purge = (path: string, sub = 'alice') =>
    runCli(['secrets', 'purge', '--subject', sub, '--issuer', ISS, '--config', path])
  /** The audit file's text after `from` characters. */
  const written = (from = 0) =>
    existsSync(auditFile) ? readFileSync(auditFile, 'utf8').slice(from) : ''
  const lines = (text: string) =>
    text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  const me = userInfo()
  // The CLI names the audit login uid when one is recorded and it is not the runner's own (a
  // suite run from an ssh login through sudo): read here, so the expectation holds on any host.
  const recorded = existsSync('/proc/self/loginuid')
    ? Number(readFileSync('/proc/self/loginuid', 'utf8').trim())
    : Number.NaN
  const login =
    Number.isSafeInteger(recorded) && recorded !== 4294967295 && recorded !== me.uid
      ? `, logged in as uid ${recorded}`
      : ''

  let redis: RedisServer
  let store: Store
  let secrets: UserSecrets
  before(async () => {
    redis = await startRedis()
    process.env[REDIS_ENV] = redis.url
    store = await redisStoreAt(redis.url, PREFIX)
    const sealer = createSealer({ k1: key }, 'k1')
    secrets = new UserSecrets({ store, sealer })
    // As a gateway of this version leaves them: the purge's check passes without a note.
    await markKeys(store, sealer)
  })
  after(async () => {
    await store?.close()
    await redis?.close()
    delete process.env[REDIS_ENV]
  })
  beforeEach(async () => {
    await secrets.purge(alice)
    await secrets.set(alice, 'github_token', VALUES[0]!)
    await secrets.set(alice, 'jira', VALUES[1]!)
  })

  it('one line: who ran it, whose, which names, not signed out (no broker), the outcome; no value', async () => {
    const from = written().length
    const r = await purge(configFile())
    assert.equal(r.code, 0, r.stderr)
    const text = written(from)
    const [line, ...more] = lines(text)
    assert.deepEqual(more, [])
    assert.deepEqual(
      { ...line, time: undefined },
      {
        level: 'info',
        time: undefined,
        service: 'mcp-edge',
        log: 'audit',
        sub: 'alice',
        iss: ISS,
        server: '',
        method: 'secrets/purge',
        decision: 'allow',
        rule: 'operator command',
        outcome: 'purged 2 secrets',
        names: ['github_token', 'jira'],
        signedOut: false,
        operator: `${me.username} (uid ${me.uid})${login}`,
        msg: 'audit',
      },
    )
    for (const v of VALUES) assert.ok(!text.includes(v), 'a value in the audit line')
    // Nothing left: the next run's line says so.
    const again = written().length
    assert.equal((await purge(configFile())).code, 0)
    const [next] = lines(written(again))
    assert.deepEqual([next!.outcome, next!.names], ['no secrets held', []])
  })

  it('SUDO_USER with no login uid to check it by: named as not verified, after the OS user (quoted when not plain)', async () => {
    const from = written().length
    process.env.SUDO_USER = 'bob\u202e'
    const running = purge(configFile())
    delete process.env.SUDO_USER
    assert.equal((await running).code, 0)
    const [line] = lines(written(from))
    // (Verified against the login uid: stop63's operator cases.)
    assert.equal(
      line!.operator,
      `${me.username} (uid ${me.uid})${login}, SUDO_USER "bob\\u202e" (not verified: not the login's)`,
    )
  })

  it('names a store writer planted (control, bidi, quote, line break) as the command printed them', async () => {
    const user = secrets.userKey(alice)
    const planted = [
      'x\u001b[2J\u001b[Hpurged 0 secrets\nfake',
      'evil\u202etxt.exe',
      'quote"d\\',
      'line\u2028sep',
      'zero\u200bwidth',
    ]
    for (const name of planted) await store.set(`secrets:${user}:${name}`, 'not sealed')
    const from = written().length
    const r = await purge(configFile())
    assert.equal(r.code, 0, r.stderr)
    const printed = r.stdout
      .replace(/^purged 7 secrets of subject alice of https:\/\/idp\.example: /, '')
      .trimEnd()
    const text = written(from)
    const [line] = lines(text)
    const names = line!.names as string[]
    assert.equal(names.length, 7)
    // Each as shown() prints it, in the order printed: the audit line and the terminal agree.
    assert.equal(names.join(', '), printed)
    for (const name of planted) assert.ok(names.includes(shown(name)), shown(name))
    // Decoded, no name acts on a terminal or hides; the line is one line of JSON.
    assert.ok(!/[\p{Cc}\p{Cf}\u2028\u2029]/u.test(names.join('')), JSON.stringify(names))
    assert.ok(!/[\u001b\u202e\u2028\u200b]/.test(text), JSON.stringify(text))
    assert.equal(text.split('\n').length, 2)
    assert.deepEqual(await store.keysWithPrefix(`secrets:${user}`), [])
  })

  it('log.audit stdout: the line follows what the command prints', async () => {
    const r = await purge(configFile({ audit: 'stdout' }))
    assert.equal(r.code, 0, r.stderr)
    const [human, json, ...rest] = r.stdout.split('\n')
    assert.equal(human, `purged 2 secrets of subject alice of ${ISS}: github_token, jira`)
    assert.deepEqual(rest, [''])
    const line = JSON.parse(json!) as Record<string, unknown>
    assert.deepEqual([line.method, line.names], ['secrets/purge', ['github_token', 'jira']])
  })

  // Root opens any file it may: unwritable here is a directory, or a path through a file.
  const unwritable = () => {
    const a = join(dir, `is-a-dir-${++configs}`)
    mkdirSync(a)
    const b = join(dir, `a-file-${++configs}`)
    writeFileSync(b, '')
    return [
      { path: a, code: 'EISDIR' },
      // A folder that is a file: the purge makes no folder (the gateway does).
      { path: join(b, 'audit.log'), code: 'ENOTDIR' },
    ]
  }

  it('log.auditOnFailure refuse and an audit file that cannot be written: exit 1, nothing deleted', async () => {
    for (const { path, code } of unwritable()) {
      const r = await purge(configFile({ audit: path, auditOnFailure: 'refuse' }))
      assert.equal(r.code, 1, r.stdout)
      assert.equal(r.stdout, '')
      assert.equal(
        r.stderr,
        `mcp-edge secrets purge: the audit log ${path} cannot be written (${code}) and log.auditOnFailure is refuse: nothing was deleted\n`,
      )
      assert.equal(await secrets.value(alice, 'github_token'), VALUES[0])
      assert.equal(await secrets.value(alice, 'jira'), VALUES[1])
    }
  })

  it('log.auditOnFailure continue (the default): the purge is done and says its line is missing', async () => {
    const { path, code } = unwritable()[0]!
    const r = await purge(configFile({ audit: path }))
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `purged 2 secrets of subject alice of ${ISS}: github_token, jira\n`)
    assert.equal(
      r.stderr,
      `mcp-edge secrets purge: the audit line could not be written (${code}): this run is not in the audit log ${path}\n`,
    )
    assert.deepEqual(await secrets.list(alice), [])
  })

  it('sets racing the purge: the line names each exactly when the purge deleted it', async () => {
    // Sets one after another for as long as the purge runs (refused at the cap until the purge
    // frees it): some land before it, some after, one may wait for its lock.
    let running = true
    const from = written().length
    const r = purge(configFile()).finally(() => {
      running = false
    })
    const set: string[] = []
    while (running) {
      const name = `racer${set.length}`
      try {
        await secrets.set(alice, name, 'racer-secret-value')
        set.push(name)
      } catch (err) {
        if (!/at most \d+ secrets per user/.test(String(err))) throw err
      }
    }
    assert.equal((await r).code, 0)
    const [line] = lines(written(from))
    const names = line!.names as string[]
    assert.ok(names.includes('github_token') && names.includes('jira'), JSON.stringify(names))
    for (const name of set) {
      const left = await secrets.value(alice, name)
      assert.equal(names.includes(name), left === undefined, JSON.stringify({ name, names }))
    }
    assert.ok(!written(from).includes('secret-value'))
  })

  it('review63 (low): refuse, and an audit file that opens but takes no line (a full disk: /dev/full): exit 1, nothing deleted', {
    skip: !existsSync('/dev/full'),
  }, async () => {
    const r = await purge(configFile({ audit: '/dev/full', auditOnFailure: 'refuse' }))
    assert.equal(r.code, 1, r.stdout)
    assert.equal(r.stdout, '')
    assert.match(
      r.stderr,
      /^mcp-edge secrets purge: the audit log \/dev\/full cannot be written \(ENOSPC\) and log\.auditOnFailure is refuse: nothing was deleted\n/,
    )
    assert.equal(await secrets.value(alice, 'github_token'), VALUES[0])
  })

  it('refuse and a writable file: a line before deleting (deleting), then the outcome', async () => {
    const audit = join(dir, 'refuse.log')
    writeFileSync(audit, '')
    const r = await purge(configFile({ audit, auditOnFailure: 'refuse' }))
    assert.equal(r.code, 0, r.stderr)
    const got = readFileSync(audit, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.deepEqual(
      got.map((l) => [l.decision, l.outcome, l.names]),
      [
        ['allow', 'deleting', []],
        ['allow', 'purged 2 secrets', ['github_token', 'jira']],
      ],
    )
  })

  it("review63: the operator field: sudo's name only beside the login uid it matches (injected login uids)", () => {
    const who = `${me.username} (uid ${me.uid})`
    const cases: [string, Parameters<typeof operator>[0], string][] = [
      ['no login uid, no sudo', { env: {} }, who],
      ['logged in as this user', { env: {}, loginUid: me.uid }, who],
      [
        'logged in as another, no sudo (su)',
        { env: {}, loginUid: 1000 },
        `${who}, logged in as uid 1000`,
      ],
      [
        "sudo by the login's user",
        { env: { SUDO_USER: 'bob', SUDO_UID: '1000' }, loginUid: 1000 },
        `${who}, through sudo by bob (login uid 1000)`,
      ],
      [
        "SUDO_UID not the login's",
        { env: { SUDO_USER: 'bob', SUDO_UID: '1001' }, loginUid: 1000 },
        `${who}, logged in as uid 1000, SUDO_USER bob (not verified: not the login's)`,
      ],
      [
        'SUDO_USER without SUDO_UID',
        { env: { SUDO_USER: 'bob' }, loginUid: 1000 },
        `${who}, logged in as uid 1000, SUDO_USER bob (not verified: not the login's)`,
      ],
      [
        'a name that redraws a terminal',
        { env: { SUDO_USER: 'bob\u001b[2K', SUDO_UID: '1000' }, loginUid: 1000 },
        `${who}, through sudo by "bob\\u001b[2K" (login uid 1000)`,
      ],
    ]
    for (const [what, o, expected] of cases) assert.equal(operator(o), expected, what)
  })
  /** The secrets beforeEach set are all still there: nothing was deleted. */
  const untouched = async () => {
    assert.equal(await secrets.value(alice, 'github_token'), VALUES[0])
    assert.equal(await secrets.value(alice, 'jira'), VALUES[1])
  }
  const refusedFor = (path: string, code: string) =>
    `mcp-edge secrets purge: the audit log ${path} cannot be written (${code}) and log.auditOnFailure is refuse: nothing was deleted\n`
  const missingFor = (path: string, code: string) =>
    `mcp-edge secrets purge: the audit line could not be written (${code}): this run is not in the audit log ${path}\n`
  const fifo = () => {
    const path = join(dir, `fifo-${++configs}`)
    execFileSync('mkfifo', [path])
    return path
  }

  it('purgeops61: refuse and an audit path the purge cannot append to: exit 1 at once (never waits on a FIFO), nothing deleted, nothing made', async () => {
    const link = (to: string) => {
      const path = join(dir, `link-${++configs}`)
      symlinkSync(to, path)
      return path
    }
    const noFolder = join(dir, `no-folder-${++configs}`, 'audit.log')
    const nothing = join(dir, `nothing-${++configs}`)
    const cases = [
      ...unwritable(),
      { path: fifo(), code: NO_READER },
      { path: link(fifo()), code: NO_READER },
      { path: noFolder, code: NONE },
      { path: link(nothing), code: NONE },
      // Opens, takes no line: the refusal's own line is missing too, and said so.
      ...(existsSync('/dev/full')
        ? [{ path: link('/dev/full'), code: 'ENOSPC', wrote: true }]
        : []),
    ]
    for (const { path, code, wrote } of cases as { path: string; code: string; wrote?: true }[]) {
      const r = await purge(configFile({ audit: path, auditOnFailure: 'refuse' }))
      const said = refusedFor(path, code) + (wrote ? missingFor(path, code) : '')
      assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', said])
      await untouched()
    }
    // Neither the missing folder nor the file a dangling link names was made.
    assert.equal(existsSync(dirname(noFolder)), false)
    assert.equal(existsSync(nothing), false)
  })

  it('purgeops61: continue and a FIFO no one reads, or no file: the purge is done at once and says its line is missing', async () => {
    for (const [path, code] of [
      [fifo(), NO_READER],
      [join(dir, `no-folder-${++configs}`, 'audit.log'), NONE],
    ] as const) {
      await secrets.set(alice, 'jira', VALUES[1]!)
      const r = await purge(configFile({ audit: path }))
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stderr, missingFor(path, code))
      assert.deepEqual(await secrets.list(alice), [])
    }
  })

  it('purgeops61: a FIFO a log shipper reads takes the lines; one whose reader takes nothing is given up after log.exitWait', async () => {
    const path = fifo()
    const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    /** What the FIFO holds now, read out. */
    const drain = () => {
      const buf = Buffer.alloc(65536)
      let text = ''
      for (;;) {
        try {
          const n = readSync(reader, buf)
          if (n === 0) return text
          text += buf.subarray(0, n).toString()
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return text
          throw err
        }
      }
    }
    try {
      const r = await purge(configFile({ audit: path, auditOnFailure: 'refuse' }))
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(
        lines(drain()).map((l) => [l.outcome, l.names]),
        [
          ['deleting', []],
          ['purged 2 secrets', ['github_token', 'jira']],
        ],
      )
      // The pipe filled by another writer: its reader takes nothing more.
      const filler = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
      assert.throws(() => {
        for (;;) writeSync(filler, Buffer.alloc(65536, 'x'))
      }, /EAGAIN/)
      closeSync(filler)
      await secrets.set(alice, 'github_token', VALUES[0]!)
      await secrets.set(alice, 'jira', VALUES[1]!)
      const refused = await purge(
        configFile({ audit: path, auditOnFailure: 'refuse', exitWait: 0 }),
      )
      const gaveUp = 'EAGAIN: its reader took nothing for log.exitWait'
      const given = `${gaveUp} 0 ms`
      assert.deepEqual(
        [refused.code, refused.stderr],
        [1, refusedFor(path, given) + missingFor(path, given)],
      )
      await untouched()
      const done = await purge(configFile({ audit: path, exitWait: 30 }))
      assert.deepEqual([done.code, done.stderr], [0, missingFor(path, `${gaveUp} 30 ms`)])
      assert.deepEqual(await secrets.list(alice), [])
    } finally {
      closeSync(reader)
    }
  })

  it('purgeops61: names a store writer planted, any number, any length: each cut at log.auditFieldMax, the list after secretsPerUser, the rest counted', async () => {
    const user = secrets.userKey(alice)
    const planted = ['a', 'b', 'c', 'd'].map((c) => `z${c}`.padEnd(100_000, c))
    for (const name of planted) await store.set(`secrets:${user}:${name}`, 'not sealed')
    const from = written().length
    const r = await purge(
      configFile({ audit: auditFile, auditFieldMax: 64 }, { credentials: { secretsPerUser: 3 } }),
    )
    assert.equal(r.code, 0, r.stderr)
    const text = written(from)
    const [line, ...more] = lines(text)
    assert.deepEqual(more, [])
    assert.deepEqual(line!.names, [
      'github_token',
      'jira',
      `${planted[0]!.slice(0, 64)}…[${100_000 - 64} more characters]`,
      '…[3 more names]',
    ])
    assert.ok(text.length < 2048, `${text.length} characters`)
    assert.deepEqual(await store.keysWithPrefix(`secrets:${user}`), [])
  })

  /** A folder `nobody` can reach (the suite's own is root's: it may pass through it). */
  const homeFolder = (whose: string) => {
    chmodSync(dir, 0o711)
    const home = join(dir, `${whose}-home-${++configs}`)
    mkdirSync(home, { mode: 0o755 })
    return home
  }

  /**
   * The gateway itself, as `nobody`, auditing to `audit` with refuse: resolves the answer to one
   * initialize (audited), and stops it.
   */
  async function gatewayAsNobody(home: string, audit: string) {
    const config = join(home, 'gateway.yaml')
    writeFileSync(
      config,
      JSON.stringify({
        listen: { port: 0 },
        servers: { echo: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] } },
        policies: POLICIES,
        log: { audit, auditOnFailure: 'refuse' },
      }),
    )
    const gateway = spawn(
      process.execPath,
      [CLI_MAIN, 'serve', '--config', config, '--insecure-no-auth'],
      {
        uid: NOBODY,
        gid: NOBODY,
        cwd: home,
        env: { ...process.env, HOME: home },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    const exited = new Promise((r) => gateway.on('exit', r))
    try {
      let out = ''
      gateway.stdout.on('data', (d) => (out += d))
      gateway.stderr.on('data', (d) => (out += d))
      const url = await waitFor(
        () => {
          assert.equal(gateway.exitCode, null, `the gateway exited: ${out}`)
          for (const l of out.split('\n'))
            if (l.includes('"msg":"listening"')) return (JSON.parse(l) as { url: string }).url
          return undefined
        },
        () => `the gateway listening: ${out}`,
      )
      return await postMcp(`${url}/mcp/echo`, initBody())
    } finally {
      gateway.kill('SIGTERM')
      await exited
    }
  }

  it('purgeops61: run as root while the audit file is missing (just rotated) in the folder of the gateway (another uid): the purge makes no file, and the gateway still audits after it', {
    skip: !IS_ROOT,
  }, async () => {
    const home = homeFolder('gateway')
    chownSync(home, NOBODY, NOBODY)
    const audit = join(home, 'audit.log')
    const refused = await purge(configFile({ audit, auditOnFailure: 'refuse' }))
    assert.deepEqual([refused.code, refused.stderr], [1, refusedFor(audit, NONE)])
    await untouched()
    const done = await purge(configFile({ audit }))
    assert.deepEqual([done.code, done.stderr], [0, missingFor(audit, NONE)])
    assert.deepEqual(await secrets.list(alice), [])
    assert.equal(existsSync(audit), false)
    // The gateway makes it, its own, and audits (with refuse it would answer 503 otherwise).
    const init = await gatewayAsNobody(home, audit)
    assert.equal(init.status, 200, init.text)
    assert.equal(statSync(audit).uid, NOBODY)
    await waitFor(() => readFileSync(audit, 'utf8').includes('"method":"initialize"'))
    // A purge (root) then appends to the gateway's file, which stays the gateway's.
    await secrets.set(alice, 'jira', VALUES[1]!)
    const next = await purge(configFile({ audit, auditOnFailure: 'refuse' }))
    assert.equal(next.code, 0, next.stderr)
    assert.equal(statSync(audit).uid, NOBODY)
    assert.deepEqual(
      lines(readFileSync(audit, 'utf8'))
        .filter((l) => l.method === 'secrets/purge')
        .map((l) => l.outcome),
      ['deleting', 'purged 1 secret'],
    )
    const again = await gatewayAsNobody(home, audit)
    assert.equal(again.status, 200, again.text)
  })

  it('purgeops61: run as a user who may not write the audit file (read-only to them): refuse exits 1, nothing deleted', {
    skip: !IS_ROOT,
  }, async () => {
    const home = homeFolder('operator')
    const keys = join(home, 'keys.json')
    writeFileSync(keys, readFileSync(keysFile), { mode: 0o600 })
    chownSync(keys, NOBODY, NOBODY)
    const audit = join(home, 'audit.log')
    writeFileSync(audit, '', { mode: 0o644 })
    const config = configFile({ audit, auditOnFailure: 'refuse' }, {}, keys)
    const args = ['secrets', 'purge', '--subject', 'alice', '--issuer', ISS, '--config', config]
    const r = await runCli(args, '', { uid: NOBODY, gid: NOBODY, cwd: home })
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', refusedFor(audit, 'EACCES')])
    await untouched()
    assert.equal(readFileSync(audit, 'utf8'), '')
  })
})
