// Stop 24: an outsider's review of the account API's rule that a set or delete of a secret
// takes a token for a server that takes it (commit 24dd7ee). Each finding is a failing test
// first (real gateway, real dev IdP tokens, the real store), then the fix:
// - a secret two servers take: a token for one of them set (or deleted) the key the other acts
//   with, which is the very substitution the rule was made to stop (an app let in for `actions`
//   put its own account's key in place of the user's for `github`);
// - a token for a server the policy does not open to the user still counted as "a server that
//   takes it": it set the key of a server the user does use;
// - an `aud` whose scheme or host differs in case only is accepted at authentication (compared
//   case-insensitively, as the README says) but was refused at the rule;
// - with the broker (consent remembered, the default), an app consented for github got a token
//   for any other server, of no scope, with no page shown (scope=openid): good at a server whose
//   policy needs no scope (`access` defaults to none), and at the account API (aud alone was
//   judged) it replaced the user's jira key. The broker now asks consent for a resource its
//   grant holds nothing for; the API also wants the token's own scopes to open the server.
//   With the login due again (recheckInterval), the broker's own "remembered consent covers
//   it" shortcut let the same request through the upstream login and granted jira's scopes
//   with no page: it now covers only resources the grant holds scopes for;
// - stderr redaction (beyond stop 23's multi-line and base64 forms): a value as Python's or
//   Go's JSON writes it (non-ASCII, or < > &, as \uXXXX) or in a form body (space as +,
//   ! ' ( ) * encoded) reached the log whole.
// And pins of what held: a token for every taker (several audiences, an endpoint serving them,
// an endpoint's or a server's routed host) sets; a gateway-wide auth.audience token sets any
// (documented: the rule holds only where tokens are per server); any token lists. /readyz at
// the nginx edge: 20 raw request targets (dot segments, encodings, case, HEAD, absolute form,
// Host games) are refused; 11 of them reach readiness without the template's location.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import type { JWTPayload } from 'jose'
import { request } from 'undici'
import { createMemoryStore } from '../../gateway/store/memory.js'
import type { Store } from '../../gateway/store/store.js'
import { hasNginx, type Nginx, runNginx, selfSignedCert } from '../edge/nginx-run.js'
import { startReplicas, type Replicas } from '../edge/replicas.js'
import {
  ACCOUNT_EXCHANGE,
  ACCOUNT_POLICY,
  accountServers,
  SEALING,
  secretsIn,
} from '../helpers/account.js'
import { exchange, login, newClient } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { freePort } from '../helpers/ports.js'
import { connectAs } from '../helpers/sdk-session.js'
import { waitFor } from '../helpers/wait-for.js'
import { SERVERS_DIR, startStack, type Stack } from '../helpers/stack.js'

const GATEWAY_WIDE = 'https://gateway-wide.example'
const echo = { command: process.execPath, args: [`${SERVERS_DIR}/echo.js`] }
const POLICY = `
roles:
  mcp-admin: ["*"]
  mcp-user: ["mcp:read"]
servers:
  echo: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  github: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  actions: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  ci: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  ops: { access: ["mcp:admin"], tools: { "*": ["mcp:admin"] } }
`

async function api(
  url: string,
  method: 'PUT' | 'DELETE' | 'GET',
  token: string,
  value?: string,
): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  const res = await request(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(value !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(value !== undefined ? { body: JSON.stringify({ value }) } : {}),
  })
  const text = await res.body.text()
  let json: Record<string, unknown> = {}
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    // 204
  }
  return { status: res.statusCode, json, text }
}

