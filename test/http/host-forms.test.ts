// The Host guard takes a plain `host[:port]` only (RFC 9110 §7.2: uri-host [":" port]), as every
// browser and HTTP client sends it: user-info (`127.0.0.1:1@evil.example`), a path, a query,
// several colons outside brackets, an empty port, a port out of range or not in decimal digits,
// a list, a trailing dot are refused 403 on every route and transport (or 400 by Node's own
// parser), before authentication, with a real token that would otherwise reach the server: its
// process sees nothing. Before, the guard read the name up to the first colon, so an allowed
// name followed by anything after a colon passed: Node refuses most such Hosts when it builds
// the request's URL from them, but not a port 0, nor any form once the target is absolute.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { initBody } from '../checklist/open-session.js'
import { MODERN_VERSION } from '../helpers/modern-request.js'
import { startStack, type Stack } from '../helpers/stack.js'

/** The session-era initialize a raw-HTTP client sends first. */
const INIT = initBody()

let stack: Stack
let token: string
let endpointToken: string
before(async () => {
  stack = await startStack({
    config: {
      allowedHosts: ['mcp.example.com'],
      endpoints: { both: { servers: ['echo', 'fixture'] } },
      metrics: { listen: { host: '127.0.0.1', port: 0 } },
    },
  })
  token = await stack.token('alice', { server: 'fixture' })
  endpointToken = await stack.token('alice', { resource: `${stack.url}/mcp/both` })
})
after(() => stack.close())

/**
 * Sends one raw request to `url`'s port, its target in absolute form (`GET http://…/path`, RFC
 * 9112 §3.2.2) when `absolute`: Node then builds the request's URL from the target, and the Host
 * header reaches the guard as the client wrote it. Resolves its status and body.
 */
