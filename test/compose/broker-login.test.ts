// The compose stack's login, end to end on loopback: setup.sh's .env, certificate and secrets;
// compose/nginx.conf in front (its ports and upstream addresses moved to loopback); a gateway
// from compose/gateway.yaml with the gateway service's environment, whose broker reaches
// "Keycloak" at the public URL through nginx (connectTo, as with the `nginx` service) and checks
// nginx's certificate against setup.sh's CA; and, behind nginx's /realms/, an oidc-provider
// shaped by compose/realm-mcp.json: its broker client (secret, redirect URI, scopes, PKCE), its
// demo user and realm roles in the ID token. The SDK v2 client registers with the gateway,
// consents, signs in "at Keycloak", and calls tools with the gateway's own token.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client'
import { decodeJwt } from 'jose'
import { pino } from 'pino'
import { fetch as undiciFetch, request, setGlobalDispatcher } from 'undici'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { brokerLogin, type Visit } from '../helpers/broker-browser.js'
import { memoryProvider, REDIRECT } from '../helpers/oauth-provider.js'
import { freePort } from '../helpers/ports.js'
import { loopbackAgent } from '../helpers/test-ca.js'
import { startKeycloakLike, type IdpUser, type UpstreamIdp } from '../helpers/upstream-idp.js'
import { hasNginx, startNginx, type Nginx } from '../edge/nginx-run.js'
import {
  envOf,
  keycloakResolve,
  loopbackGateway,
  onPath,
  parseDotenv,
  read,
  runSetup,
  stackEnv,
} from './stack.js'

interface RealmClient {
  clientId: string
  secret?: string
  redirectUris: string[]
  defaultClientScopes: string[]
  optionalClientScopes?: string[]
}
interface RealmUser {
  username: string
  email?: string
  firstName?: string
  lastName?: string
  serviceAccountClientId?: string
  realmRoles: string[]
}

// In CI (.ci/run installs nginx) a missing nginx is a failure, not a skip.
const missing = [hasNginx() ? '' : 'nginx', onPath('openssl') ? '' : 'openssl'].filter(
  (m) => m !== '',
)
const SKIP =
  missing.length > 0 && process.env.CI !== 'true' && `not installed: ${missing.join(', ')}`

