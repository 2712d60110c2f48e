// The DNS-rebinding guard in front of the MCP endpoints: Origin and Host against their
// allow-lists, on loopback and public listeners, and CORS preflights.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Hono } from 'hono'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'
import {
  hostAllowed,
  hostGuard,
  originGuard,
  type OriginPolicy,
} from '../../gateway/http/origin.js'

const PUBLIC: OriginPolicy = {
  origins: ['https://mcp.example.com'],
  local: false,
  hosts: ['mcp.example.com', 'mcp-edge.tools.svc'],
}
const LOCAL: OriginPolicy = {
  origins: ['http://127.0.0.1:8080'],
  local: true,
  hosts: ['127.0.0.1'],
}

function app(p: OriginPolicy) {
  const a = new Hono()
  a.use('*', hostGuard(p))
  a.use('/mcp/:server', originGuard(p))
  a.all('/mcp/:server', () => new Response('reached'))
  for (const path of [
    '/metrics',
    '/healthz',
    '/readyz',
    '/whoami',
    '/.well-known/oauth-protected-resource/mcp/x',
  ])
    a.get(path, () => new Response('reached'))
  return a
}

async function hit(
  p: OriginPolicy,
  headers: Record<string, string>,
  method = 'POST',
  path = '/mcp/x',
) {
  const res = await app(p).fetch(new Request(`http://gateway${path}`, { method, headers }))
  return { status: res.status, headers: res.headers, text: await res.text() }
}

describe('Host allow-list', () => {
  it('a public listener answers its public host, configured hosts and loopback names, any port', () => {
    for (const host of [
      'mcp.example.com',
      'MCP.example.com:443',
      'mcp-edge.tools.svc:8080',
      'localhost:8080',
      '127.0.0.1',
      '[::1]:9',
    ]) {
      assert.ok(hostAllowed(host, PUBLIC), host)
    }
  })

  it('refuses any other Host with 403 before the endpoint runs, and a missing one', async () => {
    for (const host of ['evil.example', 'mcp.example.com.evil.example', '10.0.0.7']) {
      const res = await hit(PUBLIC, { host })
      assert.equal(res.status, 403, host)
      assert.match(res.text, /host not allowed/)
    }
    assert.ok(!hostAllowed(undefined, PUBLIC))
  })

  it('only a plain host[:port]: user-info, paths, extra colons, empty or out-of-range ports refused', () => {
    for (const p of [LOCAL, PUBLIC])
      for (const name of ['localhost', '127.0.0.1', 'mcp.example.com', '[::1]', '10.0.0.7'])
        for (const host of [
          `${name}:1@evil.example`,
          `${name}/x`,
          `${name}:`,
          `${name}:0`,
          `${name}:65536`,
          `${name}:1:2`,
          `${name}:+1`,
          `${name}.`,
        ])
          assert.ok(!hostAllowed(host, p, true), host)
    assert.ok(hostAllowed('mcp.example.com:65535', PUBLIC))
    assert.ok(hostAllowed('10.0.0.7:1', PUBLIC, true))
  })

  it('allowedHosts takes names without a port', () => {
    const base = { servers: { x: { command: 'node' } }, auth: { issuer: 'https://idp.example' } }
    const ok = validateConfig(
      { ...base, allowedHosts: ['mcp-edge.tools.svc', '[::1]'] },
      { file: 't', baseDir: '/' },
    )
    assert.deepEqual(ok.allowedHosts, ['mcp-edge.tools.svc', '[::1]'])
    assert.throws(
      () =>
        validateConfig(
          { ...base, allowedHosts: ['mcp.example.com:443'] },
          { file: 't', baseDir: '/' },
        ),
      ConfigError,
    )
  })

  it('on loopback too', async () => {
    assert.equal((await hit(LOCAL, { host: 'evil.example' })).status, 403)
    assert.equal((await hit(LOCAL, { host: 'localhost:1234' })).text, 'reached')
  })

  it('covers every route: a rebinding page reads no metrics, health, whoami or metadata', async () => {
    for (const p of [LOCAL, PUBLIC]) {
      for (const path of [
        '/metrics',
        '/healthz',
        '/readyz',
        '/whoami',
        '/.well-known/oauth-protected-resource/mcp/x',
        '/nowhere',
      ]) {
        for (const host of [
          'evil.example',
          'evil.example:8080',
          '127.0.0.1.evil.example',
          'localhost.evil.example',
          '',
        ]) {
          const res = await hit(p, host === '' ? {} : { host }, 'GET', path)
          assert.equal(res.status, 403, `${path} ${host}`)
          assert.match(res.text, /host not allowed/)
        }
      }
    }
  })

  it('probes and scrapers may address health, readiness and metrics by IP, nothing else', async () => {
    for (const host of ['10.0.0.7', '10.0.0.7:8080', '[fd00::7]:9464', '192.168.1.2']) {
      for (const path of ['/metrics', '/healthz', '/readyz'])
        assert.equal((await hit(PUBLIC, { host }, 'GET', path)).text, 'reached', `${path} ${host}`)
      for (const path of ['/whoami', '/mcp/x', '/.well-known/oauth-protected-resource/mcp/x'])
        assert.equal((await hit(PUBLIC, { host }, 'GET', path)).status, 403, `${path} ${host}`)
    }
  })
})

describe('Origin allow-list and CORS', () => {
  it('no Origin is fine; a foreign one is 403 even with a good Host; loopback origins only on loopback', async () => {
    assert.equal((await hit(PUBLIC, { host: 'mcp.example.com' })).text, 'reached')
    assert.equal(
      (await hit(PUBLIC, { host: 'mcp.example.com', origin: 'https://evil.example' })).status,
      403,
    )
    assert.equal(
      (await hit(PUBLIC, { host: 'mcp.example.com', origin: 'http://localhost:6274' })).status,
      403,
    )
    assert.equal(
      (await hit(LOCAL, { host: '127.0.0.1', origin: 'http://localhost:6274' })).text,
      'reached',
    )
  })

  it('a preflight may ask for the 2026-07-28 headers and any Mcp-Param-*, nothing else', async () => {
    const res = await hit(
      PUBLIC,
      {
        host: 'mcp.example.com',
        origin: 'https://mcp.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'mcp-method, Mcp-Name, mcp-param-region, x-evil',
      },
      'OPTIONS',
    )
    assert.equal(res.status, 204)
    const allowed = res.headers.get('access-control-allow-headers')!.split(', ')
    for (const h of [
      'authorization',
      'mcp-protocol-version',
      'mcp-method',
      'mcp-name',
      'mcp-param-region',
    ])
      assert.ok(allowed.includes(h), h)
    assert.ok(!allowed.includes('x-evil'))
  })
})
