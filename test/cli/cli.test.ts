// The mcp-edge command as operators run it: real processes, real exit codes, real output.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, describe, it } from 'node:test'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const POLICIES = fileURLToPath(new URL('../../../policies/', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-cli-'))
const ACCEPT = 'application/json, text/event-stream'

function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

/** Runs the CLI to completion. */
function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

const running: ChildProcess[] = []
after(() => {
  for (const p of running) if (p.exitCode === null) p.kill('SIGKILL')
})

/** Starts `serve` and resolves with its "listening" log line. */
function serve(args: string[], env: Record<string, string> = {}) {
  const p = spawn(process.execPath, [MAIN, 'serve', ...args], { env: { ...process.env, ...env } })
  running.push(p)
  const lines: Record<string, unknown>[] = []
  const listening = new Promise<{ url: string; issuer: string | null }>((resolve, reject) => {
    createInterface({ input: p.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>
      lines.push(entry)
      if (entry.msg === 'listening') resolve(entry as never)
    })
    p.on('exit', (code) => reject(new Error(`serve exited with ${code}`)))
  })
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)))
  return { p, lines, listening, exited }
}

const echoServer = `
servers:
  echo:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(join(SERVERS_DIR, 'echo.js'))}]
  fixture:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(join(SERVERS_DIR, 'fixture.js'))}]
policies: ${JSON.stringify(POLICIES)}
`

