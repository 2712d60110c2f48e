// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document) at the broker,
// end to end: a document host on 127.0.0.1 over https with a test CA (auth.broker.cimd.caFile,
// allowPrivate 127.0.0.1/32). A good document logs in and gets tokens, and its consent page
// names the document's host; every bad document or hostile host is refused on the gateway's
// page with nothing issued; failures are not cached, a good document is, per Cache-Control.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'
import { DEFAULT_CIMD_MAX_CACHE_AGE_S } from '../../gateway/config/schema.js'
import {
  assertGatewayPage,
  authorizeUrl,
  authParams,
  exchange,
  issued,
  issuedSince,
  NOTHING_ISSUED,
  login,
  pkce,
  refresh,
  send,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { makeTestCa, type TestCa } from '../helpers/test-ca.js'

const REDIRECT = 'http://127.0.0.1:43150/cb'
const MAX_BYTES = 5120

/** How the document host answers one path. */
interface Route {
  status?: number
  headers?: Record<string, string>
  /** The body; `document()` by default. */
  body?: string
  /** Send without Content-Length. */
  chunked?: boolean
  /** Never answer (until the client gives up). */
  stall?: boolean
}

/** An https document host whose answers tests set per path, counting requests and connections. */
interface DocHost {
  origin: string
  routes: Map<string, Route>
  hits: Map<string, number>
  connections: number
  /** Resolves when a stalled request is closed by the client. */
  abandoned: Promise<void>
  close(): Promise<void>
}

async function startDocHost(ca: TestCa): Promise<DocHost> {
  let abandon: () => void = () => {}
  const host: DocHost = {
    origin: '',
    routes: new Map(),
    hits: new Map(),
    connections: 0,
    abandoned: new Promise((resolve) => (abandon = resolve)),
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
  const server = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    const path = req.url ?? '/'
    host.hits.set(path, (host.hits.get(path) ?? 0) + 1)
    const route = host.routes.get(path)
    if (route === undefined) return void res.writeHead(404).end()
    if (route.stall) {
      req.socket.once('close', abandon)
      return
    }
    const body = route.body ?? JSON.stringify(document(host.origin, path))
    res.writeHead(route.status ?? 200, {
      'content-type': 'application/json',
      ...(route.chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
      ...route.headers,
    })
    if (route.chunked) {
      for (let i = 0; i < body.length; i += 1000) res.write(body.slice(i, i + 1000))
      res.end()
    } else res.end(body)
  })
  server.on('connection', () => host.connections++)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  host.origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  return host
}

/** A good document for the URL `origin + path`; `extra` changes fields. */
function document(
  origin: string,
  path: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    client_id: `${origin}${path}`,
    client_name: 'Doc client',
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...extra,
  }
}

/** A document padded (in client_uri's place, with JSON whitespace) to exactly `bytes` bytes. */
function sized(origin: string, path: string, bytes: number): string {
  const json = JSON.stringify(document(origin, path))
  return `${json.slice(0, -1)}${' '.repeat(bytes - json.length)}}`
}

let ca: TestCa
let docs: DocHost
let stack: BrokerStack
/** The test CA's certificate, as auth.broker.cimd.caFile. */
let caFile: string
let unique = 0
/** A fresh path, so oidc-provider's document cache never answers for another case. */
const fresh = (name: string) => `/${name}-${++unique}.json`

before(async () => {
  ca = makeTestCa()
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-cimd-'))
  caFile = join(dir, 'ca.pem')
  writeFileSync(caFile, ca.ca)
  docs = await startDocHost(ca)
  stack = await startBrokerStack({
    kind: 'entra',
    broker: { cimd: { caFile, allowPrivate: ['127.0.0.1/32'], timeout: 2000 } },
  })
})
after(async () => {
  await stack.close()
  await docs.close()
})

/** The first answer of /authorize for the document client `clientId`. */
function authorize(s: BrokerStack, clientId: string, redirectUri = REDIRECT) {
  return send(
    authorizeUrl(
      s,
      authParams(s, { clientId, redirectUri, challenge: pkce().challenge, state: 'st' }),
    ),
  )
}

