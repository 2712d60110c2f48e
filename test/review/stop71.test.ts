// Review stop 71 (an outsider's attack on "nothing secret leaks"). Findings are marked in the
// test's name with their rating. What held, kept here as tests that can fail:
// - a real process's environment (/proc/<pid>/environ) is the allow-list, inheritEnv and env:
//   none of the gateway's secrets (a sealing key, REDIS_URL with a password, OTLP headers), and
//   neither it nor its argv holds the client's token;
// - the client's token sent in the query, twice, in any case or spacing, in Proxy-Authorization,
//   Cookie, X-Api-Key, Mcp-Session-Id or the SEP-2243 headers is in no log line, audit event,
//   /metrics or /readyz; answers echo it only to its sender (SEP-2243 data.mismatch.header);
// - config errors name a secret's source, never its value (secrets.keys, cookieKeys, signingKeys).
// Closed (high): every server process ran as the gateway's OS user, so one that read files for
// bob read /proc/<pid>/environ of alice's process (her credentials), the gateway's and its
// secret files. `servers.<name>.runAs` gives each live process a uid of its own (the default is
// still the gateway's user: README "Process isolation"; test/bridge/run-as.test.ts).
// Open (todo, a design choice): values of a server's `env` (written in the YAML) are not blotted.
// Judged, left alone: a resource URI with user:password@ is audited and traced as the client
// sent it (the audit must say what was read); a shared server's own error replies to a client
// may quote what it inherited (the server's answer, relayed as it is).
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { runCli } from '../helpers/cli-run.js'
import { connectAs } from '../helpers/sdk-session.js'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { initializeRequest, postMcp } from '../helpers/post-mcp.js'
import { startStack, SERVERS_DIR, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'
import { configProblems } from '../helpers/config-problems.js'

/** The gateway's own environment, as an operator's would hold it. */
const GATEWAY_SECRETS = {
  STOP71_SEALING_KEY: 'stop71-sealing-key-0123456789abcdef',
  REDIS_URL: 'redis://:stop71-redis-password@10.0.0.9:6379/0',
  MCP_EDGE_STOP71_CLIENT_SECRET: 'stop71-client-secret-fedcba9876543210',
  OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer stop71-otlp-token-5555',
  // Not a secret, but what a child must not run under (a --require would run in it).
  NODE_OPTIONS: '--max-old-space-size=3071',
}
/** What the operator hands the server from the gateway's environment (`inheritEnv`). */
const SERVER_TOKEN = 'stop71-server-api-token-abcdef0123456789'

const INIT = initializeRequest('stop71')

describe('stop71: what a server process is started with', () => {
  let stack: Stack
  const saved: Record<string, string | undefined> = {}
  before(async () => {
    for (const [k, v] of Object.entries({
      ...GATEWAY_SECRETS,
      STOP71_SERVER_TOKEN: SERVER_TOKEN,
    })) {
      saved[k] = process.env[k]
      process.env[k] = v
    }
    stack = await startStack({
      servers: {
        inherits: {
          command: process.execPath,
          args: [`${SERVERS_DIR}fixture.js`],
          env: { FIXTURE_LABEL: 'configured' },
          inheritEnv: ['STOP71_SERVER_TOKEN', 'HOME'],
        },
      },
      policy: `
roles: { mcp-user: ["mcp:read"] }
servers:
  echo: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  inherits: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
`,
    })
  })
  after(async () => {
    await stack?.close()
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
  })

  it('held: the environment and argv of a real process hold nothing of the gateway but the allow-list and inheritEnv', async () => {
    const { client } = await connectAs(stack, 'alice', 'inherits')
    try {
      const got = (await client.callTool({ name: 'env', arguments: {} })) as {
        content: { text: string }[]
      }
      const { env, pid } = JSON.parse(got.content[0]!.text) as {
        env: Record<string, string>
        pid: number
      }
      // What the kernel holds, not what the process says it has.
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)
      const names = environ.map((e) => e.slice(0, e.indexOf('='))).sort()
      const allowed = ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER']
      for (const n of names)
        assert.ok(
          [...allowed, 'FIXTURE_LABEL', 'STOP71_SERVER_TOKEN'].includes(n),
          `${n} reached the process`,
        )
      assert.equal(env.STOP71_SERVER_TOKEN, SERVER_TOKEN)
      assert.equal(env.FIXTURE_LABEL, 'configured')
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      const token = await stack.token('alice', { server: 'inherits' })
      for (const v of [...Object.values(GATEWAY_SECRETS), token])
        for (const text of [environ.join('\n'), cmdline])
          assert.ok(!text.includes(v), `${v.slice(0, 20)} reached the process`)
    } finally {
      await client.close()
    }
  })

  it("todo (a design choice): a value written in the server's env in the YAML is blotted from its stderr", {
    todo: 'env values are not taken for secrets (LOG_LEVEL: warn would blot every standalone "warn"); README says to give a server its token by inheritEnv; a { env: NAME } / { file } form for env values would make a secret explicit',
  }, async () => {
    const { client } = await connectAs(stack, 'alice', 'inherits')
    try {
      await client.callTool({ name: 'print_credential', arguments: { name: 'FIXTURE_LABEL' } })
      const line = await waitFor(
        () => stack.logLines.find((l) => l.includes('config FIXTURE_LABEL=')),
        'the stderr line was logged',
      )
      assert.ok(!line.includes('configured'), line)
    } finally {
      await client.close()
    }
  })

  it('medium: a value the server inherits from the gateway (inheritEnv) is blotted from its stderr in the log', async () => {
    const { client } = await connectAs(stack, 'alice', 'inherits')
    try {
      await client.callTool({
        name: 'print_credential',
        arguments: { name: 'STOP71_SERVER_TOKEN' },
      })
      const line = await waitFor(
        () => stack.logLines.find((l) => l.includes('config STOP71_SERVER_TOKEN=')),
        'the stderr line was logged',
      )
      assert.ok(!line.includes(SERVER_TOKEN), line)
      assert.ok(!line.includes(Buffer.from(SERVER_TOKEN).toString('base64')), line)
      // What every process gets anyway is no secret: a path under HOME still reads in the log.
      await client.callTool({ name: 'print_credential', arguments: { name: 'HOME' } })
      const home = await waitFor(
        () => stack.logLines.find((l) => l.includes('config HOME=')),
        'the HOME line was logged',
      )
      assert.ok(home.includes(`config HOME=${process.env.HOME}`), home)
    } finally {
      await client.close()
    }
  })
})

