// The CIMD fetcher against real HTTPS servers on 127.0.0.1:0 with a test CA made by openssl:
// what it fetches, and every way a document host (or its DNS) could aim it elsewhere.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { after, before, describe, test } from 'node:test'
import { Agent } from 'undici'
import { CimdFetchError, type CimdFetchErrorCode } from '../../gateway/broker/client-errors.js'
import {
  createCimdFetch,
  type CimdFetch,
  type CimdFetchOptions,
} from '../../gateway/broker/cimd-fetch.js'
import { makeTestCa, type TestCa } from '../helpers/test-ca.js'

const MAX_BYTES = 5120
/** Long enough for a loaded machine's TLS handshake; no assertion depends on time. */
const TIMEOUT_MS = 2000
const DOC = {
  client_id: 'set per server',
  client_name: 'Test client',
  redirect_uris: ['http://127.0.0.1/cb'],
}

/** A document server: fixed routes, a log of requests, a count of TLS connections. */
interface DocServer {
  port: number
  origin: string
  requests: string[]
  connections: number
  server: https.Server
}

async function startDocServer(ca: TestCa): Promise<DocServer> {
  const state = { requests: [] as string[], connections: 0 } as DocServer
  const server = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    const path = req.url ?? '/'
    state.requests.push(path)
    switch (path) {
      case '/doc.json':
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' })
        return res.end(JSON.stringify({ ...DOC, client_id: `${state.origin}/doc.json` }))
      case '/redirect':
        res.writeHead(302, { location: '/doc.json' })
        return res.end()
      case '/exact':
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('x'.repeat(4096))
        return res.end('x'.repeat(MAX_BYTES - 4096))
      case '/too-large-streaming':
        // One byte over, then the response stays open: only a reader that stops counting waits.
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('x'.repeat(4096))
        res.write('x'.repeat(MAX_BYTES + 1 - 4096))
        return
      case '/too-large-declared':
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': String(MAX_BYTES + 1),
        })
        return res.write('x')
      case '/gzip-bomb':
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
        return res.end(gzipSync(Buffer.alloc(1024 * 1024, 0x20)))
      case '/stall':
        return // never answers
      case '/stall-body':
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.write('{"client_id":')
      case '/missing':
        res.writeHead(404, { 'content-type': 'application/json' })
        return res.end('{"error":"not_found"}')
      default:
        res.writeHead(500)
        return res.end()
    }
  })
  server.on('secureConnection', () => state.connections++)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  state.port = (server.address() as AddressInfo).port
  state.origin = `https://127.0.0.1:${state.port}`
  state.server = server
  return state
}

