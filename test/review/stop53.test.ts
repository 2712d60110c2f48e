// stop53: an outsider's attack on fix51 and fix52, each finding a failing test first, then the
// fix; what held is kept here as tests.
// 1. The metrics listener (`metrics.listen`) checked the Host header only: an absolute-form
//    target (`GET http://evil.example/metrics`, RFC 9112 §3.2.2: its authority replaces Host)
//    naming a host not ours was served, where every route of the main listener refuses it.
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startStack, type Stack } from '../helpers/stack.js'

/** One raw GET of `target` (as written: origin- or absolute-form) with `host` to `url`'s port. */
function rawGet(
  url: string,
  target: string,
  host: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const text = `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`
    const s = connect(Number(new URL(url).port), '127.0.0.1', () => s.write(text))
    let out = ''
    s.on('data', (d) => (out += d))
    const done = () =>
      resolve({
        status: Number(out.split(' ')[1] ?? 0),
        body: out.split('\r\n\r\n').slice(1).join('\r\n\r\n'),
      })
    s.on('close', done)
    s.on('error', done)
  })
}

describe('stop53 1: an absolute-form target must name us on the metrics listener too', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      config: {
        allowedHosts: ['mcp.example.com'],
        metrics: { listen: { host: '127.0.0.1', port: 0 } },
      },
    })
  })
  after(() => stack.close())

  const EVIL = ['http://evil.example', 'http://evil.example:80', 'http://127.0.0.1:1@evil.example']
  it('the main listener refuses a target naming another host (held)', async () => {
    for (const origin of EVIL)
      for (const path of [
        '/healthz',
        '/metrics',
        '/.well-known/oauth-protected-resource/mcp/echo',
      ]) {
        const res = await rawGet(stack.url, `${origin}${path}`, new URL(stack.url).host)
        assert.equal(res.status, 403, `${origin}${path}: ${res.status}`)
        assert.match(res.body, /host not allowed/)
      }
  })

  it('the metrics listener refuses it too, 403 host not allowed', async () => {
    const url = stack.gateway.metricsUrl!
    for (const origin of EVIL) {
      const res = await rawGet(url, `${origin}/metrics`, new URL(url).host)
      assert.equal(res.status, 403, `${origin}/metrics: ${res.status}`)
      assert.match(res.body, /host not allowed/)
    }
    // Its own authority, in either form, is served.
    assert.equal((await rawGet(url, '/metrics', new URL(url).host)).status, 200)
    assert.equal(
      (await rawGet(url, `${new URL(url).origin}/metrics`, new URL(url).host)).status,
      200,
    )
    assert.equal((await rawGet(url, 'http://10.0.0.7:9464/metrics', '10.0.0.7')).status, 200)
  })
})
