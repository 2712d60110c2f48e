// The client-policy pieces plugged into a throwaway oidc-provider 9.13 (CIMD enabled, DCR on):
// its `fetch` hook is the CIMD fetcher and its validator is the client policy. An https
// client_id on a local server resolves only when allowPrivate allows it; what the policy
// refuses never becomes a client.
import assert from 'node:assert/strict'
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import Provider, { errors, type Configuration } from 'oidc-provider'
import { ClientPolicyError } from '../../gateway/broker/client-errors.js'
import { createCimdFetch, type CimdFetch } from '../../gateway/broker/cimd-fetch.js'
import { CLIENT_POLICY_PROPERTY, clientPolicy } from '../../gateway/broker/client-policy.js'
import {
  DEFAULT_BROKER_REDIRECT_URIS,
  DEFAULT_CIMD_MAX_BYTES,
  DEFAULT_CLIENT_NAME_MAX_LENGTH,
} from '../../gateway/config/schema.js'
import { makeTestCa, type TestCa } from '../helpers/test-ca.js'

/** Documents by path; each names its own URL as client_id unless it says otherwise. */
const DOCUMENTS: Record<string, Record<string, unknown>> = {
  '/good.json': {
    client_name: 'Doc client',
    redirect_uris: ['http://127.0.0.1/callback'],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  },
  '/script.json': {
    client_name: 'Doc client',
    redirect_uris: ['javascript:alert(document.cookie)'],
    token_endpoint_auth_method: 'none',
  },
  '/no-auth-method.json': {
    client_name: 'Doc client',
    redirect_uris: ['http://127.0.0.1/callback'],
  },
  '/own-callback.json': {
    client_name: 'Doc client',
    redirect_uris: ['OWN_CALLBACK'],
    token_endpoint_auth_method: 'none',
  },
}

interface Broker {
  issuer: string
  server: http.Server
  fetcher: CimdFetch
  /** `error_description` of each authorization error oidc-provider reported. */
  errors: string[]
}

/** One oidc-provider on 127.0.0.1:0 whose CIMD fetches go through a fetcher with `allowPrivate`. */
async function startBroker(ca: TestCa, allowPrivate: string[]): Promise<Broker> {
  const server = http.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const policy = clientPolicy(
    {
      maxRedirectUris: 10,
      maxClientNameLength: DEFAULT_CLIENT_NAME_MAX_LENGTH,
      redirectUris: DEFAULT_BROKER_REDIRECT_URIS,
    },
    { ownCallbacks: [`${issuer}/broker/callback`] },
  )
  const fetcher = createCimdFetch({
    allowPrivate,
    timeoutMs: 2000,
    maxBytes: DEFAULT_CIMD_MAX_BYTES,
    ca: ca.ca,
  })
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'jwk',
  })
  const configuration: Configuration = {
    jwks: { keys: [{ ...key, alg: 'ES256', kid: 'k1', use: 'sig' }] as never },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    cookies: { keys: ['k'.repeat(32)] },
    responseTypes: ['code'],
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true, issueRegistrationAccessToken: false },
      clientIdMetadataDocument: { enabled: true, ack: 'draft-02' },
    },
    // What the broker engineer wires: the fetcher, and the policy mapped to oidc-provider's errors.
    fetch: fetcher,
    extraClientMetadata: {
      properties: [CLIENT_POLICY_PROPERTY],
      validator: (ctx, key, value, metadata) => {
        try {
          policy.validator(ctx, key, value, metadata as Record<string, unknown>)
        } catch (err) {
          // invalid_redirect_uri messages start with "redirect_uris", which oidc-provider answers as such.
          throw err instanceof ClientPolicyError
            ? new errors.InvalidClientMetadata(err.message)
            : err
        }
      },
    },
  }
  const provider = new Provider(issuer, configuration)
  const errs: string[] = []
  provider.on('authorization.error', (_ctx: unknown, err: { error_description?: string }) =>
    errs.push(err.error_description ?? ''),
  )
  server.on('request', provider.callback())
  return { issuer, server, fetcher, errors: errs }
}

async function startDocServer(
  ca: TestCa,
): Promise<{ origin: string; server: https.Server; hits: () => number }> {
  let hits = 0
  const server = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    hits++
    const doc = DOCUMENTS[req.url ?? '']
    if (doc === undefined) return res.writeHead(404).end()
    const own = `http://127.0.0.1:${brokerPort}/broker/callback`
    const body = JSON.stringify({ client_id: `${origin}${req.url}`, ...doc }).replace(
      'OWN_CALLBACK',
      own,
    )
    res.writeHead(200, { 'content-type': 'application/json' }).end(body)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { origin, server, hits: () => hits }
}
/** The port of the broker whose callback a document names (set before that document is served). */
let brokerPort = 0

async function stop(server: http.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

/** An authorization request for `clientId`, from a loopback redirect on a port the document does not name. */
async function authorize(
  issuer: string,
  clientId: string,
): Promise<{ status: number; location: string | null; body: string }> {
  const verifier = randomBytes(32).toString('base64url')
  const query = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: 'http://127.0.0.1:61000/callback',
    scope: 'openid',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state: 'st',
  })
  const r = await fetch(`${issuer}/auth?${query}`, { redirect: 'manual' })
  return { status: r.status, location: r.headers.get('location'), body: await r.text() }
}

