// Tokens shaped as the realm of compose/realm-mcp.json issues them (Keycloak's claims, its
// audiences, its public issuer), presented to a gateway configured by compose/gateway.yaml:
// machine clients' tokens, which the gateway accepts beside its broker's own. A local JWKS
// server stands in for http://keycloak:8080; the broker's upstream is left unreachable (its
// logins are test/compose/broker-login.test.ts); everything else is the stack's own.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { JWTPayload } from 'jose'
import { pino } from 'pino'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js'
import { makeKey, signToken, type TestKey } from '../helpers/keys.js'
import { envOf, keycloakResolve, loopbackGateway, read, writeSecrets } from './stack.js'

interface Realm {
  clientScopes: { protocolMappers?: { protocolMapper: string; config: Record<string, string> }[] }[]
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
const secrets = mkdtempSync(join(tmpdir(), 'mcp-edge-realm-tokens-'))

before(async () => {
  key = await makeKey('RS256')
  jwks = await startJwksServer([key.publicJwk])
  writeSecrets(secrets)
  // The stack's config, moved to loopback: local JWKS, local server scripts, no warm pool; the
  // broker's upstream connects to a loopback port nothing listens on (refused at once).
  const config = loopbackGateway({
    secretsDir: secrets,
    edit: (raw) => {
      raw.auth.jwksUri = jwks.jwksUri
      raw.auth.broker.upstream.connectTo = '127.0.0.1'
      delete raw.auth.broker.upstream.caFile
    },
  })
  gateway = await startGateway(config, { log: pino({ level: 'silent' }) })
})

after(async () => {
  await gateway?.close()
  await jwks?.close()
  rmSync(secrets, { recursive: true, force: true })
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

/** What Keycloak gives the broker's own client for the demo user: no MCP audience. */
const brokerUser = {
  azp: 'mcp-edge-broker',
  aud: 'account',
  realm_access: { roles: ['mcp-user', 'mcp-developer'] },
  scope: 'openid profile',
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
    {
      name: 'service account with its scopes',
      claims: service,
      access: 'allow',
      granted: both,
      lacks: [],
    },
    {
      name: 'service account with mcp:read only',
      claims: { ...service, scope: 'profile mcp:read' },
      access: 'allow',
      granted: ['mcp:read'],
      lacks: ['mcp:write'],
    },
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
    it(`initialize at /mcp/${server} with the service account's token`, async () => {
      const res = await post(server, await keycloakToken(service), initialize)
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
    {
      name: "the broker's own Keycloak client (a user's upstream token is no MCP token)",
      over: brokerUser,
      expect: /another resource/,
    },
  ]
  for (const r of refusals) {
    it(`refuses a token with ${r.name}`, async () => {
      const res = await post('notes', await keycloakToken({ ...service, ...r.over }), initialize)
      assert.equal(res.status, 401)
      assert.match(await res.text(), r.expect)
    })
  }
})
