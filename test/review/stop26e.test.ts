// Stop 26e (brief review34): an outside attacker of the oversize-line drop (merge 03a0300): a
// stdout line past maxMessageBytes is dropped and the request its ends name gets -32603. Real
// processes (node -e scripts) behind spawnChild: what the gateway's owners are handed.
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { pino } from 'pino'
import { request } from 'undici'
import { spawnChild } from '../../gateway/bridge/child.js'
import { configSchema } from '../../gateway/config/schema.js'
import { sseData } from '../helpers/sse.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const MAX = 64 * 1024
const BIG = 'x'.repeat(MAX + 10)

/** Runs a process writing `lines` (each with its newline) to stdout; the messages it was handed. */
async function handed(lines: string[]): Promise<JSONRPCMessage[]> {
  const config = configSchema.parse({
    servers: {
      f: {
        command: process.execPath,
        args: [
          '-e',
          `process.stdout.write(${JSON.stringify(lines.map((l) => `${l}\n`).join(''))})`,
        ],
        maxMessageBytes: MAX,
      },
    },
  }).servers.f!
  const sink = new Writable({ write: (_c, _e, done) => done() })
  const child = await spawnChild(config, pino({ level: 'warn' }, sink))
  const out: JSONRPCMessage[] = []
  child.onmessage = (m) => out.push(m)
  await child.exited
  return out
}

describe('stop26e: the id an oversize line names is the one JSON.parse reads, or none', () => {
  // Read backwards, the tail recorded each member it passed, the one earlier in the line last:
  // of two `id` members at the line's end it named the first, where JSON.parse (and every
  // reader of the line) takes the last. The request named got -32603 and was ended (its own
  // reply, arriving after, dropped as a stray), in shared mode another user's; the request the
  // line answered waited out requestTimeout. Likewise a duplicate `jsonrpc` ending in "1.0", and
  // an id followed by a second one that names no request (null, true), at the same end or the
  // other: the end's member is the later one.
  const variants: [string, string][] = [
    ['two ids at the end', `{"result":{"t":"${BIG}"},"id":"s1","jsonrpc":"2.0","id":"s2"}`],
    ['two ids, the end only', `{"result":{"t":"${BIG}"},"jsonrpc":"2.0","id":"s1","id":"s2"}`],
    [
      'two ids, numbers, spaced',
      `{"result":{"t":"${BIG}"} , "id" : 1 ,\r\t"jsonrpc":"2.0", "id":2 }\r`,
    ],
    ['an escaped key', `{"result":{"t":"${BIG}"},"\\u0069d":"s1","jsonrpc":"2.0","id":"s2"}`],
    [
      'two jsonrpc, the last not 2.0',
      `{"result":{"t":"${BIG}"},"jsonrpc":"2.0","jsonrpc":"1.0","id":"s2"}`,
    ],
    ['two ids at the start', `{"jsonrpc":"2.0","id":"s1","id":"s2","result":{"t":"${BIG}"}}`],
    [
      'an id, then a null id, at the start',
      `{"jsonrpc":"2.0","id":"s1","id":null,"result":{"t":"${BIG}"}}`,
    ],
    [
      'an id, then a true id, at the end',
      `{"result":{"t":"${BIG}"},"id":"s1","jsonrpc":"2.0","id":true}`,
    ],
    [
      'an id at the start, a null one at the end',
      `{"jsonrpc":"2.0","id":"s1","result":{"t":"${BIG}"},"id":null}`,
    ],
    [
      '2.0 at the start, 1.0 at the end',
      `{"jsonrpc":"2.0","id":"s1","result":{"t":"${BIG}"},"jsonrpc":"1.0"}`,
    ],
  ]
  for (const [name, line] of variants)
    it(`${name}: names ${JSON.stringify(expected(line))}`, async () => {
      assert.ok(Buffer.byteLength(line) > MAX)
      // A message after it is handed on as before.
      const out = await handed([line, '{"jsonrpc":"2.0","id":"s3","result":{}}'])
      const want = expected(line)
      const errors = out.filter((m) => 'error' in m)
      if (want === undefined) assert.deepEqual(errors, [], JSON.stringify(errors))
      else {
        assert.equal(errors.length, 1, JSON.stringify(out))
        assert.equal((errors[0] as { id: unknown }).id, want)
        assert.equal((errors[0] as { error: { code: number } }).error.code, -32603)
      }
      assert.deepEqual(out.at(-1), { jsonrpc: '2.0', id: 's3', result: {} })
    })
})

