// What an SSE chunk is to its client, as the outbound stream reads it once past a bound.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { classify, type ChunkKind } from '../../gateway/bridge/sse-chunk.js'

const encoder = new TextEncoder()
const event = (message: unknown) => `event: message\nid: s.1\ndata: ${JSON.stringify(message)}\n\n`
const note = event({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'n' } })
const reply = event({ jsonrpc: '2.0', id: 'r', result: {} })
const request = event({ jsonrpc: '2.0', id: 'q', method: 'ping' })

describe('classify: what a chunk is, read only past a bound', () => {
  const table: [string, string, ChunkKind][] = [
    ['a keep-alive comment', ': keepalive\n\n', 'control'],
    ['a priming event', 'id: s.0\ndata: \n\n', 'control'],
    ['a priming event with a retry hint', 'id: s.0\nretry: 1000\ndata: \n\n', 'control'],
    ['a notification', note, 'notification'],
    [
      'a notification without event id (2026-07-28, legacy)',
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n',
      'notification',
    ],
    ['a response', reply, 'owed'],
    [
      'an error response with a null id',
      'event: message\ndata: {"jsonrpc":"2.0","id":null,"error":{"code":-32000}}\n\n',
      'owed',
    ],
    ['a server→client request', request, 'owed'],
    ['the legacy endpoint event', 'event: endpoint\ndata: /messages/x?sessionId=1\n\n', 'owed'],
    ['two notifications in one chunk', note + note, 'notification'],
    ['a notification and a reply in one chunk', note + reply, 'owed'],
    ['a JSON array', 'data: [{"jsonrpc":"2.0","method":"x"}]\n\n', 'owed'],
    ['data that is not JSON', 'event: message\ndata: {not json\n\n', 'owed'],
  ]
  for (const [name, chunk, kind] of table)
    test(`${name}: ${kind}`, () => assert.equal(classify(encoder.encode(chunk)), kind))
})
