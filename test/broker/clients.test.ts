// The real MCP SDK clients (v2 @modelcontextprotocol/client and v1 @modelcontextprotocol/sdk)
// with an authProvider, through the broker, against each kind of upstream IdP, registered by
// DCR or known by a Client ID Metadata Document (CIMD) served from a loopback HTTPS host the
// broker allow-lists: connect → 401 → login (scripted browser) → tools → 403 step-up → retry →
// refresh (the SDK's own refresh, explicit and on a 401) → revocation ends refresh.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as v2 from '@modelcontextprotocol/client'
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import {
  auth as v1Auth,
  UnauthorizedError as V1Unauthorized,
} from '@modelcontextprotocol/sdk/client/auth.js'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { brokerLogin, type Choices } from '../helpers/broker-browser.js'
import { startBrokerStack, type BrokerStack, type UpstreamKind } from '../helpers/broker-stack.js'
import { memoryProvider, REDIRECT } from '../helpers/oauth-provider.js'
import { makeTestCa, type TestCa } from '../helpers/test-ca.js'

type Tokens = { access_token: string; refresh_token?: string; scope?: string }
type Provider = ReturnType<typeof memoryProvider>['provider']

/** What a test needs from one SDK generation: its client, transport, and auth entry points. */
interface Sdk {
  connect(url: URL, provider: Provider): Promise<{ client: McpClient; transport: unknown }>
  /** The SDK's error for "the user must authorize in a browser". */
  Unauthorized: new (
    ...args: never[]
  ) => Error
  /** Hands the browser's callback to the transport (code exchange). */
  finish(transport: unknown, callback: URL): Promise<void>
  /** The SDK's own `auth()`: refreshes when it holds a refresh token, else starts a login. */
  auth(provider: Provider, serverUrl: URL, scope?: string): Promise<string>
  /**
   * Makes the call that needs more scope and brings the SDK to a new authorization request
   * for it (`provider.authorizationUrl`), as an application using this SDK has to.
   */
  stepUp(s: StepUp): Promise<void>
}
interface McpClient {
  connect(transport: never): Promise<void>
  listTools(): Promise<{ tools: { name: string }[] }>
  callTool(p: { name: string; arguments: Record<string, unknown> }): Promise<unknown>
  close(): Promise<void>
}
interface StepUp {
  sdk: Sdk
  client: McpClient
  call: { name: string; arguments: Record<string, unknown> }
  provider: Provider
  saved: Record<string, unknown>
  url: URL
}

/**
 * The fetch the SDKs' `auth()` gets here. The gateway runs in this process, and
 * @hono/node-server replaced globalThis.Response with its own class (overrideGlobalObjects), so
 * fetch's responses fail the SDKs' `instanceof Response` and an OAuth error body would read as
 * "[object Response]" (a server_error, not invalid_grant). A client in its own process never
 * sees that; the response is remade as the global class, body buffered (token endpoint only).
 */
async function sameRealmFetch(input: string | URL, init?: RequestInit): Promise<Response> {
  const res = await fetch(input, init)
  return new Response(await res.arrayBuffer(), {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  })
}

/** The last 403 challenge each v1 transport saw (an application can read it only through its fetch). */
const challenges = new WeakMap<object, string>()