describe('compose stack: an MCP client signs in through the broker at Keycloak', {
  skip: SKIP,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-compose-login-'))
  const logLines: string[] = []
  let base: string
  let idp: UpstreamIdp
  let nginx: Nginx
  let gateway: Gateway
  let fetchVia: typeof fetch
  let demoId: string

  before(async () => {
    if (missing.length > 0) throw new Error(`CI=true but not installed: ${missing.join(', ')}`)
    const [https, http, gw] = [await freePort(), await freePort(), await freePort()]
    base = `https://localhost:${https}`
    // setup.sh, as a user would run it, for this public URL.
    writeFileSync(join(dir, '.env'), `MCP_PUBLIC_URL=${base}\nHTTPS_PORT=${https}\n`)
    const setup = await runSetup(dir)
    assert.equal(setup.code, 0, setup.stderr)
    const dotenv = new Map([...stackEnv, ...parseDotenv(readFileSync(join(dir, '.env'), 'utf8'))])
    const ca = readFileSync(join(dir, 'certs/ca.crt'), 'utf8')
    // The test's browser and MCP client trust the stack's CA and find nginx at localhost.
    const agent = loopbackAgent(ca)
    setGlobalDispatcher(agent)
    fetchVia = ((input: string | URL | Request, init?: RequestInit) =>
      undiciFetch(
        input as never,
        { ...(init as object), dispatcher: agent } as never,
      )) as unknown as typeof fetch

    // "Keycloak": the realm file as Keycloak's import would resolve it with this .env.
    const realm = JSON.parse(
      keycloakResolve(read('realm-mcp.json'), envOf('keycloak', dotenv)),
    ) as {
      realm: string
      clients: RealmClient[]
      users: RealmUser[]
    }
    const client = realm.clients.find((c) => c.clientId === 'mcp-edge-broker')!
    const users: IdpUser[] = realm.users
      .filter((u) => u.serviceAccountClientId === undefined)
      .map((u, i) => ({
        id: `0b9d1c2e-0000-4000-8000-00000000000${i}`,
        claims: {
          preferred_username: u.username,
          given_name: u.firstName,
          family_name: u.lastName,
          name: `${u.firstName} ${u.lastName}`,
          email: u.email,
          email_verified: true,
          // Keycloak adds the realm's default roles composite to every user.
          realm_access: { roles: [...u.realmRoles, `default-roles-${realm.realm}`] },
        },
      }))
    demoId = users.find((u) => u.claims?.preferred_username === 'demo')!.id
    idp = await startKeycloakLike({
      realm: realm.realm,
      client: {
        clientId: client.clientId,
        secret: client.secret!,
        redirectUri: client.redirectUris[0]!,
        scopes: [...client.defaultClientScopes, ...(client.optionalClientScopes ?? [])],
      },
      users,
      publicOrigin: () => base,
    })

    nginx = await startNginx(
      dir,
      nginxConf(dir, { https, http, gateway: gw, keycloak: Number(new URL(idp.listening).port) }),
    )

    // The gateway: the stack's config with the gateway service's environment. Inside the stack
    // it connects to the service `nginx`; here nginx is on loopback.
    const config = loopbackGateway({
      secretsDir: join(dir, 'secrets'),
      port: gw,
      env: envOf('gateway', dotenv),
      edit: (raw) => {
        // Keycloak's own keys (machine clients' tokens), inside the network: the fixture's.
        raw.auth.jwksUri = `${idp.listening}/realms/${realm.realm}/jwks`
        raw.auth.broker.upstream.connectTo = '127.0.0.1'
        raw.auth.broker.upstream.caFile = join(dir, 'certs/ca.crt')
      },
    })
    const log = pino(
      { level: 'debug' },
      new Writable({ write: (c, _e, done) => void (logLines.push(String(c)), done()) }),
    )
    gateway = await startGateway(config, { log, auditDestination: { write: () => {} } })
  })

  after(async () => {
    await gateway?.close()
    await nginx?.stop()
    await idp?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const dump = () => `gateway log:\n${logLines.slice(-20).join('')}\nnginx:\n${nginx?.stderr()}`

  it('the gateway is the authorization server its resources name, on the public URL', async () => {
    const prm = await request(`${base}/.well-known/oauth-protected-resource/mcp/notes`)
    assert.equal(prm.statusCode, 200, dump())
    assert.deepEqual(
      ((await prm.body.json()) as { authorization_servers: string[] }).authorization_servers,
      [base],
    )
    const as = await request(`${base}/.well-known/oauth-authorization-server`)
    const meta = (await as.body.json()) as Record<string, unknown>
    assert.equal(meta.issuer, base)
    assert.equal(meta.registration_endpoint, `${base}/register`)
    assert.match(logLines.join(''), /upstream IdP discovered/, 'discovered at start, through nginx')
    // Ready: the upstream discovered, Keycloak's keys (machine clients) fetched inside the network.
    const ready = await request(`${gateway.url}/readyz`)
    assert.equal(ready.statusCode, 200, await ready.body.text())
  })

  it('DCR → consent → "Keycloak" login (PKCE, client secret) → the gateway\'s token → tools', async () => {
    const { provider, saved } = memoryProvider('compose client')
    const url = new URL(`${base}/mcp/notes`)
    const client = new Client({ name: 'compose-login', version: '0' })
    let transport = new StreamableHTTPClientTransport(url, {
      authProvider: provider,
      fetch: fetchVia,
    })
    await assert.rejects(client.connect(transport), UnauthorizedError)
    const tokensBefore = idp.counts.token
    let visits: Visit[] = []
    try {
      const login = await brokerLogin(provider.authorizationUrl!.href, {
        redirectUri: REDIRECT,
        choices: { consent: 'allow' },
      })
      visits = login.visits
      assert.equal(login.callback.searchParams.get('iss'), base)
      await transport.finishAuth(login.callback.searchParams)
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${dump()}`)
    }

    // The consent page came through nginx with its own policy; the user then went to the realm.
    const consent = visits.find((v) => v.url.startsWith(`${base}/interaction/`) && v.status === 200)
    assert.ok(consent, visits.map((v) => `${v.status} ${v.url}`).join('\n'))
    assert.match(consent.html, /notes/)
    const upstream = new URL(visits.find((v) => v.url.startsWith(`${base}/realms/mcp/auth?`))!.url)
    const q = upstream.searchParams
    assert.equal(q.get('client_id'), 'mcp-edge-broker')
    assert.equal(q.get('redirect_uri'), `${base}/oauth/callback`)
    assert.equal(q.get('code_challenge_method'), 'S256')
    assert.equal(q.get('scope'), 'openid profile')
    assert.equal(
      idp.counts.token,
      tokensBefore + 1,
      'the code was exchanged with the client secret',
    )
    // The gateway's back-channel calls reached "Keycloak" at the public URL, through nginx.
    const access = readFileSync(join(dir, 'access.log'), 'utf8')
    for (const call of [
      'GET /realms/mcp/.well-known/openid-configuration',
      'POST /realms/mcp/token',
      'GET /realms/mcp/jwks',
      'GET /realms/mcp/me',
    ]) {
      assert.ok(access.includes(`"${call} `), `${call} in nginx's access log`)
    }

    const claims = decodeJwt((saved.tokens as { access_token: string }).access_token)
    assert.equal(claims.iss, base)
    assert.equal(claims.aud, `${base}/mcp/notes`)
    assert.equal(claims.sub, demoId, "Keycloak's user id is the subject")
    assert.deepEqual((claims.roles as string[]).filter((r) => r.startsWith('mcp-')).sort(), [
      'mcp-developer',
      'mcp-user',
    ])

    transport = new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: fetchVia })
    await client.connect(transport)
    try {
      const { tools } = await client.listTools()
      assert.deepEqual(tools.map((t) => t.name).sort(), ['list_notes', 'read_note', 'write_note'])
      const read = await client.callTool({ name: 'read_note', arguments: { name: 'welcome' } })
      assert.equal((read as { isError?: boolean }).isError, undefined)
    } finally {
      await client.close()
    }
  })

  it("the consent page keeps the gateway's Content-Security-Policy through nginx, plus nginx's headers", async () => {
    const { provider } = memoryProvider('headers client')
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp/echo`), {
      authProvider: provider,
      fetch: fetchVia,
    })
    await assert.rejects(
      new Client({ name: 'h', version: '0' }).connect(transport),
      UnauthorizedError,
    )
    let url = provider.authorizationUrl!.href
    for (let hop = 0; hop < 5 && !url.includes('/interaction/'); hop++) {
      const res = await request(url)
      await res.body.dump()
      url = new URL(String(res.headers.location), url).href
    }
    const page = await request(url)
    await page.body.dump()
    assert.match(String(page.headers['content-security-policy']), /style-src 'sha256-/)
    assert.equal(page.headers['x-content-type-options'], 'nosniff')
    assert.equal(page.headers['referrer-policy'], 'no-referrer')
  })
})

/**
 * compose/nginx.conf for loopback: its ports, its upstreams' addresses and its certificate
 * paths replaced, inside a minimal nginx.conf whose paths are all in `dir`.
 */
function nginxConf(
  dir: string,
  p: { https: number; http: number; gateway: number; keycloak: number },
): string {
  const version = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr
  const [major, minor, patch] = (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(version)?.slice(1) ?? []).map(
    Number,
  )
  const http2On = major! > 1 || minor! > 25 || (minor === 25 && patch! >= 1)
  let conf = read('nginx.conf')
    .replace(/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${p.http};`)
    .replace(/^(\s*)listen 443 ssl;$/m, `$1listen 127.0.0.1:${p.https} ssl;`)
    .replace('server gateway:8080;', `server 127.0.0.1:${p.gateway};`)
    .replace('server keycloak:8080;', `server 127.0.0.1:${p.keycloak};`)
    .replaceAll('/etc/nginx/certs/', `${dir}/certs/`)
  if (!http2On) conf = conf.replace(/^\s*http2 on;$/m, '')
  writeFileSync(join(dir, 'default.conf'), conf)
  const temp = join(dir, 'nginx-temp')
  mkdirSync(temp, { recursive: true })
  const main = [
    // A root master hands its workers to "nobody", who cannot enter the 0700 temp dir.
    process.getuid?.() === 0 ? 'user root;' : '',
    'events {}',
    'http {',
    `  access_log ${join(dir, 'access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
      (t) => `  ${t}_temp_path ${join(temp, t)};`,
    ),
    `  include ${join(dir, 'default.conf')};`,
    '}',
  ].join('\n')
  writeFileSync(join(dir, 'nginx.conf'), `${main}\n`)
  return join(dir, 'nginx.conf')
}
