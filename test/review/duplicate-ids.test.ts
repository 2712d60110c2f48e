// Review (issue 10, claim 2 "a message reaches a server undecided"): list results are filtered
// by the method of the request in flight under the reply's id (session.ts fromServer). Two
// requests of one body with the same id overwrite each other's in-flight entry, so the reply
// to `tools/list` is taken for the reply to the other request and passes unfiltered: the
// caller sees every tool the policy hides (here `crash`, denied). Same for prompts/list,
// resources/list and resources/templates/list. Batches are allowed at 2025-03-26 and on the
// legacy HTTP+SSE transport; every session transport is affected (SSE, responses: json,
// mode: shared, legacy /messages). Two concurrent POSTs with one id do it too, by a race.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const fixture = (extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'fixture.js')],
  ...extra,
})
const SERVERS = {
  dsse: fixture(),
  djson: fixture({ responses: 'json' }),
  dshared: fixture({ mode: 'shared' }),
}
const RACE = { drace: fixture({ requestTimeout: 1500 }) }
const RULES = `    access: ["mcp:read"]\n    tools: { crash: deny, env: deny, "*": ["mcp:read"] }\n    resources: { "fixture://hello": deny, "*": ["mcp:read"] }\n    prompts: { greet: deny, "*": allow }\n`
const POLICY = `${TEST_POLICY}${Object.keys(SERVERS)
  .map((s) => `  ${s}:\n${RULES}`)
  .join('')}`

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: { ...SERVERS, ...RACE },
    policy: `${POLICY}  drace:\n${RULES}`,
  })
})
after(() => stack.close())

async function post(
  server: string,
  token: string,
  body: unknown,
  extra: Record<string, string> = {},
) {
  const res = await request(stack.local(server), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      ...extra,
    },
    body: JSON.stringify(body),
    headersTimeout: 5000,
    bodyTimeout: 5000,
  }).catch(() => undefined)
  // A reply that never comes (its stream was given to another request) counts as status 0.
  if (res === undefined)
    return {
      status: 0,
      headers: {} as Record<string, unknown>,
      text: '',
      messages: [] as Record<string, any>[],
    }
  const text = await res.body.text().catch(() => '')
  const data = sseData(text)
  const messages = (
    data.length > 0
      ? data.map((d) => JSON.parse(d))
      : /^[[{]/.test(text)
        ? [JSON.parse(text)].flat()
        : []
  ) as Record<string, any>[]
  return { status: res.statusCode, headers: res.headers, text, messages }
}

async function session(server: string, token: string): Promise<string> {
  const init = await post(server, token, {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-03-26',
      capabilities: {},
      clientInfo: { name: 'review', version: '0' },
    },
  })
  assert.equal(init.status, 200, init.text)
  const sid = init.headers['mcp-session-id'] as string
  await post(
    server,
    token,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { 'mcp-session-id': sid },
  )
  return sid
}

const names = (m: Record<string, any> | undefined, list: string, key: string): string[] =>
  (m?.result?.[list] ?? []).map((x: Record<string, string>) => x[key])

const LISTS = [
  { method: 'tools/list', list: 'tools', key: 'name', hidden: 'crash' },
  { method: 'resources/list', list: 'resources', key: 'uri', hidden: 'fixture://hello' },
  { method: 'prompts/list', list: 'prompts', key: 'name', hidden: 'greet' },
]

