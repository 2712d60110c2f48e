// Output caps (servers.<name>.output) through a real gateway and real processes, in every era
// and transport and at an endpoint: a result over its cap is cut with a notice the model reads,
// or refused; within it, untouched; audited and counted.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { request } from 'undici'
import { firstData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const node = process.execPath
const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v), 'utf8')
const NOTICE = /^… truncated: [\d.]+ (B|kB) of [\d.]+ kB; narrow the request$/

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: {
      echocap: {
        command: node,
        args: [join(SERVERS_DIR, 'echo.js')],
        output: { maxResultBytes: 2048 },
      },
      echorefuse: {
        command: node,
        args: [join(SERVERS_DIR, 'echo.js')],
        output: { overflow: 'refuse', tools: { 'ec*': 2048 } },
      },
      capped: {
        command: node,
        args: [join(SERVERS_DIR, 'fixture.js')],
        env: { FIXTURE_HELLO_BYTES: '20000' },
        output: { maxResultBytes: 4096 },
      },
    },
    config: { endpoints: { caps: { servers: ['echocap', 'echorefuse'], prefix: '{server}_' } } },
    policy: `${TEST_POLICY}  echocap:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n  echorefuse:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n  capped:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    prompts: { "*": allow }\n    resources: { "*": allow }\n`,
  })
})
after(() => stack.close())

async function sdk(url: string, token: string, version?: string) {
  const client = new Client(
    { name: 'caps', version: '0' },
    version ? { versionNegotiation: { mode: { pin: version } } } : {},
  )
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  return client
}

type Content = { type: string; text: string }[]
const big = 'x'.repeat(10_000)

/**
 * The server's part of a result: what the cap holds to (2026-07-28 answers carry the gateway's
 * own envelope fields too, `resultType` and the server's info in `_meta`, never counted).
 */
function serverPart(result: unknown): unknown {
  const { resultType, ttlMs, cacheScope, _meta, ...rest } = result as Record<string, unknown>
  const meta = Object.fromEntries(
    Object.entries((_meta ?? {}) as Record<string, unknown>).filter(
      ([k]) => !k.startsWith('io.modelcontextprotocol/'),
    ),
  )
  return Object.keys(meta).length > 0 ? { ...rest, _meta: meta } : rest
}

function assertTruncated(content: Content, max: number, result: unknown) {
  const part = serverPart(result)
  assert.ok(size(part) <= max, `${size(part)} > ${max}`)
  assert.match(content.at(-1)!.text, NOTICE)
}

