// The gateway as the authorization server MCP clients log in to, federating to an Entra-like
// IdP (no DCR, refuses `resource`, app roles in the ID token): the real SDK v2 client registers
// by DCR, is sent through the consent page and the upstream login, gets the gateway's own
// token for exactly one server, calls tools, steps up, refreshes, and is revoked.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { brokerLogin, type Choices } from '../helpers/broker-browser.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { memoryProvider, REDIRECT } from '../helpers/oauth-provider.js'

let stack: BrokerStack
before(async () => {
  stack = await startBrokerStack({ kind: 'entra' })
})
after(() => stack.close())

/** An SDK client that logs in through the broker as the fixture's next user. */
async function connect(server: string, o: { user?: string; choices?: Choices } = {}) {
  if (o.user) stack.idp.nextUser(o.user)
  const { provider, saved } = memoryProvider(`${server} client`)
  const url = new URL(stack.endpoint(server))
  const jar = new Map<string, string>()
  const login = async (
    transport: StreamableHTTPClientTransport,
    choices: Choices = o.choices ?? { consent: 'allow' },
  ) => {
    const { callback, visits } = await brokerLogin(provider.authorizationUrl!.href, {
      redirectUri: REDIRECT,
      choices,
      jar,
    })
    if (callback.searchParams.get('error')) return { callback, visits }
    await transport.finishAuth(callback.searchParams)
    return { callback, visits }
  }
  const client = new Client({ name: 'broker-test', version: '0' })
  let transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
  await assert.rejects(client.connect(transport), UnauthorizedError)
  const first = await login(transport)
  transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
  await client.connect(transport)
  const token = () => decodeJwt((saved.tokens as { access_token: string }).access_token)
  return { client, transport, provider, saved, token, login, first }
}

describe('broker: metadata', () => {
  it('the gateway is the authorization server its resources name, with DCR, CIMD, S256 and iss', async () => {
    const prm = (await (
      await request(`${stack.url}/.well-known/oauth-protected-resource/mcp/notes`)
    ).body.json()) as Record<string, unknown>
    assert.deepEqual(prm.authorization_servers, [stack.url])
    for (const path of [
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration',
    ]) {
      const res = await request(`${stack.url}${path}`)
      assert.equal(res.statusCode, 200, path)
      const as = (await res.body.json()) as Record<string, unknown>
      assert.equal(as.issuer, stack.url)
      assert.equal(as.authorization_endpoint, `${stack.url}/authorize`)
      assert.equal(as.token_endpoint, `${stack.url}/token`)
      assert.equal(as.registration_endpoint, `${stack.url}/register`)
      assert.equal(as.revocation_endpoint, `${stack.url}/revoke`)
      assert.equal(as.jwks_uri, `${stack.url}/jwks`)
      assert.deepEqual(as.code_challenge_methods_supported, ['S256'])
      assert.equal(as.client_id_metadata_document_supported, true)
      assert.equal(as.authorization_response_iss_parameter_supported, true)
      // Every endpoint it names is served (oidc-provider's pushed authorization requests were
      // advertised at /request, which the gateway does not mount: a client preferring PAR got 404).
      const named = Object.entries(as).filter(
        ([k, v]) => (k.endsWith('_endpoint') || k === 'jwks_uri') && typeof v === 'string',
      )
      assert.ok(named.length >= 5, JSON.stringify(named))
      for (const [k, url] of named) {
        const probe = await request(url as string, {
          method: k === 'jwks_uri' || k === 'authorization_endpoint' ? 'GET' : 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          ...(k === 'jwks_uri' || k === 'authorization_endpoint' ? {} : { body: '' }),
        })
        await probe.body.dump()
        assert.notEqual(probe.statusCode, 404, `${k} ${url as string} is served`)
      }
      assert.equal(as.pushed_authorization_request_endpoint, undefined)
    }
  })
})