/** The request a line answers as JSON.parse reads it: a JSON-RPC 2.0 response's id, else none. */
function expected(line: string): string | number | undefined {
  const m = JSON.parse(line) as Record<string, unknown>
  if (m.jsonrpc !== '2.0' || 'method' in m || !('result' in m || 'error' in m)) return undefined
  return typeof m.id === 'string' || typeof m.id === 'number' ? m.id : undefined
}

/** A shared process: `hold` is answered only after `dup`, whose oversize line names held's id first. */
const TWO_IDS = `
const rl = require('node:readline').createInterface({ input: process.stdin })
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
let held
rl.on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    return out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'two-ids', version: '0' } } })
  if (m.id === undefined) return
  if (m.method !== 'tools/call') return out({ jsonrpc: '2.0', id: m.id, result: { tools: [] } })
  if (m.params.name === 'hold') { held = m.id; return process.stderr.write('held\\n') }
  const big = JSON.stringify({ content: [{ type: 'text', text: 'x'.repeat(70000) }] })
  // JSON.parse reads this line as the reply to dup (the last id); the first id is held's.
  process.stdout.write('{"result":' + big + ',"id":' + JSON.stringify(held) + ',"jsonrpc":"2.0","id":' + JSON.stringify(m.id) + '}\\n')
  out({ jsonrpc: '2.0', id: held, result: { content: [{ type: 'text', text: 'held done' }] } })
})
`

describe('stop26e: in shared mode, an oversize line with two ids ends only the request it answers', () => {
  let stack: Stack
  const script = join(mkdtempSync(join(tmpdir(), 'stop26e-')), 'two-ids.cjs')
  before(async () => {
    writeFileSync(script, TWO_IDS)
    stack = await startStack({
      servers: {
        twoids: {
          command: process.execPath,
          args: [script],
          mode: 'shared',
          maxMessageBytes: 64 * 1024,
          // Bounds the wait of a request whose reply is lost (the failure this test looks for).
          requestTimeout: 3000,
        },
      },
      policy: `${TEST_POLICY}  twoids:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
    })
  })
  after(async () => {
    await stack?.close()
  })

  it("bob's held call is answered by its own reply; alice's gets -32603", async () => {
    const bob = await session(stack, await stack.token('bob', { server: 'twoids' }))
    const alice = await session(stack, await stack.token('alice', { server: 'twoids' }))
    const held = bob.call('hold', 7)
    await waitFor(
      () => stack.logLines.some((l) => l.includes('"stderr":"held"')),
      'the process to hold bob',
    )
    const dup = await alice.call('dup', 8)
    assert.equal(dup.id, 8)
    assert.equal(dup.error?.code, -32603, JSON.stringify(dup).slice(0, 300))
    const bobs = await held
    assert.equal(bobs.id, 7)
    assert.equal(bobs.result?.content?.[0]?.text, 'held done', JSON.stringify(bobs).slice(0, 300))
  })
})

/** An initialized 2025-11-25 session; `call` returns the reply to a tools/call. */
async function session(
  stack: Stack,
  token: string,
): Promise<{ call: (name: string, id: number) => Promise<any> }> {
  const post = async (body: unknown, sid?: string) => {
    const res = await request(`${stack.url}/mcp/twoids`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${token}`,
        ...(sid ? { 'mcp-session-id': sid } : {}),
      },
      body: JSON.stringify(body),
    })
    const text = await res.body.text()
    const data = sseData(text)
    return { headers: res.headers, body: data.length > 0 ? JSON.parse(data.at(-1)!) : text }
  }
  const init = await post({
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 't', version: '0' },
    },
  })
  const sid = init.headers['mcp-session-id'] as string
  assert.ok(sid, JSON.stringify(init.body))
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
  return {
    call: async (name, id) =>
      (
        await post(
          { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } },
          sid,
        )
      ).body,
  }
}