function raw(
  url: string,
  text: string,
  absolute = false,
): Promise<{ status: number; body: string }> {
  const origin = new URL(url).origin
  if (absolute) text = text.replace(/^(\S+) \//, (_, method: string) => `${method} ${origin}/`)
  return new Promise((resolve) => {
    const s = connect(Number(new URL(url).port), '127.0.0.1', () => s.write(text))
    let out = ''
    const status = () => Number(out.split(' ')[1] ?? 0)
    const done = () =>
      resolve({ status: status(), body: out.split('\r\n\r\n').slice(1).join('\r\n\r\n') })
    s.on('data', (d) => {
      out += d
      // A request that got through may hold a stream open (/sse, SSE replies): its head will do.
      if (out.includes('\r\n\r\n') && status() < 300) s.destroy()
    })
    s.on('close', done)
    s.on('error', done)
  })
}

/** A request line, `host` and `headers` (each `Name: value`), and a JSON body when given. */
function req(method: string, target: string, host: string, headers: string[], body?: unknown) {
  const text = body === undefined ? '' : JSON.stringify(body)
  const head = [
    `${method} ${target} HTTP/1.1`,
    `Host: ${host}`,
    ...headers,
    ...(body === undefined
      ? []
      : ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(text)}`]),
    'Connection: close',
  ]
  return `${head.join('\r\n')}\r\n\r\n${text}`
}

const ACCEPT = 'Accept: application/json, text/event-stream'
const modernCall = {
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: {
    name: 'pid',
    arguments: {},
    _meta: {
      'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
}

/** Every transport and route a Host reaches, as raw requests with real tokens. */
const TRANSPORTS: [string, (host: string) => [string, string]][] = [
  [
    'session initialize',
    (h) => [
      stack.url,
      req('POST', '/mcp/fixture', h, [`Authorization: Bearer ${token}`, ACCEPT], INIT),
    ],
  ],
  [
    '2026-07-28 tools/call',
    (h) => [
      stack.url,
      req(
        'POST',
        '/mcp/fixture',
        h,
        [
          `Authorization: Bearer ${token}`,
          ACCEPT,
          `MCP-Protocol-Version: ${MODERN_VERSION}`,
          'Mcp-Method: tools/call',
          'Mcp-Name: pid',
        ],
        modernCall,
      ),
    ],
  ],
  [
    'endpoint initialize',
    (h) => [
      stack.url,
      req('POST', '/mcp/both', h, [`Authorization: Bearer ${endpointToken}`, ACCEPT], INIT),
    ],
  ],
  [
    'legacy /sse',
    (h) => [
      stack.url,
      req('GET', '/sse/fixture', h, [
        `Authorization: Bearer ${token}`,
        'Accept: text/event-stream',
      ]),
    ],
  ],
  [
    'legacy /messages',
    (h) => [
      stack.url,
      req('POST', '/messages/fixture?sessionId=x', h, [`Authorization: Bearer ${token}`], INIT),
    ],
  ],
  [
    'metadata',
    (h) => [stack.url, req('GET', '/.well-known/oauth-protected-resource/mcp/fixture', h, [])],
  ],
  ['whoami', (h) => [stack.url, req('GET', '/whoami', h, [`Authorization: Bearer ${token}`])]],
  ['healthz (a probe: IP literals too)', (h) => [stack.url, req('GET', '/healthz', h, [])]],
  ['the metrics listener', (h) => [stack.gateway.metricsUrl, req('GET', '/metrics', h, [])]],
]

/** Hostile forms of an allowed name `n`: none is a plain host[:port]. */
const hostile = (n: string) => [
  `${n}:1@evil.example`,
  `${n}:80@evil.example:80`,
  `${n}@evil.example`,
  `${n}/x`,
  `${n}:80/x`,
  `${n}?x`,
  `${n}#x`,
  `${n}:`,
  `${n}:0`,
  `${n}:65536`,
  `${n}:99999`,
  `${n}:000080`,
  `${n}:1:2`,
  `${n}::80`,
  `${n}:+80`,
  `${n}:0x50`,
  `${n}:8O`,
  `${n}:80 80`,
  `${n},evil.example`,
  `${n} evil.example`,
  `${n};x`,
  `${n}\\x`,
  `${n}%2f`,
  `${n}.`,
  `${n}.:80`,
]
const NAMES = ['127.0.0.1', 'localhost', 'LocalHost', 'mcp.example.com', '[::1]', '10.0.0.7']
const HOSTILE = [
  ...NAMES.flatMap(hostile),
  '::1',
  '::1:80',
  '[::1',
  '[::1]]',
  '[::1]x',
  '[::1]:1@evil.example',
  '[[::1]]',
  '[::1%25lo]',
  '127.0.0.1:80:',
  ':80',
  '@127.0.0.1',
]

const recordFile = () => join(stack.dir, 'fixture-record.jsonl')
const reached = () => (existsSync(recordFile()) ? readFileSync(recordFile(), 'utf8') : '')

describe('Host: only a plain host[:port]', () => {
  for (const [what, make] of TRANSPORTS)
    for (const absolute of [false, true])
      it(`${what}, ${absolute ? 'absolute-form' : 'origin-form'} target: every hostile form refused, the process sees nothing`, async () => {
        const before = reached()
        for (const host of HOSTILE) {
          const [url, text] = make(host)
          const res = await raw(url, text, absolute)
          assert.ok(
            [400, 403].includes(res.status),
            `${what}: Host ${JSON.stringify(host)}: ${res.status} ${res.body.slice(0, 120)}`,
          )
          if (res.status === 403) assert.match(res.body, /host not allowed/, host)
        }
        assert.equal(reached(), before, 'the server process saw nothing')
      })

  it('plain forms of allowed names still pass (any case, any port 1-65535)', async () => {
    for (const host of [
      '127.0.0.1',
      '127.0.0.1:1',
      '127.0.0.1:65535',
      'localhost:8080',
      'LOCALHOST',
      '[::1]:9',
      '[::1]',
      'mcp.example.com',
      'MCP.Example.com:443',
    ]) {
      const res = await raw(stack.url, req('GET', '/healthz', host, []))
      assert.equal(res.status, 200, `${host}: ${res.body}`)
      const meta = await raw(
        stack.url,
        req('GET', '/.well-known/oauth-protected-resource/mcp/fixture', host, []),
      )
      assert.equal(meta.status, 200, `${host}: ${meta.body}`)
    }
    for (const host of ['10.0.0.7', '10.0.0.7:9464', '[fd00::7]:9464'])
      assert.equal(
        (await raw(stack.gateway.metricsUrl, req('GET', '/metrics', host, []))).status,
        200,
        host,
      )
  })
})
