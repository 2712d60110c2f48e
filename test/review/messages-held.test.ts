// Review (issue 10, claims 1, 2 and 5): message shapes and spellings tried against the policy's
// reading of a body, that held. The denied tool is `crash` (it ends the process), so anything
// that slipped through would end the session; the fixture also records every message it
// parsed. On a 2025-03-26 session (batches allowed) and on legacy /messages.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { sseData } from '../helpers/sse.js'
import { startStack, type Stack } from '../helpers/stack.js'

let stack: Stack
let token: string
before(async () => {
  stack = await startStack({})
  token = await stack.token('alice', { server: 'fixture' })
})
after(() => stack.close())

async function post(body: string, sid?: string) {
  const res = await request(stack.local('fixture'), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      ...(sid ? { 'mcp-session-id': sid } : {}),
    },
    body,
  })
  const text = await res.body.text()
  const data = sseData(text)
  return {
    status: res.statusCode,
    sid: res.headers['mcp-session-id'] as string | undefined,
    text,
    json: (data.length
      ? JSON.parse(data.at(-1)!)
      : /^[[{]/.test(text)
        ? JSON.parse(text)
        : undefined) as any,
  }
}

const recorded = () => {
  const file = join(stack.dir, 'fixture-record.jsonl')
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, any>)
    : []
}

// Raw bodies: JSON text the way an attacker would write it, not JSON.stringify's.
const HOSTILE: [string, string][] = [
  [
    'duplicate name, denied one last',
    '{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"pid","name":"crash"}}',
  ],
  [
    'escaped name',
    '{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"\\u0063r\\u0061sh"}}',
  ],
  ['id -0', '{"jsonrpc":"2.0","id":-0,"method":"tools/call","params":{"name":"crash"}}'],
  ['id 1e400', '{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"name":"crash"}}'],
  ['id 1.5', '{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"crash"}}'],
  ['id null', '{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"crash"}}'],
  ['id as object', '{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{"name":"crash"}}'],
  ['no id (notification)', '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"crash"}}'],
  [
    'response with a method',
    '{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"crash"},"result":{}}',
  ],
  ['jsonrpc 2.00', '{"jsonrpc":"2.00","id":14,"method":"tools/call","params":{"name":"crash"}}'],
  ['jsonrpc number', '{"jsonrpc":2.0,"id":15,"method":"tools/call","params":{"name":"crash"}}'],
  [
    '__proto__ carrying the id',
    '{"__proto__":{"id":16},"jsonrpc":"2.0","method":"tools/call","params":{"name":"crash"}}',
  ],
  [
    '__proto__ in params, denied name own',
    '{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"__proto__":{"name":"pid"},"name":"crash"}}',
  ],
  [
    '__proto__ in params carrying the name',
    '{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"__proto__":{"name":"crash"}}}',
  ],
  [
    'constructor key',
    '{"jsonrpc":"2.0","id":19,"constructor":{"prototype":{}},"method":"tools/call","params":{"name":"crash"}}',
  ],
  [
    'batch: allowed then denied',
    '[{"jsonrpc":"2.0","id":20,"method":"ping"},{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"crash"}}]',
  ],
  [
    'batch: denied as a response-shaped element',
    '[{"jsonrpc":"2.0","id":22,"result":{}},{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"crash"}}]',
  ],
  [
    'a long name: spaces, then the denied one',
    `{"jsonrpc":"2.0","id":24,"method":"tools/call","params":{"name":"${' '.repeat(10_000)}crash"}}`,
  ],
  [
    'the denied name with a trailing NUL',
    '{"jsonrpc":"2.0","id":27,"method":"tools/call","params":{"name":"crash\\u0000"}}',
  ],
  [
    'fullwidth confusable',
    '{"jsonrpc":"2.0","id":28,"method":"tools/call","params":{"name":"\\uff43rash"}}',
  ],
  ['params as an array', '{"jsonrpc":"2.0","id":25,"method":"tools/call","params":["crash"]}'],
  [
    'depth scanner: escaped quotes and backslashes before brackets',
    `{"jsonrpc":"2.0","id":26,"method":"tools/call","params":{"name":"crash","x":"\\\\\\"${'['.repeat(100)}\\\\"}}`,
  ],
]

describe('review: hostile bodies never run the denied tool (held)', () => {
  it('on a session (2025-03-26)', async () => {
    const init = await post(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-03-26',
          capabilities: {},
          clientInfo: { name: 'review', version: '0' },
        },
      }),
    )
    const sid = init.sid!
    await post('{"jsonrpc":"2.0","method":"notifications/initialized"}', sid)
    for (const [what, body] of HOSTILE) {
      const res = await post(body, sid)
      assert.ok(
        [200, 400, 403].includes(res.status),
        `${what}: ${res.status} ${res.text.slice(0, 120)}`,
      )
      if (res.status === 200) {
        const replies = [res.json].flat()
        assert.ok(
          replies.every((r: any) => r?.error !== undefined || r?.result?.content === undefined),
          `${what}: ${res.text.slice(0, 200)}`,
        )
      }
      const ping = await post('{"jsonrpc":"2.0","id":"alive","method":"ping"}', sid)
      assert.equal(ping.status, 200, `${what}: the session ended (the process crashed?)`)
    }
    assert.deepEqual(
      recorded().filter((m) => m.params?.name === 'crash'),
      [],
    )
  })

  it('a body nested 65 deep only inside strings passes; 65 deep with string tricks around it is refused', async () => {
    const init = await post(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'review', version: '0' },
        },
      }),
    )
    const sid = init.sid!
    const tricky = `{"jsonrpc":"2.0","id":2,"method":"ping","params":{"a":"\\\\","b":"\\"","c":${'['.repeat(63)}"\\\\\\"]"${']'.repeat(63)}}}`
    assert.equal((await post(tricky, sid)).status, 400)
    const fine = `{"jsonrpc":"2.0","id":3,"method":"ping","params":{"a":"${'['.repeat(200)}\\\\","b":"\\\\\\"{{{{"}}`
    assert.equal((await post(fine, sid)).status, 200)
  })
})