describe('broker: the SDK v2 client logs in through the gateway', () => {
  it('DCR → consent → Entra-like login → code with iss → token for exactly this server → tools', async () => {
    const c = await connect('notes')
    try {
      assert.equal(
        c.first.callback.searchParams.get('iss'),
        stack.url,
        'RFC 9207 iss on the redirect',
      )
      const consent = c.first.visits.find((v) => v.html.includes('Allow'))!
      assert.match(consent.html, /notes/)
      assert.match(consent.html, /127\.0\.0\.1:9/, 'the redirect host is shown')
      assert.match(consent.html, /An application on this device/, 'the loopback warning')
      const claims = c.token()
      assert.equal(claims.iss, stack.url)
      assert.equal(claims.aud, stack.endpoint('notes'))
      assert.equal(
        claims.sub,
        '00000000-0000-0000-0000-00000000a11c',
        'the upstream oid is the subject',
      )
      assert.deepEqual(claims.roles, ['MCP.Developer'])
      assert.equal(
        claims.scope,
        'mcp:read',
        'what the client asked (the challenge), within the roles',
      )
      const { tools } = await c.client.listTools()
      assert.deepEqual(tools.map((t) => t.name).sort(), ['list_notes', 'read_note', 'write_note'])
      const read = await c.client.callTool({ name: 'read_note', arguments: { name: 'welcome' } })
      assert.equal((read as { isError?: boolean }).isError, undefined)
      // The token is for notes only.
      const other = await request(stack.endpoint('echo'), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${(c.saved.tokens as { access_token: string }).access_token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: '{}',
      })
      assert.equal(other.statusCode, 401)
      await other.body.dump()
    } finally {
      await c.client.close()
    }
  })

  it('a step-up the roles allow: 403 → consent → the wider token (no second upstream trip) → the call succeeds', async () => {
    const c = await connect('notes')
    try {
      const before = stack.idp.counts.token
      await assert.rejects(
        c.client.callTool({ name: 'write_note', arguments: { name: 'x', text: 'y' } }),
        UnauthorizedError,
      )
      assert.match(c.provider.authorizationUrl!.searchParams.get('scope') ?? '', /mcp:write/)
      await c.login(c.transport)
      assert.equal(
        stack.idp.counts.token,
        before,
        'the browser session is fresh: no upstream login',
      )
      assert.match(String(c.token().scope), /mcp:write/)
      const res = await c.client.callTool({
        name: 'write_note',
        arguments: { name: 'x', text: 'y' },
      })
      assert.equal((res as { isError?: boolean }).isError, undefined)
    } finally {
      await c.client.close()
    }
  })

  it('a step-up the roles do not allow: the missing-role page names the role; cancelling sends access_denied', async () => {
    const c = await connect('notes')
    try {
      await assert.rejects(
        c.client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } }),
        UnauthorizedError,
      )
      const { callback, visits } = await c.login(c.transport, {
        consent: 'allow',
        missingRole: 'cancel',
      })
      const page = visits.find((v) => v.status === 403)!
      assert.match(page.html, /mcp:admin/)
      assert.match(page.html, /MCP\.Admin/, 'the role that would grant it')
      assert.equal(callback.searchParams.get('error'), 'access_denied')
      assert.equal(callback.searchParams.get('iss'), stack.url)
    } finally {
      await c.client.close()
    }
  })

  it('refresh rotates the refresh token; a reused one revokes the grant', async () => {
    const c = await connect('notes')
    try {
      const tokens = c.saved.tokens as { refresh_token: string }
      const refresh = async (rt: string) => {
        const res = await request(`${stack.url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'refresh_token',
            refresh_token: rt,
            client_id: (c.saved.client as { client_id: string }).client_id,
          }).toString(),
        })
        return { status: res.statusCode, body: (await res.body.json()) as Record<string, string> }
      }
      const one = await refresh(tokens.refresh_token)
      assert.equal(one.status, 200, JSON.stringify(one.body))
      assert.notEqual(one.body.refresh_token, tokens.refresh_token)
      const reuse = await refresh(tokens.refresh_token)
      assert.equal(reuse.status, 400)
      assert.equal(reuse.body.error, 'invalid_grant')
      const after = await refresh(one.body.refresh_token!)
      assert.equal(after.status, 400, 'the whole grant is revoked')
    } finally {
      await c.client.close()
    }
  })
})