describe('output caps, session era (2025-11-25)', () => {
  it('a tool result over the cap is cut with a notice; within it, untouched', async () => {
    const client = await sdk(
      stack.local('echocap'),
      await stack.token('alice', { server: 'echocap' }),
    )
    try {
      const small = await client.callTool({ name: 'echo', arguments: { text: 'hi' } })
      assert.deepEqual(
        (small.content as Content).map((c) => c.text),
        ['hi'],
      )
      const cut = await client.callTool({ name: 'echo', arguments: { text: big } })
      const content = cut.content as Content
      assertTruncated(content, 2048, cut)
      assert.ok(/^x+$/.test(content[0]!.text) && content[0]!.text.length > 1000)
      assert.equal(
        (cut._meta as Record<string, { of: number }>)['mcp-edge/truncated']!.of > 10_000,
        true,
      )
    } finally {
      await client.close()
    }
  })

  it('refuse: an error result the model reads, for a tool its pattern caps', async () => {
    const client = await sdk(
      stack.local('echorefuse'),
      await stack.token('alice', { server: 'echorefuse' }),
    )
    try {
      const r = await client.callTool({ name: 'echo', arguments: { text: big } })
      assert.equal(r.isError, true)
      assert.match(
        (r.content as Content)[0]!.text,
        /larger than the 2\.0 kB this gateway passes on; narrow the request/,
      )
    } finally {
      await client.close()
    }
  })

  it('resources/read and prompts/get are cut too', async () => {
    const client = await sdk(
      stack.local('capped'),
      await stack.token('alice', { server: 'capped' }),
    )
    try {
      const read = await client.readResource({ uri: 'fixture://hello' })
      assert.ok(size(serverPart(read)) <= 4096)
      const contents = read.contents as { uri: string; text: string }[]
      assert.equal(contents[0]!.uri, 'fixture://hello')
      assert.match(contents.at(-1)!.text, NOTICE)
      const prompt = await client.getPrompt({ name: 'greet', arguments: { name: big } })
      assert.ok(size(serverPart(prompt)) <= 4096)
      const last = prompt.messages.at(-1)!.content as { text: string }
      assert.match(last.text, NOTICE)
    } finally {
      await client.close()
    }
  })

  it('legacy HTTP+SSE: the same cut', async () => {
    const client = new V1Client({ name: 'legacy', version: '0' })
    const token = await stack.token('alice', { server: 'echocap' })
    await client.connect(
      new SSEClientTransport(new URL(`${stack.url}/sse/echocap`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      const cut = await client.callTool({ name: 'echo', arguments: { text: big } })
      assertTruncated(cut.content as Content, 2048, cut)
    } finally {
      await client.close()
    }
  })
})

describe('output caps, 2026-07-28 sessionless', () => {
  const post = async (server: string, body: Record<string, unknown>, token: string) => {
    const params = body.params as Record<string, unknown>
    const res = await request(stack.local(server), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': String(body.method),
        ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
        ...(typeof params.uri === 'string' ? { 'mcp-name': params.uri } : {}),
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 5,
        ...body,
        params: {
          ...params,
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    })
    const text = await res.body.text()
    return { status: res.statusCode, json: JSON.parse(firstData(text) ?? text) }
  }

  it('a tool result is cut; a refused read is a JSON-RPC error', async () => {
    const token = await stack.token('alice', { server: 'echocap' })
    const cut = await post(
      'echocap',
      { method: 'tools/call', params: { name: 'echo', arguments: { text: big } } },
      token,
    )
    assert.equal(cut.status, 200)
    assertTruncated(cut.json.result.content, 2048, cut.json.result)
    const refused = await post(
      'echorefuse',
      { method: 'tools/call', params: { name: 'echo', arguments: { text: big } } },
      await stack.token('alice', { server: 'echorefuse' }),
    )
    assert.equal(refused.json.result.isError, true)
    const read = await post(
      'capped',
      { method: 'resources/read', params: { uri: 'fixture://hello' } },
      await stack.token('alice', { server: 'capped' }),
    )
    assert.ok(
      size(read.json.result) <= 4096 + 200,
      'the cut result (plus the 2026-07-28 envelope fields)',
    )
    assert.match(read.json.result.contents.at(-1).text, NOTICE)
  })
})

describe('output caps at an endpoint', () => {
  for (const version of [undefined, '2026-07-28'])
    it(`each backend's own cap holds behind the endpoint (${version ?? 'session era'})`, async () => {
      const token = await stack.token('alice', { resource: `${stack.url}/mcp/caps` })
      const client = await sdk(`${stack.url}/mcp/caps`, token, version)
      try {
        const cut = await client.callTool({ name: 'echocap_echo', arguments: { text: big } })
        assertTruncated(cut.content as Content, 2048, cut)
        const refused = await client.callTool({ name: 'echorefuse_echo', arguments: { text: big } })
        assert.equal(refused.isError, true)
      } finally {
        await client.close()
      }
    })
})

describe('output caps are audited and counted', () => {
  it('truncated and refused outcomes, by server', async () => {
    const events = stack.audit().filter((e) => e.method === 'tools/call' && e.server === 'echocap')
    assert.ok(events.some((e) => /^truncated \d+ of \d+ bytes$/.test(String(e.outcome))))
    const refused = stack.audit().filter((e) => e.server === 'echorefuse')
    assert.ok(
      refused.some((e) => /^refused \d+ bytes over the output cap$/.test(String(e.outcome))),
    )
    const text = await (await request(`${stack.url}/metrics`)).body.text()
    assert.match(text, /mcp_edge_results_capped_total\{server="echocap",action="truncated"\} [1-9]/)
    assert.match(
      text,
      /mcp_edge_results_capped_total\{server="echorefuse",action="refused"\} [1-9]/,
    )
  })
})
