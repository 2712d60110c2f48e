// Host routing through nginx/mcp-edge.conf.template: routed host names (HOSTS) rendered as
// server blocks of their own in front of two gateway replicas whose `hosts:` route
// notes.test to the notes server and tools.test to an endpoint over every server. One
// certificate names the main host and both routed ones; the client resolves every *.test
// name to 127.0.0.1, so SNI, Host and the certificate check are those of real host names.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { LookupFunction } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate } from 'node:tls'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { Agent, fetch as undiciFetch, request } from 'undici'
import { freePort } from '../helpers/ports.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { initialize, openSession, send, type Answer } from './mcp-raw.js'
import { hasNginx, type Nginx, ROOT, runNginx, selfSignedCert } from './nginx-run.js'
import { startReplicas, type Replicas } from './replicas.js'
import { startTap, type Tap } from './tap.js'

// In CI (.ci/run installs nginx) a missing nginx is a failure, not a skip.
const SKIP =
  hasNginx() || process.env.CI === 'true'
    ? false
    : 'nginx is not on PATH (CI installs it in .ci/run): edge tests skipped'
const MAIN = 'mcp.test'
const NOTES = 'notes.test'
const TOOLS = 'tools.test'
/** Resolved by the client, never by DNS: unknown.test too (a name nginx and the gateway do not route). */
const NAMES = [MAIN, NOTES, TOOLS, 'unknown.test']
const V = '2026-07-28'
const POLICY = `
roles:
  mcp-user: ["mcp:read"]
servers:
  notes:
    access: ["mcp:read"]
    tools: { list_notes: ["mcp:read"], read_note: ["mcp:read"], "*": ["mcp:write"] }
  echo: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
`
/** What alice (mcp-user) sees at notes.test/mcp, and at tools.test/mcp (the endpoint `all`). */
const NOTES_TOOLS = ['list_notes', 'read_note']
const ALL_TOOLS = ['echo_echo', 'notes_list_notes', 'notes_read_note']

type Render = (template: string, values: Record<string, string>) => string
const renderModule = () =>
  import(pathToFileURL(join(ROOT, 'nginx/render.mjs')).href) as Promise<{ render: Render }>
const template = () => readFileSync(join(ROOT, 'nginx/mcp-edge.conf.template'), 'utf8')
const BASE = {
  SERVER_NAME: 'mcp.example.com',
  TLS_CERT: '/tls/cert.pem',
  TLS_KEY: '/tls/key.pem',
  REPLICAS: 'a=10.0.0.11:8080 b=10.0.0.12:8080',
  NGINX_VERSION: '1.28.0',
}

/** The top-level `server { … }` blocks of a rendered config, as text. */
function serverBlocks(conf: string): string[] {
  const lines = conf.split('\n')
  const blocks: string[] = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '    server {') continue
    const end = lines.indexOf('    }', i)
    blocks.push(lines.slice(i, end + 1).join('\n'))
    i = end
  }
  return blocks
}