describe('configuration errors stop start-up with file, line and reason', () => {
  const cases = [
    {
      name: 'unknown key',
      yaml: `listen:\n  port: 0\n  hots: x\n${echoServer}`,
      expect: /bad\.yaml:3:3: listen: unknown key "hots"/,
    },
    {
      name: 'wrong type',
      yaml: `listen:\n  port: "eighty"\n${echoServer}`,
      expect: /bad\.yaml:2:\d+: listen\.port: .*number/i,
    },
    { name: 'YAML syntax', yaml: `listen: [\n${echoServer}`, expect: /bad\.yaml:\d+:\d+: / },
    {
      name: 'HS256 in the algorithm list',
      yaml: `auth:\n  issuer: https://idp.example\n  algorithms: [HS256]\n${echoServer}`,
      expect: /bad\.yaml:3:\d+: auth\.algorithms\.0: only asymmetric algorithms are accepted/,
    },
  ]
  for (const c of cases) {
    for (const command of ['serve', 'validate']) {
      it(`${command}: ${c.name}`, async () => {
        const path = file('bad.yaml', c.yaml)
        const res = await run([command, '--config', path])
        assert.equal(res.code, 1)
        assert.match(res.stderr, /^mcp-edge: invalid configuration:/)
        assert.match(res.stderr, c.expect)
        assert.equal(res.stdout, '')
      })
    }
  }

  it('a broken policy file is reported with its line', async () => {
    const policy = file('broken-policy.yaml', 'servers:\n  echo:\n    tools:\n      echo: maybe\n')
    const cfg = file(
      'cfg.yaml',
      `auth: { issuer: "https://idp.example" }\n${echoServer.replace(/policies: .*/, `policies: ${JSON.stringify(policy)}`)}`,
    )
    const res = await run(['validate', '--config', cfg])
    assert.equal(res.code, 1)
    assert.match(
      res.stderr,
      /broken-policy\.yaml:4:\d+: servers\.echo\.tools\.echo: a rule is allow, deny, a list of scopes, or \{ scopes \| effect, when \}/,
    )
  })

  it('an invalid environment override names the variable', async () => {
    const res = await run(['validate'], { MCP_EDGE_PUBLIC_URL: 'http://gw.example/' })
    assert.equal(res.code, 1)
    assert.match(
      res.stderr,
      /environment variable MCP_EDGE_PUBLIC_URL: must have no query, no fragment and no trailing slash/,
    )
  })

  it('validate accepts the embedded default and the shipped policies', async () => {
    const res = await run(['validate'])
    assert.equal(res.code, 0, res.stderr)
    assert.match(
      res.stdout,
      /^ok: embedded default config \(servers: echo, notes, tickets; policies: .*policies; broker: upstream http:\/\/127\.0\.0\.1:8090\)/,
    )
  })

  it('validate --skip-secrets passes a config whose secret is not set here; the rest is still checked', async () => {
    const unset = `MCP_EDGE_TEST_UNSET_${randomBytes(4).toString('hex')}`
    assert.equal(process.env[unset], undefined)
    const broker = `publicUrl: https://gw.example\nauth:\n  broker:\n    upstream: { issuer: "https://login.example/t/v2.0", clientId: gw, clientSecret: { env: ${unset} } }\n`
    const cfg = file('skip-secrets.yaml', `${broker}${echoServer}`)
    const checked = await run(['validate', '--config', cfg])
    assert.equal(checked.code, 1, checked.stdout)
    assert.match(
      checked.stderr,
      new RegExp(
        `auth\\.broker\\.upstream\\.clientSecret: environment variable ${unset} is not set`,
      ),
    )
    assert.equal(checked.stdout, '')
    const skipped = await run(['validate', '--config', cfg, '--skip-secrets'])
    assert.equal(skipped.code, 0, skipped.stderr)
    assert.match(
      skipped.stdout,
      /^ok: .*skip-secrets\.yaml \(servers: echo, fixture.*broker: upstream https:\/\/login\.example/,
    )
    assert.equal(skipped.stderr, '')
    // Only the secrets are skipped: a config error still fails.
    const bad = file(
      'skip-secrets-bad.yaml',
      `${broker}${echoServer}limits: { sessionQueueEvents: 0 }\n`,
    )
    const refused = await run(['validate', '--config', bad, '--skip-secrets'])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^mcp-edge: invalid configuration:[\s\S]*sessionQueueEvents/)
  })

  it('validate checks the broker without the network: every unreadable secret, bad key and bad pattern at once', async () => {
    const keys = file('signing.json', '{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}')
    chmodSync(keys, 0o600)
    const open = file('open-secret.txt', 'world-readable\n')
    chmodSync(open, 0o644)
    const cfg = file(
      'broker.yaml',
      `publicUrl: https://gw.example\nlisten: { host: 0.0.0.0, port: 0 }\nstore: { kind: redis, url: { env: MCP_EDGE_TEST_NO_REDIS_URL } }\nauth:\n  broker:\n    upstream: { issuer: "https://login.example/t/v2.0", clientId: gw, clientSecret: { env: MCP_EDGE_TEST_NO_SUCH_SECRET } }\n    signingKeys: { file: ${JSON.stringify(keys)} }\n    cookieKeys: { file: ${JSON.stringify(open)} }\n    registration: { redirectUris: ["https://*.example.com/cb", "http://evil.example/*"] }\n${echoServer}`,
    )
    const res = await run(['validate', '--config', cfg])
    assert.equal(res.code, 1)
    assert.match(
      res.stderr,
      /auth\.broker\.upstream\.clientSecret: environment variable MCP_EDGE_TEST_NO_SUCH_SECRET is not set/,
    )
    assert.match(res.stderr, /auth\.broker\.signingKeys\.keys\.0: needs a kid/)
    assert.match(res.stderr, /auth\.broker\.cookieKeys: .*readable by every user/)
    assert.match(res.stderr, /secrets: required with a shared store/)
    assert.match(
      res.stderr,
      /store\.url: environment variable MCP_EDGE_TEST_NO_REDIS_URL is not set/,
    )
    assert.match(res.stderr, /http:\/\/evil\.example/)
    assert.doesNotMatch(res.stderr, /world-readable/, 'no secret value is printed')
  })
})

describe('the mcp-edge command', () => {
  it('runs through npx from the package, as the README shows (the bin is executable)', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url))
    const res = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const p = spawn('npx', ['--no', 'mcp-edge', 'help'], { cwd: root })
      let stdout = ''
      p.stdout.on('data', (d) => (stdout += d))
      p.on('close', (code) => resolve({ code, stdout }))
    })
    assert.equal(res.code, 0)
    assert.match(res.stdout, /^usage: mcp-edge <command>/)
  })
})

