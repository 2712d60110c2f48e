// Review (issue 13): what one endpoint session may hold. Each `resources/subscribe` of a new
// public URI is kept by the gateway (the URI, its backend, the process it lives on, and a count
// on that process), and a template (`test://template/{id}/data`) names as many URIs as a client
// can make up. Nothing bounded them: one user, in each of their sessions, could make the
// gateway (and the pinned backend process) hold subscriptions without end. A `subscriptions/
// listen` stream is bounded (DEFAULT_LISTEN_RESOURCES); an endpoint session now is too, with
// DEFAULT_SESSION_SUBSCRIPTIONS: past it a subscribe to a new URI is refused, while one already
// held, and any after an unsubscribe, still succeed.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { DEFAULT_SESSION_SUBSCRIPTIONS } from '../../gateway/config/schema.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const POLICY = `${TEST_POLICY}  conformance:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": ["mcp:read"] }\n`

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      conformance: { command: process.execPath, args: [join(SERVERS_DIR, 'conformance.js')] },
    },
    config: { endpoints: { subs: { servers: ['conformance'] } } },
  })
})
after(() => stack.close())

const url = () => `${stack.url}/mcp/subs`
const uri = (i: number) => `test://template/${i}/data`

describe('review: resource subscriptions of one endpoint session', () => {
  it('are bounded: past the bound a new URI is refused; held ones and room made by an unsubscribe are not', async () => {
    const c = new Client({ name: 'subs', version: '0' }, { capabilities: {} })
    await c.connect(
      new StreamableHTTPClientTransport(new URL(url()), {
        requestInit: {
          headers: { authorization: `Bearer ${await stack.token('alice', { resource: url() })}` },
        },
      }),
    )
    try {
      for (let i = 0; i < DEFAULT_SESSION_SUBSCRIPTIONS; i++)
        await c.subscribeResource({ uri: uri(i) })
      await assert.rejects(
        c.subscribeResource({ uri: uri(DEFAULT_SESSION_SUBSCRIPTIONS) }),
        /subscriptions/,
        'one more URI than the bound is refused',
      )
      await c.subscribeResource({ uri: uri(0) }) // already held: answered, nothing new kept
      await c.unsubscribeResource({ uri: uri(1) })
      await c.subscribeResource({ uri: uri(DEFAULT_SESSION_SUBSCRIPTIONS) }) // room again
    } finally {
      await c.close()
    }
  })
})