describe('stop 24: a set or delete needs a token for every server of the user that takes the secret', () => {
  let stack: Stack
  let store: Store
  let alice: string
  const held = {
    'github-token': 'ghp_theUsersOwnKey000001',
    'deploy-key': 'dk_theUsersOwnKey000001',
  }
  const owner = () => ({ iss: stack.gateway.issuer!, sub: 'alice' })
  const secret = (name: string) => `${stack.url}/account/api/secrets/${name}`
  const claimsOf = (t: string) =>
    JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
  const withAud = (aud: unknown, extra: Record<string, unknown> = {}) =>
    stack.forge({ ...claimsOf(alice), aud, ...extra } as JWTPayload)
  const at = (path: string) => `${stack.url}${path}`
  const routed = (host: string) => `http://${host}:${new URL(stack.url).port}/mcp`
  const valueOf = (name: string) => secretsIn(store).value(owner(), name)
  const restore = async () => {
    for (const [name, value] of Object.entries(held))
      assert.ok((await api(secret(name), 'PUT', alice, value)).status < 300)
  }

  before(async () => {
    store = createMemoryStore()
    stack = await startStack({
      policy: POLICY,
      store,
      servers: {
        echo,
        // github and actions both act with the user's GitHub key.
        github: { ...echo, credentials: { GITHUB_TOKEN: { secret: 'github-token' } } },
        actions: { ...echo, credentials: { GH_TOKEN: { secret: 'github-token' } } },
        // ci is open to alice; ops (admin only) takes the same deploy key.
        ci: { ...echo, credentials: { DEPLOY_KEY: { secret: 'deploy-key' } } },
        ops: { ...echo, credentials: { DEPLOY_KEY: { secret: 'deploy-key' } } },
      },
      config: {
        secrets: SEALING,
        endpoints: { gh: { path: '/mcp/gh', servers: ['github', 'actions'] } },
        hosts: {
          'actions.example.com': { server: 'actions' },
          'ci.example.com': { server: 'ci' },
          'gh.example.com': { endpoint: 'gh' },
        },
      },
      auth: { audience: GATEWAY_WIDE },
    })
    // A token that names every taker, the user's own (as from `mcp-edge token`).
    alice = await stack.token('alice', { server: 'github' })
    alice = await withAud([at('/mcp/github'), at('/mcp/actions'), at('/mcp/ci')])
  })
  // Each attempt starts from the user's own keys (a failed one may have changed them).
  beforeEach(restore)
  after(async () => {
    await stack?.close()
  })

  const refusals: {
    name: string
    secret: keyof typeof held
    aud: () => unknown
    claims?: Record<string, unknown>
  }[] = [
    {
      name: 'a token for ci whose scopes do not open it (scope: openid; MCP refuses it there)',
      secret: 'deploy-key',
      aud: () => at('/mcp/ci'),
      claims: { scope: 'openid' },
    },
    {
      name: "an app's token for actions, on the key github shares",
      secret: 'github-token',
      aud: () => at('/mcp/actions'),
    },
    {
      name: "an app's token for actions (legacy /sse), on the key github shares",
      secret: 'github-token',
      aud: () => at('/sse/actions'),
    },
    {
      name: "an app's token for echo and actions, on the key github shares",
      secret: 'github-token',
      aud: () => [at('/mcp/echo'), at('/mcp/actions')],
    },
    {
      name: "an app's token for actions by its routed host, on the key github shares",
      secret: 'github-token',
      aud: () => routed('actions.example.com'),
    },
    {
      name: 'a token for ops, a server the policy does not open to alice, on the key ci uses',
      secret: 'deploy-key',
      aud: () => at('/mcp/ops'),
    },
  ]
  for (const c of refusals)
    for (const method of ['PUT', 'DELETE'] as const)
      it(`${c.name}: ${method} → 403 token_not_for_server, the user's key untouched`, async () => {
        const audits = stack.audit().length
        const res = await api(
          secret(c.secret),
          method,
          await withAud(c.aud(), c.claims),
          method === 'PUT' ? 'the_apps_own_account_key' : undefined,
        )
        assert.equal(res.status, 403, res.text)
        assert.equal(res.json.error, 'token_not_for_server')
        assert.equal(await valueOf(c.secret), held[c.secret])
        const line = stack.audit().slice(audits).at(-1)!
        assert.equal(line.decision, 'deny')
        assert.equal(line.name, c.secret)
        assert.match(String(line.outcome), /not for every server of the user that takes it/)
      })

  const accepted: { name: string; secret: keyof typeof held; aud: () => unknown }[] = [
    {
      name: 'a token for github and actions',
      secret: 'github-token',
      aud: () => [at('/mcp/github'), at('/mcp/actions')],
    },
    {
      name: 'a token for the endpoint serving github and actions',
      secret: 'github-token',
      aud: () => at('/mcp/gh'),
    },
    {
      name: "a token for the endpoint's routed host",
      secret: 'github-token',
      aud: () => routed('gh.example.com'),
    },
    {
      name: "a token for ci's routed host",
      secret: 'deploy-key',
      aud: () => routed('ci.example.com'),
    },
    // auth.audience is good at every server: documented (README), the rule cannot hold there.
    {
      name: 'a gateway-wide token (auth.audience)',
      secret: 'github-token',
      aud: () => GATEWAY_WIDE,
    },
    { name: 'a gateway-wide token (auth.audience)', secret: 'deploy-key', aud: () => GATEWAY_WIDE },
    {
      name: 'a token for ci (ops is closed to alice)',
      secret: 'deploy-key',
      aud: () => at('/mcp/ci'),
    },
    {
      name: 'a token for ci with its host in upper case (accepted at authentication)',
      secret: 'deploy-key',
      aud: () => at('/mcp/ci').replace('http://127.0.0.1', 'HTTP://LOCALHOST'),
    },
  ]
  for (const c of accepted)
    it(`held: ${c.name} sets and deletes ${c.secret}`, async () => {
      const token = await withAud(c.aud())
      const set = await api(secret(c.secret), 'PUT', token, 'a_new_key_of_the_user')
      assert.equal(set.status, 200, set.text)
      assert.equal(await valueOf(c.secret), 'a_new_key_of_the_user')
      const del = await api(secret(c.secret), 'DELETE', token)
      assert.equal(del.status, 204, del.text)
      assert.equal(await valueOf(c.secret), undefined)
    })

  it('held: no aud but a resource claim (or an empty aud list): 401 before any rule, key untouched', async () => {
    const { aud: _, ...rest } = claimsOf(alice)
    for (const claims of [
      // forge puts a default aud in: undefined leaves it out of the token.
      { ...rest, aud: undefined, resource: at('/mcp/ci') },
      { ...rest, aud: [], resource: at('/mcp/ci'), azp: 'mcp-edge-account' },
    ]) {
      const token = await stack.forge(claims as JWTPayload)
      const res = await api(secret('deploy-key'), 'PUT', token, 'the_apps_own_account_key')
      assert.equal(res.status, 401, res.text)
      assert.equal(await valueOf('deploy-key'), held['deploy-key'])
    }
  })

  it('held: any of her tokens still lists (names and dates)', async () => {
    const res = await api(`${stack.url}/account/api`, 'GET', await withAud(at('/mcp/echo')))
    assert.equal(res.status, 200, res.text)
    assert.deepEqual((res.json.secrets as { name: string }[]).map((s) => s.name).sort(), [
      'deploy-key',
      'github-token',
    ])
  })
})