describe('--help and usage errors, every command alike (as README says)', () => {
  // Where help were ignored, a config that does not exist stops the command (exit 1), so a
  // command that forgets its help cannot start a gateway or reach the network here.
  const none = ['--config', join(dir, 'none.yaml')]
  const helps = [
    ['help'],
    ['--help'],
    ['serve', '--help'],
    ['serve', '-h'],
    ['serve', ...none, '--help'],
    ['token', '--help'],
    ['token', '--resource', 'http://127.0.0.1:1/mcp/x', '-h'],
    ['validate', '--help'],
    ['validate', ...none, '--skip-secrets', '--help'],
    ['policy', '--help'],
    ['policy', 'check', '--help'],
    ['policy', 'check', '--policy', join(dir, 'none'), '-h'],
    ['secrets', '--help'],
    ['secrets', 'list', '--help'],
    ['secrets', 'purge', '--help'],
    ['tools', '--help'],
    ['tools', 'pins', '--help'],
    ['tools', 'pins', ...none, '--help'],
    ['tools', 'approve', '--help'],
    ['tools', 'approve', 's', 't', '-h'],
  ]
  for (const args of helps)
    it(`mcp-edge ${args.join(' ')}: the usage on stdout, exit 0`, async () => {
      const res = await run(args, { MCP_EDGE_DEV_IDP_STATE: join(dir, 'none.json') })
      assert.deepEqual([res.code, res.stderr], [0, ''], res.stderr)
      assert.match(res.stdout, /^usage: mcp-edge /)
    })

  const usageErrors = [
    ['serve', '--bogus'],
    ['serve', '--HELP'],
    ['serve', '--help=yes'],
    ['serve', '--config'],
    ['serve', 'extra'],
    ['token', '--bogus'],
    ['token', '--user'],
    ['token', 'extra'],
    ['validate', '--bogus'],
    ['validate', ...none, 'extra'],
    ['validate', '--skip-secrets=1'],
    ['policy', 'check', '--bogus'],
    ['policy', 'check', '--help=1'],
    ['secrets', 'list', '--bogus'],
    ['tools', 'pins', '--bogus'],
    ['tools', 'pins', '--help=1'],
    ['bogus'],
  ]
  for (const args of usageErrors)
    it(`mcp-edge ${args.join(' ')}: a usage error, exit 2, the usage on stderr`, async () => {
      const res = await run(args, { MCP_EDGE_DEV_IDP_STATE: join(dir, 'none.json') })
      assert.equal(res.code, 2, res.stderr)
      assert.equal(res.stdout, '')
      assert.match(res.stderr, /^mcp-edge[^\n]*: [^\n]+\nusage: mcp-edge /)
    })
})