/** A refused document client: the gateway's page with `error`, nothing issued. */
async function assertRefused(
  s: BrokerStack,
  clientId: string,
  error: string,
  what: string,
  redirectUri = REDIRECT,
): Promise<void> {
  const before = await issued(s)
  const res = await authorize(s, clientId, redirectUri)
  assertGatewayPage(assert, res, 400, what)
  assert.equal(/<code>([^<]*)<\/code>/.exec(res.text)?.[1], error, what)
  assert.deepEqual(await issuedSince(s, before), NOTHING_ISSUED, `${what}: nothing issued`)
}

describe('CIMD: a good document', () => {
  it('authorize → consent names the document host → login → token for the server → refresh', async () => {
    const path = fresh('good')
    docs.routes.set(path, {})
    const clientId = `${docs.origin}${path}`
    const l = await login(stack, { clientId, redirectUri: REDIRECT })
    const consent = l.visits.find((v) => v.html.includes('Allow'))!
    assert.match(
      consent.html,
      new RegExp(`Published by <strong>127\\.0\\.0\\.1:${new URL(docs.origin).port}</strong>`),
    )
    assert.match(consent.html, /Doc client/)
    assert.ok(l.callback.searchParams.get('code'), l.callback.href)
    const res = await exchange(stack, l, { clientId, redirectUri: REDIRECT })
    assert.equal(res.status, 200, res.text)
    const claims = decodeJwt(String(res.json.access_token))
    assert.equal(claims.aud, stack.endpoint('notes'))
    assert.equal(claims.client_id, clientId)
    assert.equal((await refresh(stack, String(res.json.refresh_token), clientId)).status, 200)
  })

  it(`a document of exactly ${MAX_BYTES} bytes is accepted, with or without Content-Length`, async () => {
    for (const chunked of [false, true]) {
      const path = fresh('max')
      docs.routes.set(path, { body: sized(docs.origin, path, MAX_BYTES), chunked })
      const res = await authorize(stack, `${docs.origin}${path}`)
      assert.equal(res.status, 303, `${chunked ? 'chunked' : 'sized'}: ${res.text.slice(0, 300)}`)
    }
  })

  it('a loopback redirect on another port is accepted (a document of a native client)', async () => {
    const path = fresh('port')
    docs.routes.set(path, {})
    assert.equal(
      (await authorize(stack, `${docs.origin}${path}`, 'http://127.0.0.1:61000/cb')).status,
      303,
    )
  })
})