describe('review: list filtering and duplicate request ids', () => {
  for (const server of Object.keys(SERVERS)) {
    it(`${server}: a list is filtered on its own, and still when a second request of the batch shares its id`, async () => {
      const token = await stack.token('alice', { server })
      const sid = await session(server, token)
      for (const { method, list, key, hidden } of LISTS) {
        const alone = await post(
          server,
          token,
          { jsonrpc: '2.0', id: 2, method },
          { 'mcp-session-id': sid },
        )
        assert.ok(
          !names(alone.messages[0], list, key).includes(hidden),
          `${method} alone shows ${hidden}`,
        )
        const dup = await post(
          server,
          token,
          [
            { jsonrpc: '2.0', id: 5, method },
            {
              jsonrpc: '2.0',
              id: 5,
              method: 'tools/call',
              params: { name: 'slow', arguments: { ms: 200 } },
            },
          ],
          { 'mcp-session-id': sid },
        )
        const reply = dup.messages.find((m) => m.id === 5 && m.result?.[list] !== undefined)
        // The gateway must either refuse the duplicate id or still filter the list.
        if (dup.status === 200 && reply !== undefined) {
          assert.ok(
            !names(reply, list, key).includes(hidden),
            `${server}: ${method} with a duplicate id shows the hidden ${hidden}: ${names(reply, list, key).join(', ')}`,
          )
        }
      }
    })
  }

  it('2025-11-25 (no batches): two concurrent POSTs with one id never unfilter the list (a race: 30 tries)', async () => {
    const token = await stack.token('alice', { server: 'drace' })
    const init = await post('drace', token, {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'review', version: '0' },
      },
    })
    const sid = init.headers['mcp-session-id'] as string
    await post(
      'drace',
      token,
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { 'mcp-session-id': sid },
    )
    const leaks: number[] = []
    const hung: number[] = []
    for (let id = 100; id < 130; id++) {
      const [a, b] = await Promise.all([
        post(
          'drace',
          token,
          { jsonrpc: '2.0', id, method: 'tools/list' },
          { 'mcp-session-id': sid },
        ),
        post(
          'drace',
          token,
          {
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: { name: 'slow', arguments: { ms: 100 } },
          },
          { 'mcp-session-id': sid },
        ),
      ])
      if ([...a.messages, ...b.messages].some((m) => names(m, 'tools', 'name').includes('crash')))
        leaks.push(id)
      if (a.status === 0 || b.status === 0) hung.push(id)
      if (leaks.length > 0 || hung.length > 2) break
    }
    assert.deepEqual(leaks, [], `the hidden tool was listed for ids ${leaks.join(', ')}`)
    assert.deepEqual(
      hung,
      [],
      `requests never answered (their stream went to the other request) for ids ${hung.join(', ')}`,
    )
  })

  it('legacy HTTP+SSE: the same batch on /messages', async () => {
    const token = await stack.token('alice', { server: 'dsse' })
    const stream = await request(`${stack.url}/sse/dsse`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    })
    const it = stream.body[Symbol.asyncIterator]()
    let buffer = ''
    const next = async (
      pred: (m: Record<string, any>) => boolean,
    ): Promise<Record<string, any>> => {
      for (;;) {
        for (const d of sseData(buffer)) {
          const m = JSON.parse(d) as Record<string, any>
          if (pred(m)) {
            buffer = buffer.slice(buffer.indexOf(d) + d.length)
            return m
          }
        }
        // Read on until it comes: the stream ending first fails here, a stall at the test's timeout.
        const chunk = await it.next()
        assert.ok(!chunk.done, 'no such message on the stream')
        buffer += String(chunk.value)
      }
    }
    buffer += String((await it.next()).value)
    const endpoint = /data: (.*)\n/.exec(buffer)![1]!
    buffer = ''
    const send = (body: unknown) =>
      request(`${stack.url}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      }).then(async (r) => {
        await r.body.dump()
        return r.statusCode
      })
    try {
      await send({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2024-11-05',
          capabilities: {},
          clientInfo: { name: 'review', version: '0' },
        },
      })
      await next((m) => m.id === 1)
      await send({ jsonrpc: '2.0', method: 'notifications/initialized' })
      await send({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
      const alone = await next((m) => m.id === 2)
      assert.ok(!names(alone, 'tools', 'name').includes('crash'))
      const status = await send([
        { jsonrpc: '2.0', id: 5, method: 'tools/list' },
        {
          jsonrpc: '2.0',
          id: 5,
          method: 'tools/call',
          params: { name: 'slow', arguments: { ms: 200 } },
        },
      ])
      // Refusing the batch (its own 400) is one right answer; a filtered list is the other.
      if (status === 400) return
      const reply = await next(
        (m) => m.id === 5 && (m.result?.tools !== undefined || m.error !== undefined),
      )
      assert.ok(
        !names(reply, 'tools', 'name').includes('crash'),
        `legacy: tools/list with a duplicate id shows crash: ${names(reply, 'tools', 'name').join(', ')}`,
      )
    } finally {
      await stream.body.destroy()
    }
  })
})
