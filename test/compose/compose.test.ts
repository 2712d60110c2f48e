// The docker-compose stack of compose/, checked without a Docker engine: the files are parsed
// and cross-checked, and what runs without Docker is run (mcp-edge validate, setup.sh in a
// scratch folder, nginx -t when nginx is installed).
import assert from 'node:assert/strict'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { importJWK, jwtVerify, SignJWT, type JWK } from 'jose'
import { parse, stringify } from 'yaml'
import { UPSTREAM_CALLBACK_PATH } from '../../gateway/broker/interactions.js'
import { PROVIDER_PATHS } from '../../gateway/broker/mount.js'
import { INTERACTION_PREFIX } from '../../gateway/broker/provider.js'
import { brokerKeys } from '../../gateway/broker/keys.js'
import { readSecret } from '../../gateway/config/secrets.js'
import { sealerFromConfig } from '../../gateway/store/sealed.js'
import {
  COMPOSE,
  COMPOSE_VAR,
  ROOT,
  SECRET_FILES,
  code,
  compose,
  dotenvExample,
  envOf,
  generatedSecrets,
  interpolate,
  keycloakResolve,
  loopbackGateway,
  nginxLocations,
  nginxRoute,
  onPath,
  parseDotenv,
  read,
  run,
  runSetup,
  service,
  stackEnv,
  writeSecrets,
} from './stack.js'

interface Mapper {
  protocolMapper: string
  config: Record<string, string>
}
interface Scope {
  name: string
  protocol: string
  attributes: Record<string, string>
  protocolMappers?: Mapper[]
}
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
  protocolMappers?: Mapper[]
  defaultClientScopes: string[]
  optionalClientScopes?: string[]
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
interface GatewayYaml {
  publicUrl: string
  policies: string
  auth: {
    issuer: string
    jwksUri: string
    audience?: string | string[]
    broker: {
      upstream: {
        issuer: string
        connectTo: string
        caFile: string
        clientId: string
        scopes: string[]
        roleClaims: string[]
      }
    }
  }
  secrets: { active: string }
  servers: Record<string, { command: string; args: string[] }>
}

const MAIN = join(ROOT, 'dist/gateway/main.js')
/** The realm's client for the gateway's broker. */
const BROKER_CLIENT = 'mcp-edge-broker'
const services = compose.services
const realmText = read('realm-mcp.json')
const realm = JSON.parse(realmText) as Realm
const gatewayYaml = parse(read('gateway.yaml')) as GatewayYaml
const dockerfile = read('Dockerfile')
const dockerLines = code(dockerfile)

/** Names that hold secrets: compose environments, Dockerfile ENV/ARG, .env.example. */
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY$/i
/** A value that is nothing but one required variable: ${VAR} or ${VAR:?message}. */
const ONLY_A_VARIABLE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(:\?[^}]*)?\}$/