const SDKS: Record<'v2' | 'v1', Sdk> = {
  v2: {
    Unauthorized: v2.UnauthorizedError,
    async connect(url, provider) {
      const client = new v2.Client({ name: 'clients-test', version: '0' })
      const transport = new v2.StreamableHTTPClientTransport(url, { authProvider: provider })
      return { client: client as unknown as McpClient, transport }
    },
    finish: (t, callback) =>
      (t as v2.StreamableHTTPClientTransport).finishAuth(callback.searchParams),
    auth: (provider, serverUrl, scope) =>
      v2.auth(provider, { serverUrl, fetchFn: sameRealmFetch, ...(scope ? { scope } : {}) }),
    // SEP-2350: the union of the scopes is a strict superset of the token's, so the SDK skips
    // the refresh (which cannot widen a grant, RFC 6749 §6) and asks the browser.
    async stepUp({ sdk, client, call, provider }) {
      const before = provider.authorizationUrl?.href
      await assert.rejects(client.callTool(call), sdk.Unauthorized)
      assert.notEqual(provider.authorizationUrl?.href, before, 'a new authorization request')
    },
  },
  v1: {
    Unauthorized: V1Unauthorized,
    async connect(url, provider) {
      const client = new V1Client({ name: 'clients-test', version: '0' })
      const box: { transport?: V1Transport } = {}
      const transport = new V1Transport(url, {
        authProvider: provider as never,
        fetch: async (input, init) => {
          const res = await fetch(input, init)
          const challenge = res.headers.get('www-authenticate')
          if (res.status === 403 && challenge) challenges.set(box.transport!, challenge)
          return res
        },
      })
      box.transport = transport
      return { client: client as unknown as McpClient, transport }
    },
    finish: (t, callback) => (t as V1Transport).finishAuth(callback.searchParams.get('code')!),
    auth: (provider, serverUrl, scope) =>
      v1Auth(provider as never, {
        serverUrl,
        fetchFn: sameRealmFetch,
        ...(scope ? { scope } : {}),
      }),
    // SDK v1 (1.32.2) answers 403 insufficient_scope with auth(), which refreshes while a refresh
    // token is held: the refreshed token keeps the granted scope (RFC 6749 §6), the retry gets
    // the same 403, and the transport gives up (typescript-sdk #2255, fixed in v2 by SEP-2350).
    // The application re-authorizes itself with the challenged scope, the refresh token held back.
    async stepUp({ sdk, client, call, provider, saved, url }) {
      const held = saved.tokens as Tokens
      await assert.rejects(client.callTool(call), /403 after trying upscoping/)
      const now = saved.tokens as Tokens
      assert.notEqual(
        now.refresh_token,
        held.refresh_token,
        'v1 refreshed instead of asking the browser',
      )
      assert.equal(
        decodeJwt(now.access_token).scope,
        'mcp:read',
        'a refresh does not widen the grant',
      )
      const transport = (client as unknown as { transport: object }).transport
      const scope = /scope="([^"]*)"/.exec(challenges.get(transport) ?? '')?.[1]
      assert.equal(scope, 'mcp:read mcp:write', 'the challenge names everything the call needs')
      saved.tokens = { ...(saved.tokens as Tokens), refresh_token: undefined }
      assert.equal(await sdk.auth(provider, url, scope), 'REDIRECT')
    },
  },
}

/**
 * Each upstream: who signs in, the broker subject that user becomes, and how the user gets a
 * role that allows mcp:write (the step-up). Entra: its app role. Google has no roles: the
 * Workspace domain (`hd`, which Google asserts) is read as a role value and mapped by
 * upstream.roleMap (example.com → MCP.Developer). GitHub: the team slug through roleMap.
 */
const UPSTREAMS: Record<
  UpstreamKind,
  { user: string; sub: string; upstream: Record<string, unknown> }
> = {
  entra: { user: 'alice-pairwise-sub', sub: '00000000-0000-0000-0000-00000000a11c', upstream: {} },
  google: {
    user: '104857600000000000001',
    sub: '104857600000000000001',
    upstream: {
      roleClaims: [{ path: 'hd', format: 'space-separated' }],
      roleMap: { 'example.com': ['MCP.Developer'] },
    },
  },
  github: {
    user: 'octocat',
    sub: '123',
    upstream: { roleMap: { 'acme/mcp-admins': ['MCP.Developer'] } },
  },
}

/** SDK × upstream × registration: every combination. */
const CASES = (['v2', 'v1'] as const).flatMap((sdk) =>
  (['entra', 'google', 'github'] as const).flatMap((kind) =>
    (['dcr', 'cimd'] as const).map((registration) => ({ sdk, kind, registration })),
  ),
)

let ca: TestCa
let caDir: string
let docs: https.Server
let docsOrigin: string
const docHits = new Map<string, number>()

/** The CIMD host: `/clients/<name>.json` is a public client's document naming its own URL. */
async function startDocuments(): Promise<void> {
  docs = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    const path = req.url ?? ''
    docHits.set(path, (docHits.get(path) ?? 0) + 1)
    const name = /^\/clients\/([a-z0-9-]+)\.json$/.exec(path)?.[1]
    if (name === undefined) return void res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        client_id: `${docsOrigin}${path}`,
        client_name: `CIMD ${name}`,
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    )
  })
  docs.listen(0, '127.0.0.1')
  await once(docs, 'listening')
  docsOrigin = `https://127.0.0.1:${(docs.address() as AddressInfo).port}`
}