/**
 * A server refusing every request with a text quoting the token it inherited; initialize too,
 * unless STOP71_INIT_OK is set.
 */
const REFUSES_INIT = `
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const m = JSON.parse(l)
  if (m.id === undefined) return
  if (m.method === 'initialize' && process.env.STOP71_INIT_OK)
    return send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'refuses', version: '0' } } })
  process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32603,
    message: 'the API rejected key ' + process.env.STOP71_SERVER_TOKEN } }) + '\\n')
})`

describe('stop71: a server refusing initialize with the token it inherited', () => {
  let stack: Stack
  const saved = process.env.STOP71_SERVER_TOKEN
  before(async () => {
    process.env.STOP71_SERVER_TOKEN = SERVER_TOKEN
    const refuses = {
      command: process.execPath,
      args: ['-e', REFUSES_INIT],
      inheritEnv: ['STOP71_SERVER_TOKEN'],
    }
    stack = await startStack({
      servers: {
        refshared: { ...refuses, mode: 'shared' },
        refwarm: { ...refuses, pool: { min: 1, preinitialize: true } },
        reflane: refuses,
        reflist: { ...refuses, env: { STOP71_INIT_OK: '1' } },
      },
      config: { endpoints: { stop71: { servers: ['reflist'] } } },
      policy: `
roles: { mcp-user: ["mcp:read"] }
servers:
  echo: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  refshared: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  refwarm: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  reflane: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  reflist: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
`,
    })
  })
  after(async () => {
    await stack?.close()
    if (saved === undefined) delete process.env.STOP71_SERVER_TOKEN
    else process.env.STOP71_SERVER_TOKEN = saved
  })

  it('medium: its error text is logged with the token blotted (shared, warm, sessionless, endpoint lists)', async () => {
    const token = await stack.token('alice', { server: 'reflane' })
    const res = await request(stack.local('reflane'), modernToolCall(token, 'pid'))
    await res.body.text()
    const listed = await request(
      `${stack.url}/mcp/stop71`,
      modernRequest(
        await stack.token('alice', { resource: `${stack.url}/mcp/stop71` }),
        'tools/list',
        {},
      ),
    )
    const list = await listed.body.text()
    assert.equal(listed.statusCode, 200, list)
    assert.ok(!list.includes(SERVER_TOKEN), list)
    for (const what of [
      'shared server process failed to start',
      'warm server process failed to initialize',
      'server process failed to initialize',
      "a backend could not list; left out of the endpoint's list",
    ]) {
      const line = await waitFor(
        () => stack.logLines.find((l) => l.includes(`"msg":"${what}"`)),
        `logged: ${what}`,
      )
      assert.match(line, /the API rejected key/, line)
    }
    for (const line of stack.logLines) assert.ok(!line.includes(SERVER_TOKEN), line)
  })
})

