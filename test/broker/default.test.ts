// `npm start` shows the broker: the embedded default makes the gateway the authorization server
// MCP clients register with, and the embedded dev IdP plays the company IdP behind it (a
// registered app, no dynamic registration, like Entra). The SDK v2 client completes the flow
// through both with no setup; `mcp-edge token` still works against the dev IdP.
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client'
import { decodeJwt } from 'jose'
import { pino } from 'pino'
import { request } from 'undici'
import { defaultConfig } from '../../gateway/config/defaults.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { requestDevToken } from '../../gateway/devidp/token-client.js'
import { brokerLogin } from '../helpers/broker-browser.js'
import { memoryProvider, REDIRECT } from '../helpers/oauth-provider.js'
import { freePort } from '../helpers/ports.js'

let gateway: Gateway
let state: string
let base: string
before(async () => {
  const [port, idpPort] = [await freePort(), await freePort()]
  state = join(mkdtempSync(join(tmpdir(), 'mcp-edge-default-')), 'dev-idp.json')
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MCP_EDGE_PORT: String(port),
    MCP_EDGE_DEV_IDP_PORT: String(idpPort),
    MCP_EDGE_DEV_IDP_STATE: state,
  }
  delete env.MCP_EDGE_ISSUER
  const config = defaultConfig(env)
  process.env.MCP_EDGE_DEV_BROKER_SECRET = env.MCP_EDGE_DEV_BROKER_SECRET
  gateway = await startGateway(config, {
    log: pino({ level: 'silent' }),
    allowDevIdp: true,
    devIdp: { stateFile: state },
  })
  base = gateway.url
})
after(async () => {
  await gateway?.close()
  delete process.env.MCP_EDGE_DEV_BROKER_SECRET
})

describe('the embedded default runs the broker', () => {
  it('the servers name the gateway as their authorization server; the dev IdP behind it has no DCR', async () => {
    const prm = (await (
      await request(`${base}/.well-known/oauth-protected-resource/mcp/notes`)
    ).body.json()) as { authorization_servers: string[] }
    assert.deepEqual(prm.authorization_servers, [base])
    const idp = (await (
      await request(`${gateway.devIdp!.issuer}/.well-known/openid-configuration`)
    ).body.json()) as Record<string, unknown>
    assert.equal(idp.registration_endpoint, undefined, 'the dev IdP plays an IdP without DCR')
  })

  for (const host of ['127.0.0.1', 'localhost']) {
    it(`an SDK client at http://${host}:<port>/mcp/notes registers with the gateway, logs in through the dev IdP, and lists tools`, async () => {
      const url = new URL(`http://${host}:${new URL(base).port}/mcp/notes`)
      const { provider, saved } = memoryProvider('default')
      await assert.rejects(
        new Client({ name: 'd', version: '0' }).connect(
          new StreamableHTTPClientTransport(url, { authProvider: provider }),
        ),
        UnauthorizedError,
      )
      assert.equal(
        new URL(provider.authorizationUrl!.href).origin,
        base,
        'the gateway is where the client logs in',
      )
      const { callback } = await brokerLogin(provider.authorizationUrl!.href, {
        redirectUri: REDIRECT,
      })
      const transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
      await transport.finishAuth(callback.searchParams)
      const claims = decodeJwt((saved.tokens as { access_token: string }).access_token)
      assert.equal(claims.iss, base)
      assert.equal(claims.aud, url.href)
      assert.equal(claims.sub, 'dev-user')
      const client = new Client({ name: 'd', version: '0' })
      await client.connect(transport)
      try {
        assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), [
          'list_notes',
          'read_note',
          'write_note',
        ])
      } finally {
        await client.close()
      }
    })
  }

  it("one URL, /mcp, serves every demo server: the client logs in once and sees every tool under its server's prefix", async () => {
    const url = new URL(`${base}/mcp`)
    const { provider, saved } = memoryProvider('default-endpoint')
    await assert.rejects(
      new Client({ name: 'd', version: '0' }).connect(
        new StreamableHTTPClientTransport(url, { authProvider: provider }),
      ),
      UnauthorizedError,
    )
    const { callback } = await brokerLogin(provider.authorizationUrl!.href, {
      redirectUri: REDIRECT,
    })
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
    await transport.finishAuth(callback.searchParams)
    assert.equal(decodeJwt((saved.tokens as { access_token: string }).access_token).aud, url.href)
    const client = new Client({ name: 'd', version: '0' })
    await client.connect(transport)
    try {
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), [
        'echo_echo',
        'notes_list_notes',
        'notes_read_note',
        'notes_write_note',
        'tickets_create_ticket',
        'tickets_list_tickets',
      ])
      const r = await client.callTool({ name: 'notes_list_notes', arguments: {} })
      assert.match(JSON.stringify(r.content), /welcome/)
    } finally {
      await client.close()
    }
    const t = await requestDevToken({ resource: `${base}/mcp`, statePath: state })
    assert.equal(
      (await request(`${base}/whoami`, { headers: { authorization: `Bearer ${t.access_token}` } }))
        .statusCode,
      200,
      'mcp-edge token --resource …/mcp',
    )
  })

  it('mcp-edge token (client credentials at the dev IdP) is still accepted', async () => {
    const t = await requestDevToken({ resource: `${base}/mcp/echo`, statePath: state })
    const res = await request(`${base}/whoami`, {
      headers: { authorization: `Bearer ${t.access_token}` },
    })
    assert.equal(res.statusCode, 200)
    assert.equal(((await res.body.json()) as { sub: string }).sub, 'dev-user')
  })
})

describe('the embedded default with MCP_EDGE_DEV_IDP_PORT=0', () => {
  it('refuses to start, naming devIdp.port: the broker would ask http://127.0.0.1:0 forever', async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      MCP_EDGE_PORT: '0',
      MCP_EDGE_DEV_IDP_PORT: '0',
      MCP_EDGE_DEV_IDP_STATE: join(mkdtempSync(join(tmpdir(), 'mcp-edge-default0-')), 's.json'),
    }
    delete env.MCP_EDGE_ISSUER
    const config = defaultConfig(env)
    process.env.MCP_EDGE_DEV_BROKER_SECRET = env.MCP_EDGE_DEV_BROKER_SECRET
    await assert.rejects(
      startGateway(config, { log: pino({ level: 'silent' }), allowDevIdp: true }),
      (err: Error) => {
        assert.match(err.message, /devIdp\.port/)
        assert.match(err.message, /MCP_EDGE_DEV_IDP_PORT/)
        return true
      },
    )
  })
})
