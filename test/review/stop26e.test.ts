// Stop 26e (brief review34): an outside attacker of the oversize-line drop (merge 03a0300): a
// stdout line past maxMessageBytes is dropped and the request its ends name gets -32603. Real
// processes (node -e scripts) behind spawnChild: what the gateway's owners are handed.
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { pino } from 'pino'
import { spawnChild } from '../../gateway/bridge/child.js'
import { configSchema } from '../../gateway/config/schema.js'

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