// In CI a missing nginx is a failure, not a skip (as test/edge).
const NO_NGINX =
  hasNginx() || process.env.CI === 'true' ? false : 'nginx is not on PATH: edge test skipped'

describe('stop 24: /readyz stays behind the edge, whatever the request target', {
  skip: NO_NGINX,
}, () => {
  let dir: string
  let base: URL
  let pem: string
  let replicas: Replicas
  let nginx: Nginx | undefined

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop24-'))
    const [httpsPort, httpPort] = [await freePort(), await freePort()]
    base = new URL(`https://127.0.0.1:${httpsPort}`)
    const cert = selfSignedCert(dir)
    pem = cert.pem
    replicas = await startReplicas({ ids: ['a'], publicUrl: base.origin, dir })
    nginx = await runNginx(dir, {
      SERVER_NAME: 'localhost 127.0.0.1',
      PUBLIC_URL: base.origin,
      TLS_CERT: cert.cert,
      TLS_KEY: cert.key,
      HTTP_PORT: String(httpPort),
      HTTPS_PORT: String(httpsPort),
      REPLICAS: replicas.list.map((r) => `${r.id}=${new URL(r.gateway.url).host}`).join(' '),
      MAX_BODY: String(1024 * 1024),
    })
  })
  after(async () => {
    await nginx?.stop()
    await replicas?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** One HTTP/1.1 request written byte for byte (no client normalizes the target): status and body. */
  const raw = (head: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const chunks: Buffer[] = []
      const socket = tlsConnect(
        { host: '127.0.0.1', port: Number(base.port), ca: pem, ALPNProtocols: ['http/1.1'] },
        () => socket.write(`${head}\r\nConnection: close\r\n\r\n`),
      )
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('error', reject)
      socket.on('close', () => {
        const text = Buffer.concat(chunks).toString('latin1')
        resolve({ status: Number(text.split(' ')[1]), text })
      })
    })

  it('held: the gateway itself answers /readyz (what the edge must hide)', async () => {
    const res = await fetch(`${replicas.list[0]!.gateway.url}/readyz`)
    assert.match(await res.text(), /"problems"/)
  })

  const host = () => `Host: ${base.host}`
  const targets: [string, () => string][] = [
    ['plain', () => `GET /readyz HTTP/1.1\r\n${host()}`],
    ['dot segment', () => `GET /./readyz HTTP/1.1\r\n${host()}`],
    ['dot-dot segment', () => `GET /x/../readyz HTTP/1.1\r\n${host()}`],
    ['encoded dot', () => `GET /%2e/readyz HTTP/1.1\r\n${host()}`],
    ['encoded dot-dot', () => `GET /x/%2e%2e/readyz HTTP/1.1\r\n${host()}`],
    ['encoded slash and dot-dot', () => `GET /mcp/..%2Freadyz HTTP/1.1\r\n${host()}`],
    ['encoded leading slash', () => `GET /%2Freadyz HTTP/1.1\r\n${host()}`],
    ['double slash', () => `GET //readyz HTTP/1.1\r\n${host()}`],
    ['upper case', () => `GET /READYZ HTTP/1.1\r\n${host()}`],
    ['encoded letters', () => `GET /%72%65adyz HTTP/1.1\r\n${host()}`],
    ['trailing encoded slash', () => `GET /readyz%2F HTTP/1.1\r\n${host()}`],
    ['trailing encoded ?', () => `GET /readyz%3F HTTP/1.1\r\n${host()}`],
    ['trailing encoded space', () => `GET /readyz%20 HTTP/1.1\r\n${host()}`],
    ['matrix parameter', () => `GET /readyz;x HTTP/1.1\r\n${host()}`],
    ['HEAD', () => `HEAD /readyz HTTP/1.1\r\n${host()}`],
    ['absolute form', () => `GET ${base.origin}/readyz HTTP/1.1\r\n${host()}`],
    ['absolute form, another host', () => `GET https://evil.example/readyz HTTP/1.1\r\n${host()}`],
    ['unknown Host', () => `GET /readyz HTTP/1.1\r\nHost: evil.example`],
    ['HTTP/1.0 without Host', () => 'GET /readyz HTTP/1.0'],
    ['under /.well-known/', () => `GET /.well-known/../readyz HTTP/1.1\r\n${host()}`],
  ]
  for (const [name, head] of targets)
    it(`held: ${name} → refused, no readiness report`, async () => {
      const res = await raw(head())
      assert.ok(res.status === 404 || res.status === 400, res.text.slice(0, 300))
      assert.doesNotMatch(res.text, /problems|warnings|"ready"/)
    })
})

