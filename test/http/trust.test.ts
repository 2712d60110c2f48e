import assert from 'node:assert/strict'
import { describe, it, test } from 'node:test'
import { trustedPeer } from '../../gateway/http/trust.js'
import { initBody } from '../checklist/open-session.js'

describe('trustedPeer', () => {
  const cases = [
    { setting: false, peer: '127.0.0.1', expect: false },
    { setting: true, peer: '203.0.113.9', expect: true },
    { setting: ['10.0.0.0/8'], peer: '10.1.2.3', expect: true },
    { setting: ['10.0.0.0/8'], peer: '::ffff:10.1.2.3', expect: true },
    { setting: ['10.0.0.0/8'], peer: '11.0.0.1', expect: false },
    { setting: ['127.0.0.1'], peer: '127.0.0.1', expect: true },
    { setting: ['127.0.0.1'], peer: '127.0.0.2', expect: false },
    { setting: ['fd00::/8'], peer: 'fd12::1', expect: true },
    { setting: ['10.0.0.0/8'], peer: undefined, expect: false },
    { setting: ['10.0.0.0/8'], peer: 'not-an-ip', expect: false },
  ] as const
  for (const c of cases) {
    test(`${JSON.stringify(c.setting)} trusts ${c.peer}: ${c.expect}`, () => {
      assert.equal(trustedPeer(c.setting as boolean | string[])(c.peer), c.expect)
    })
  }
})

describe('forwarded headers reach the log only from trusted proxies', async () => {
  const { startStack } = await import('../helpers/stack.js')
  const { request } = await import('undici')
  for (const trust of [['127.0.0.1'], ['10.0.0.0/8']] as const) {
    it(`trustProxy ${JSON.stringify(trust)}`, async () => {
      const stack = await startStack({ config: { trustProxy: trust, replicaId: 'r7' } })
      try {
        // The client wrote the leftmost entry itself; the trusted proxy appended the real peer.
        const res = await request(`${stack.url}/healthz`, {
          headers: {
            'x-forwarded-for': '6.6.6.6, 198.51.100.7, 127.0.0.1',
            'x-request-id': 'from-proxy-1',
          },
        })
        await res.body.dump()
        const trusted = trust[0] === '127.0.0.1'
        assert.equal(
          res.headers['x-request-id'],
          trusted ? 'from-proxy-1' : res.headers['x-request-id'],
        )
        if (!trusted) assert.notEqual(res.headers['x-request-id'], 'from-proxy-1')
        const line = stack.logLines
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l.msg === 'request' && l.path === '/healthz')!
        assert.equal(line.ip, trusted ? '198.51.100.7' : '127.0.0.1')
        // Session ids carry the replica marker a proxy routes on.
        const init = await request(stack.local('echo'), {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            authorization: `Bearer ${await stack.token('alice')}`,
          },
          body: JSON.stringify(initBody()),
        })
        await init.body.dump()
        assert.match(init.headers['mcp-session-id'] as string, /^r7\.[\w-]{32}$/)
      } finally {
        await stack.close()
      }
    })
  }
})