/** A server with one tool, `read`, that gives back the file at `path` (what any tool may do). */
const READS_FILES = `
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const m = JSON.parse(l)
  if (m.id === undefined) return
  const ok = (result) => send({ jsonrpc: '2.0', id: m.id, result })
  if (m.method === 'initialize')
    return ok({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} },
      serverInfo: { name: 'reader', version: '0' } })
  if (m.method === 'tools/list')
    return ok({ tools: [{ name: 'read', inputSchema: { type: 'object' } }] })
  if (m.method === 'tools/call') {
    let text
    try { text = require('node:fs').readFileSync(m.params.arguments.path, 'latin1') }
    catch (e) { text = String(e) }
    return ok({ content: [{ type: 'text', text }] })
  }
  send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no' } })
})`

describe("stop71: one user's process and another's environment", () => {
  let stack: Stack
  const ALICE_SECRET = 'stop71-alice-vault-token-0123456789'
  // A secret file of the gateway's (0600, root's), in a folder anyone may enter.
  const secrets = mkdtempSync(join(tmpdir(), 'stop71-secrets-'))
  const SECRET_FILE = join(secrets, 'sealing.key')
  before(async () => {
    chmodSync(secrets, 0o755)
    writeFileSync(SECRET_FILE, 'stop71-gateway-sealing-key', { mode: 0o600 })
    stack = await startStack({
      servers: {
        vault: {
          command: process.execPath,
          args: [`${SERVERS_DIR}fixture.js`],
          credentials: { VAULT_TOKEN: { secret: 'vault_token' } },
          runAs: { uids: '200700-200703', gid: 200700 },
          pool: { max: 4 },
        },
        reader: {
          command: process.execPath,
          args: ['-e', READS_FILES],
          runAs: { uids: [200710, 200713], gid: 200710 },
          pool: { max: 4 },
        },
      },
      policy: `
roles: { mcp-user: ["mcp:read"] }
servers:
  echo: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  vault: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  reader: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
`,
    })
  })
  after(async () => {
    await stack?.close()
    rmSync(secrets, { recursive: true, force: true })
  })

  it("high, closed by runAs: a process of one user cannot read the credentials of another user's process, the gateway's environment or its secret files", async () => {
    await stack.gateway.secrets!.set(
      { iss: stack.idp.issuer, sub: 'alice' },
      'vault_token',
      ALICE_SECRET,
    )
    const { client } = await connectAs(stack, 'alice', 'vault')
    try {
      const got = (await client.callTool({
        name: 'credential',
        arguments: { name: 'VAULT_TOKEN' },
      })) as {
        content: { text: string }[]
      }
      const { pid } = JSON.parse(got.content[0]!.text) as { pid: number }
      const bob = await stack.token('bob', { server: 'reader' })
      for (const path of [`/proc/${pid}/environ`, `/proc/${process.pid}/environ`, SECRET_FILE]) {
        const res = await request(stack.local('reader'), modernToolCall(bob, 'read', { path }))
        const text = await res.body.text()
        assert.equal(res.statusCode, 200, text)
        assert.match(text, /EACCES: permission denied/, `${path}: ${text}`)
        assert.ok(!text.includes(ALICE_SECRET), "bob's process read alice's secret")
      }
    } finally {
      await client.close()
    }
  })
})