describe('CIMD: refused documents and hosts', () => {
  const cases: {
    name: string
    route?: (path: string) => Route
    clientId?: (path: string) => string
    error: string
    fetched?: boolean
  }[] = [
    {
      name: 'an http client_id',
      clientId: (p) => `${docs.origin.replace('https:', 'http:')}${p}`,
      error: 'invalid_client',
      fetched: false,
    },
    {
      name: 'a client_id with a fragment',
      clientId: (p) => `${docs.origin}${p}#x`,
      error: 'invalid_client',
      fetched: false,
    },
    {
      name: 'a client_id with dot segments',
      clientId: (p) => `${docs.origin}/x/..${p}`,
      error: 'invalid_client',
      fetched: false,
    },
    {
      name: 'a client_id with userinfo',
      clientId: (p) => `https://user@${docs.origin.slice(8)}${p}`,
      error: 'invalid_client',
      fetched: false,
    },
    {
      name: 'a document naming another client_id',
      route: (p) => ({ body: JSON.stringify(document(docs.origin, `${p}.other`)) }),
      error: 'invalid_client_metadata',
    },
    {
      name: 'a document naming the http form of its URL',
      route: (p) => ({ body: JSON.stringify(document(docs.origin.replace('https:', 'http:'), p)) }),
      error: 'invalid_client_metadata',
    },
    {
      name: 'a redirect (302) to a good document',
      route: () => ({ status: 302, headers: { location: '/target.json' }, body: '' }),
      error: 'invalid_client',
    },
    {
      name: 'a redirect (307) to a good document',
      route: () => ({ status: 307, headers: { location: '/target.json' }, body: '' }),
      error: 'invalid_client',
    },
    {
      name: `a document of ${MAX_BYTES + 1} bytes (Content-Length)`,
      route: (p) => ({ body: sized(docs.origin, p, MAX_BYTES + 1) }),
      error: 'invalid_client',
    },
    {
      name: `a document of ${MAX_BYTES + 1} bytes (chunked)`,
      route: (p) => ({ body: sized(docs.origin, p, MAX_BYTES + 1), chunked: true }),
      error: 'invalid_client',
    },
    {
      name: 'a document of 1 MB (chunked)',
      route: (p) => ({ body: sized(docs.origin, p, 1 << 20), chunked: true }),
      error: 'invalid_client',
    },
    { name: 'invalid JSON', route: () => ({ body: '{"client_id": ' }), error: 'invalid_client' },
    {
      name: 'a JSON array',
      route: (p) => ({ body: JSON.stringify([document(docs.origin, p)]) }),
      error: 'invalid_client_metadata',
    },
    { name: 'a 404', route: () => ({ status: 404, body: '{}' }), error: 'invalid_client' },
    { name: 'a 500', route: () => ({ status: 500, body: '{}' }), error: 'invalid_client' },
    {
      name: 'a shared-secret auth method',
      route: (p) => ({
        body: JSON.stringify(
          document(docs.origin, p, { token_endpoint_auth_method: 'client_secret_basic' }),
        ),
      }),
      error: 'invalid_client_metadata',
    },
    {
      name: 'a client_secret in the document',
      route: (p) => ({ body: JSON.stringify(document(docs.origin, p, { client_secret: 'shh' })) }),
      error: 'invalid_client_metadata',
    },
    {
      name: 'a javascript: redirect URI',
      route: (p) => ({
        body: JSON.stringify(document(docs.origin, p, { redirect_uris: ['javascript:alert(1)'] })),
      }),
      error: 'invalid_redirect_uri',
    },
    {
      name: 'an http redirect URI off loopback',
      route: (p) => ({
        body: JSON.stringify(
          document(docs.origin, p, { redirect_uris: ['http://evil.example/cb'] }),
        ),
      }),
      error: 'invalid_redirect_uri',
    },
    {
      name: "the broker's own callback as redirect URI",
      route: (p) => ({
        body: JSON.stringify(
          document(docs.origin, p, { redirect_uris: [`${stack.url}/oauth/callback`] }),
        ),
      }),
      error: 'invalid_redirect_uri',
    },
    {
      name: "a document whose redirect_uris lack the request's",
      route: (p) => ({
        body: JSON.stringify(
          document(docs.origin, p, { redirect_uris: ['http://127.0.0.1:43150/other'] }),
        ),
      }),
      error: 'invalid_redirect_uri',
    },
  ]
  beforeEach(() => docs.routes.set('/target.json', {}))
  for (const c of cases) {
    it(`${c.name} → 400 ${c.error} page, nothing issued`, async () => {
      const path = fresh('bad')
      if (c.route) docs.routes.set(path, c.route(path))
      const target = docs.hits.get('/target.json') ?? 0
      await assertRefused(stack, c.clientId?.(path) ?? `${docs.origin}${path}`, c.error, c.name)
      assert.equal(docs.hits.get('/target.json') ?? 0, target, 'no redirect followed')
      if (c.fetched === false) assert.equal(docs.hits.get(path) ?? 0, 0, 'not fetched at all')
      else assert.equal(docs.hits.get(path), 1, 'fetched once, not again by the error handler')
    })
  }

  it('a host that never answers: refused once the fetch gives up (the host sees the request abandoned)', async () => {
    const path = fresh('slow')
    docs.routes.set(path, { stall: true })
    const [, res] = await Promise.all([docs.abandoned, authorize(stack, `${docs.origin}${path}`)])
    assertGatewayPage(assert, res, 400, 'stalled host')
    assert.equal(/<code>([^<]*)<\/code>/.exec(res.text)?.[1], 'invalid_client')
    assert.equal(docs.hits.get(path), 1, 'one wait, not one per lookup')
  })

  it('a private address without allowPrivate: refused before any connection', async () => {
    // The same CA trusted, no allowPrivate: 127.0.0.1 is a loopback address like any other.
    const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-cimd-'))
    writeFileSync(join(dir, 'ca.pem'), ca.ca)
    const other = await startBrokerStack({
      kind: 'entra',
      broker: { cimd: { caFile: join(dir, 'ca.pem'), timeout: 2000 } },
    })
    try {
      const path = fresh('private')
      docs.routes.set(path, {})
      const connections = docs.connections
      await assertRefused(other, `${docs.origin}${path}`, 'invalid_client', 'loopback host')
      assert.equal(docs.connections, connections, 'no connection to the private address')
      assert.equal(docs.hits.get(path) ?? 0, 0)
    } finally {
      await other.close()
    }
  })
})