describe('render.mjs with HOSTS', () => {
  it('renders each group of routed hosts as the main server blocks again: only names, certificate and redirect differ', async () => {
    const { render } = await renderModule()
    type Site = { names: string; cert: string; key: string }
    const cases: {
      name: string
      values: Record<string, string>
      sites: Site[]
      redirect: string
    }[] = [
      {
        name: 'one certificate naming every host (the default)',
        values: { HOSTS: 'notes.example.com, tools.example.com' },
        sites: [
          {
            names: 'notes.example.com tools.example.com',
            cert: '/tls/cert.pem',
            key: '/tls/key.pem',
          },
        ],
        redirect: 'https://$host',
      },
      {
        name: 'a certificate per host ({host}), a port of its own',
        values: {
          HOSTS: 'notes.example.com tools.example.com',
          HOSTS_TLS_CERT: '/le/live/{host}/fullchain.pem',
          HOSTS_TLS_KEY: '/le/live/{host}/privkey.pem',
          HTTPS_PORT: '8443',
        },
        sites: ['notes.example.com', 'tools.example.com'].map((h) => ({
          names: h,
          cert: `/le/live/${h}/fullchain.pem`,
          key: `/le/live/${h}/privkey.pem`,
        })),
        redirect: 'https://$host:8443',
      },
      {
        name: 'one other certificate for every host',
        values: {
          HOSTS: 'notes.example.com tools.example.com',
          HOSTS_TLS_CERT: '/tls/hosts.pem',
          HOSTS_TLS_KEY: '/tls/hosts.key',
        },
        sites: [
          {
            names: 'notes.example.com tools.example.com',
            cert: '/tls/hosts.pem',
            key: '/tls/hosts.key',
          },
        ],
        redirect: 'https://$host',
      },
    ]
    for (const c of cases) {
      const conf = render(template(), { ...BASE, ...c.values })
      const blocks = serverBlocks(conf)
      assert.equal(blocks.length, 2 + 2 * c.sites.length, c.name)
      const [mainHttp, mainHttps] = blocks as [string, string]
      const port = c.values.HTTPS_PORT ? `:${c.values.HTTPS_PORT}` : ''
      assert.match(
        mainHttp,
        new RegExp(`return 301 https://mcp\\.example\\.com${port}\\$request_uri;`),
        `${c.name}: the main site still redirects to the public URL`,
      )
      c.sites.forEach((site, i) => {
        const [http, https] = [blocks[2 + 2 * i]!, blocks[3 + 2 * i]!]
        const expectedHttp = mainHttp
          .replace('server_name mcp.example.com;', `server_name ${site.names};`)
          .replace(/return 301 \S+\$request_uri;/, `return 301 ${c.redirect}$request_uri;`)
        const expectedHttps = mainHttps
          .replace('server_name mcp.example.com;', `server_name ${site.names};`)
          .replace('ssl_certificate /tls/cert.pem;', `ssl_certificate ${site.cert};`)
          .replace('ssl_certificate_key /tls/key.pem;', `ssl_certificate_key ${site.key};`)
        assert.equal(http, expectedHttp, `${c.name}: plain HTTP of ${site.names}`)
        assert.equal(https, expectedHttps, `${c.name}: HTTPS of ${site.names}`)
      })
      assert.ok(!conf.includes('EACH_SITE'), `${c.name}: no marker left`)
    }
  })

  it('renders no trace of HOSTS when none are given', async () => {
    const { render } = await renderModule()
    for (const values of [BASE, { ...BASE, HOSTS: '' }, { ...BASE, HOSTS: ' , ' }]) {
      const conf = render(template(), values)
      assert.equal(serverBlocks(conf).length, 2)
      assert.ok(!/EACH_SITE|Routed hosts|https:\/\/\$host/.test(conf))
      assert.equal(conf, render(template(), BASE))
    }
  })

  it('refuses HOSTS that nginx or the gateway would not route as written, naming each', async () => {
    const { render } = await renderModule()
    const cases: { values: Record<string, string>; problems: string[] }[] = [
      {
        values: { HOSTS: 'Notes.example.com' },
        problems: ['HOSTS: "Notes.example.com" is not a lowercase DNS name'],
      },
      {
        values: { HOSTS: '*.example.com' },
        problems: ['HOSTS: "*.example.com" is not a lowercase DNS name'],
      },
      {
        values: { HOSTS: 'localhost' },
        problems: ['HOSTS: "localhost" is not a lowercase DNS name'],
      },
      {
        values: { HOSTS: 'a.example.com a.example.com' },
        problems: ['HOSTS: "a.example.com" is listed twice'],
      },
      {
        values: { HOSTS: 'mcp.example.com' },
        problems: ['HOSTS: "mcp.example.com" is also in SERVER_NAME'],
      },
      {
        values: { HOSTS: 'a.example.com', HOSTS_TLS_CERT: '/le/{host}.pem' },
        problems: ['HOSTS_TLS_CERT, HOSTS_TLS_KEY: set both or neither'],
      },
      {
        values: { HOSTS_TLS_CERT: '/c.pem', HOSTS_TLS_KEY: '/k.pem' },
        problems: ['HOSTS_TLS_CERT, HOSTS_TLS_KEY: only with HOSTS'],
      },
      {
        values: {
          HOSTS: 'a.example.com B.example.com',
          HOSTS_TLS_CERT: '/le/{HOST}.pem',
          HOSTS_TLS_KEY: '/le/{host};.key',
        },
        problems: [
          'HOSTS_TLS_CERT: a file path without spaces, quotes, ; { } or $ besides {host} (got "/le/{HOST}.pem" for a.example.com)',
          'HOSTS_TLS_KEY: a file path without spaces, quotes, ; { } or $ besides {host} (got "/le/a.example.com;.key" for a.example.com)',
          'HOSTS: "B.example.com" is not a lowercase DNS name',
        ],
      },
    ]
    for (const c of cases) {
      assert.throws(
        () => render(template(), { ...BASE, ...c.values }),
        (err: Error) => {
          const lines = err.message
            .split('\n')
            .slice(1)
            .map((l) => l.trim())
          assert.equal(lines.length, c.problems.length, err.message)
          c.problems.forEach((p, i) =>
            assert.ok(lines[i]!.startsWith(p), `${lines[i]} starts with ${p}`),
          )
          return true
        },
        JSON.stringify(c.values),
      )
    }
    // A template without the per-site lines cannot carry HOSTS (and renders as before without).
    const bare = template()
      .split('\n')
      .filter((l) => !l.includes('EACH_SITE'))
      .join('\n')
    assert.throws(
      () => render(bare, { ...BASE, HOSTS: 'a.example.com' }),
      /HOSTS: the template has no \$\{EACH_SITE\}/,
    )
    assert.equal(render(bare, BASE), render(template(), BASE))
  })
})

