// The docker-compose stack of compose/, checked without a Docker engine: the files are parsed
// and cross-checked against each other, and what runs without Docker is run (mcp-edge validate,
// setup.sh in a scratch copy, nginx -t when nginx is installed).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, describe, it } from 'node:test'
import { parse, stringify } from 'yaml'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const COMPOSE = join(ROOT, 'compose')
const MAIN = join(ROOT, 'dist/gateway/main.js')
const read = (name: string) => readFileSync(join(COMPOSE, name), 'utf8')

interface Service {
  image?: string
  build?: { context: string; dockerfile: string }
  command?: string[]
  restart?: string
  environment?: Record<string, string>
  volumes?: string[]
  ports?: string[]
  networks?: string[]
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test?: string[] }
  network_mode?: string
}
interface Mapper { protocolMapper: string; config: Record<string, string> }
interface Scope { name: string; protocol: string; attributes: Record<string, string>; protocolMappers?: Mapper[] }
interface Client {
  clientId: string
  publicClient: boolean
  standardFlowEnabled?: boolean
  directAccessGrantsEnabled?: boolean
  serviceAccountsEnabled?: boolean
  secret?: string
  redirectUris: string[]
  webOrigins: string[]
  attributes?: Record<string, string>
  defaultClientScopes: string[]
  optionalClientScopes: string[]
}
interface User {
  username: string
  serviceAccountClientId?: string
  realmRoles: string[]
  credentials?: { type: string; value: string; temporary: boolean }[]
}
interface Realm {
  realm: string
  roles: { realm: { name: string }[] }
  clientScopes: Scope[]
  scopeMappings: { clientScope: string; roles: string[] }[]
  clients: Client[]
  users: User[]
}

const compose = parse(read('docker-compose.yml')) as {
  services: Record<string, Service>
  networks: Record<string, { internal?: boolean } | null>
  volumes: Record<string, unknown>
}
const services = compose.services
const service = (name: string): Service => {
  const s = services[name]
  assert.ok(s, `service ${name} exists`)
  return s
}
const realmText = read('realm-mcp.json')
const realm = JSON.parse(realmText) as Realm
const gatewayConfig = parse(read('gateway.yaml')) as {
  publicUrl: string
  policies: string
  auth: { issuer: string; jwksUri: string; audience?: string | string[] }
  servers: Record<string, { command: string; args: string[] }>
}
const dockerfile = read('Dockerfile')
const dotenv = parseDotenv(read('.env.example'))

/** Names that hold secrets, in compose environments, Dockerfile ENV/ARG and .env. */
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY$/i
/** A compose variable reference: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}. */
const COMPOSE_VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g

function parseDotenv(text: string): Map<string, string> {
  const vars = new Map<string, string>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line)
    if (m) vars.set(m[1]!, m[2]!)
  }
  return vars
}

/** What `docker compose` would use with .env made from .env.example (secrets filled in). */
const stackEnv = new Map([...dotenv].map(([k, v]) => [k, v === '' ? `test-${k.toLowerCase()}` : v]))

/** Compose interpolation of one value (`$$` is a literal `$`). */
function interpolate(value: string, env: Map<string, string>): string {
  return value
    .split('$$')
    .map((part) =>
      part.replace(COMPOSE_VAR, (_, name: string, op: string | undefined, arg: string | undefined) => {
        const v = env.get(name)
        if (op?.startsWith(':') ? v : v !== undefined) return v!
        if (op?.endsWith('-')) return arg ?? ''
        throw new Error(`${name} is not set: ${arg ?? ''}`)
      }),
    )
    .join('$')
}

/** The environment a service's process sees. */
function envOf(name: string): Map<string, string> {
  const env = service(name).environment ?? {}
  return new Map(Object.entries(env).map(([k, v]) => [k, interpolate(String(v), stackEnv)]))
}

/** Keycloak's import-time placeholders: ${VAR} (and ${VAR:default}) from its environment. */
function keycloakResolve(text: string, env: Map<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^}]*))?\}/g, (whole, name: string, def?: string) =>
    env.get(name) ?? def ?? whole,
  )
}