describe("CIMD: the operator's log says why a document was refused (never its body)", () => {
  const MARKER = 'body-text-never-logged-4242'
  const cases: { name: string; route: (p: string) => Route; logged: Record<string, unknown> }[] = [
    {
      name: 'a 404',
      route: () => ({ status: 404, body: `{"note":"${MARKER}"}` }),
      logged: { status: 404 },
    },
    {
      name: 'a redirect',
      route: () => ({ status: 302, headers: { location: `/${MARKER}` }, body: MARKER }),
      logged: { code: 'redirect_refused' },
    },
    {
      name: 'a document too large',
      route: (p) => ({ body: `${sized(docs.origin, p, MAX_BYTES + 1)}${MARKER}` }),
      logged: { code: 'too_large' },
    },
  ]
  for (const c of cases) {
    it(`${c.name}: one info line with the host and ${JSON.stringify(c.logged)}`, async () => {
      const path = fresh('logged')
      docs.routes.set(path, c.route(path))
      const mark = stack.logLines.length
      await assertRefused(stack, `${docs.origin}${path}`, 'invalid_client', c.name)
      const lines = stack.logLines.slice(mark)
      const said = lines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.msg === 'client metadata document not fetched')
      assert.equal(said.length, 1, lines.join(''))
      assert.equal(said[0]!.level, 30)
      assert.equal(said[0]!.component, 'cimd')
      assert.equal(said[0]!.host, new URL(docs.origin).host)
      for (const [k, v] of Object.entries(c.logged)) assert.equal(said[0]![k], v, k)
      assert.ok(!lines.some((l) => l.includes(MARKER)), 'nothing of the body is logged')
      // Written once: a strict JSON reader (a log pipeline) refuses a line naming a key twice.
      for (const l of lines) assert.equal(l.split('"component":').length - 1 <= 1, true, l)
    })
  }
})

describe('CIMD: caching', () => {
  const broken: { name: string; route: (p: string) => Route }[] = [
    { name: 'invalid JSON', route: () => ({ body: 'not json' }) },
    { name: 'a 503', route: () => ({ status: 503, body: '{}' }) },
    {
      name: 'a document too large',
      route: (p) => ({ body: sized(docs.origin, p, MAX_BYTES + 1) }),
    },
    {
      name: 'a document the client policy refuses',
      route: (p) => ({
        body: JSON.stringify(document(docs.origin, p, { grant_types: ['client_credentials'] })),
      }),
    },
  ]
  for (const b of broken) {
    it(`${b.name} is not cached: fixed, the next request fetches again and succeeds`, async () => {
      const path = fresh('fixme')
      const clientId = `${docs.origin}${path}`
      docs.routes.set(path, { ...b.route(path), headers: { 'cache-control': 'max-age=3600' } })
      const first = await authorize(stack, clientId)
      assert.equal(first.status, 400, first.text.slice(0, 200))
      assert.equal(docs.hits.get(path), 1, 'one fetch per request')
      docs.routes.set(path, { headers: { 'cache-control': 'max-age=3600' } })
      const second = await authorize(stack, clientId)
      assert.equal(second.status, 303, second.text.slice(0, 300))
      assert.equal(docs.hits.get(path), 2)
    })
  }

  it('a good document with max-age is fetched once for several authorizations', async () => {
    const path = fresh('cached')
    docs.routes.set(path, { headers: { 'cache-control': 'public, max-age=3600' } })
    for (let i = 0; i < 3; i++)
      assert.equal((await authorize(stack, `${docs.origin}${path}`)).status, 303)
    assert.equal(docs.hits.get(path), 1)
  })

  it('concurrent first requests for one document share one fetch', async () => {
    const path = fresh('concurrent')
    docs.routes.set(path, { headers: { 'cache-control': 'max-age=3600' } })
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => authorize(stack, `${docs.origin}${path}`)),
    )
    assert.deepEqual(
      answers.map((a) => a.status),
      [303, 303, 303, 303],
    )
    assert.equal(docs.hits.get(path), 1)
  })
})