/** Every *.test name of NAMES at 127.0.0.1, anything else unknown: no request leaves the machine. */
const lookup: LookupFunction = (hostname, options, callback) => {
  if (!NAMES.includes(hostname)) {
    callback(
      Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }),
      '',
    )
  } else if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }])
  else callback(null, '127.0.0.1', 4)
}

describe('nginx routing host names to two gateway replicas', { skip: SKIP }, () => {
  let dir: string
  let port: number
  let httpPort: number
  let replicas: Replicas
  let taps: Tap[] = []
  let nginx: Nginx | undefined
  let agent: Agent
  let pem: string
  const tokens: Record<string, string> = {}
  /** https://<host>:<port>: each routed host keeps the public URL's scheme and port. */
  const origin = (host: string) => `https://${host}:${port}`
  /** RFC 9728 §3.1: the well-known segment between the origin and the resource's path. */
  const metadataOf = (resource: string) =>
    `${new URL(resource).origin}/.well-known/oauth-protected-resource${new URL(resource).pathname}`
  /** From now on: a function returning the requests every replica received since. */
  const mark = () => {
    const at = taps.map((t) => t.seen.length)
    return () => taps.flatMap((t, i) => t.seen.slice(at[i]))
  }

  before(async () => {
    if (!hasNginx()) throw new Error('CI=true but nginx is not on PATH: .ci/run installs it')
    dir = mkdtempSync(join(tmpdir(), 'mcp-edge-hosts-'))
    ;[port, httpPort] = [await freePort(), await freePort()]
    const cert = selfSignedCert(dir, [MAIN, NOTES, TOOLS], [])
    const node = process.execPath
    replicas = await startReplicas({
      ids: ['a', 'b'],
      publicUrl: origin(MAIN),
      dir,
      servers: {
        // One process per replica: sessions are cheap, and the pid would name the replica.
        notes: {
          command: node,
          args: [join(SERVERS_DIR, 'notes.js')],
          mode: 'shared',
          maxSessionsPerSubject: 500,
        },
        echo: { command: node, args: [join(SERVERS_DIR, 'echo.js')] },
      },
      policy: POLICY,
      endpoints: { all: { servers: '*' } },
      hosts: { [NOTES]: { server: 'notes' }, [TOOLS]: { endpoint: 'all' } },
    })
    taps = await Promise.all(replicas.list.map((r) => startTap(new URL(r.gateway.url).host)))
    nginx = await runNginx(dir, {
      SERVER_NAME: MAIN,
      HOSTS: `${NOTES} ${TOOLS}`,
      PUBLIC_URL: origin(MAIN),
      TLS_CERT: cert.cert,
      TLS_KEY: cert.key,
      HTTP_PORT: String(httpPort),
      HTTPS_PORT: String(port),
      REPLICAS: replicas.list.map((r, i) => `${r.id}=${taps[i]!.address}`).join(' '),
    })
    pem = cert.pem
    agent = new Agent({ connect: { ca: pem, lookup } })
    tokens.notesHost = await replicas.tokenFor(`${origin(NOTES)}/mcp`)
    tokens.toolsHost = await replicas.tokenFor(`${origin(TOOLS)}/mcp`)
    tokens.mainNotes = await replicas.tokenFor(`${origin(MAIN)}/mcp/notes`)
    tokens.mainAll = await replicas.tokenFor(`${origin(MAIN)}/mcp/all`)
  })

  after(async () => {
    await nginx?.stop()
    await agent?.close()
    await Promise.all(taps.map((t) => t.close()))
    await replicas?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const bearer = (token: string) => ({ authorization: `Bearer ${tokens[token]}` })
  const get = (url: string, headers: Record<string, string> = {}) =>
    send(agent, url, { method: 'GET', headers })

  it("serves each routed host's /mcp as hosts: routes it, in both eras, with the SDK client", async () => {
    const fetchVia = ((input: string | URL, init?: RequestInit) =>
      undiciFetch(input, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch
    const cases = [
      { host: NOTES, token: 'notesHost', tools: NOTES_TOOLS, call: 'read_note', server: 'notes' },
      {
        host: TOOLS,
        token: 'toolsHost',
        tools: ALL_TOOLS,
        call: 'notes_read_note',
        server: 'mcp-edge',
      },
    ]
    for (const c of cases) {
      for (const era of ['session', V] as const) {
        const client = new Client(
          { name: 'hosts-test', version: '0' },
          era === V ? { versionNegotiation: { mode: { pin: V } } } : {},
        )
        await client.connect(
          new StreamableHTTPClientTransport(new URL(`${origin(c.host)}/mcp`), {
            requestInit: { headers: bearer(c.token) },
            fetch: fetchVia,
          }),
        )
        try {
          const { tools } = await client.listTools()
          assert.deepEqual(tools.map((t) => t.name).sort(), c.tools, `${c.host} (${era})`)
          const read = await client.callTool({ name: c.call, arguments: { name: 'welcome' } })
          assert.deepEqual(
            read.content,
            [{ type: 'text', text: 'Hello from the notes server.' }],
            `${c.host} (${era})`,
          )
          if (era === 'session')
            assert.match(
              String(client.getServerVersion()?.name),
              new RegExp(c.server),
              `${c.host}: initialize answered by ${c.server}`,
            )
        } finally {
          await client.close()
        }
      }
    }
  })

  it("names each host's own resource URL in its RFC 9728 metadata and its challenges", async () => {
    const cases = [
      { host: NOTES, path: '/mcp', resource: `${origin(NOTES)}/mcp` },
      { host: TOOLS, path: '/mcp', resource: `${origin(TOOLS)}/mcp` },
      { host: MAIN, path: '/mcp/notes', resource: `${origin(MAIN)}/mcp/notes` },
      { host: MAIN, path: '/mcp/all', resource: `${origin(MAIN)}/mcp/all` },
    ]
    for (const c of cases) {
      const metadata = `${origin(c.host)}/.well-known/oauth-protected-resource${c.path}`
      const res = await get(metadata)
      assert.equal(res.status, 200, `${metadata}: ${res.text}`)
      const doc = JSON.parse(res.text) as { resource: string; authorization_servers: string[] }
      assert.equal(doc.resource, c.resource)
      assert.deepEqual(doc.authorization_servers, [replicas.idp.issuer])
      const challenge = await send(agent, `${origin(c.host)}${c.path}`, { body: initialize() })
      assert.equal(challenge.status, 401)
      // The scope a first token needs may come first (MCP 2025-11-25); the metadata is this host's.
      assert.match(
        String(challenge.headers['www-authenticate']),
        /^Bearer (scope="[^"]*", )?resource_metadata="[^"]*"$/,
      )
      assert.ok(
        String(challenge.headers['www-authenticate']).endsWith(`resource_metadata="${metadata}"`),
        metadata,
      )
    }
    // The main host routes no /mcp of its own: no resource there.
    const none = await get(`${origin(MAIN)}/.well-known/oauth-protected-resource/mcp`)
    assert.equal(none.status, 404)
    assert.equal(none.json().error?.message, 'no such protected resource')
  })

  it('accepts a token only where it opens the same server or endpoint: 401 at the other host', async () => {
    // What each URL opens: notes.test/mcp and the main host's /mcp/notes are one server (as
    // /sse/notes is), tools.test/mcp and /mcp/all one endpoint; a token names one of them.
    const at = {
      notesHost: { url: `${origin(NOTES)}/mcp`, opens: 'notes' },
      mainNotes: { url: `${origin(MAIN)}/mcp/notes`, opens: 'notes' },
      toolsHost: { url: `${origin(TOOLS)}/mcp`, opens: 'all' },
      mainAll: { url: `${origin(MAIN)}/mcp/all`, opens: 'all' },
    }
    for (const [token, own] of Object.entries(at)) {
      for (const { url, opens } of Object.values(at)) {
        const res = await send(agent, url, { body: initialize(), headers: bearer(token) })
        if (opens === own.opens) {
          assert.equal(res.status, 200, `a token for ${own.url} at ${url}: ${res.text}`)
          continue
        }
        assert.equal(res.status, 401, `a token for ${own.url} at ${url}: ${res.text}`)
        const challenge = String(res.headers['www-authenticate'])
        assert.match(
          challenge,
          /^Bearer error="invalid_token", error_description="the token was issued for another resource", /,
          url,
        )
        assert.ok(
          challenge.endsWith(`resource_metadata="${metadataOf(url)}"`),
          `${url}: ${challenge}`,
        )
        assert.equal(res.headers['mcp-session-id'], undefined)
      }
    }
  })

  it("passes the Host the client sent to the gateway unchanged; a host nobody routes gets the gateway's 403", async () => {
    // undici sends the Host header's name as SNI: for a name the certificate does not carry,
    // the client still checks that the certificate is the one naming the main host.
    const anyName = new Agent({
      connect: {
        ca: pem,
        lookup,
        checkServerIdentity: (_name, peer) => checkServerIdentity(MAIN, peer),
      },
    })
    const cases = [
      { url: `${origin(NOTES)}/mcp`, host: `${NOTES}:${port}`, status: 401 },
      { url: `${origin(TOOLS)}/mcp`, host: `${TOOLS}:${port}`, status: 401 },
      { url: `${origin(MAIN)}/mcp/notes`, host: `${MAIN}:${port}`, status: 401 },
      // Upper case and no port: as sent (the gateway compares names case-insensitively).
      { url: `${origin(NOTES)}/mcp`, host: 'NOTES.test', status: 401, header: 'NOTES.test' },
      // A name no block serves reaches the first (main) one, which passes it on: the gateway
      // refuses it before any other work (DNS rebinding), nginx does not decide.
      {
        url: `${origin(MAIN)}/mcp/notes`,
        host: `unknown.test:${port}`,
        status: 403,
        header: `unknown.test:${port}`,
        agent: anyName,
      },
      {
        url: `${origin(MAIN)}/mcp`,
        host: 'unknown.test',
        status: 403,
        header: 'unknown.test',
        agent: anyName,
      },
    ]
    try {
      for (const c of cases) {
        const since = mark()
        const res = await send(c.agent ?? agent, c.url, {
          body: initialize(),
          headers: c.header ? { host: c.header } : {},
        })
        assert.equal(res.status, c.status, `${c.host}: ${res.text}`)
        if (c.status === 403) assert.equal(res.json().error?.message, 'host not allowed')
        assert.deepEqual(
          since().map((r) => `${r.method} ${r.target} ${r.host}`),
          [`POST ${new URL(c.url).pathname} ${c.host}`],
        )
      }
    } finally {
      await anyName.close()
    }
  })

  it('redirects plain HTTP on a routed host to https on the same name, and the main host to the public URL', async () => {
    const http = (host: string) => `http://${host}:${httpPort}`
    const cases = [
      { from: `${http(NOTES)}/mcp`, to: `${origin(NOTES)}/mcp` },
      {
        from: `${http(TOOLS)}/.well-known/oauth-protected-resource/mcp?x=1`,
        to: `${origin(TOOLS)}/.well-known/oauth-protected-resource/mcp?x=1`,
      },
      { from: `${http(MAIN)}/mcp/notes`, to: `${origin(MAIN)}/mcp/notes` },
      // A name nobody routes: the first block's redirect, never to the name it sent.
      { from: `${http('unknown.test')}/mcp`, to: `${origin(MAIN)}/mcp` },
    ]
    for (const c of cases) {
      const res = await request(c.from, { dispatcher: agent, method: 'POST' })
      await res.body.dump()
      assert.equal(res.statusCode, 301, c.from)
      assert.equal(res.headers.location, c.to, c.from)
    }
  })

  it('sends the security headers on routed hosts too, and answers /metrics itself', async () => {
    const cases: { name: string; status: number; go: () => Promise<Answer> }[] = [
      {
        name: 'metadata',
        status: 200,
        go: () => get(`${origin(NOTES)}/.well-known/oauth-protected-resource/mcp`),
      },
      {
        name: 'MCP without token',
        status: 401,
        go: () => send(agent, `${origin(TOOLS)}/mcp`, { body: initialize() }),
      },
      { name: 'health', status: 200, go: () => get(`${origin(TOOLS)}/healthz`) },
      {
        name: 'metrics blocked at the edge',
        status: 404,
        go: () => get(`${origin(NOTES)}/metrics`),
      },
    ]
    for (const c of cases) {
      const since = mark()
      const res = await c.go()
      assert.equal(res.status, c.status, `${c.name}: ${res.text.slice(0, 200)}`)
      const h = res.headers
      assert.equal(h['strict-transport-security'], 'max-age=31536000; includeSubDomains', c.name)
      assert.equal(h['x-content-type-options'], 'nosniff', c.name)
      assert.equal(h['x-frame-options'], 'DENY', c.name)
      assert.match(
        String(h['x-request-id']),
        /^[0-9a-f]{32}$/,
        `${c.name}: one X-Request-Id, nginx's`,
      )
      assert.equal(
        since().length,
        c.name.includes('metrics') ? 0 : 1,
        `${c.name}: reached a replica`,
      )
    }
  })

  it('keeps a session opened on a routed host on the replica that holds it', async () => {
    const markers: string[] = []
    for (const [host, token, name] of [
      [NOTES, 'notesHost', 'read_note'],
      [TOOLS, 'toolsHost', 'notes_read_note'],
    ] as const) {
      for (let i = 0; i < 8; i++) {
        const url = `${origin(host)}/mcp`
        const sid = await openSession(agent, url, tokens[token]!)
        markers.push(sid.split('.')[0]!)
        for (let n = 1; n <= 2; n++) {
          const res = await send(agent, url, {
            body: {
              jsonrpc: '2.0',
              id: n,
              method: 'tools/call',
              params: { name, arguments: { name: 'welcome' } },
            },
            headers: { ...bearer(token), 'mcp-session-id': sid },
          })
          assert.equal(res.status, 200, `${host} session ${sid.slice(0, 2)}…: ${res.text}`)
          assert.equal(res.json().result?.content[0]!.text, 'Hello from the notes server.')
        }
      }
    }
    assert.deepEqual(
      [...new Set(markers)].sort(),
      ['a', 'b'],
      `sessions on both replicas: ${markers.join(' ')}`,
    )
  })
})

describe('nginx with a certificate per routed host', { skip: SKIP }, () => {
  let dir: string
  let port: number
  let nginx: Nginx | undefined
  const subjects: Record<string, string> = {}

  before(async () => {
    if (!hasNginx()) throw new Error('CI=true but nginx is not on PATH: .ci/run installs it')
    dir = mkdtempSync(join(tmpdir(), 'mcp-edge-hosts-tls-'))
    port = await freePort()
    // certbot's layout: one folder per name.
    for (const name of [MAIN, NOTES, TOOLS]) {
      mkdirSync(join(dir, name))
      selfSignedCert(join(dir, name), [name], [])
    }
    nginx = await runNginx(dir, {
      SERVER_NAME: MAIN,
      HOSTS: `${NOTES} ${TOOLS}`,
      TLS_CERT: join(dir, MAIN, 'cert.pem'),
      TLS_KEY: join(dir, MAIN, 'key.pem'),
      HOSTS_TLS_CERT: join(dir, '{host}', 'cert.pem'),
      HOSTS_TLS_KEY: join(dir, '{host}', 'key.pem'),
      HTTP_PORT: String(await freePort()),
      HTTPS_PORT: String(port),
      // Only handshakes here: no request reaches an upstream.
      REPLICAS: `a=127.0.0.1:${await freePort()}`,
    })
    for (const name of [MAIN, NOTES, TOOLS, 'unknown.test']) {
      subjects[name] = await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect(
          { host: '127.0.0.1', port, servername: name, rejectUnauthorized: false },
          () => {
            resolve(String((socket.getPeerCertificate() as PeerCertificate).subject.CN))
            socket.end()
          },
        )
        socket.on('error', reject)
      })
    }
  })

  after(async () => {
    await nginx?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('presents the certificate of the name the client asked for (SNI), the main one for any other', () => {
    assert.deepEqual(subjects, {
      [MAIN]: MAIN,
      [NOTES]: NOTES,
      [TOOLS]: TOOLS,
      'unknown.test': MAIN,
    })
  })
})