/** Runs a command to completion. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, cmd)))
}

const scratch = mkdtempSync(join(tmpdir(), 'mcp-edge-compose-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

describe('docker-compose.yml', () => {
  it('has the four services', () => {
    assert.deepEqual(Object.keys(services).sort(), ['gateway', 'keycloak', 'nginx', 'postgres'])
  })

  for (const [name, s] of Object.entries(services)) {
    it(`${name}: has a healthcheck and restarts unless stopped`, () => {
      assert.ok(Array.isArray(s.healthcheck?.test) && s.healthcheck.test.length > 1, 'healthcheck.test')
      assert.notEqual(s.healthcheck.test[0], 'NONE')
      assert.equal(s.restart, 'unless-stopped')
    })
  }

  it('publishes ports from nginx only', () => {
    const publishing = Object.entries(services).filter(([, s]) => s.ports || s.network_mode === 'host')
    assert.deepEqual(publishing.map(([name]) => name), ['nginx'])
    const targets = service('nginx').ports!.map((p) => p.split(':').at(-1))
    assert.deepEqual(targets, ['80', '443'])
  })

  const dependencies = [
    { from: 'keycloak', on: 'postgres' },
    { from: 'gateway', on: 'keycloak' },
    { from: 'nginx', on: 'gateway' },
    { from: 'nginx', on: 'keycloak' },
  ]
  for (const d of dependencies) {
    it(`${d.from} waits for ${d.on} to be healthy`, () => {
      assert.equal(service(d.from).depends_on?.[d.on]?.condition, 'service_healthy')
    })
  }

  it('takes every secret from a variable, never a literal', () => {
    const secrets = Object.entries(services).flatMap(([name, s]) =>
      Object.entries(s.environment ?? {}).filter(([k]) => SECRET_NAME.test(k)).map(([k, v]) => ({ name, k, v })),
    )
    assert.ok(secrets.length >= 5, 'the stack has its database, admin, client and user secrets')
    for (const { name, k, v } of secrets) {
      assert.match(String(v), /^\$\{[A-Za-z_][A-Za-z0-9_]*(:\?[^}]*)?\}$/, `${name}.${k} is only a required \${VAR}`)
    }
  })

  it('writes every $ as ${VAR} or $$ (a bare $name would be interpolated by compose)', () => {
    const text = read('docker-compose.yml').split('\n').filter((l) => !l.trimStart().startsWith('#'))
    for (const line of text) assert.doesNotMatch(line.replaceAll('$$', ''), /\$(?!\{)/, line)
  })

  it('declares the named volumes it uses, and uses the ones it declares', () => {
    const used = new Set(
      Object.values(services)
        .flatMap((s) => s.volumes ?? [])
        .map((v) => v.split(':')[0]!)
        .filter((source) => !source.startsWith('.') && !source.startsWith('/')),
    )
    assert.ok(used.size > 0, 'a named volume holds the database')
    assert.deepEqual([...used].sort(), Object.keys(compose.volumes).sort())
    assert.ok(service('postgres').volumes!.some((v) => v.endsWith(':/var/lib/postgresql/data')))
  })

  it('keeps everything but nginx on the internal network', () => {
    assert.equal(compose.networks.internal?.internal, true)
    for (const [name, s] of Object.entries(services)) {
      for (const net of s.networks ?? []) assert.ok(net in compose.networks, `${name}: network ${net}`)
      assert.ok(s.networks?.includes('internal'), `${name} is on the internal network`)
      const outside = (s.networks ?? []).filter((n) => compose.networks[n]?.internal !== true)
      assert.deepEqual(outside, name === 'nginx' ? ['edge'] : [], `${name}: networks with a way out`)
    }
  })

  it('has every variable it uses listed in .env.example', () => {
    const used = new Set([...read('docker-compose.yml').matchAll(COMPOSE_VAR)].map((m) => m[1]!))
    const missing = [...used].filter((v) => !dotenv.has(v))
    assert.deepEqual(missing, [])
    for (const [k, v] of dotenv) {
      if (SECRET_NAME.test(k)) assert.equal(v, '', `.env.example ships no value for ${k}`)
    }
  })

  it('builds the gateway from the repository root with compose/Dockerfile and its ignore file', () => {
    assert.deepEqual(service('gateway').build, { context: '..', dockerfile: 'compose/Dockerfile' })
    assert.ok(existsSync(join(COMPOSE, 'Dockerfile.dockerignore')))
  })

  it('mounts the gateway config where the image looks, and the policies where the config says', () => {
    const volumes = service('gateway').volumes ?? []
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[]
    const configPath = cmd[cmd.indexOf('--config') + 1]
    assert.ok(volumes.includes(`./gateway.yaml:${configPath}:ro`), volumes.join(', '))
    assert.ok(volumes.includes(`../policies:${gatewayConfig.policies}:ro`), volumes.join(', '))
  })

  it('imports the realm at start and probes Keycloak on its management port', () => {
    const kc = service('keycloak')
    assert.ok(kc.command?.includes('start') && kc.command.includes('--import-realm'))
    assert.ok(kc.volumes?.includes('./realm-mcp.json:/opt/keycloak/data/import/realm-mcp.json:ro'))
    const probe = kc.healthcheck!.test!.join(' ')
    assert.match(probe, /\/dev\/tcp\/127\.0\.0\.1\/9000/)
    assert.match(probe, /GET \/health\/ready /)
    const env = envOf('keycloak')
    for (const [k, v] of [['KC_DB', 'postgres'], ['KC_HTTP_ENABLED', 'true'], ['KC_PROXY_HEADERS', 'xforwarded'], ['KC_HEALTH_ENABLED', 'true']]) {
      assert.equal(env.get(k!), v, k)
    }
  })

  it('mounts the files nginx.conf names', () => {
    const conf = read('nginx.conf')
    const volumes = service('nginx').volumes ?? []
    for (const path of conf.matchAll(/ssl_certificate(?:_key)?\s+(\S+);/g)) {
      const mount = volumes.find((v) => v.split(':')[1] === path[1])
      assert.ok(mount, `${path[1]} is mounted`)
      assert.match(mount, /^\.\/certs\//)
    }
    assert.ok(volumes.includes('./nginx.conf:/etc/nginx/conf.d/default.conf:ro'))
  })
})

describe('issuer and audience agree across Keycloak, the gateway and nginx', () => {
  const kc = envOf('keycloak')
  const gw = envOf('gateway')
  const publicUrl = gw.get('MCP_EDGE_PUBLIC_URL')!

  it('the gateway expects exactly the issuer Keycloak writes (KC_HOSTNAME/realms/<realm>)', () => {
    assert.equal(gw.get('MCP_EDGE_ISSUER'), `${kc.get('KC_HOSTNAME')}/realms/${realm.realm}`)
    assert.equal(publicUrl, kc.get('KC_HOSTNAME'), 'one public origin for both')
  })

  it('gateway.yaml defaults are the same strategy for https://localhost', () => {
    assert.equal(gatewayConfig.auth.issuer, `${gatewayConfig.publicUrl}/realms/${realm.realm}`)
    assert.equal(gatewayConfig.publicUrl, dotenv.get('MCP_PUBLIC_URL'))
  })

  it('the gateway fetches the keys from Keycloak inside the network', () => {
    const jwks = new URL(gatewayConfig.auth.jwksUri)
    assert.equal(jwks.hostname, 'keycloak')
    assert.equal(jwks.pathname, `/realms/${realm.realm}/protocol/openid-connect/certs`)
    const shared = service('gateway').networks!.filter((n) => service('keycloak').networks!.includes(n))
    assert.ok(shared.length > 0, 'gateway and keycloak share a network')
  })

  it('tokens carry an audience the gateway accepts at every server', () => {
    const resolved = JSON.parse(keycloakResolve(realmText, kc)) as Realm
    const audiences = resolved.clientScopes
      .flatMap((s) => s.protocolMappers ?? [])
      .filter((m) => m.protocolMapper === 'oidc-audience-mapper')
      .map((m) => m.config['included.custom.audience'])
    const configured = gw.get('MCP_EDGE_AUDIENCE') ?? gatewayConfig.auth.audience
    const expected = configured === undefined
      ? Object.keys(gatewayConfig.servers).map((s) => `${publicUrl}/mcp/${s}`)
      : [configured].flat()
    assert.deepEqual(audiences.sort(), expected.sort())
    const holder = realm.clientScopes.find((s) => s.protocolMappers?.some((m) => m.protocolMapper === 'oidc-audience-mapper'))!
    for (const c of realm.clients) assert.ok(c.defaultClientScopes.includes(holder.name), `${c.clientId} always gets ${holder.name}`)
  })

  it('every ${VAR} of the realm import reaches Keycloak from the environment', () => {
    const placeholders = new Set([...realmText.matchAll(/\$\{([A-Z][A-Z0-9_]*)(?::[^}]*)?\}/g)].map((m) => m[1]!))
    assert.ok(placeholders.size >= 3)
    for (const p of placeholders) assert.ok(kc.has(p), `keycloak's environment has ${p}`)
  })

  it('nginx serves the issuer, its metadata and the MCP endpoints on the one origin', () => {
    const conf = read('nginx.conf')
    for (const prefix of ['realms', 'resources', 'js']) assert.match(conf, new RegExp(`location ~ \\^/\\(.*\\b${prefix}\\b.*\\)/`))
    assert.match(conf, /location \^~ \/mcp\/ \{[^}]*proxy_buffering off;/)
    assert.match(conf, /location \^~ \/\.well-known\/oauth-protected-resource \{/)
    assert.match(conf, /oauth-authorization-server\|openid-configuration\)\/realms\//)
    // A location with its own proxy_set_header silently drops the server's (Host, X-Forwarded-*).
    const locations = conf.split(/\n\s*location /).slice(1)
    for (const loc of locations) assert.doesNotMatch(loc.split('\n}')[0]!, /proxy_set_header/, loc.split('\n')[0])
  })
})

describe('realm-mcp.json', () => {
  const scope = (name: string) => realm.clientScopes.find((s) => s.name === name)
  const client = (id: string) => realm.clients.find((c) => c.clientId === id)

  it('is the realm mcp with the four roles', () => {
    assert.equal(realm.realm, 'mcp')
    const roles = realm.roles.realm.map((r) => r.name).sort()
    assert.deepEqual(roles, ['mcp-admin', 'mcp-developer', 'mcp-tools', 'mcp-user'])
  })

  for (const name of ['mcp:read', 'mcp:write', 'mcp:admin']) {
    it(`has the client scope ${name}, written into the token's scope`, () => {
      const s = scope(name)
      assert.ok(s)
      assert.equal(s.protocol, 'openid-connect')
      assert.equal(s.attributes['include.in.token.scope'], 'true')
    })
  }

  // An explicit clientScopes list stops Keycloak from creating its built-in scopes, so the
  // realm carries the ones the gateway needs: `sub` (required) and the realm roles.
  const builtIns = [
    { scope: 'basic', mapper: 'oidc-sub-mapper', claim: undefined },
    { scope: 'roles', mapper: 'oidc-usermodel-realm-role-mapper', claim: 'realm_access.roles' },
  ]
  for (const b of builtIns) {
    it(`carries the built-in scope ${b.scope} (${b.claim ?? 'sub'}) as a default of every client`, () => {
      const m = scope(b.scope)?.protocolMappers?.find((x) => x.protocolMapper === b.mapper)
      assert.ok(m, `${b.scope} has ${b.mapper}`)
      assert.equal(m.config['access.token.claim'], 'true')
      if (b.claim) assert.equal(m.config['claim.name'], b.claim)
      for (const c of realm.clients) assert.ok(c.defaultClientScopes.includes(b.scope), c.clientId)
    })
  }

  it('has a public client with PKCE S256 for MCP Inspector and loopback redirects', () => {
    const c = client('mcp-inspector')
    assert.ok(c)
    assert.equal(c.publicClient, true)
    assert.equal(c.standardFlowEnabled, true)
    assert.equal(c.directAccessGrantsEnabled, false)
    assert.equal(c.attributes?.['pkce.code.challenge.method'], 'S256')
    for (const uri of ['http://localhost:6274/*', 'http://127.0.0.1/*']) assert.ok(c.redirectUris.includes(uri), uri)
    assert.ok(c.webOrigins.includes('http://localhost:6274'))
  })

  it('has a confidential client whose service account holds mcp-tools', () => {
    const c = client('mcp-service')
    assert.ok(c)
    assert.equal(c.publicClient, false)
    assert.equal(c.serviceAccountsEnabled, true)
    assert.match(c.secret ?? '', /^\$\{[A-Z_]+\}$/, 'the secret comes from the environment')
    const account = realm.users.find((u) => u.serviceAccountClientId === 'mcp-service')
    assert.deepEqual(account?.realmRoles, ['mcp-tools'])
  })

  it('has the demo user with mcp-user and mcp-developer and a password from the environment', () => {
    const demo = realm.users.find((u) => u.username === 'demo')
    assert.ok(demo)
    assert.deepEqual([...demo.realmRoles].sort(), ['mcp-developer', 'mcp-user'])
    assert.equal(demo.credentials?.length, 1)
    assert.match(demo.credentials[0]!.value, /^\$\{[A-Z_]+\}$/)
    assert.equal(demo.credentials[0]!.temporary, false)
  })

  it('lets a role request exactly the mcp:* scopes policies/demo.yaml grants it', () => {
    const policy = parse(readFileSync(join(ROOT, 'policies/demo.yaml'), 'utf8')) as { roles: Record<string, string[]> }
    const mcpScopes = ['mcp:read', 'mcp:write', 'mcp:admin']
    for (const [role, grants] of Object.entries(policy.roles)) {
      const granted = mcpScopes.filter((s) => grants.includes('*') || grants.includes(s))
      const requestable = realm.scopeMappings.filter((m) => m.roles.includes(role)).map((m) => m.clientScope)
      assert.deepEqual(requestable.sort(), granted.sort(), role)
    }
  })
})

describe('compose/Dockerfile', () => {
  const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'))
  const stages = lines.filter((l) => /^FROM /.test(l))

  it('is multi-stage, and the runtime takes the build output from the build stage', () => {
    assert.ok(stages.length >= 2, stages.join(' | '))
    assert.match(stages[0]!, / AS build$/)
    assert.match(dockerfile, /COPY --from=build \/app\/dist /)
    assert.match(dockerfile, /npm prune --omit=dev/)
  })

  it('runs as a non-root user, with a healthcheck, on 8080', () => {
    const user = lines.filter((l) => /^USER /.test(l)).at(-1)
    assert.ok(user, 'USER is set')
    assert.doesNotMatch(user, /^USER (root|0)(:|$)/)
    assert.match(dockerfile, /^HEALTHCHECK .*\/healthz/m)
    assert.match(dockerfile, /^EXPOSE 8080$/m)
    assert.match(dockerfile, /^ENTRYPOINT \["node", "dist\/gateway\/main\.js"\]$/m)
  })

  it('bakes in no secret (ENV/ARG names)', () => {
    const names = lines
      .filter((l) => /^(ENV|ARG) /.test(l))
      .flatMap((l) => l.replace(/^(ENV|ARG) /, '').split(/\s+/).map((kv) => kv.split('=')[0]!))
    assert.ok(names.includes('NODE_ENV'))
    for (const n of names) assert.doesNotMatch(n, SECRET_NAME, n)
  })

  it('copies from the context only what Dockerfile.dockerignore lets in', () => {
    const allowed = read('Dockerfile.dockerignore').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1))
    const copied = lines
      .filter((l) => /^COPY (?!--from)/.test(l))
      .flatMap((l) => l.replace(/^COPY /, '').split(/\s+/).slice(0, -1))
    for (const src of copied) assert.ok(allowed.includes(src), `${src} is in the build context`)
  })
})

describe('compose/gateway.yaml', () => {
  // In the image the policies are mounted at /etc/mcp-edge/policies; here the same config is
  // validated against the repository's policies/ (the folder compose mounts there).
  const copy = join(scratch, 'gateway.yaml')
  writeFileSync(copy, stringify({ ...gatewayConfig, policies: join(ROOT, 'policies') }))
  const plainEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MCP_EDGE_')))
  const cases = [
    { name: 'as written', env: {} },
    { name: "with the gateway service's environment", env: Object.fromEntries(envOf('gateway')) },
  ]
  for (const c of cases) {
    it(`validates ${c.name}`, async () => {
      const res = await run(process.execPath, [MAIN, 'validate', '--config', copy], { env: { ...plainEnv, ...c.env } })
      assert.equal(res.code, 0, res.stderr)
      assert.match(res.stdout, /^ok: .*\(servers: echo, notes; policies: .*policies\)$/m)
    })
  }

  it('starts the demo servers the image contains (WORKDIR /app)', () => {
    assert.match(dockerfile, /^WORKDIR \/app$/m)
    for (const [name, s] of Object.entries(gatewayConfig.servers)) {
      assert.equal(s.command, 'node')
      const script = s.args[0]!
      assert.match(script, /^\/app\/dist\//, name)
      assert.ok(existsSync(join(ROOT, script.slice('/app/'.length))), `${script} is built`)
    }
  })
})

describe('compose/setup.sh', () => {
  it('is valid bash', async () => {
    const res = await run('bash', ['-n', join(COMPOSE, 'setup.sh')])
    assert.equal(res.code, 0, res.stderr)
  })

  it('creates .env and the certificate once, then keeps them', { skip: !onPath('openssl') && 'no openssl' }, async () => {
    const dir = mkdtempSync(join(scratch, 'setup-'))
    for (const f of ['setup.sh', '.env.example']) copyFileSync(join(COMPOSE, f), join(dir, f))
    const first = await run('bash', ['setup.sh'], { cwd: dir })
    assert.equal(first.code, 0, first.stderr)
    const env = parseDotenv(readFileSync(join(dir, '.env'), 'utf8'))
    for (const [k, v] of dotenv) {
      if (v === '') assert.match(env.get(k) ?? '', /^[0-9a-f]{64}$/, `${k} is generated`)
      else assert.equal(env.get(k), v, `${k} keeps its default`)
    }
    assert.equal(new Set([...dotenv.keys()].filter((k) => dotenv.get(k) === '').map((k) => env.get(k))).size,
      [...dotenv.values()].filter((v) => v === '').length, 'every secret is different')
    if (process.platform !== 'win32') assert.equal(statSync(join(dir, '.env')).mode & 0o777, 0o600)
    const files = ['.env', 'certs/tls.crt', 'certs/tls.key', 'certs/ca.crt'].map((f) => join(dir, f))
    const before = files.map((f) => readFileSync(f, 'utf8'))
    const second = await run('bash', ['setup.sh'], { cwd: dir })
    assert.equal(second.code, 0, second.stderr)
    assert.deepEqual(files.map((f) => readFileSync(f, 'utf8')), before)
    const verify = await run('openssl', ['verify', '-CAfile', files[3]!, files[1]!])
    assert.equal(verify.code, 0, verify.stderr)
  })
})

describe('compose/nginx.conf', () => {
  // The image runs nginx 1.28; an older local nginx checks the syntax without `http2 on;`
  // (1.25.1+). Upstream names resolve only inside the stack, so loopback stands in for them.
  it('passes nginx -t', { skip: !onPath('nginx') && 'no nginx' }, async () => {
    const dir = mkdtempSync(join(scratch, 'nginx-'))
    const version = (await run('nginx', ['-v'])).stderr
    const [major = 0, minor = 0, patch = 0] = (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number)
    const modern = major > 1 || minor > 25 || (minor === 25 && patch >= 1)
    let conf = read('nginx.conf')
      .replace(/server (gateway|keycloak):8080;/g, 'server 127.0.0.1:8080;')
      .replaceAll('/etc/nginx/certs/', `${dir}/`)
    if (!modern) conf = conf.replace(/^\s*http2 on;$/m, '')
    writeFileSync(join(dir, 'default.conf'), conf)
    writeFileSync(join(dir, 'nginx.conf'), `events {}\nhttp {\n  include ${dir}/default.conf;\n}\n`)
    const key = await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'rsa:2048', '-days', '1', '-subj', '/CN=localhost', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')])
    assert.equal(key.code, 0, key.stderr)
    const res = await run('nginx', ['-t', '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `pid ${dir}/nginx.pid; error_log stderr;`])
    assert.equal(res.code, 0, res.stderr)
  })
})
