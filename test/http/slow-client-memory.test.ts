// The memory a client that stops reading can make the gateway hold: a session's GET stream
// left unread while its server sends 120,000 log lines of 1 kB (~130 MB of SSE). The gateway
// runs in this process, with the default limits; its heap (and the buffers outside it that
// encoded events live in) is measured after forced collections, before and after the flood.
// Unbounded, it grows by about the size of the flood; bounded, by a few megabytes at most.
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, before, describe, it } from 'node:test'
import { RawSse } from '../helpers/raw-sse.js'
import { startStack, type Stack } from '../helpers/stack.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const SIZE = 1000
/** Enough first to fill the socket's kernel buffers, the stream's queue and the replay buffer. */
const WARM_UP = 10_000
const FLOOD = 120_000
/** Growth allowed: far below the flood (~130 MB), above what the bounds hold (1 MiB queue, 1 MiB replay buffer) and noise. */
const MAX_GROWTH = 24 * 1024 * 1024
const CURRENT = '2025-11-25'

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

/** The gateway's memory in this process: V8's heap plus the buffers outside it (encoded events). */
function memory(): { heap: number; external: number; total: number } {
  for (let i = 0; i < 3; i++) gc()
  const m = process.memoryUsage()
  return { heap: m.heapUsed, external: m.external, total: m.heapUsed + m.external }
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`

describe('memory held for a client that stops reading', () => {
  it(`a GET stream left unread through ${FLOOD} notifications of ${SIZE} B: the gateway's memory stays bounded`, async (t) => {
    const token = await stack.token('alice', { server: 'fixture' })
    const auth = { authorization: `Bearer ${token}` }
    const base = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...auth,
    }
    const init = await fetch(stack.local('fixture'), {
      method: 'POST',
      headers: base,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: CURRENT,
          capabilities: {},
          clientInfo: { name: 'stalled', version: '0' },
        },
      }),
    })
    const headers = {
      ...base,
      'mcp-session-id': init.headers.get('mcp-session-id')!,
      'mcp-protocol-version': CURRENT,
    }
    await init.text()
    await (
      await fetch(stack.local('fixture'), {
        method: 'POST',
        headers,
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      })
    ).text()
    const call = (id: number, name: string, args: Record<string, unknown>) =>
      fetch(stack.local('fixture'), {
        method: 'POST',
        headers,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name, arguments: args },
        }),
      })

    const get = await RawSse.open(stack.local('fixture'), {
      headers: {
        accept: 'text/event-stream',
        ...auth,
        'mcp-session-id': headers['mcp-session-id'],
        'mcp-protocol-version': CURRENT,
      },
    })
    assert.equal(get.status, 200)
    // Two calls in flight: the server's log lines belong to neither and go to the GET stream.
    assert.equal((await call(1, 'slow', { ms: 60_000 })).status, 200)
    /** Runs a flood; its own stream carries only its reply (the log lines went to the GET stream). */
    const flood = async (id: number, count: number) => {
      const text = await (await call(id, 'flood', { count, size: SIZE })).text()
      assert.match(text, /flooded/)
      assert.ok(text.length < 4096, 'the log lines went to the GET stream')
    }
    await flood(2, WARM_UP)
    const start = memory()
    await flood(3, FLOOD)
    const end = memory()
    const growth = end.total - start.total
    t.diagnostic(
      `before ${mb(start.total)} (heap ${mb(start.heap)}, external ${mb(start.external)}); after ${mb(end.total)} (heap ${mb(end.heap)}, external ${mb(end.external)}); growth ${mb(growth)}`,
    )
    assert.ok(
      growth < MAX_GROWTH,
      `the gateway's memory grew by ${mb(growth)} for a client that reads nothing`,
    )
    get.destroy()
    await fetch(stack.local('fixture'), { method: 'DELETE', headers }).then((r) => r.text())
  })
})