describe('CIMD: a document is cached no longer than auth.broker.cimd.maxCacheAge', () => {
  let capped: BrokerStack
  let never: BrokerStack
  before(async () => {
    const cimd = (maxCacheAge: number) => ({
      broker: {
        cimd: { caFile, allowPrivate: ['127.0.0.1/32'], timeout: 2000, maxCacheAge },
      },
    })
    capped = await startBrokerStack(cimd(600))
    never = await startBrokerStack(cimd(0))
  })
  after(async () => {
    await capped?.close()
    await never?.close()
  })

  // Oidc-provider's cache reads Date.now(): the test's clock is moved, nothing waits.
  const cases: {
    name: string
    s: () => BrokerStack
    headers: Record<string, string>
    /** s it is cached: still at `age` - 1 after the first fetch, fetched again at `age` + 1. */
    age: number
  }[] = [
    {
      name: 'the default: a document asking two days is fetched again after one',
      s: () => stack,
      headers: { 'cache-control': 'max-age=172800' },
      age: DEFAULT_CIMD_MAX_CACHE_AGE_S,
    },
    {
      name: 'maxCacheAge 600: a document asking an hour is fetched again after 600 s',
      s: () => capped,
      headers: { 'cache-control': 'public, max-age=3600' },
      age: 600,
    },
    {
      name: "maxCacheAge 600: a document's own shorter max-age is kept",
      s: () => capped,
      headers: { 'cache-control': 'max-age=120' },
      age: 120,
    },
    {
      name: 'maxCacheAge 600: Expires when there is no max-age',
      s: () => capped,
      headers: { expires: 'EXPIRES_IN_300' },
      age: 300,
    },
    {
      name: 'maxCacheAge 600: a document saying nothing is kept 30 s (the floor)',
      s: () => capped,
      headers: {},
      age: 30,
    },
    {
      name: 'maxCacheAge 600: max-age=0 is raised to the floor, not fetched at every request',
      s: () => capped,
      headers: { 'cache-control': 'max-age=0' },
      age: 30,
    },
  ]
  for (const c of cases) {
    it(c.name, async (t) => {
      const path = fresh('aged')
      const clientId = `${docs.origin}${path}`
      // A whole second: Expires has no finer unit.
      t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 1000) * 1000 })
      const headers = { ...c.headers }
      if (headers.expires) headers.expires = new Date(Date.now() + 300_000).toUTCString()
      docs.routes.set(path, { headers })
      assert.equal((await authorize(c.s(), clientId)).status, 303)
      assert.equal(docs.hits.get(path), 1)
      t.mock.timers.tick((c.age - 1) * 1000)
      assert.equal((await authorize(c.s(), clientId)).status, 303)
      assert.equal(docs.hits.get(path), 1, `still cached at ${c.age - 1} s`)
      t.mock.timers.tick(2000)
      assert.equal((await authorize(c.s(), clientId)).status, 303)
      assert.equal(docs.hits.get(path), 2, `fetched again at ${c.age + 1} s`)
    })
  }

  it('maxCacheAge 0: fetched at every request, whatever the document says', async () => {
    for (const headers of [{ 'cache-control': 'max-age=3600' }, {}] as Record<string, string>[]) {
      const path = fresh('uncached')
      docs.routes.set(path, { headers })
      for (let i = 1; i <= 3; i++) {
        assert.equal((await authorize(never, `${docs.origin}${path}`)).status, 303)
        assert.equal(docs.hits.get(path), i, JSON.stringify(headers))
      }
    }
  })

  it('a maxCacheAge that is not a whole number of seconds from 0 to 86400 is a start-up error naming it', () => {
    for (const bad of [-1, 86_401, 1.5, '600', null, Number.NaN]) {
      assert.throws(
        () =>
          validateConfig(
            {
              auth: {
                broker: {
                  upstream: {
                    issuer: 'https://idp.example',
                    clientId: 'c',
                    clientSecret: { env: 'X' },
                  },
                  cimd: { maxCacheAge: bad },
                },
              },
            },
            { file: 'gateway.yaml', baseDir: '.' },
          ),
        (err: unknown) =>
          err instanceof ConfigError && /auth\.broker\.cimd\.maxCacheAge/.test(err.message),
        String(bad),
      )
    }
  })
})
