// A session holds its process's requests until the client's `initialized` (checklist D28), no
// more of them than its streams may queue: past the events or bytes bound each is refused to
// the process, and what was held goes, in order, once.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { EarlyRequests } from '../../gateway/bridge/early-requests.js'
import { envelope } from '../../gateway/bridge/jsonrpc.js'

const request = (id: string, method = 'sampling/createMessage', text = '') =>
  ({ jsonrpc: '2.0', id, method, params: { text } }) as unknown as JSONRPCMessage
const wait = (early: EarlyRequests, m: JSONRPCMessage) => early.wait(m, envelope(m))

describe('EarlyRequests (bridge/early-requests.ts)', () => {
  it('holds requests but ping, passes notifications and replies, releases once in order', () => {
    const early = new EarlyRequests({ events: 10, bytes: 1 << 20 })
    assert.deepEqual(wait(early, request('a')), { held: true })
    assert.deepEqual(wait(early, request('b', 'roots/list')), { held: true })
    assert.equal(wait(early, request('p', 'ping')), undefined)
    const log = { jsonrpc: '2.0', method: 'notifications/message', params: {} } as JSONRPCMessage
    assert.equal(wait(early, log), undefined)
    const reply = { jsonrpc: '2.0', id: 1, result: {} } as JSONRPCMessage
    assert.equal(wait(early, reply), undefined)
    assert.deepEqual(
      early.release().map((m) => (m as { id: string }).id),
      ['a', 'b'],
    )
    assert.equal(early.open, true)
    assert.equal(wait(early, request('c')), undefined, 'nothing is held after initialized')
    assert.deepEqual(early.release(), [])
  })

  it('past the events bound: refused to the process with an error for its id, not held', () => {
    const early = new EarlyRequests({ events: 2, bytes: 1 << 20 })
    wait(early, request('a'))
    wait(early, request('b'))
    for (const id of ['c', 'd', 42]) {
      const r = early.wait(request(String(id)), envelope(request(String(id))))
      assert.ok(r !== undefined && 'refused' in r, String(id))
      const refused = r.refused as { id: unknown; error?: { code: number; message: string } }
      assert.equal(refused.id, String(id))
      assert.equal(refused.error?.code, -32603)
      assert.match(refused.error!.message, /initialized/)
    }
    assert.equal(early.release().length, 2)
  })

  it('past the bytes bound: refused; one request alone is taken whatever its size', () => {
    const early = new EarlyRequests({ events: 100, bytes: 200 })
    assert.deepEqual(wait(early, request('big', 'elicitation/create', 'x'.repeat(1000))), {
      held: true,
    })
    const r = wait(early, request('small'))
    assert.ok(r !== undefined && 'refused' in r)
    assert.equal(early.release().length, 1)
  })
})