describe("stop71: a server never inherits the gateway's own secrets", () => {
  const problems = configProblems
  const config = (inheritEnv: string[]) => ({
    publicUrl: 'https://gw.example',
    auth: {
      broker: {
        upstream: {
          issuer: 'https://login.example',
          clientId: 'gw',
          clientSecret: { env: 'UPSTREAM_SECRET' },
        },
        signingKeys: { env: 'BROKER_KEYS' },
        cookieKeys: { env: 'COOKIE_KEYS' },
      },
      tokenExchange: { clientId: 'gw', clientSecret: { env: 'EXCHANGE_SECRET' } },
    },
    store: { kind: 'redis', url: { env: 'REDIS_URL' } },
    secrets: { keys: { env: 'SEALING_KEYS' }, active: 'k1' },
    servers: { files: { command: 'node', inheritEnv } },
  })

  it('medium: inheritEnv naming a variable the gateway reads its own secret from is refused at start-up', () => {
    for (const [variable, where] of [
      ['UPSTREAM_SECRET', 'auth.broker.upstream.clientSecret'],
      ['BROKER_KEYS', 'auth.broker.signingKeys'],
      ['COOKIE_KEYS', 'auth.broker.cookieKeys'],
      ['EXCHANGE_SECRET', 'auth.tokenExchange.clientSecret'],
      ['REDIS_URL', 'store.url'],
      ['SEALING_KEYS', 'secrets.keys'],
    ] as const) {
      const got = problems(config(['HTTPS_PROXY', variable]))
      assert.equal(got.length, 1, `${variable}: ${JSON.stringify(got)}`)
      assert.equal(
        got[0],
        `servers.files.inheritEnv.1: ${variable} holds the gateway's own secret (${where}): a server process never gets the gateway's secrets`,
      )
    }
  })

  it('held: other names, and a secret read from a file, are fine', () => {
    assert.deepEqual(problems(config(['HTTPS_PROXY', 'LANG'])), [])
    const fromFile = config(['REDIS_URL'])
    fromFile.store.url = { file: '/run/secrets/redis' } as never
    assert.deepEqual(problems(fromFile), [])
  })
})