describe('production safety', () => {
  it('a config without an issuer refuses to start', async () => {
    const res = await run([
      'serve',
      '--config',
      file('noissuer.yaml', `listen: { port: 0 }\n${echoServer}`),
    ])
    assert.equal(res.code, 1)
    assert.match(
      res.stderr,
      /no issuer configured: set auth\.issuer \(or MCP_EDGE_ISSUER\) or auth\.broker, or pass --insecure-no-auth/,
    )
  })

  it('--insecure-no-auth refuses a non-loopback address', async () => {
    const cfg = file(
      'open.yaml',
      `listen: { host: 0.0.0.0, port: 0 }\npublicUrl: http://gw.example\n${echoServer}`,
    )
    const res = await run(['serve', '--config', cfg, '--insecure-no-auth'])
    assert.equal(res.code, 1)
    assert.match(res.stderr, /--insecure-no-auth only listens on a loopback address/)
  })

  it('NODE_ENV=production never starts the dev IdP', async () => {
    const res = await run(
      [
        'serve',
        '--config',
        file('noissuer2.yaml', `listen: { port: 0 }\ndevIdp: { port: 0 }\n${echoServer}`),
        '--dev-idp',
      ],
      { NODE_ENV: 'production' },
    )
    assert.equal(res.code, 1)
    assert.match(res.stderr, /no issuer configured/)
  })

  it('--insecure-no-auth on loopback serves without a token and warns', async () => {
    const s = serve([
      '--config',
      file('noauth.yaml', `listen: { port: 0 }\n${echoServer}`),
      '--insecure-no-auth',
    ])
    const { url } = await s.listening
    assert.ok(
      s.lines.some((l) => l.level === 'warn' && /AUTHENTICATION IS OFF/.test(String(l.msg))),
    )
    const res = await request(`${url}/mcp/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT },
      body: JSON.stringify(initBody()),
    })
    assert.equal(res.statusCode, 200)
    await res.body.dump()
    s.p.kill('SIGTERM')
    assert.equal(await s.exited, 0)
  })
})

describe('serve with the dev IdP, token, and a clean shutdown', () => {
  it('refuses a dev IdP state folder others may write to, naming it', async () => {
    const state = join(dir, 'shared-state.json')
    mkdirSync(join(dir, 'shared-state'))
    chmodSync(join(dir, 'shared-state'), 0o777)
    const res = await run(
      [
        'serve',
        '--config',
        file('dev-shared.yaml', `listen: { port: 0 }\ndevIdp: { port: 0 }\n${echoServer}`),
        '--dev-idp',
      ],
      { MCP_EDGE_DEV_IDP_STATE: state },
    )
    assert.equal(res.code, 1)
    assert.match(
      res.stderr,
      new RegExp(
        `^mcp-edge: dev IdP state folder ${join(dir, 'shared-state')} is writable by group or others \\(mode 0777\\); chmod 700 it`,
      ),
    )
  })

  it('mcp-edge token gets a token the gateway accepts; SIGTERM ends every child', async () => {
    const state = join(dir, 'dev-idp-state.json')
    const env = { MCP_EDGE_DEV_IDP_STATE: state }
    const users =
      '[{ sub: dev-user, roles: [mcp-user, mcp-developer] }, { sub: ada, roles: [mcp-admin] }]'
    const s = serve(
      [
        '--config',
        file(
          'dev.yaml',
          `listen: { port: 0 }\ndevIdp: { port: 0, users: ${users} }\n${echoServer}`,
        ),
        '--dev-idp',
      ],
      env,
    )
    const { url, issuer } = await s.listening
    assert.match(issuer ?? '', /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.ok(s.lines.some((l) => l.level === 'warn' && /DEVELOPMENT IdP/.test(String(l.msg))))

    const tok = await run(['token', '--resource', `${url}/mcp/echo`], env)
    assert.equal(tok.code, 0, tok.stderr)
    const token = tok.stdout.trim()
    assert.match(token, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/)
    const claimsOf = (jwt: string) =>
      JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as {
        sub: string
        scope?: string
      }
    // The first configured user by default; --user picks another; scopes follow their roles.
    const asUsers = [
      { args: ['--scope', 'mcp:read mcp:admin'], sub: 'dev-user', scope: 'mcp:read' },
      {
        args: ['--scope', 'mcp:read mcp:admin', '--user', 'ada'],
        sub: 'ada',
        scope: 'mcp:read mcp:admin',
      },
    ]
    for (const u of asUsers) {
      const res = await run(['token', '--resource', `${url}/mcp/echo`, ...u.args], env)
      assert.equal(res.code, 0, res.stderr)
      const claims = claimsOf(res.stdout.trim())
      assert.deepEqual([claims.sub, claims.scope], [u.sub, u.scope], u.args.join(' '))
    }
    const unknown = await run(['token', '--user', 'root'], env)
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /^mcp-edge: no dev user "root"; the dev IdP has: dev-user, ada\n$/)

    const post = (server: string, body: unknown, sid?: string) =>
      request(`${url}/mcp/${server}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT,
          authorization: `Bearer ${token}`,
          ...(sid ? { 'mcp-session-id': sid } : {}),
        },
        body: JSON.stringify(body),
      })
    const initialize = initBody()
    const init = await post('echo', initialize)
    assert.equal(init.statusCode, 200)
    await init.body.dump()
    const sid = init.headers['mcp-session-id'] as string
    const call = await post(
      'echo',
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'via cli token' } },
      },
      sid,
    )
    assert.equal(call.statusCode, 200)
    assert.match(await call.body.text(), /via cli token/)

    s.p.kill('SIGHUP')
    await waitFor(() => s.lines.some((l) => l.msg === 'policy reloaded'), 'the policy reloaded')
    assert.ok(s.lines.some((l) => l.msg === 'SIGHUP: reloading policies'))
    assert.ok(s.lines.some((l) => l.msg === 'policy reloaded'))

    s.p.kill('SIGTERM')
    assert.equal(await s.exited, 0)
    const pids = s.lines.filter((l) => l.msg === 'session opened').map((l) => l.pid as number)
    assert.equal(pids.length, 1)
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/)
    const after = await run(['token'], env)
    assert.equal(after.code, 1)
    assert.match(after.stderr, /no dev IdP is running/)
  })
})

describe('log.bufferBytes: every value the schema takes starts and serves', {
  concurrency: true,
}, () => {
  // sonic-boom refuses a buffer not under its largest write (16 KiB by default): the gateway
  // once exited at start with the default raised to 16 KiB. Each value its own gateway and
  // config file: they start side by side.
  for (const bytes of [0, 4096, 16_383, 16_384, 100_000, 1024 * 1024])
    it(`${bytes} bytes`, async () => {
      const s = serve([
        '--config',
        file(
          `buffer-${bytes}.yaml`,
          `listen: { port: 0 }\nlog: { bufferBytes: ${bytes}, format: json }\n${echoServer}`,
        ),
        '--insecure-no-auth',
      ])
      const { url } = await s.listening
      const res = await request(`${url}/healthz`)
      assert.equal(res.statusCode, 200)
      await res.body.dump()
      s.p.kill('SIGTERM')
      assert.equal(await s.exited, 0)
    })
})