async function stop(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

/**
 * Resolves when the server has the request, or when the fetch has already ended (so a slow
 * machine cannot hang the test).
 */
async function requestArrived(server: https.Server, fetching: Promise<unknown>): Promise<void> {
  await Promise.race([once(server, 'request'), fetching.catch(() => undefined)])
}

/** Asserts that `p` rejects with a CimdFetchError of `code`. */
async function refused(p: Promise<unknown>, code: CimdFetchErrorCode): Promise<void> {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof CimdFetchError, `not a CimdFetchError: ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return true
  })
}

describe('createCimdFetch', () => {
  let ca: TestCa
  let docs: DocServer
  const fetchers: CimdFetch[] = []
  const make = (o: Partial<CimdFetchOptions> = {}) => {
    const f = createCimdFetch({
      allowPrivate: ['127.0.0.1/32'],
      timeoutMs: TIMEOUT_MS,
      maxBytes: MAX_BYTES,
      ca: ca.ca,
      ...o,
    })
    fetchers.push(f)
    return f
  }

  before(async () => {
    ca = makeTestCa()
    docs = await startDocServer(ca)
  })
  after(async () => {
    await Promise.all(fetchers.map((f) => f.close()))
    await stop(docs.server)
  })

  describe('fetches', () => {
    test('a document from 127.0.0.1 when allowPrivate covers it', async () => {
      const r = await make()(`${docs.origin}/doc.json`)
      assert.equal(r.status, 200)
      assert.deepEqual(await r.json(), { ...DOC, client_id: `${docs.origin}/doc.json` })
      assert.equal(r.headers.get('cache-control'), 'max-age=60')
    })

    test('by a name (localhost) whose addresses allowPrivate covers', async () => {
      const r = await make()(`https://localhost:${docs.port}/doc.json`)
      assert.equal(r.status, 200)
    })

    test('with the options oidc-provider passes, its own dispatcher ignored', async () => {
      // lib/helpers/fetch_request.js: a 2.5 s timeout signal, an empty user-agent, its dispatcher.
      const theirs = new Agent({ connect: { rejectUnauthorized: false } })
      const r = await make()(`${docs.origin}/doc.json`, {
        method: 'GET',
        headers: new Headers({ accept: 'application/json', 'user-agent': '' }),
        redirect: 'manual',
        signal: AbortSignal.timeout(2500),
        dispatcher: theirs,
      })
      assert.equal(r.status, 200)
      await theirs.close()
    })

    test('a body of exactly maxBytes, its length stated', async () => {
      const r = await make()(`${docs.origin}/exact`)
      assert.equal((await r.text()).length, MAX_BYTES)
      assert.equal(r.headers.get('content-length'), String(MAX_BYTES))
    })

    test('a non-200 status as it is (oidc-provider refuses it)', async () => {
      const r = await make()(`${docs.origin}/missing`)
      assert.equal(r.status, 404)
    })

    test('a host on the allow-list', async () => {
      const r = await make({ allowHosts: ['127.0.0.1'] })(`${docs.origin}/doc.json`)
      assert.equal(r.status, 200)
    })
  })

  describe('refuses', () => {
    const before = () => ({ connections: docs.connections, requests: docs.requests.length })
    const untouched = (was: { connections: number; requests: number }) => {
      assert.equal(docs.connections, was.connections, 'no connection was made')
      assert.equal(docs.requests.length, was.requests, 'no request was made')
    }
    const addressCases: [string, (port: number) => string][] = [
      ['127.0.0.1 without allowPrivate', (p) => `https://127.0.0.1:${p}/doc.json`],
      [
        'localhost (resolves to 127.0.0.1) without allowPrivate',
        (p) => `https://localhost:${p}/doc.json`,
      ],
      ['127.1 (the URL parser makes it 127.0.0.1)', (p) => `https://127.1:${p}/doc.json`],
      ['0x7f000001', (p) => `https://0x7f000001:${p}/doc.json`],
      ['2130706433', (p) => `https://2130706433:${p}/doc.json`],
      ['[::1]', (p) => `https://[::1]:${p}/doc.json`],
      ['[::ffff:127.0.0.1]', (p) => `https://[::ffff:127.0.0.1]:${p}/doc.json`],
      [
        '[::ffff:169.254.169.254] (cloud metadata, mapped)',
        (p) => `https://[::ffff:169.254.169.254]:${p}/`,
      ],
      ['169.254.169.254 (cloud metadata)', (p) => `https://169.254.169.254:${p}/`],
      ['10.0.0.1', (p) => `https://10.0.0.1:${p}/`],
      ['0.0.0.0', (p) => `https://0.0.0.0:${p}/doc.json`],
      ['[fe80::1]', (p) => `https://[fe80::1]:${p}/`],
      ['[64:ff9b::7f00:1] (NAT64 of loopback)', (p) => `https://[64:ff9b::7f00:1]:${p}/`],
    ]
    for (const [name, url] of addressCases) {
      test(`${name}: address_refused, nothing connected`, async () => {
        const was = before()
        await refused(make({ allowPrivate: [] })(url(docs.port)), 'address_refused')
        untouched(was)
      })
    }

    test('a loopback address outside a narrower allowPrivate', async () => {
      const was = before()
      await refused(
        make({ allowPrivate: ['10.0.0.0/8'] })(`${docs.origin}/doc.json`),
        'address_refused',
      )
      untouched(was)
    })

    test('whatever dispatcher the caller passes', async () => {
      const theirs = new Agent({ connect: { rejectUnauthorized: false } })
      const was = before()
      await refused(
        make({ allowPrivate: [] })(`${docs.origin}/doc.json`, { dispatcher: theirs }),
        'address_refused',
      )
      untouched(was)
      await theirs.close()
    })

    test('plain http', async () => {
      const plain = http.createServer((_req, res) => res.end('{}'))
      plain.listen(0, '127.0.0.1')
      await once(plain, 'listening')
      let hits = 0
      plain.on('request', () => hits++)
      await refused(
        make()(`http://127.0.0.1:${(plain.address() as AddressInfo).port}/doc.json`),
        'not_https',
      )
      assert.equal(hits, 0)
      await stop(plain)
    })

    const urlCases: [string, string, CimdFetchErrorCode][] = [
      ['not a URL', 'not a url', 'bad_url'],
      ['a relative URL', '/doc.json', 'bad_url'],
      ['credentials in the URL', 'https://user:pass@127.0.0.1/doc.json', 'bad_url'],
      ['a username in the URL', 'https://user@127.0.0.1/doc.json', 'bad_url'],
      ['ftp', 'ftp://127.0.0.1/doc.json', 'not_https'],
      ['file', 'file:///etc/passwd', 'not_https'],
      ['data', 'data:application/json,{}', 'not_https'],
    ]
    for (const [name, url, code] of urlCases) test(name, () => refused(make()(url), code))

    test('a host outside allowHosts', async () => {
      const was = before()
      await refused(
        make({ allowHosts: ['client.example.org', '*.example.com'] })(`${docs.origin}/doc.json`),
        'host_not_allowed',
      )
      untouched(was)
    })

    test('allowHosts wildcards match whole labels below the suffix only', async () => {
      const f = make({ allowHosts: ['*.localhost'] })
      await refused(f(`https://localhost:${docs.port}/doc.json`), 'host_not_allowed')
      await refused(f(`https://evillocalhost:${docs.port}/doc.json`), 'host_not_allowed')
    })

    test('a redirect, without following it', async () => {
      const was = docs.requests.length
      await refused(make()(`${docs.origin}/redirect`), 'redirect_refused')
      assert.deepEqual(docs.requests.slice(was), ['/redirect'])
    })

    test('a 5121-byte document, mid-stream (the response never ends)', () =>
      refused(make()(`${docs.origin}/too-large-streaming`), 'too_large'))

    test('a declared 5121-byte document, before its body', () =>
      refused(make()(`${docs.origin}/too-large-declared`), 'too_large'))

    test('a small gzip body that decodes larger than maxBytes', () =>
      refused(make()(`${docs.origin}/gzip-bomb`), 'too_large'))

    test('a server that never answers: timeout', async () => {
      const fetching = make()(`${docs.origin}/stall`)
      await requestArrived(docs.server, fetching)
      await refused(fetching, 'timeout')
      assert.equal(docs.requests.at(-1), '/stall')
    })

    test('a body that stops halfway: timeout', () =>
      refused(make()(`${docs.origin}/stall-body`), 'timeout'))

    test("the caller's own timeout counts as a timeout", async () => {
      const fetching = make({ timeoutMs: 60_000 })(`${docs.origin}/stall`, {
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      await requestArrived(docs.server, fetching)
      await refused(fetching, 'timeout')
    })

    test("the caller's abort", async () => {
      const controller = new AbortController()
      const fetching = make({ timeoutMs: 60_000 })(`${docs.origin}/stall`, {
        signal: controller.signal,
      })
      await requestArrived(docs.server, fetching)
      controller.abort()
      await refused(fetching, 'aborted')
    })

    test('a certificate the CA did not sign (no ca option)', () =>
      refused(make({ ca: undefined })(`${docs.origin}/doc.json`), 'fetch_failed'))
  })

  describe('options', () => {
    test('bad allowPrivate and allowHosts entries fail at start, all listed', () => {
      assert.throws(
        () =>
          createCimdFetch({
            allowPrivate: ['10.0.0.0/33', 'intranet', '127.0.0.1/32'],
            allowHosts: ['Example.com', 'a*.example.com', 'ok.example.com', 'https://x.example'],
            timeoutMs: 1000,
            maxBytes: 10,
          }),
        (err) => {
          assert.ok(err instanceof CimdFetchError)
          assert.equal(err.code, 'bad_options')
          assert.equal(err.message.split('\n').length, 1 + 5)
          return true
        },
      )
    })
  })
})