describe('stop71: mcp-edge validate on secrets that do not parse', () => {
  it('held: each problem names where the secret came from, never what it holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stop71-validate-'))
    try {
      const file = join(dir, 'gateway.yaml')
      writeFileSync(
        file,
        [
          'publicUrl: https://gw.example',
          'auth:',
          '  broker:',
          '    upstream: { issuer: "https://login.example", clientId: gw, clientSecret: { env: R71_UP } }',
          '    signingKeys: { env: R71_KEYS }',
          '    cookieKeys: { env: R71_COOKIES }',
          'secrets: { keys: { env: R71_SEAL }, active: k1 }',
          'servers: { echo: { command: node } }',
        ].join('\n'),
      )
      const got = await runCli(['validate', '--config', file], '', {
        env: {
          ...process.env,
          R71_UP: 'stop71-upstream-secret',
          R71_KEYS: '{"keys":[stop71SIGNINGSECRET]}',
          R71_COOKIES: '["stop71COOKIESECRET-0123456789abcdef0123456789", oops]',
          R71_SEAL: '{"k1": stop71SEALSECRET}',
        },
      })
      assert.equal(got.code, 1, got.stderr)
      for (const at of ['auth.broker.signingKeys', 'auth.broker.cookieKeys', 'secrets.keys'])
        assert.match(got.stderr, new RegExp(`${at.replaceAll('.', '\\.')}: `), got.stderr)
      assert.doesNotMatch(got.stdout + got.stderr, /stop71[A-Za-z-]*SECRET|stop71-upstream/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('stop71: the bearer token, however a client sends it, is in no log, audit line or answer', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({})
  })
  after(() => stack?.close())

  it('held: in the query, odd headers and spellings, its signature is nowhere but echoed to its sender', async () => {
    const token = await stack.token('alice', { server: 'echo' })
    // Its signature: what makes it a credential, and in no other text by chance.
    const sig = token.split('.')[2]!
    const forms: [string, Record<string, string>, string?][] = [
      ['query access_token', {}, `?access_token=${token}`],
      [
        'query beside a header',
        { authorization: `Bearer ${token.slice(0, -2)}` },
        `?access_token=${token}`,
      ],
      ['lower-case scheme', { authorization: `bearer ${token}x` }],
      ['upper-case scheme', { authorization: `BEARER ${token}x` }],
      ['two spaces', { authorization: `Bearer  ${token}` }],
      ['a tab', { authorization: `Bearer\t${token}` }],
      ['a trailing word', { authorization: `Bearer ${token} x` }],
      ['twice in one header', { authorization: `Bearer ${token}, Bearer ${token}` }],
      ['Basic', { authorization: `Basic ${token}` }],
      ['no scheme', { authorization: token }],
      ['a trailing dot', { authorization: `Bearer ${token}.` }],
      ['signature cut', { authorization: `Bearer ${token.slice(0, -3)}` }],
      ['Proxy-Authorization', { 'proxy-authorization': `Bearer ${token}` }],
      ['Cookie', { cookie: `access_token=${token}` }],
      ['X-Api-Key', { 'x-api-key': token }],
      ['as the session id', { authorization: `Bearer ${token}`, 'mcp-session-id': token }],
      ['as Mcp-Method', { authorization: `Bearer ${token}`, 'mcp-method': token }],
    ]
    let refused = 0
    for (const [name, headers, query] of forms) {
      const res = await postMcp(stack.local('echo') + (query ?? ''), INIT, headers)
      if (res.status >= 400) refused++
      assert.ok(
        !res.text.includes(sig) && !JSON.stringify(res.headers).includes(sig),
        `${name}: the answer quotes the token: ${res.text.slice(0, 300)}`,
      )
    }
    assert.ok(refused >= forms.length - 3, `${refused} refused`)
    for (const [name, extra] of [
      ['Mcp-Method', { 'mcp-method': token }],
      ['Mcp-Name', { 'mcp-name': token }],
      ['Mcp-Name base64', { 'mcp-name': `=?base64?${Buffer.from(token).toString('base64')}?=` }],
    ] as const) {
      const r = modernToolCall(token, 'echo', { text: 'x' })
      const res = await request(stack.local('echo'), { ...r, headers: { ...r.headers, ...extra } })
      await res.body.text()
      assert.equal(res.statusCode, 400, name)
    }
    // SEP-2243: a header that disagrees with the body is echoed back (data.mismatch.header),
    // to its sender only: judged no leak. Those above and this one are in no log line.
    const echoed = await postMcp(stack.local('echo'), INIT, {
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': token,
    })
    assert.equal(echoed.status, 400)
    const metrics = await (await request(`${stack.url}/metrics`)).body.text()
    const ready = await (await request(`${stack.url}/readyz`)).body.text()
    assert.ok(stack.logLines.length > forms.length, 'the refusals were logged')
    for (const text of [...stack.logLines, JSON.stringify(stack.audit()), metrics, ready])
      assert.ok(!text.includes(sig), `the token is in: ${text.slice(0, 300)}`)
  })
})

