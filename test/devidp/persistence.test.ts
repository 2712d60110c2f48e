// With a state folder, the dev IdP keeps its signing keys and the clients that registered,
// their grants and refresh tokens: a restart (npm start again) does not log anyone out.
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose'
import { pino } from 'pino'
import { Agent, request, setGlobalDispatcher } from 'undici'
import { startDevIdp, type DevIdpOptions } from '../../gateway/devidp/provider.js'
import { DEMO_ROLES, scopesForRoles } from '../helpers/dev-roles.js'
import { authorizationCodeFlow, discover, tokenRequest } from '../helpers/oauth-flow.js'
import { freePort } from '../helpers/ports.js'

const ECHO = 'http://127.0.0.1:8080/mcp/echo'
const REDIRECT = 'http://127.0.0.1:33418/callback'
const root = mkdtempSync(join(tmpdir(), 'mcp-edge-persist-'))
after(() => rmSync(root, { recursive: true, force: true }))

// A restarted IdP on the same port: fresh connections, never one the old instance closed. The
// port comes from freePort, outside the ephemeral range: between close and restart a port-0
// listener of a test file running beside this one cannot take it.
const newConnections = () => setGlobalDispatcher(new Agent())

const options = (stateDir: string, port = 0, lines?: string[]): DevIdpOptions => ({
  port,
  resources: [ECHO],
  scopesFor: scopesForRoles(DEMO_ROLES),
  stateFile: false,
  stateDir,
  logger: pino({ level: 'warn' }, { write: (l: string) => void lines?.push(l) }),
})

/** RFC 7591 registration; returns the whole answer (client id, RFC 7592 management token). */
async function register(issuer: string) {
  const { registration_endpoint: endpoint } = await discover(issuer)
  const res = await request(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }),
  })
  assert.equal(res.statusCode, 201)
  return (await res.body.json()) as {
    client_id: string
    registration_access_token: string
    registration_client_uri: string
  }
}

describe('dev IdP state across a restart', () => {
  it('keeps keys, registered clients, grants and refresh tokens', async () => {
    const stateDir = join(root, 'state')
    const port = await freePort()
    const first = await startDevIdp(options(stateDir, port))
    const client = await register(first.issuer)
    const tokens = await authorizationCodeFlow({
      issuer: first.issuer,
      clientId: client.client_id,
      redirectUri: REDIRECT,
      resource: ECHO,
      scope: 'mcp:read mcp:write',
    })
    assert.ok(tokens.refresh_token)
    await first.close()

    const second = await startDevIdp(options(stateDir, port))
    newConnections()
    try {
      assert.equal(second.issuer, first.issuer)
      const meta = await discover(second.issuer)
      const jwks = createRemoteJWKSet(new URL(meta.jwks_uri))
      const { payload } = await jwtVerify(tokens.access_token, jwks, {
        issuer: second.issuer,
        audience: ECHO,
      })
      assert.equal(payload.sub, 'dev-user', 'the old access token verifies against the new JWKS')

      const refreshed = await tokenRequest(meta.token_endpoint, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token!,
        client_id: client.client_id,
      })
      assert.equal(decodeJwt(refreshed.access_token).scope, 'mcp:read mcp:write')
      const reused = await request(meta.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: tokens.refresh_token!,
          client_id: client.client_id,
        }).toString(),
      })
      assert.equal(
        ((await reused.body.json()) as { error: string }).error,
        'invalid_grant',
        'the rotated-out refresh token stays spent after the restart',
      )

      const read = await request(client.registration_client_uri, {
        headers: { authorization: `Bearer ${client.registration_access_token}` },
      })
      assert.equal(read.statusCode, 200, 'the client is still registered (RFC 7592 read)')
      assert.equal(((await read.body.json()) as { client_id: string }).client_id, client.client_id)
      const again = await authorizationCodeFlow({
        issuer: second.issuer,
        clientId: client.client_id,
        redirectUri: REDIRECT,
        resource: ECHO,
        scope: 'mcp:read',
      })
      assert.equal(decodeJwt(again.access_token).client_id, client.client_id)

      const files: [string, number][] = [
        [stateDir, 0o700],
        [join(stateDir, 'keys.json'), 0o600],
        [join(stateDir, 'models.json'), 0o600],
      ]
      for (const [file, mode] of files) assert.equal(statSync(file).mode & 0o777, mode, file)
    } finally {
      await second.close()
    }
  })

  it('without a state folder nothing is kept (tests, stateFile: false)', async () => {
    const opts = { ...options('', await freePort()), stateDir: undefined }
    const first = await startDevIdp(opts)
    assert.equal(first.stateDir, undefined)
    const client = await register(first.issuer)
    await first.close()
    const second = await startDevIdp(opts)
    newConnections()
    try {
      const read = await request(client.registration_client_uri, {
        headers: { authorization: `Bearer ${client.registration_access_token}` },
      })
      await read.body.dump()
      assert.equal(read.statusCode, 401)
    } finally {
      await second.close()
    }
  })

  it('keeps its state next to the state file by default', async () => {
    const idp = await startDevIdp({
      ...options(''),
      stateDir: undefined,
      stateFile: join(root, 'published.json'),
    })
    await idp.close()
    assert.equal(idp.stateDir, join(root, 'published'))
    assert.ok(statSync(join(root, 'published', 'keys.json')).isFile())
  })

  it('a corrupt registrations file: starts without them, keeps the keys, says so', async () => {
    const stateDir = join(root, 'corrupt')
    const port = await freePort()
    const first = await startDevIdp(options(stateDir, port))
    const client = await register(first.issuer)
    const token = await authorizationCodeFlow({
      issuer: first.issuer,
      clientId: client.client_id,
      redirectUri: REDIRECT,
      resource: ECHO,
      scope: 'mcp:read',
    })
    await first.close()
    writeFileSync(join(stateDir, 'models.json'), '{"version":1,"entries":')

    const lines: string[] = []
    const second = await startDevIdp(options(stateDir, port, lines))
    newConnections()
    try {
      const warning = lines
        .map((l) => JSON.parse(l) as Record<string, string>)
        .find((l) => /registrations unreadable/.test(l.msg!))
      assert.ok(warning, lines.join('\n'))
      assert.equal(warning.file, join(stateDir, 'models.json'))
      assert.equal(warning.movedTo, join(stateDir, 'models.json.corrupt'))
      assert.equal(
        readFileSync(join(stateDir, 'models.json.corrupt'), 'utf8'),
        '{"version":1,"entries":',
      )
      const meta = await discover(second.issuer)
      await jwtVerify(token.access_token, createRemoteJWKSet(new URL(meta.jwks_uri)), {
        issuer: second.issuer,
        audience: ECHO,
      })
      const refresh = await request(meta.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: token.refresh_token!,
          client_id: client.client_id,
        }).toString(),
      })
      assert.equal(
        ((await refresh.body.json()) as { error: string }).error,
        'invalid_client',
        'the client must register again',
      )
    } finally {
      await second.close()
    }
  })

  it('refuses an unsafe state folder before listening', async () => {
    const stateDir = join(root, 'shared')
    const port = await freePort()
    const first = await startDevIdp(options(stateDir, port))
    await first.close()
    chmodSync(stateDir, 0o777)
    await assert.rejects(
      startDevIdp(options(stateDir, port)),
      /dev IdP state folder .*shared is writable by group or others \(mode 0777\)/,
    )
    // Nothing was left listening on the port.
    const again = await startDevIdp({ ...options(join(root, 'other'), port) })
    await again.close()
  })
})