describe('oidc-provider with the CIMD fetcher and the client policy', () => {
  let ca: TestCa
  let docs: Awaited<ReturnType<typeof startDocServer>>
  let allowed: Broker
  let refused: Broker

  before(async () => {
    ca = makeTestCa()
    docs = await startDocServer(ca)
    allowed = await startBroker(ca, ['127.0.0.1/32'])
    refused = await startBroker(ca, [])
  })
  after(async () => {
    for (const b of [allowed, refused]) {
      await b.fetcher.close()
      await stop(b.server)
    }
    await stop(docs.server)
  })

  test('discovery advertises CIMD', async () => {
    const meta = (await (
      await fetch(`${allowed.issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>
    assert.equal(meta.client_id_metadata_document_supported, true)
  })

  test('an https client_id on 127.0.0.1 resolves when allowPrivate allows it (native: any loopback port)', async () => {
    const r = await authorize(allowed.issuer, `${docs.origin}/good.json`)
    assert.equal(r.status, 303, r.body)
    assert.match(r.location ?? '', /^\/interaction\//)
  })

  test('the same client_id is refused without allowPrivate, and the document host is never reached', async () => {
    const before = docs.hits()
    const r = await authorize(refused.issuer, `${docs.origin}/good.json`)
    assert.equal(r.status, 400)
    assert.equal(r.location, null)
    assert.match(r.body, /invalid_client/)
    assert.equal(refused.errors.at(-1), 'client_id metadata document fetch failed')
    assert.equal(docs.hits(), before)
  })

  const policyRefusals: [string, string, RegExp][] = [
    [
      'a javascript: redirect URI',
      '/script.json',
      /^redirect_uris\[0\]: not loopback http, https or a private-use app scheme/,
    ],
    [
      'no token_endpoint_auth_method (a shared secret by default)',
      '/no-auth-method.json',
      /no shared secret/,
    ],
    ["the broker's own callback as redirect URI", '/own-callback.json', /own callback/],
  ]
  for (const [name, path, why] of policyRefusals) {
    test(`a document with ${name} never becomes a client`, async () => {
      brokerPort = Number(new URL(allowed.issuer).port)
      const r = await authorize(allowed.issuer, `${docs.origin}${path}`)
      assert.equal(r.status, 400)
      assert.equal(r.location, null)
      // The refusal is the policy's, not oidc-provider's own.
      assert.match(allowed.errors.at(-1) ?? '', why)
    })
  }

  const register = (issuer: string, body: unknown) =>
    fetch(`${issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })

  test('DCR: a Cursor-style registration is accepted as a native client', async () => {
    const r = await register(allowed.issuer, {
      client_name: 'Cursor',
      redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback'],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
    })
    assert.equal(r.status, 201)
    const client = (await r.json()) as Record<string, unknown>
    assert.equal(client.application_type, 'native')
    assert.equal(CLIENT_POLICY_PROPERTY in client, false)
  })

  test('DCR: a registered loopback client may use any port', async () => {
    const r = await register(allowed.issuer, {
      redirect_uris: ['http://127.0.0.1/callback'],
      token_endpoint_auth_method: 'none',
    })
    const { client_id: id } = (await r.json()) as { client_id: string }
    const auth = await authorize(allowed.issuer, id)
    assert.equal(auth.status, 303, auth.body)
  })

  const dcrRefusals: [string, unknown, string, RegExp][] = [
    [
      'a redirect URI outside the allow-list',
      { redirect_uris: ['https://evil.example/cb'] },
      'invalid_redirect_uri',
      /not allowed by this server/,
    ],
    [
      'host confusion',
      { redirect_uris: ['https://claude.ai.evil.com/api/mcp/auth_callback'] },
      'invalid_redirect_uri',
      /not allowed by this server/,
    ],
    [
      'too many redirect URIs',
      { redirect_uris: Array.from({ length: 11 }, (_, i) => `http://127.0.0.1/cb${i}`) },
      'invalid_redirect_uri',
      /at most 10/,
    ],
    [
      'a jwks_uri',
      {
        redirect_uris: ['http://127.0.0.1/cb'],
        jwks_uri: 'https://169.254.169.254/jwks',
        token_endpoint_auth_method: 'none',
      },
      'invalid_client_metadata',
      /jwks_uri/,
    ],
    [
      'the client_credentials grant',
      { redirect_uris: ['http://127.0.0.1/cb'], grant_types: ['client_credentials'] },
      'invalid_client_metadata',
      /grant_types/,
    ],
    [
      'a name with a bidi override',
      { redirect_uris: ['http://127.0.0.1/cb'], client_name: 'Claude\u202e' },
      'invalid_client_metadata',
      /client_name/,
    ],
  ]
  for (const [name, body, error, why] of dcrRefusals) {
    test(`DCR: ${name} is refused with ${error}`, async () => {
      const r = await register(allowed.issuer, body)
      assert.equal(r.status, 400)
      const answer = (await r.json()) as { error: string; error_description: string }
      assert.equal(answer.error, error)
      assert.match(answer.error_description, why)
    })
  }
})