describe("stop71: the tracing SDK's warnings", () => {
  const saved = { ...process.env }
  after(() => {
    for (const k of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL'])
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
  })

  it('low: an OTLP endpoint the SDK cannot parse is logged without its password or API key', async () => {
    // A typo in the port: the SDK quotes the URL as written in its warning.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT =
      'https://otel:stop71-otlp-p@ss@collector.example:44x3/v1?api_key=stop71-otlp-key#x'
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json'
    const stack = await startStack({})
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT
    try {
      const warned = stack.logLines.filter((l) => l.includes('Could not parse'))
      assert.ok(warned.length > 0, 'the SDK warned')
      for (const line of warned) {
        assert.match(line, /collector\.example:44x3\/v1/)
        assert.doesNotMatch(line, /stop71-otlp|ss@/, line)
      }
    } finally {
      await stack.close()
    }
  })
})

describe('stop71: mcp-edge secrets sends the token and the value only where nobody reads them', () => {
  /** This machine's first address that is not loopback (undefined: none to test with). */
  const outside = Object.values(networkInterfaces())
    .flat()
    .find((i) => i !== undefined && !i.internal && i.family === 'IPv4')?.address
  /** What the account API at each address was sent. */
  const seen: string[] = []
  const servers = [outside, '127.0.0.1'].map(() =>
    createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"servers":[],"secrets":[]}')
    }),
  )
  const ports: number[] = []
  before(async () => {
    for (const [i, host] of [outside ?? '127.0.0.1', '127.0.0.1'].entries()) {
      await new Promise<void>((r) => servers[i]!.listen(0, host, r))
      ports.push((servers[i]!.address() as { port: number }).port)
    }
  })
  after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))))
  const env = { ...process.env, MCP_EDGE_TOKEN: 'stop71-cli-bearer-0123456789' }

  it('medium: plain http to a host off this machine is refused before anything is sent', {
    skip: outside === undefined && 'no address but loopback',
  }, async () => {
    seen.length = 0
    for (const args of [['list'], ['delete', 'github-token'], ['set', 'github-token']]) {
      const got = await runCli(
        ['secrets', ...args, '--url', `http://${outside}:${ports[0]}`],
        'v',
        {
          env,
        },
      )
      assert.equal(got.code, 2, got.stderr)
      assert.match(
        got.stderr,
        /--url must be https \(http only for loopback\): the token and the value would cross the network in clear/,
      )
    }
    assert.deepEqual(seen, [])
  })

  it('low: a --url with a user name or password is refused without echoing it', async () => {
    const got = await runCli(
      ['secrets', 'list', '--url', `http://u:stop71-url-password@127.0.0.1:${ports[1]}`],
      '',
      { env },
    )
    assert.equal(got.code, 2, got.stderr)
    assert.match(got.stderr, /--url must have no user name or password/)
    assert.doesNotMatch(got.stdout + got.stderr, /stop71-url-password/)
  })

  it('held: http to loopback, and https anywhere, are let through', async () => {
    seen.length = 0
    for (const host of ['127.0.0.1', 'localhost']) {
      const got = await runCli(
        ['secrets', 'list', '--json', '--url', `http://${host}:${ports[1]}`],
        '',
        {
          env,
        },
      )
      assert.equal(got.code, 0, got.stderr)
    }
    assert.equal(seen.length, 2)
    assert.match(seen[0]!, /^GET \/account\/api Bearer stop71-cli-bearer-0123456789$/)
    const tls = await runCli(
      ['secrets', 'list', '--url', `https://${outside ?? '127.0.0.1'}:9`],
      '',
      { env },
    )
    assert.equal(tls.code, 1, tls.stderr)
    assert.match(tls.stderr, /cannot reach https:/)
  })
})