const scratch = mkdtempSync(join(tmpdir(), 'mcp-edge-compose-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

describe('docker-compose.yml', () => {
  it('has the four services', () => {
    assert.deepEqual(Object.keys(services).sort(), ['gateway', 'keycloak', 'nginx', 'postgres'])
  })

  for (const [name, s] of Object.entries(services)) {
    it(`${name}: has a healthcheck and restarts unless stopped`, () => {
      const test = s.healthcheck?.test ?? []
      assert.ok(test.length > 1 && test[0] !== 'NONE', `healthcheck.test of ${name}`)
      assert.equal(s.restart, 'unless-stopped')
    })
  }

  it('publishes ports from nginx only: 80 and 443', () => {
    const publishing = Object.entries(services).filter(([, s]) => s.ports || s.network_mode)
    assert.deepEqual(
      publishing.map(([name]) => name),
      ['nginx'],
    )
    assert.deepEqual(
      service('nginx').ports!.map((p) => p.split(':').at(-1)),
      ['80', '443'],
    )
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

  it('takes every secret from a required variable, never a literal', () => {
    const secrets = Object.entries(services).flatMap(([name, s]) =>
      Object.entries(s.environment ?? {})
        .filter(([k]) => SECRET_NAME.test(k))
        .map(([k, v]) => ({ at: `${name}.environment.${k}`, v: String(v) })),
    )
    assert.ok(secrets.length >= 5, 'database, admin, client and user secrets')
    for (const { at, v } of secrets) assert.match(v, ONLY_A_VARIABLE, at)
  })

  it('writes every $ as ${VAR} or $$ (compose would interpolate a bare $name)', () => {
    for (const line of code(read('docker-compose.yml'))) {
      assert.doesNotMatch(line.replaceAll('$$', ''), /\$(?!\{)/, line)
    }
  })

  it('declares the named volumes it uses, and uses every one it declares', () => {
    const volumes = Object.values(services).flatMap((s) => s.volumes ?? [])
    const sources = volumes.map((v) => v.split(':')[0]!)
    const named = new Set(sources.filter((s) => !s.startsWith('.') && !s.startsWith('/')))
    assert.deepEqual([...named].sort(), Object.keys(compose.volumes).sort())
    assert.ok(service('postgres').volumes!.some((v) => v.endsWith(':/var/lib/postgresql/data')))
  })

  it('keeps every service on the internal network, and only nginx on another', () => {
    assert.equal(compose.networks.internal?.internal, true)
    for (const [name, s] of Object.entries(services)) {
      const nets = s.networks ?? []
      for (const net of nets) assert.ok(net in compose.networks, `${name}: network ${net}`)
      assert.ok(nets.includes('internal'), `${name} is on the internal network`)
      const open = nets.filter((n) => compose.networks[n]?.internal !== true)
      assert.deepEqual(open, name === 'nginx' ? ['edge'] : [], `${name}: networks with a way out`)
    }
  })

  it('has every variable it uses in .env.example, which ships no secret', () => {
    const text = code(read('docker-compose.yml')).join('\n')
    const used = new Set([...text.matchAll(COMPOSE_VAR)].map((m) => m[1]!))
    assert.deepEqual(
      [...used].filter((v) => !dotenvExample.has(v)),
      [],
    )
    for (const [k, v] of dotenvExample) {
      if (SECRET_NAME.test(k)) assert.equal(v, '', `.env.example has no value for ${k}`)
    }
  })

  it('builds the gateway from the repository root with compose/Dockerfile', () => {
    assert.deepEqual(service('gateway').build, { context: '..', dockerfile: 'compose/Dockerfile' })
    assert.ok(existsSync(join(COMPOSE, 'Dockerfile.dockerignore')), 'its ignore file')
  })

  it('mounts the config where the image reads it, the policies where the config says', () => {
    const volumes = service('gateway').volumes ?? []
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[]
    const config = cmd[cmd.indexOf('--config') + 1]
    assert.ok(volumes.includes(`./gateway.yaml:${config}:ro`), volumes.join(', '))
    assert.ok(volumes.includes(`../policies:${gatewayYaml.policies}:ro`), volumes.join(', '))
  })

  it('imports the realm at start and probes Keycloak on its management port', () => {
    const kc = service('keycloak')
    assert.deepEqual(kc.command, ['start', '--import-realm'])
    const realmFile = './realm-mcp.json:/opt/keycloak/data/import/realm-mcp.json:ro'
    assert.ok(kc.volumes?.includes(realmFile))
    const probe = kc.healthcheck!.test!.join(' ')
    assert.match(probe, /\/dev\/tcp\/127\.0\.0\.1\/9000/)
    assert.match(probe, /GET \/health\/ready /)
    const env = envOf('keycloak')
    const settings = [
      ['KC_DB', 'postgres'],
      ['KC_HTTP_ENABLED', 'true'],
      ['KC_PROXY_HEADERS', 'xforwarded'],
      ['KC_HEALTH_ENABLED', 'true'],
    ] as const
    for (const [k, v] of settings) assert.equal(env.get(k), v, k)
  })

  it('mounts the certificate files nginx.conf names, and nothing else of certs/', () => {
    const volumes = service('nginx').volumes ?? []
    const named = [...read('nginx.conf').matchAll(/ssl_certificate(?:_key)?\s+(\S+);/g)]
    assert.equal(named.length, 2)
    for (const [, path] of named) {
      assert.ok(
        volumes.some((v) => /^\.\/certs\/[^:]+:/.test(v) && v.split(':')[1] === path),
        path,
      )
    }
    assert.equal(volumes.filter((v) => v.startsWith('./certs')).length, 2)
    assert.ok(volumes.includes('./nginx.conf:/etc/nginx/conf.d/default.conf:ro'))
  })

  it('runs the gateway as MCP_EDGE_USER, the owner of secrets/ (the image user by default), never root', () => {
    const user = service('gateway').user ?? ''
    assert.match(user, /^\$\{MCP_EDGE_USER:\?[^}]+\}$/)
    assert.match(interpolate(user, stackEnv), /^[1-9][0-9]*:[0-9]+$/)
  })

  it('gives the gateway, and only the gateway, the secret files setup.sh writes', () => {
    const files = Object.values(compose.secrets)
      .map((x) => x.file)
      .sort()
    assert.deepEqual(files, SECRET_FILES.map((f) => `./secrets/${f}`).sort())
    assert.deepEqual(
      service('gateway').secrets?.slice().sort(),
      Object.keys(compose.secrets).sort(),
    )
    for (const [name, x] of Object.entries(services))
      if (name !== 'gateway') assert.equal(x.secrets, undefined, name)
  })

  it("mounts into the gateway the CA the broker trusts (gateway.yaml caFile), and nowhere the CA's key", () => {
    const volumes = service('gateway').volumes ?? []
    assert.ok(
      volumes.includes(`./certs/ca.crt:${gatewayYaml.auth.broker.upstream.caFile}:ro`),
      volumes.join(', '),
    )
    assert.deepEqual(
      volumes.filter((v) => v.startsWith('./certs/')),
      [`./certs/ca.crt:${gatewayYaml.auth.broker.upstream.caFile}:ro`],
    )
    for (const x of Object.values(services))
      for (const v of x.volumes ?? []) assert.doesNotMatch(v, /ca\.key|^\.\/certs:/, v)
  })
})

describe('issuer and audience agree across Keycloak, the gateway and nginx', () => {
  const kc = envOf('keycloak')
  const gw = envOf('gateway')
  const publicUrl = gw.get('MCP_EDGE_PUBLIC_URL')!

  it('the gateway expects exactly the issuer Keycloak writes: KC_HOSTNAME/realms/<realm>', () => {
    assert.equal(gw.get('MCP_EDGE_ISSUER'), `${kc.get('KC_HOSTNAME')}/realms/${realm.realm}`)
    assert.equal(publicUrl, kc.get('KC_HOSTNAME'), 'one public origin for both')
  })

  it('gateway.yaml defaults follow the same strategy for the default MCP_PUBLIC_URL', () => {
    assert.equal(gatewayYaml.publicUrl, dotenvExample.get('MCP_PUBLIC_URL'))
    assert.equal(gatewayYaml.auth.issuer, `${gatewayYaml.publicUrl}/realms/${realm.realm}`)
  })

  it('the gateway fetches the signing keys from Keycloak inside the network', () => {
    const jwks = new URL(gatewayYaml.auth.jwksUri)
    assert.equal(jwks.hostname, 'keycloak')
    assert.equal(jwks.pathname, `/realms/${realm.realm}/protocol/openid-connect/certs`)
    const keycloakNets = service('keycloak').networks ?? []
    const shared = service('gateway').networks?.filter((n) => keycloakNets.includes(n)) ?? []
    assert.ok(shared.length > 0, 'a shared network')
  })

  it("the broker's upstream is Keycloak's public issuer, from the environment and by default", () => {
    assert.equal(
      gw.get('MCP_EDGE_UPSTREAM_ISSUER'),
      `${kc.get('KC_HOSTNAME')}/realms/${realm.realm}`,
    )
    assert.equal(
      gatewayYaml.auth.broker.upstream.issuer,
      `${gatewayYaml.publicUrl}/realms/${realm.realm}`,
    )
  })

  it('the broker reaches that URL through nginx, which serves /realms/ from Keycloak with a certificate of the trusted CA', () => {
    const { connectTo } = gatewayYaml.auth.broker.upstream
    assert.equal(connectTo, 'nginx')
    const shared =
      service('gateway').networks?.filter((n) => service(connectTo).networks?.includes(n)) ?? []
    assert.ok(shared.length > 0, 'nginx is on a network of the gateway')
    assert.match(
      read('nginx.conf'),
      /location ~ \^\/\(realms\|[^)]*\)\/ \{\s*proxy_pass http:\/\/keycloak;/,
    )
    assert.ok(
      service(connectTo).volumes?.some((v) => v.startsWith('./certs/tls.crt:')),
      "nginx's certificate, issued by certs/ca.crt",
    )
    // Plain http would need a loopback connectTo (checked at start-up): the public URL is https.
    assert.match(dotenvExample.get('MCP_PUBLIC_URL') ?? '', /^https:\/\//)
  })

  it("the broker signs in with the realm's client: its id, scopes it has, roles where its mapper writes them", () => {
    const { clientId, scopes, roleClaims } = gatewayYaml.auth.broker.upstream
    const c = realm.clients.find((x) => x.clientId === clientId)
    assert.ok(c, `the realm has the client ${clientId}`)
    assert.equal(clientId, BROKER_CLIENT)
    // Keycloak answers invalid_scope for a scope that is not the client's.
    const has = new Set(['openid', ...c.defaultClientScopes, ...(c.optionalClientScopes ?? [])])
    for (const sc of scopes) assert.ok(has.has(sc), `${sc} is a scope of ${clientId}`)
    assert.ok(scopes.includes('openid'))
    const written = (c.protocolMappers ?? [])
      .filter((m) => m.config['id.token.claim'] === 'true')
      .map((m) => m.config['claim.name'])
    assert.ok(
      roleClaims.every((r) => written.includes(r)),
      `${roleClaims.join(', ')} in ${written.join(', ')}`,
    )
  })

  it('the broker advertises no Client ID Metadata Documents: the gateway could not fetch them', () => {
    const egress = service('gateway').networks?.some((n) => compose.networks[n]?.internal !== true)
    const cimd = (
      parse(read('gateway.yaml')) as { auth: { broker: { cimd?: { enabled?: boolean } } } }
    ).auth.broker.cimd
    assert.equal(egress, false, 'the gateway has no route out')
    assert.equal(cimd?.enabled, false)
  })

  it('tokens carry an audience the gateway accepts, for every configured server', () => {
    const resolved = JSON.parse(keycloakResolve(realmText, kc)) as Realm
    const audiences = resolved.clientScopes
      .flatMap((s) => s.protocolMappers ?? [])
      .filter((m) => m.protocolMapper === 'oidc-audience-mapper')
      .map((m) => m.config['included.custom.audience'])
    const gatewayWide = gw.get('MCP_EDGE_AUDIENCE') ?? gatewayYaml.auth.audience
    const expected =
      gatewayWide === undefined
        ? Object.keys(gatewayYaml.servers).map((s) => `${publicUrl}/mcp/${s}`)
        : [gatewayWide].flat()
    assert.deepEqual(audiences.sort(), expected.sort())
    const holders = realm.clientScopes.filter((s) =>
      s.protocolMappers?.some((m) => m.protocolMapper === 'oidc-audience-mapper'),
    )
    for (const c of realm.clients.filter((x) => x.clientId !== BROKER_CLIENT)) {
      for (const h of holders) assert.ok(c.defaultClientScopes.includes(h.name), c.clientId)
    }
  })

  it("the broker's client gets no audience: its Keycloak tokens are never MCP tokens", () => {
    const c = realm.clients.find((x) => x.clientId === BROKER_CLIENT)!
    const scopes = [...c.defaultClientScopes, ...(c.optionalClientScopes ?? [])]
    const mappers = [
      ...scopes.flatMap((n) => realm.clientScopes.find((x) => x.name === n)?.protocolMappers ?? []),
      ...(c.protocolMappers ?? []),
    ]
    assert.deepEqual(
      mappers.filter((m) => m.protocolMapper === 'oidc-audience-mapper'),
      [],
    )
  })

  it("the broker client's redirect URI is the gateway's callback on the public URL", () => {
    const resolved = JSON.parse(keycloakResolve(realmText, kc)) as Realm
    const c = resolved.clients.find((x) => x.clientId === BROKER_CLIENT)!
    assert.deepEqual(c.redirectUris, [`${publicUrl}${UPSTREAM_CALLBACK_PATH}`])
  })

  it("every ${VAR} of the realm import is in Keycloak's environment", () => {
    const names = [...realmText.matchAll(/\$\{([A-Z][A-Z0-9_]*)(?::[^}]*)?\}/g)].map((m) => m[1]!)
    assert.ok(names.length >= 3, 'public URL, client secret, demo password')
    for (const name of names) assert.ok(kc.has(name), name)
  })

  it('nginx serves the MCP endpoints, their metadata and Keycloak on the one origin', () => {
    const conf = read('nginx.conf')
    const keycloakPaths = /location ~ \^\/\(([a-z|]+)\)\//.exec(conf)?.[1]?.split('|') ?? []
    for (const p of ['realms', 'resources', 'js']) assert.ok(keycloakPaths.includes(p), p)
    assert.match(conf, /location \^~ \/mcp\/ \{[^}]*proxy_buffering off;/)
    assert.match(conf, /location \^~ \/\.well-known\/oauth-protected-resource \{/)
    assert.match(conf, /\(oauth-authorization-server\|openid-configuration\)\/realms\//)
  })

  it('nginx locations set no proxy_set_header (it would drop the server-level ones)', () => {
    const bodies = read('nginx.conf')
      .split(/\n\s*location /)
      .slice(1)
    for (const body of bodies) {
      assert.doesNotMatch(body.split(/\n\s*\}/)[0]!, /proxy_set_header/, body.split('\n')[0])
    }
  })
})

describe('realm-mcp.json', () => {
  const scope = (name: string) => realm.clientScopes.find((s) => s.name === name)
  const client = (id: string) => realm.clients.find((c) => c.clientId === id)
  const isPlaceholder = /^\$\{[A-Z][A-Z0-9_]*\}$/

  it('is the realm mcp with the four roles', () => {
    assert.equal(realm.realm, 'mcp')
    const roles = realm.roles.realm.map((r) => r.name).sort()
    assert.deepEqual(roles, ['mcp-admin', 'mcp-developer', 'mcp-tools', 'mcp-user'])
  })

  for (const name of ['mcp:read', 'mcp:write', 'mcp:admin']) {
    it(`has the client scope ${name}, included in the token's scope`, () => {
      const s = scope(name)
      assert.ok(s)
      assert.equal(s.protocol, 'openid-connect')
      assert.equal(s.attributes['include.in.token.scope'], 'true')
    })
  }

  // An explicit clientScopes list stops Keycloak from creating its built-in scopes, so the
  // realm carries those the gateway needs: `sub` (a required claim) and the realm roles.
  const builtIns = [
    { scope: 'basic', mapper: 'oidc-sub-mapper', claim: undefined },
    { scope: 'roles', mapper: 'oidc-usermodel-realm-role-mapper', claim: 'realm_access.roles' },
  ]
  for (const b of builtIns) {
    it(`has the built-in scope ${b.scope} (${b.claim ?? 'sub'}), a default of every client`, () => {
      const m = scope(b.scope)?.protocolMappers?.find((x) => x.protocolMapper === b.mapper)
      assert.ok(m, `${b.scope} has ${b.mapper}`)
      assert.equal(m.config['access.token.claim'], 'true')
      if (b.claim) assert.equal(m.config['claim.name'], b.claim)
      for (const c of realm.clients) assert.ok(c.defaultClientScopes.includes(b.scope), c.clientId)
    })
  }

  it('has no public client: MCP clients register with the gateway and sign in through it', () => {
    const open = realm.clients.filter((c) => c.publicClient || c.directAccessGrantsEnabled)
    assert.deepEqual(
      open.map((c) => c.clientId),
      [],
    )
    const withLogins = realm.clients.filter((c) => c.standardFlowEnabled)
    assert.deepEqual(
      withLogins.map((c) => c.clientId),
      [BROKER_CLIENT],
      'only the broker sends users here',
    )
  })

  it("has the broker's confidential client: code flow with PKCE S256, its secret from the environment", () => {
    const c = client(BROKER_CLIENT)
    assert.ok(c)
    assert.equal(c.publicClient, false)
    assert.equal(c.standardFlowEnabled, true)
    assert.equal(c.directAccessGrantsEnabled, false)
    assert.equal(c.serviceAccountsEnabled, false)
    assert.equal(c.attributes?.['pkce.code.challenge.method'], 'S256')
    assert.match(c.secret ?? '', isPlaceholder, 'the secret comes from the environment')
    assert.deepEqual(
      c.redirectUris,
      ['${MCP_PUBLIC_URL}/oauth/callback'],
      'one exact URI, no wildcard',
    )
    assert.deepEqual(c.webOrigins, [], 'the gateway calls Keycloak server to server: no CORS')
  })

  it("puts the realm roles in the broker client's ID token and userinfo", () => {
    const mapper = client(BROKER_CLIENT)?.protocolMappers?.find(
      (m) => m.protocolMapper === 'oidc-usermodel-realm-role-mapper',
    )
    assert.ok(mapper)
    assert.equal(mapper.config['claim.name'], 'realm_access.roles')
    assert.equal(mapper.config.multivalued, 'true')
    assert.equal(mapper.config['id.token.claim'], 'true')
    assert.equal(mapper.config['userinfo.token.claim'], 'true')
  })

  it('has a confidential client whose service account holds mcp-tools', () => {
    const c = client('mcp-service')
    assert.ok(c)
    assert.equal(c.publicClient, false)
    assert.equal(c.serviceAccountsEnabled, true)
    assert.match(c.secret ?? '', isPlaceholder, 'the secret comes from the environment')
    const account = realm.users.find((u) => u.serviceAccountClientId === 'mcp-service')
    assert.deepEqual(account?.realmRoles, ['mcp-tools'])
  })

  it('has the demo user with mcp-user and mcp-developer, its password from the environment', () => {
    const demo = realm.users.find((u) => u.username === 'demo')
    assert.ok(demo)
    assert.deepEqual([...demo.realmRoles].sort(), ['mcp-developer', 'mcp-user'])
    const [password, ...others] = demo.credentials ?? []
    assert.equal(others.length, 0)
    assert.match(password?.value ?? '', isPlaceholder)
    assert.equal(password?.temporary, false)
  })

  it('lets a role obtain exactly the mcp:* scopes that policies/demo.yaml grants it', () => {
    const demo = readFileSync(join(ROOT, 'policies/demo.yaml'), 'utf8')
    const policy = parse(demo) as { roles: Record<string, string[]> }
    const all = ['mcp:read', 'mcp:write', 'mcp:admin']
    for (const [role, grants] of Object.entries(policy.roles)) {
      const granted = all.filter((s) => grants.includes('*') || grants.includes(s))
      const obtainable = realm.scopeMappings.filter((m) => m.roles.includes(role))
      assert.deepEqual(obtainable.map((m) => m.clientScope).sort(), granted.sort(), role)
    }
  })
})

describe('compose/Dockerfile', () => {
  const stages = dockerLines.filter((l) => l.startsWith('FROM '))

  it('is multi-stage: the runtime takes the pruned build output from the build stage', () => {
    assert.ok(stages.length >= 2, stages.join(' | '))
    assert.match(stages[0]!, / AS build$/)
    assert.match(dockerfile, /^COPY --from=build \/app\/dist /m)
    assert.match(dockerfile, /npm prune --omit=dev/)
  })

  it('runs as a non-root user, with a healthcheck, on port 8080', () => {
    const user = dockerLines.filter((l) => l.startsWith('USER ')).at(-1)
    assert.ok(user, 'USER is set')
    assert.doesNotMatch(user, /^USER (root|0)(:|$)/)
    assert.match(dockerfile, /^HEALTHCHECK [^\n]*\\\n[^\n]*\/healthz/m)
    assert.match(dockerfile, /^EXPOSE 8080$/m)
    assert.match(dockerfile, /^ENTRYPOINT \["node", "dist\/gateway\/main\.js"\]$/m)
  })

  it('bakes in no secret: no ENV or ARG named like one', () => {
    const names = dockerLines
      .filter((l) => /^(ENV|ARG) /.test(l))
      .flatMap((l) =>
        l
          .slice(4)
          .trim()
          .split(/\s+/)
          .map((kv) => kv.split('=')[0]!),
      )
    assert.ok(names.includes('NODE_ENV'))
    for (const n of names) assert.doesNotMatch(n, SECRET_NAME, n)
  })

  it('copies from the context only what Dockerfile.dockerignore lets in', () => {
    const ignore = read('Dockerfile.dockerignore').split('\n')
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1))
    assert.ok(ignore.includes('*'), 'an allow-list')
    const copied = dockerLines
      .filter((l) => /^COPY (?!--from)/.test(l))
      .flatMap((l) => l.slice(5).trim().split(/\s+/).slice(0, -1))
    for (const src of copied) assert.ok(allowed.includes(src), `${src} is in the build context`)
  })
})

describe('compose/gateway.yaml', () => {
  // In the stack the policies are mounted at /etc/mcp-edge/policies; here the same config is
  // validated with policies pointing at the repository's policies/ (the folder mounted there).
  const copy = join(scratch, 'gateway.yaml')
  writeFileSync(copy, stringify({ ...gatewayYaml, policies: join(ROOT, 'policies') }))
  const clean = Object.entries(process.env).filter(([k]) => !k.startsWith('MCP_EDGE_'))
  const cases = [
    { name: 'as written', env: {} },
    { name: "with the gateway service's environment", env: Object.fromEntries(envOf('gateway')) },
  ]
  for (const c of cases) {
    it(`passes mcp-edge validate ${c.name}`, async () => {
      const env = { ...Object.fromEntries(clean), ...c.env }
      const res = await run(
        process.execPath,
        [MAIN, 'validate', '--config', copy, '--skip-secrets'],
        { env },
      )
      assert.equal(res.code, 0, res.stderr)
      assert.match(
        res.stdout,
        /^ok: .* \(servers: echo, notes; policies: .*policies; broker: upstream https:\/\/localhost\/realms\/mcp\)$/m,
      )
    })
  }

  it('reads every secret from a file Compose mounts, in the shapes the gateway accepts', async () => {
    const dir = mkdtempSync(join(scratch, 'secrets-'))
    writeSecrets(dir, 'client-secret-0123456789')
    const config = loopbackGateway({ secretsDir: dir })
    const broker = config.auth.broker!
    const refs = [
      broker.upstream.clientSecret,
      broker.signingKeys,
      broker.cookieKeys,
      config.secrets?.keys,
    ]
    for (const ref of refs)
      assert.ok(ref && 'file' in ref && ref.file.startsWith(`${dir}/`), JSON.stringify(ref))
    assert.equal(
      readSecret(broker.upstream.clientSecret!, 'clientSecret'),
      'client-secret-0123456789',
    )
    const keys = await brokerKeys(broker, readSecret)
    assert.equal(keys.generated, false)
    assert.equal(keys.alg, 'ES256')
    assert.ok(sealerFromConfig(config.secrets, readSecret))
    assert.equal(config.store.kind, 'memory')
  })

  it('starts demo servers that the image holds (WORKDIR /app, dist/ copied)', () => {
    assert.match(dockerfile, /^WORKDIR \/app$/m)
    for (const [name, s] of Object.entries(gatewayYaml.servers)) {
      assert.equal(s.command, 'node', name)
      const script = s.args[0] ?? ''
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

  const noOpenssl = !onPath('openssl') && 'openssl is not installed'
  const root = process.getuid?.() === 0
  describe('run twice in a scratch folder', { skip: noOpenssl }, () => {
    const dir = mkdtempSync(join(scratch, 'setup-'))
    const at = (f: string) => join(dir, f)
    const kept = [
      '.env',
      'certs/tls.crt',
      'certs/tls.key',
      'certs/ca.crt',
      ...SECRET_FILES.map((f) => `secrets/${f}`),
    ]
    let first: Awaited<ReturnType<typeof runSetup>>
    let second: Awaited<ReturnType<typeof runSetup>>
    let env: Map<string, string>
    let firstFiles: string[]
    before(async () => {
      first = await runSetup(dir)
      assert.equal(first.code, 0, first.stderr)
      env = parseDotenv(readFileSync(at('.env'), 'utf8'))
      firstFiles = kept.map((f) => readFileSync(at(f), 'utf8'))
      second = await runSetup(dir)
      assert.equal(second.code, 0, second.stderr)
    })

    it('.env: every secret generated and different, every default kept, private', () => {
      for (const k of generatedSecrets)
        assert.match(env.get(k) ?? '', /^[0-9a-f]{64}$/, `${k} is generated`)
      for (const [k, v] of dotenvExample)
        if (v !== '') assert.equal(env.get(k), v, `${k} keeps its default`)
      assert.equal(
        new Set(generatedSecrets.map((k) => env.get(k))).size,
        generatedSecrets.length,
        'all different',
      )
      assert.equal(statSync(at('.env')).mode & 0o777, 0o600, '.env is private')
    })

    it('.env: the gateway runs as the owner of secrets/ (the image user when root ran setup.sh)', () => {
      const self = `${process.getuid!()}:${process.getgid!()}`
      assert.equal(env.get('MCP_EDGE_USER'), root ? '1000:1000' : self)
    })

    it('secrets/: private folder, files 0400 owned by MCP_EDGE_USER', () => {
      assert.equal(statSync(at('secrets')).mode & 0o777, 0o700)
      const [uid, gid] = env.get('MCP_EDGE_USER')!.split(':').map(Number)
      for (const f of SECRET_FILES) {
        const st = statSync(at(`secrets/${f}`))
        assert.equal(st.mode & 0o777, 0o400, f)
        assert.deepEqual([st.uid, st.gid], [uid, gid], f)
      }
    })

    it("secrets/: the broker's client secret is the one Keycloak imports from .env", () => {
      const copy = readFileSync(at('secrets/broker-client-secret'), 'utf8')
      assert.equal(copy, `${env.get('MCP_BROKER_CLIENT_SECRET')}\n`)
    })

    it('secrets/: a private ES256 JWKS whose public half verifies what the private half signs', async () => {
      const jwks = JSON.parse(readFileSync(at('secrets/broker-signing-keys.json'), 'utf8')) as {
        keys: JWK[]
      }
      assert.equal(jwks.keys.length, 1)
      const [k] = jwks.keys
      assert.deepEqual([k!.kty, k!.crv, k!.alg, k!.use], ['EC', 'P-256', 'ES256', 'sig'])
      assert.match(k!.kid ?? '', /^es256-[0-9a-f]{16}$/)
      for (const n of ['x', 'y', 'd'] as const) assert.match(k![n] ?? '', /^[A-Za-z0-9_-]{43}$/, n)
      const jwt = await new SignJWT({ sub: 'x' })
        .setProtectedHeader({ alg: 'ES256' })
        .sign(await importJWK(k!, 'ES256'))
      const { d: _d, ...pub } = k!
      await jwtVerify(jwt, await importJWK(pub, 'ES256'))
    })

    it('secrets/: cookie keys and the sealing key in the shapes the gateway reads', () => {
      const cookies = JSON.parse(
        readFileSync(at('secrets/broker-cookie-keys.json'), 'utf8'),
      ) as unknown
      assert.ok(
        Array.isArray(cookies) && cookies.length === 1 && /^[0-9a-f]{64}$/.test(String(cookies[0])),
      )
      const sealing = JSON.parse(readFileSync(at('secrets/sealing-keys.json'), 'utf8')) as Record<
        string,
        string
      >
      assert.deepEqual(Object.keys(sealing), [gatewayYaml.secrets.active])
      assert.equal(Buffer.from(sealing[gatewayYaml.secrets.active]!, 'base64url').length, 32)
    })

    it("secrets/: what the stack's gateway.yaml reads, accepted by the gateway", async () => {
      const config = loopbackGateway({ secretsDir: at('secrets') })
      const broker = config.auth.broker!
      assert.equal(
        readSecret(broker.upstream.clientSecret!, 'clientSecret'),
        env.get('MCP_BROKER_CLIENT_SECRET'),
      )
      assert.equal((await brokerKeys(broker, readSecret)).generated, false)
      assert.ok(sealerFromConfig(config.secrets, readSecret))
    })

    it('the second run replaces nothing, and the certificate chains to the CA', async () => {
      assert.deepEqual(
        kept.map((f) => readFileSync(at(f), 'utf8')),
        firstFiles,
      )
      const verify = await run('openssl', [
        'verify',
        '-CAfile',
        at('certs/ca.crt'),
        at('certs/tls.crt'),
      ])
      assert.equal(verify.code, 0, verify.stderr)
    })

    it('prints no secret, on either run', () => {
      const values = [
        ...generatedSecrets.map((k) => env.get(k)!),
        ...SECRET_FILES.map((f) => readFileSync(at(`secrets/${f}`), 'utf8').trim()),
      ]
      for (const out of [first, second].flatMap((r) => [r.stdout, r.stderr])) {
        for (const v of values) assert.ok(!out.includes(v), 'a secret value was printed')
      }
    })

    it("a new MCP_BROKER_CLIENT_SECRET in .env reaches the gateway's copy at the next run", async () => {
      const text = readFileSync(at('.env'), 'utf8')
      const rotated = 'f'.repeat(64)
      writeFileSync(
        at('.env'),
        text.replace(/^MCP_BROKER_CLIENT_SECRET=.*$/m, `MCP_BROKER_CLIENT_SECRET=${rotated}`),
      )
      const third = await runSetup(dir)
      assert.equal(third.code, 0, third.stderr)
      assert.equal(readFileSync(at('secrets/broker-client-secret'), 'utf8'), `${rotated}\n`)
      assert.equal(statSync(at('secrets/broker-client-secret')).mode & 0o777, 0o400)
      assert.equal(
        readFileSync(at('secrets/sealing-keys.json'), 'utf8'),
        firstFiles[kept.indexOf('secrets/sealing-keys.json')],
      )
    })
  })

  it('stops when a certificate was brought without the CA that issued it', {
    skip: noOpenssl,
  }, async () => {
    const dir = mkdtempSync(join(scratch, 'setup-byo-'))
    mkdirSync(join(dir, 'certs'))
    const cert = ['-x509', '-nodes', '-newkey', 'rsa:2048', '-days', '1', '-subj', '/CN=localhost']
    const made = await run('openssl', [
      'req',
      ...cert,
      '-keyout',
      join(dir, 'certs/tls.key'),
      '-out',
      join(dir, 'certs/tls.crt'),
    ])
    assert.equal(made.code, 0, made.stderr)
    const res = await runSetup(dir)
    assert.equal(res.code, 1)
    assert.match(res.stderr, /certs\/ca\.crt is missing/)
  })
})

describe('compose/nginx.conf routes', () => {
  const locations = nginxLocations(read('nginx.conf'), '443 ssl')
  const route = (path: string) => nginxRoute(locations, path)?.action
  // Every path the broker serves (its oidc-provider routes, with * filled in, the consent pages
  // and the upstream's callback), then the MCP endpoints; all to the gateway.
  const gateway = [
    ...PROVIDER_PATHS.map((p) => p.replace('*', 'x1')),
    `${INTERACTION_PREFIX}uid1`,
    `${INTERACTION_PREFIX}uid1/approve`,
    `${INTERACTION_PREFIX}uid1/finish`,
    UPSTREAM_CALLBACK_PATH,
    '/mcp/notes',
    '/.well-known/oauth-protected-resource/mcp/notes',
    '/whoami',
  ]
  const keycloak = [
    '/realms/mcp/protocol/openid-connect/auth',
    '/realms/mcp/protocol/openid-connect/token',
    '/realms/mcp/.well-known/openid-configuration',
    '/resources/x/login/style.css',
    '/js/keycloak.js',
    '/.well-known/oauth-authorization-server/realms/mcp',
    '/.well-known/openid-configuration/realms/mcp',
  ]
  const nowhere = [
    '/',
    '/metrics',
    '/healthz',
    '/readyz',
    '/tokens',
    '/authorized',
    '/oauth/callbacks',
  ]
  for (const path of gateway)
    it(`${path} → the gateway`, () => assert.equal(route(path), 'http://mcp_edge'))
  for (const path of keycloak)
    it(`${path} → Keycloak`, () => assert.equal(route(path), 'http://keycloak'))
  for (const path of nowhere)
    it(`${path} → 404 from nginx`, () => assert.equal(route(path), 'return 404'))

  it("buffers no MCP stream, and holds the broker's redirects with their cookies", () => {
    assert.match(nginxRoute(locations, '/mcp/notes')!.body, /proxy_buffering off;/)
    for (const path of ['/authorize', `${INTERACTION_PREFIX}uid1`, UPSTREAM_CALLBACK_PATH]) {
      const body = nginxRoute(locations, path)!.body
      assert.doesNotMatch(body, /proxy_buffering off|add_header/, path)
      assert.match(body, /proxy_buffer_size 16k;/, path)
    }
  })
})

describe('compose/nginx.conf', () => {
  // The stack runs nginx 1.28; an older local nginx checks the rest without `http2 on;`
  // (1.25.1+). The upstream names resolve only inside the stack: loopback stands in for them.
  const missing = ['nginx', 'openssl'].filter((c) => !onPath(c))
  const skip = missing.length > 0 && `not installed: ${missing.join(', ')}`
  it('passes nginx -t', { skip }, async () => {
    const dir = mkdtempSync(join(scratch, 'nginx-'))
    mkdirSync(join(dir, 'logs'))
    const version = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec((await run('nginx', ['-v'])).stderr)
    const [major, minor, patch] = (version?.slice(1) ?? []).map(Number)
    const http2On = major! > 1 || minor! > 25 || (minor === 25 && patch! >= 1)
    let conf = read('nginx.conf')
      .replace(/server (gateway|keycloak):8080;/g, 'server 127.0.0.1:8080;')
      .replaceAll('/etc/nginx/certs/', `${dir}/`)
    if (!http2On) conf = conf.replace(/^\s*http2 on;$/m, '')
    writeFileSync(join(dir, 'default.conf'), conf)
    writeFileSync(join(dir, 'nginx.conf'), `events {}\nhttp {\n  include ${dir}/default.conf;\n}\n`)
    const cert = ['-x509', '-nodes', '-newkey', 'rsa:2048', '-days', '1', '-subj', '/CN=localhost']
    const out = ['-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')]
    const made = await run('openssl', ['req', ...cert, ...out])
    assert.equal(made.code, 0, made.stderr)
    const global = `pid ${dir}/nginx.pid; error_log stderr;`
    const res = await run('nginx', ['-t', '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', global])
    assert.equal(res.code, 0, res.stderr)
  })
})