// A secret two servers take can be set only with a token for both (stop 24). RFC 8707 lets a
// token request name several resources, so `mcp-edge token` takes --resource more than once and
// sends each; oidc-provider (the dev IdP, like the broker) issues a token for one resource only
// and refuses several with invalid_target. The CLI says so and points to the way that works: a
// token for an endpoint serving both servers, with which `mcp-edge secrets set` sets the secret.
describe('mcp-edge token --resource twice, and the shared secret set with an endpoint token', () => {
  it('several resources: refused by the dev IdP, named; a server token is refused the shared key; an endpoint token sets it', async () => {
    const state = join(dir, 'dev-idp-shared.json')
    const keys = JSON.stringify({ k1: randomBytes(32).toString('base64url') })
    const env = { MCP_EDGE_DEV_IDP_STATE: state, MCP_EDGE_TEST_CLI_SEALING: keys }
    const node = JSON.stringify(process.execPath)
    const echo = JSON.stringify(join(SERVERS_DIR, 'echo.js'))
    const policy = file(
      'shared-policy.yaml',
      [
        'roles:',
        '  mcp-user: ["mcp:read"]',
        'servers:',
        '  github: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }',
        '  actions: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }',
        '',
      ].join('\n'),
    )
    const s = serve(
      [
        '--config',
        file(
          'shared.yaml',
          [
            'listen: { port: 0 }',
            'devIdp: { port: 0, users: [{ sub: dev-user, roles: [mcp-user] }] }',
            'secrets: { keys: { env: MCP_EDGE_TEST_CLI_SEALING }, active: k1 }',
            'servers:',
            `  github: { command: ${node}, args: [${echo}], credentials: { GITHUB_TOKEN: { secret: github-token } } }`,
            `  actions: { command: ${node}, args: [${echo}], credentials: { GH_TOKEN: { secret: github-token } } }`,
            'endpoints:',
            '  gh: { path: /mcp/gh, servers: [github, actions] }',
            `policies: ${JSON.stringify(policy)}`,
            '',
          ].join('\n'),
        ),
        '--dev-idp',
      ],
      env,
    )
    const { url } = await s.listening
    const audOf = (jwt: string) =>
      (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { aud: unknown }).aud
    const set = (token: string, value: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [MAIN, 'secrets', 'set', 'github-token', '--url', url], {
          env: { ...process.env, ...env, MCP_EDGE_TOKEN: token },
        })
        let stdout = ''
        let stderr = ''
        p.stdout.on('data', (d) => (stdout += d))
        p.stderr.on('data', (d) => (stderr += d))
        p.on('close', (code) => resolve({ code, stdout, stderr }))
        p.stdin.end(value)
      })

    // Both servers' URLs: each goes as a `resource` parameter; the IdP refuses, the CLI says why.
    const both = await run(
      ['token', '--resource', `${url}/mcp/github`, '--resource', `${url}/mcp/actions`],
      env,
    )
    assert.equal(both.code, 1)
    assert.equal(both.stdout, '', 'no token printed')
    assert.match(
      both.stderr,
      /^mcp-edge: dev IdP refused the token request \(invalid_target: only a single resource indicator value is supported for this grant type\); a token is for one server: for several, --resource the URL of an endpoint serving them\n$/,
    )
    // The same URL twice is one resource (oidc-provider counts distinct values).
    const same = await run(
      ['token', '--resource', `${url}/mcp/github`, '--resource', `${url}/mcp/github`],
      env,
    )
    assert.equal(same.code, 0, same.stderr)
    assert.equal(audOf(same.stdout.trim()), `${url}/mcp/github`)

    // One server's token: refused the key the other server acts with too.
    const github = await run(['token', '--resource', `${url}/mcp/github`], env)
    assert.equal(github.code, 0, github.stderr)
    assert.equal(audOf(github.stdout.trim()), `${url}/mcp/github`)
    const refused = await set(github.stdout.trim(), 'ghp_one0000000000000001')
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /token_not_for_server/)

    // The endpoint serving both: one audience that speaks for both; the secret is set.
    const gh = await run(['token', '--resource', `${url}/mcp/gh`], env)
    assert.equal(gh.code, 0, gh.stderr)
    assert.equal(audOf(gh.stdout.trim()), `${url}/mcp/gh`)
    const ok = await set(gh.stdout.trim(), 'ghp_both000000000000001')
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /^github-token set /)

    s.p.kill('SIGTERM')
    assert.equal(await s.exited, 0)
  })
})