before(async () => {
  ca = makeTestCa()
  caDir = mkdtempSync(join(tmpdir(), 'mcp-edge-clients-'))
  writeFileSync(join(caDir, 'ca.pem'), ca.ca)
  await startDocuments()
})
after(async () => {
  docs.closeAllConnections()
  await new Promise((resolve) => docs.close(resolve))
  rmSync(caDir, { recursive: true, force: true })
})

/** A raw token-endpoint call (a public client: client_id in the body). */
async function tokenCall(
  stack: BrokerStack,
  path: '/token' | '/revoke',
  form: Record<string, string>,
) {
  const res = await request(`${stack.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  })
  const text = await res.body.text()
  return { status: res.statusCode, body: (text ? JSON.parse(text) : {}) as Record<string, string> }
}

for (const kind of ['entra', 'google', 'github'] as const) {
  describe(`broker with a ${kind}-like upstream: the SDK clients`, () => {
    let stack: BrokerStack
    before(async () => {
      stack = await startBrokerStack({
        kind,
        upstream: { ...UPSTREAMS[kind].upstream, recheckInterval: 0 },
        broker: {
          accessTokenTtl: 30,
          cimd: {
            allowHosts: ['127.0.0.1'],
            allowPrivate: ['127.0.0.1/32'],
            caFile: join(caDir, 'ca.pem'),
          },
        },
      })
    })
    after(() => stack.close())

    for (const c of CASES.filter((x) => x.kind === kind)) {
      it(`${c.sdk} × ${c.kind} × ${c.registration}: login, tools, step-up, refresh, revocation`, async () => {
        const sdk = SDKS[c.sdk]
        const { user, sub } = UPSTREAMS[kind]
        stack.idp.nextUser(user)
        const name = `${c.sdk}-${c.kind}`
        const documentUrl = `${docsOrigin}/clients/${name}.json`
        const cimd = c.registration === 'cimd' ? { clientMetadataUrl: documentUrl } : {}
        const { provider, saved } = memoryProvider(`${name} client`, cimd)
        // What a real client also keeps: the discovery state (SDK v2 binds the callback to the
        // authorization server it started with), and it forgets tokens refused for good.
        Object.assign(provider, {
          discoveryState: () => saved.discovery,
          saveDiscoveryState: (state: unknown) => void (saved.discovery = state),
          invalidateCredentials: (scope: string) =>
            void ((scope === 'tokens' || scope === 'all') && delete saved.tokens),
        })
        const url = new URL(stack.endpoint('notes'))
        const tokens = () => saved.tokens as Tokens
        const jar = new Map<string, string>()
        const browse = async (choices: Choices = { consent: 'allow' }) =>
          brokerLogin(provider.authorizationUrl!.href, { redirectUri: REDIRECT, choices, jar })

        // Connect: 401 → the SDK registers (DCR) or names its document (CIMD) and sends the browser.
        let { client, transport } = await sdk.connect(url, provider)
        await assert.rejects(client.connect(transport as never), sdk.Unauthorized)
        const clientId = (saved.client as { client_id: string }).client_id
        if (c.registration === 'cimd')
          assert.equal(clientId, documentUrl, 'the SDK uses its document URL as client_id')
        else assert.doesNotMatch(clientId, /^https:/, 'a registered client_id')
        assert.equal(provider.authorizationUrl!.searchParams.get('client_id'), clientId)
        const first = await browse()
        assert.equal(first.callback.searchParams.get('iss'), stack.url, 'RFC 9207 iss')
        assert.ok(
          first.callback.searchParams.get('code'),
          JSON.stringify(first.visits.map((v) => [v.url, v.status])),
        )
        const consent = first.visits.find((v) => v.html.includes('/approve'))!.html
        if (c.registration === 'cimd') {
          assert.match(
            consent,
            /Published by <strong>127\.0\.0\.1:\d+<\/strong>/,
            'the document host on the consent page',
          )
          assert.ok(
            (docHits.get(`/clients/${name}.json`) ?? 0) > 0,
            'the broker fetched the document',
          )
        }
        await sdk.finish(transport, first.callback)
        ;({ client, transport } = await sdk.connect(url, provider))
        await client.connect(transport as never)
        try {
          const claims = decodeJwt(tokens().access_token)
          assert.equal(claims.iss, stack.url)
          assert.equal(claims.aud, stack.endpoint('notes'))
          assert.equal(claims.sub, sub)
          assert.equal(claims.client_id, clientId)
          assert.ok(
            (claims.roles as string[]).includes('MCP.Developer'),
            `roles ${JSON.stringify(claims.roles)}`,
          )
          assert.equal(claims.scope, 'mcp:read')

          // Tools: those the token allows, and write_note, which a step-up within the roles
          // reaches; not delete_note (mcp:admin: no role of the user grants it).
          const { tools } = await client.listTools()
          assert.deepEqual(tools.map((t) => t.name).sort(), [
            'list_notes',
            'read_note',
            'write_note',
          ])
          const read = (await client.callTool({
            name: 'read_note',
            arguments: { name: 'welcome' },
          })) as { isError?: boolean }
          assert.notEqual(read.isError, true)

          // Step-up: 403 insufficient_scope → the SDK asks for the wider scope → consent → retry.
          const write = {
            name: 'write_note',
            arguments: { name: `${name}-${c.registration}`, text: 'hello' },
          }
          await sdk.stepUp({ sdk, client, call: write, provider, saved, url })
          assert.match(provider.authorizationUrl!.searchParams.get('scope') ?? '', /mcp:write/)
          // recheckInterval 0: every authorization, this one too, goes through the upstream again.
          const upstreamTokenCalls = stack.idp.counts.token
          stack.idp.nextUser(user)
          const second = await browse()
          assert.equal(
            stack.idp.counts.token,
            upstreamTokenCalls + 1,
            'recheckInterval 0: the step-up signs in upstream again',
          )
          await sdk.finish(transport, second.callback)
          assert.deepEqual(String(decodeJwt(tokens().access_token).scope).split(' ').sort(), [
            'mcp:read',
            'mcp:write',
          ])
          const wrote = (await client.callTool(write)) as { isError?: boolean }
          assert.notEqual(wrote.isError, true, 'the retry succeeds')

          // Refresh, explicitly through the SDK: rotated tokens, same scopes, upstream re-checked.
          const stepped = tokens()
          const userinfoBefore = stack.idp.counts.userinfo + stack.idp.counts.token
          assert.equal(await sdk.auth(provider, url), 'AUTHORIZED')
          assert.notEqual(
            tokens().refresh_token,
            stepped.refresh_token,
            'the refresh token rotates',
          )
          assert.notEqual(tokens().access_token, stepped.access_token)
          assert.deepEqual(String(decodeJwt(tokens().access_token).scope).split(' ').sort(), [
            'mcp:read',
            'mcp:write',
          ])
          assert.ok(
            stack.idp.counts.userinfo + stack.idp.counts.token > userinfoBefore,
            'the upstream re-checked the user',
          )
          assert.notEqual(((await client.callTool(write)) as { isError?: boolean }).isError, true)

          // Refresh on a 401: the access token is refused (as an expired one is), the SDK
          // refreshes on its own and retries; no browser.
          const authorizationUrl = provider.authorizationUrl!.href
          const refreshed = tokens()
          saved.tokens = {
            ...refreshed,
            access_token: `${refreshed.access_token.slice(0, -4)}AAAA`,
          }
          assert.notEqual(((await client.callTool(write)) as { isError?: boolean }).isError, true)
          assert.notEqual(tokens().refresh_token, refreshed.refresh_token, 'the SDK refreshed')
          assert.equal(provider.authorizationUrl!.href, authorizationUrl, 'no new login')

          // Revocation: the refresh token is revoked, its grant with it; refreshing fails, and
          // the SDK's next refresh sends the user to log in again.
          const revoked = tokens().refresh_token!
          const revocation = {
            token: revoked,
            token_type_hint: 'refresh_token',
            client_id: clientId,
          }
          assert.deepEqual(await tokenCall(stack, '/revoke', revocation), { status: 200, body: {} })
          const refresh = {
            grant_type: 'refresh_token',
            refresh_token: revoked,
            client_id: clientId,
          }
          const again = await tokenCall(stack, '/token', refresh)
          assert.equal(again.status, 400)
          assert.equal(again.body.error, 'invalid_grant')
          const beforeLogin = provider.authorizationUrl!.href
          assert.equal(await sdk.auth(provider, url), 'REDIRECT', 'the SDK needs a new login')
          assert.notEqual(provider.authorizationUrl!.href, beforeLogin)
          assert.equal(saved.tokens, undefined, 'invalid_grant: the SDK dropped the tokens')
        } finally {
          await client.close()
        }
      })
    }
  })
}