/**
 * A stdio MCP server (newline-delimited JSON-RPC, no SDK) that logs its VAULT_TOKEN to stderr at
 * each call as other languages' libraries write it: Python's json.dumps (non-ASCII as \uXXXX),
 * Go's encoding/json (< > & as \u003c \u003e \u0026) and a form body (URLSearchParams, Python's
 * urlencode: space as +, ! ' ( ) * encoded).
 */
const POLYGLOT = `
const readline = require('node:readline')
const token = process.env.VAULT_TOKEN ?? ''
const u = (c) => '\\\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')
const json = JSON.stringify(token)
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let m
  try { m = JSON.parse(line) } catch { return }
  if (m.id === undefined || m.method === undefined) return
  const result = (r) => send({ jsonrpc: '2.0', id: m.id, result: r })
  if (m.method === 'initialize')
    return result({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'polyglot', version: '1' } })
  if (m.method === 'tools/list') return result({ tools: [{ name: 'leak', inputSchema: { type: 'object' } }] })
  if (m.method === 'tools/call') {
    process.stderr.write('python {"token": ' + json.replace(/[\\u0080-\\uffff]/g, u) + '}\\n')
    process.stderr.write('go {"token":' + json.replace(/[<>&\\u2028\\u2029]/g, u) + '}\\n')
    process.stderr.write('form grant_type=password&password=' + new URLSearchParams({ p: token }).toString().slice(2) + '\\n')
    process.stderr.write('end of request\\n')
    return result({ content: [{ type: 'text', text: 'leaked' }] })
  }
  if (m.method === 'ping') return result({})
})
`

