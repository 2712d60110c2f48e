// Tokens shaped as the realm of compose/realm-mcp.json issues them (Keycloak's claims, its
// audiences, its public issuer), presented to a gateway configured by compose/gateway.yaml.
// A local JWKS server stands in for http://keycloak:8080; everything else is the stack's own.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { JWTPayload } from 'jose'
import { pino } from 'pino'
import { parse } from 'yaml'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js'
import { makeKey, signToken, type TestKey } from '../helpers/keys.js'
import { COMPOSE, ROOT, envOf, keycloakResolve, read } from './stack.js'

interface Realm {
  clientScopes: { protocolMappers?: { protocolMapper: string; config: Record<string, string> }[] }[]
}

const file = parse(read('gateway.yaml')) as {
  auth: Record<string, unknown>
  servers: Record<string, Record<string, unknown>>
}
const realm = JSON.parse(keycloakResolve(read('realm-mcp.json'), envOf('keycloak'))) as Realm
/** What the realm's audience mappers put in every access token. */
const AUD = realm.clientScopes
  .flatMap((s) => s.protocolMappers ?? [])
  .filter((m) => m.protocolMapper === 'oidc-audience-mapper')
  .map((m) => m.config['included.custom.audience']!)
/** Keycloak's `iss`: KC_HOSTNAME/realms/mcp. */
const ISSUER = `${envOf('keycloak').get('KC_HOSTNAME')}/realms/mcp`

let jwks: JwksServer
let key: TestKey
let gateway: Gateway

before(async () => {
  key = await makeKey('RS256')
  jwks = await startJwksServer([key.publicJwk])
  // The stack's config, moved to loopback: local JWKS, local server scripts, no warm pool.
  const servers = Object.fromEntries(
    Object.entries(file.servers).map(([name, s]) => [name, {
      ...s,
      command: process.execPath,
      args: [join(ROOT, 'dist/servers', `${name}.js`)],
      pool: { min: 0 },
    }]),
  )
  const raw = {
    ...file,
    listen: { host: '127.0.0.1', port: 0 },
    auth: { ...file.auth, jwksUri: jwks.jwksUri },
    servers,
    policies: join(ROOT, 'policies'),
    log: { level: 'silent', audit: 'off' },
  }
  const config = validateConfig(raw, { file: 'compose/gateway.yaml (test copy)', baseDir: COMPOSE })
  gateway = await startGateway(config, { log: pino({ level: 'silent' }) })
})

after(async () => {
  await gateway?.close()
  await jwks?.close()
})

/** An access token as Keycloak writes it (header typ JWT, RS256, the realm's claims). */
function keycloakToken(over: JWTPayload): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const payload = {
    exp: now + 300,
    iat: now,
    jti: randomUUID(),
    iss: ISSUER,
    aud: AUD,
    sub: randomUUID(),
    typ: 'Bearer',
    ...over,
  }
  return signToken(key, payload, { typ: 'JWT' })
}

const demo = {
  azp: 'mcp-inspector',
  realm_access: { roles: ['mcp-user', 'mcp-developer'] },
  scope: 'profile mcp:read',
  preferred_username: 'demo',
}
const service = {
  azp: 'mcp-service',
  realm_access: { roles: ['mcp-tools'] },
  scope: 'profile mcp:read mcp:write',
}

const ACCEPT = 'application/json, text/event-stream'

/** POSTs one JSON-RPC message to /mcp/<server> with a bearer token. */
function post(server: string, token: string, message: object): Promise<Response> {
  return fetch(`${gateway.url}/mcp/${server}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: ACCEPT,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, ...message }),
  })
}

const clientInfo = { name: 'compose-test', version: '0' }
const initialize = {
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo },
}

describe('realm tokens at the gateway of the stack', () => {
  const both = ['mcp:read', 'mcp:write']
  const whoamiCases = [
    // The token's scopes are what the client was delegated; the roles are the ceiling.
    { name: 'demo user (PKCE client): a developer with a read token reads', claims: demo, access: 'allow', granted: ['mcp:read'], lacks: ['mcp:write'] },
    { name: 'service account with its scopes', claims: service, access: 'allow', granted: both, lacks: [] },
    // A scope claim without any MCP scope delegates nothing: the client must ask for mcp:read.
    {
      name: 'service account whose token names no MCP scope gets a step-up, whatever its role',
      claims: { ...service, scope: 'profile' },
      access: 'challenge',
      granted: [],
      lacks: both,
    },
  ]
  for (const c of whoamiCases) {
    it(`/whoami: ${c.name}`, async () => {
      const authorization = `Bearer ${await keycloakToken(c.claims)}`
      const res = await fetch(`${gateway.url}/whoami`, { headers: { authorization } })
      assert.equal(res.status, 200, await res.clone().text())
      const body = (await res.json()) as {
        iss: string
        clientId: string
        grantedScopes: string[]
        servers: Record<string, { access: string }>
      }
      assert.equal(body.iss, ISSUER)
      assert.equal(body.clientId, c.claims.azp)
      for (const s of c.granted) assert.ok(body.grantedScopes.includes(s), s)
      for (const s of c.lacks) assert.ok(!body.grantedScopes.includes(s), s)
      for (const server of ['echo', 'notes']) {
        assert.equal(body.servers[server]?.access, c.access, server)
      }
    })
  }

  for (const server of ['echo', 'notes']) {
    it(`initialize at /mcp/${server} with the demo user's token`, async () => {
      const res = await post(server, await keycloakToken(demo), initialize)
      await res.body?.cancel()
      assert.equal(res.status, 200)
      assert.ok(res.headers.get('mcp-session-id'))
    })
  }

  const refusals = [
    {
      name: "the internal issuer (Keycloak's own URL)",
      over: { iss: 'http://keycloak:8080/realms/mcp' },
      expect: /another issuer/,
    },
    {
      name: 'no audience mapper (aud: account)',
      over: { aud: 'account' },
      expect: /another resource/,
    },
  ]
  for (const r of refusals) {
    it(`refuses a token with ${r.name}`, async () => {
      const res = await post('notes', await keycloakToken({ ...demo, ...r.over }), initialize)
      assert.equal(res.status, 401)
      assert.match(await res.text(), r.expect)
    })
  }
})