describe("stop 24: stderr redaction covers other languages' JSON and form encodings", () => {
  let stack: Stack
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stop24-'))
    const script = join(dir, 'polyglot.cjs')
    writeFileSync(script, POLYGLOT)
    stack = await startStack({
      policy: `${POLICY}  polyglot: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }\n`,
      servers: {
        polyglot: {
          command: process.execPath,
          args: [script],
          credentials: { VAULT_TOKEN: { secret: 'vault-token' } },
        },
      },
    })
  })
  after(() => stack?.close())

  const lines = async (value: string) => {
    await stack.gateway.secrets!.set({ iss: stack.idp.issuer, sub: 'alice' }, 'vault-token', value)
    const from = stack.logLines.length
    const { client } = await connectAs(stack, 'alice', 'polyglot', { name: 'stop24' })
    try {
      await client.callTool({ name: 'leak', arguments: {} })
      await waitFor(
        () => stack.logLines.slice(from).some((l) => l.includes('end of request')),
        'the last stderr line was logged',
      )
    } finally {
      await client.close()
    }
    const got = stack.logLines.slice(from)
    return (tag: string) => got.find((l) => l.includes(`"stderr":"${tag} `))!
  }

  for (const [tag, value, hidden] of [
    ['python', 'pässwörd-Ünïcode-1234', 'code-1234'],
    ['go', 'pa&ss<wo>rd&1234&5678', 'u003erd'],
    ['form', "p@ss w0rd (it's)*!~", 'w0rd'],
  ] as const)
    it(`${tag}: the value as that library writes it is blotted out`, async () => {
      const line = (await lines(value))(tag)
      assert.ok(line.includes('[redacted]'), line)
      assert.ok(!line.includes(hidden), line)
    })
})

for (const [when, upstream] of [
  ['a fresh login', {}],
  // The login is due again at each authorization: the gateway's own "remembered consent covers
  // it" shortcut runs (straight to the upstream, then scopes granted with no page).
  ['a login due again (recheckInterval 0)', { recheckInterval: 0 }],
] as const)
  describe(`stop 24: with the broker, a remembered client gets no other server without consent (${when})`, () => {
    // A hosted (web) client: consent is remembered for it (consent.remember, the default).
    const WEB = 'https://claude.ai/api/mcp/auth_callback'
    const ALICE = '00000000-0000-0000-0000-00000000a11c'
    let stack: BrokerStack
    before(async () => {
      const servers = accountServers()
      stack = await startBrokerStack({
        // `open` needs no scope (no `access`, its tools allowed): any token for it is good there.
        policy: `${ACCOUNT_POLICY}  open:\n    tools: { "*": allow }\n`,
        auth: ACCOUNT_EXCHANGE,
        upstream,
        config: { servers: { ...servers, open: servers.echo }, secrets: SEALING },
      })
    })
    after(() => stack?.close())
    const valueOf = (name: string) =>
      secretsIn(stack.store).value({ iss: stack.url, sub: ALICE }, name)

    for (const server of ['jira', 'open'])
      it(`consented for github, the app asks for ${server} with scope=openid: the consent page, no code`, async () => {
        await stack.gateway.secrets!.set({ iss: stack.url, sub: ALICE }, 'jira-token', 'users-key')
        const clientId = await newClient(stack, [WEB])
        const jar = new Map<string, string>()
        const scope = 'openid mcp:read'
        const first = await login(stack, {
          clientId,
          redirectUri: WEB,
          server: 'github',
          scope,
          jar,
        })
        const github = await exchange(stack, first, {
          clientId,
          redirectUri: WEB,
          server: 'github',
        })
        assert.equal(github.status, 200, github.text)
        // held: the remembered consent still covers github itself: no page, a code.
        const again = await login(stack, {
          clientId,
          redirectUri: WEB,
          server: 'github',
          scope,
          jar,
        })
        assert.deepEqual(
          again.visits.filter((v) => v.status === 200).map((v) => v.url),
          [],
          'no page for github again',
        )
        assert.ok(again.callback.searchParams.get('code'), again.callback.href)
        // Another server, no resource scope asked: before, a code and a token with no page shown.
        const other = await login(stack, {
          clientId,
          redirectUri: WEB,
          server,
          jar,
          params: { scope: 'openid' },
          choices: { consent: 'deny', missingRole: 'cancel' },
        })
        const pages = other.visits.filter((v) => v.status === 200)
        assert.equal(pages.length, 1, 'the consent page was shown')
        assert.match(pages[0]!.html, new RegExp(server))
        assert.equal(other.callback.searchParams.get('code'), null, other.callback.href)
        assert.equal(other.callback.searchParams.get('error'), 'access_denied')
        assert.equal(await valueOf('jira-token'), 'users-key')
      })
  })
