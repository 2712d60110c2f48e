// What the outside review of stop 21 tried against the hot-path shortcuts, on one real gateway
// in front of the real fixture process (every byte it reads recorded), with real tokens from
// the dev IdP. Each attack here held; each test guards a shortcut that a later change could
// break: the policy must decide on the message the process reads, an access decision kept per
// token must not outlive the policy that made it, and two Authorization headers are one too
// many.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { getRequestListener } from '@hono/node-server'
import { Hono } from 'hono'
import { request } from 'undici'
import type { GatewayError } from '../../gateway/errors.js'
import { readJsonBody } from '../../gateway/http/body.js'
import { clientGone } from '../../gateway/http/reply.js'
import { SERVERS_DIR, startStack, type Stack } from '../helpers/stack.js'

const V = '2026-07-28'
const ACCEPT = 'application/json, text/event-stream'
const PV = 'io.modelcontextprotocol/protocolVersion'
const CAPS = 'io.modelcontextprotocol/clientCapabilities'

const POLICY = `
roles:
  mcp-admin: ["*"]
  mcp-developer: ["mcp:read", "mcp:write"]
  mcp-user: ["mcp:read"]
servers:
  raw:
    access: ["mcp:read"]
    tools:
      crash: deny
      "*": ["mcp:read"]
`

/** Where the fixture writes every byte it reads on stdin. */
const RAW_DIR = mkdtempSync(join(tmpdir(), 'mcp-edge-stop21-'))
const RAW = join(RAW_DIR, 'raw-stdin.log')

let stack: Stack
let alice: string
let bob: string
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      raw: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'fixture.js')],
        env: { FIXTURE_RAW_RECORD_FILE: RAW },
      },
    },
  })
  alice = await stack.token('alice', { server: 'raw' })
  bob = await stack.token('bob', { server: 'raw' })
})
after(async () => {
  await stack.close()
  rmSync(RAW_DIR, { recursive: true, force: true })
})

/** The bytes the fixture read on its stdin so far (every process of the `raw` server). */
function childRead(): string {
  return existsSync(RAW) ? readFileSync(RAW, 'utf8') : ''
}

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: { id?: unknown; result?: unknown; error?: { code: number; message: string } }
}

/** POSTs `text` as it is (no JSON round trip) to the `raw` server. */
async function postText(text: string, headers: Record<string, string>): Promise<Answer> {
  const res = await request(stack.local('raw'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: text,
  })
  const body = await res.body.text()
  const sse = String(res.headers['content-type']).startsWith('text/event-stream')
  // An SSE answer: the last event with data (a primed stream opens with an empty one).
  const data = sse
    ? body
        .split('\n')
        .filter((l) => l.startsWith('data: ') && l.length > 6)
        .map((l) => l.slice(6))
        .pop()
    : body
  return {
    status: res.statusCode,
    headers: res.headers,
    text: body,
    json: data ? JSON.parse(data) : {},
  }
}

/** A session of `token` on the `raw` server: its id. */
async function openSession(token: string): Promise<string> {
  const res = await postText(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 't', version: '0' },
      },
    }),
    { authorization: `Bearer ${token}` },
  )
  assert.equal(res.status, 200, res.text)
  const sid = res.headers['mcp-session-id'] as string
  await postText(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), {
    authorization: `Bearer ${token}`,
    'mcp-session-id': sid,
  })
  return sid
}

/** The JSON-RPC code of a refusal by a deny rule. */
const DENIED = -32010

let nextId = 1000
/** A marker no other request carries, to find what the process read of this one. */
const marker = () => `m${nextId++}x`

/**
 * Hostile bodies whose parsed form names another tool than their text seems to: the gateway
 * decides on the parsed form (JSON.parse: the last duplicate wins, escapes decoded), and the
 * process must read exactly that form, never the text the client sent.
 * `params` is the JSON text of the params' members before `_meta` (no braces).
 */
const bodies: {
  name: string
  params: (mark: string) => string
  method?: string
  /** The tool the parsed body names: what policy decides and the process must read. */
  tool: string | undefined
  /** The JSON-RPC code of the refusal (on a 200), or undefined: allowed. */
  refused?: number
}[] = [
  {
    name: 'two names, the denied one last',
    params: (m) => `"name":"echo_args","arguments":{"m":"${m}"},"name":"crash"`,
    tool: 'crash',
    refused: DENIED,
  },
  {
    name: 'two names, the allowed one last',
    params: (m) => `"name":"crash","arguments":{"m":"${m}"},"name":"echo_args"`,
    tool: 'echo_args',
  },
  {
    name: 'the denied name unicode-escaped',
    params: (m) => `"name":"cr\\u0061sh","arguments":{"m":"${m}"}`,
    tool: 'crash',
    refused: DENIED,
  },
  {
    name: 'the allowed name unicode-escaped',
    params: (m) => `"name":"echo\\u005fargs","arguments":{"m":"${m}"}`,
    tool: 'echo_args',
  },
  {
    name: 'the name only in a __proto__ member',
    params: (m) => `"__proto__":{"name":"crash"},"arguments":{"m":"${m}"}`,
    tool: undefined,
    refused: -32602,
  },
  {
    name: 'an allowed name beside a __proto__ naming the denied one',
    params: (m) => `"__proto__":{"name":"crash"},"name":"echo_args","arguments":{"m":"${m}"}`,
    tool: 'echo_args',
  },
]

/** The method member(s) of a body: one, or a duplicate whose last one is tools/call. */
const methods = [
  { name: 'one method', text: '"method":"tools/call"' },
  { name: 'tools/list, then tools/call', text: '"method":"tools/list","method":"tools/call"' },
]

/**
 * Asserts what the process read of the request marked `mark`: nothing when it was refused,
 * else that request once, naming (as its own member) the tool the policy allowed.
 */
function assertChildRead(mark: string, tool: string | undefined, refused: boolean): void {
  const lines = childRead()
    .split('\n')
    .filter((l) => l.includes(mark))
  if (refused) {
    assert.deepEqual(lines, [], 'the process read a refused request')
    return
  }
  assert.equal(lines.length, 1, `the process read the allowed request once: ${lines.join('\n')}`)
  const read = JSON.parse(lines[0]!) as { method: string; params: Record<string, unknown> }
  assert.equal(read.method, 'tools/call')
  assert.ok(Object.hasOwn(read.params, 'name'))
  assert.equal(read.params.name, tool)
  // Only a __proto__ member the process reads as data may still spell the denied name.
  assert.ok(!lines[0]!.replace(/"__proto__":\{[^}]*\}/, '').includes('crash'), lines[0])
}

describe('the policy decides on the message the process reads (raw bodies)', () => {
  let sid: string
  before(async () => {
    sid = await openSession(alice)
  })

  for (const b of bodies) {
    for (const m of methods) {
      it(`session era: ${b.name}, ${m.name}`, async () => {
        const mark = marker()
        const text = `{"jsonrpc":"2.0","id":"${mark}",${m.text},"params":{${b.params(mark)}}}`
        const res = await postText(text, {
          authorization: `Bearer ${alice}`,
          'mcp-session-id': sid,
        })
        assertAnswer(res, mark, b.refused)
        assertChildRead(mark, b.tool, b.refused !== undefined)
        assertAudited(b.tool, b.refused)
      })

      it(`2026-07-28: ${b.name}, ${m.name}`, async () => {
        const mark = marker()
        const text = `{"jsonrpc":"2.0","id":"${mark}",${m.text},"params":{${b.params(mark)},${META}}}`
        const headers = modernHeaders(b.tool)
        const res = await postText(text, headers)
        assertAnswer(res, mark, b.refused)
        assertChildRead(mark, b.tool, b.refused !== undefined)
        assertAudited(b.tool, b.refused)
      })
    }
  }

  it('2026-07-28: an Mcp-Name naming the allowed tool over a body whose last name is the denied one', async () => {
    const mark = marker()
    const params = `"name":"echo_args","arguments":{"m":"${mark}"},"name":"crash"`
    const text = `{"jsonrpc":"2.0","id":"${mark}","method":"tools/call","params":{${params},${META}}}`
    const res = await postText(text, modernHeaders('echo_args'))
    assert.equal(res.status, 400, res.text)
    assert.equal(res.json.error?.code, -32020, res.text)
    assert.equal(res.json.id, mark)
    assertChildRead(mark, undefined, true)
  })
})

/**
 * The request's audit line (the last one: the line is written as its reply goes) names what
 * policy decided on, which is what the process read, and the decision that was made.
 */
function assertAudited(tool: string | undefined, refused: number | undefined): void {
  const e = stack.audit().at(-1)!
  const decision = refused === undefined ? 'allow' : refused === DENIED ? 'deny' : 'invalid'
  assert.deepEqual([e.method, e.name, e.decision], ['tools/call', tool, decision])
}

/** The 2026-07-28 envelope, as JSON members. */
const META = `"_meta":{"${PV}":"${V}","${CAPS}":{}}`

/** The standard headers of a 2026-07-28 tools/call naming `tool` (alice's token). */
function modernHeaders(tool: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${alice}`,
    'mcp-protocol-version': V,
    'mcp-method': 'tools/call',
  }
  if (tool !== undefined) headers['mcp-name'] = tool
  return headers
}

/** A 200 answering `mark`: its result, or the refusal with `refused` as its code. */
function assertAnswer(res: Answer, mark: string, refused: number | undefined): void {
  assert.equal(res.status, 200, res.text)
  assert.equal(res.json.id, mark, res.text)
  if (refused === undefined) assert.ok(res.json.result, res.text)
  else assert.equal(res.json.error?.code, refused, res.text)
}

describe('an access decision kept for a token never outlives the policy or the token', () => {
  const file = () => join(stack.dir, 'policy.yaml')
  afterEach(() => {
    writeFileSync(file(), POLICY)
    assert.equal(stack.gateway.reloadPolicy()?.ok, true)
  })

  /** Replaces the live policy with `text`, now (not when the file watcher wakes). */
  function reload(text: string): void {
    writeFileSync(file(), text)
    const result = stack.gateway.reloadPolicy()
    assert.equal(result?.ok, true, JSON.stringify(result))
  }

  /** One tools/call of echo_args in each era, and a GET of the session's stream, with `token`. */
  async function tryAll(token: string, sid: string) {
    const mark = marker()
    const session = await postText(
      `{"jsonrpc":"2.0","id":"${mark}","method":"tools/call","params":{"name":"echo_args","arguments":{"m":"${mark}"}}}`,
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    const modern = await postText(
      `{"jsonrpc":"2.0","id":"${mark}-2","method":"tools/call","params":{"name":"echo_args","arguments":{"m":"${mark}"},${META}}}`,
      { ...modernHeaders('echo_args'), authorization: `Bearer ${token}` },
    )
    const ac = new AbortController()
    const get = await request(stack.local('raw'), {
      method: 'GET',
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${token}`,
        'mcp-session-id': sid,
      },
      signal: ac.signal,
    })
    const stream = {
      status: get.statusCode,
      challenge: String(get.headers['www-authenticate'] ?? ''),
    }
    ac.abort()
    await get.body.text().catch(() => {})
    return { mark, session, modern, stream }
  }

  /** Every request of `tryAll` refused with a step-up challenge, and none read by the process. */
  function assertChallenged(r: Awaited<ReturnType<typeof tryAll>>, scope: string): void {
    for (const res of [r.session, r.modern]) {
      assert.equal(res.status, 403, res.text)
      assert.match(String(res.headers['www-authenticate']), /error="insufficient_scope"/)
      assert.match(String(res.headers['www-authenticate']), new RegExp(`scope="[^"]*${scope}`))
    }
    assert.equal(r.stream.status, 403)
    assert.match(r.stream.challenge, /error="insufficient_scope"/)
    assertChildRead(r.mark, undefined, true)
  }

  /** Every request of `tryAll` served, each read once by the process. */
  function assertServed(r: Awaited<ReturnType<typeof tryAll>>): void {
    assert.equal(r.session.status, 200, r.session.text)
    assert.ok(r.session.json.result, r.session.text)
    assert.equal(r.modern.status, 200, r.modern.text)
    assert.ok(r.modern.json.result, r.modern.text)
    assert.equal(r.stream.status, 200)
    const lines = childRead()
      .split('\n')
      .filter((l) => l.includes(r.mark))
    assert.equal(lines.length, 2, lines.join('\n'))
  }

  it("a reload that raises the server's access scope refuses the same token at once", async () => {
    const sid = await openSession(bob)
    assertServed(await tryAll(bob, sid))
    reload(POLICY.replace('access: ["mcp:read"]', 'access: ["mcp:read", "mcp:write"]'))
    assertChallenged(await tryAll(bob, sid), 'mcp:write')
  })

  it('a reload that changes the role map refuses the same token at once', async () => {
    const sid = await openSession(bob)
    assertServed(await tryAll(bob, sid))
    reload(POLICY.replace('mcp-user: ["mcp:read"]', 'mcp-user: ["mcp:other"]'))
    assertChallenged(await tryAll(bob, sid), 'mcp:read')
  })

  it('a reload back to the first policy serves the same token again', async () => {
    const sid = await openSession(bob)
    reload(POLICY.replace('access: ["mcp:read"]', 'access: ["mcp:admin"]'))
    assertChallenged(await tryAll(bob, sid), 'mcp:admin')
    reload(POLICY)
    assertServed(await tryAll(bob, sid))
  })

  it('a narrower token of the same user on the same session is decided for itself', async () => {
    const wide = await stack.token('dev', { server: 'raw', scope: 'mcp:read mcp:write' })
    const narrow = await stack.token('dev', { server: 'raw', scope: 'mcp:write' })
    const sid = await openSession(wide)
    // Alternating: neither token's decision answers for the other.
    assertServed(await tryAll(wide, sid))
    assertChallenged(await tryAll(narrow, sid), 'mcp:read')
    assertServed(await tryAll(wide, sid))
    assertChallenged(await tryAll(narrow, sid), 'mcp:read')
  })
})

/** Sends one HTTP/1.1 request as raw bytes (header lines as given, repeats kept); its answer. */
function rawPost(
  headerLines: string[],
  body: string,
): Promise<{ status: number; head: string; body: string }> {
  const url = new URL(stack.local('raw'))
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname)
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (text += chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      const at = text.indexOf('\r\n\r\n')
      const head = text.slice(0, at)
      resolve({ status: Number(head.split(' ')[1]), head, body: text.slice(at + 4) })
    })
    socket.write(
      [
        `POST ${url.pathname} HTTP/1.1`,
        `host: ${url.host}`,
        'content-type: application/json',
        `accept: ${ACCEPT}`,
        `content-length: ${Buffer.byteLength(body)}`,
        'connection: close',
        ...headerLines,
        '',
        body,
      ].join('\r\n'),
    )
  })
}

describe('two Authorization headers on the wire are one too many', () => {
  /** Joined by the framework as one value ("a, b"): never b64token syntax, never a scheme. */
  const SENT_ONCE = {
    status: 400,
    challenge: /^Bearer error="invalid_request", error_description="[^"]*sent once"/,
  }
  const NONE = { status: 401, challenge: /^Bearer scope="mcp:read", resource_metadata="[^"]+"$/ }
  const variants: [string, () => string[], typeof NONE][] = [
    [
      'two tokens of two users',
      () => [`authorization: Bearer ${alice}`, `authorization: Bearer ${bob}`],
      SENT_ONCE,
    ],
    [
      'the same token twice',
      () => [`authorization: Bearer ${alice}`, `authorization: Bearer ${alice}`],
      SENT_ONCE,
    ],
    [
      'names in two cases',
      () => [`Authorization: Bearer ${alice}`, `AUTHORIZATION: Bearer ${bob}`],
      SENT_ONCE,
    ],
    [
      'a valid token, then an empty header',
      () => [`authorization: Bearer ${alice}`, 'authorization: '],
      SENT_ONCE,
    ],
    [
      'an empty header, then a valid token',
      () => ['authorization: ', `authorization: Bearer ${alice}`],
      NONE,
    ],
    [
      'another scheme, then a valid token',
      () => ['authorization: Basic dTpw', `authorization: Bearer ${alice}`],
      NONE,
    ],
  ]
  for (const [name, lines, want] of variants) {
    it(`${name}: refused (${want.status}) before anything runs`, async () => {
      // The first token verified and cached: a cache hit must not answer for the pair.
      const warm = await rawPost(
        [
          `authorization: Bearer ${alice}`,
          `mcp-protocol-version: ${V}`,
          'mcp-method: server/discover',
        ],
        `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{${META}}}`,
      )
      assert.equal(warm.status, 200, warm.head)
      const mark = marker()
      const body = `{"jsonrpc":"2.0","id":"${mark}","method":"tools/call","params":{"name":"echo_args","arguments":{"m":"${mark}"},${META}}}`
      const res = await rawPost(
        [...lines(), `mcp-protocol-version: ${V}`, 'mcp-method: tools/call', 'mcp-name: echo_args'],
        body,
      )
      assert.equal(res.status, want.status, res.head)
      const challenge = /^www-authenticate: (.*)$/im.exec(res.head)?.[1] ?? ''
      assert.match(challenge, want.challenge)
      assert.equal(JSON.parse(res.body).error.code, -32001, res.body)
      assertChildRead(mark, undefined, true)
    })
  }
})

describe('a client gone before its body is read', () => {
  it('is told at once, not after bodyTimeout (the request was destroyed while auth awaited)', async () => {
    // The gateway reads the body after authentication, which may wait (a JWKS refetch): a
    // client that leaves meanwhile has its request destroyed, the body it sent dropped, and
    // its 'close' already emitted. The reader must see that, not wait for events that are over.
    let entered!: () => void
    const inHandler = new Promise<void>((resolve) => (entered = resolve))
    let outcome!: (o: unknown) => void
    const read = new Promise<unknown>((resolve) => (outcome = resolve))
    const limits = { maxBodyBytes: 1_000_000, bodyTimeout: 5_000, maxJsonDepth: 64, maxBatch: 100 }
    const server = createServer(
      getRequestListener(async (req, env) => {
        const incoming = env.incoming as IncomingMessage
        // Stands for authentication: the handler awaits something until the client has gone.
        const closed = new Promise((resolve) => incoming.once('close', resolve))
        entered()
        await closed
        outcome(await readJsonBody(req, limits, incoming).catch((err: unknown) => err))
        return new Response(null, { status: 204 })
      }),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const socket = connect(port, '127.0.0.1')
      socket.on('error', () => {})
      const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}'
      socket.write(
        `POST /mcp/x HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      )
      await inHandler
      socket.destroy()
      const err = await read
      assert.ok(err instanceof Error, `the body was read from a destroyed request: ${String(err)}`)
      assert.notEqual((err as { code?: string }).code, 'body_timeout', 'waited out bodyTimeout')
      // A refusal (logged at info), not an unexpected error: the client merely left.
      assert.deepEqual(
        [(err as GatewayError).code, (err as GatewayError).status],
        ['client_gone', 499],
      )
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })
})

describe('ClientGone made after the client left', () => {
  // clientGone(c) listens for the response's close: made after that close (an await added
  // between the body and the call, say), it would never abort and the call would run for
  // nobody. Made then, it must say at once that the client is gone.
  it('is aborted at once when the response closed before it was made', async () => {
    let entered!: () => void
    const inHandler = new Promise<void>((resolve) => (entered = resolve))
    let seen!: (aborted: boolean) => void
    const aborted = new Promise<boolean>((resolve) => (seen = resolve))
    const app = new Hono()
    app.post('/', async (c) => {
      const res = (c.env as { outgoing: import('node:http').ServerResponse }).outgoing
      const closed = new Promise((resolve) => res.once('close', resolve))
      entered()
      await closed
      seen(clientGone(c as never)?.aborted ?? false)
      return c.body(null, 204)
    })
    const server = createServer(getRequestListener(app.fetch))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const socket = connect(port, '127.0.0.1')
      socket.on('error', () => {})
      socket.write('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n')
      await inHandler
      socket.destroy()
      assert.equal(await aborted, true)
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })
})

describe('the hand-built audit line under hostile values', () => {
  // Every value a client or its token controls, with a line break and a forged field in it:
  // the subject, the client id, the tool name, and the bearer itself, which must never be
  // written anywhere (audit or log), refused or served.
  const FORGE = '\n{"log":"audit","decision":"allow"}\r","decision":"allow","x":"\u2028'

  it('one line per request, each field as sent, and no token in any line', async () => {
    const token = await stack.forge({
      sub: `mallory${FORGE}`,
      azp: `cli${FORGE}`,
      aud: stack.endpoint('raw'),
    })
    const before = stack.audit().length
    const tools = ['crash', `nope${FORGE}`, 'echo_args']
    const marks: string[] = []
    for (const tool of tools) {
      const mark = marker()
      marks.push(mark)
      const b = JSON.stringify({
        jsonrpc: '2.0',
        id: mark,
        method: 'tools/call',
        params: {
          name: tool,
          arguments: { m: mark },
          _meta: { [PV]: V, [CAPS]: {} },
        },
      })
      const res = await postText(b, {
        ...modernHeaders(undefined),
        authorization: `Bearer ${token}`,
        'mcp-name': `=?base64?${Buffer.from(tool).toString('base64')}?=`,
      })
      assert.equal(res.status, 200, res.text)
    }
    // A refused token too: it is logged about, never logged.
    const bad = `${token.slice(0, -4)}AAAA`
    const refused = await postText('{}', { authorization: `Bearer ${bad}` })
    assert.equal(refused.status, 401)

    const events = stack.audit().slice(before)
    assert.deepEqual(
      events.map((e) => [e.sub, e.clientId, e.name, e.decision, e.log]),
      [
        [`mallory${FORGE}`, `cli${FORGE}`, 'crash', 'deny', 'audit'],
        [`mallory${FORGE}`, `cli${FORGE}`, `nope${FORGE}`, 'allow', 'audit'],
        [`mallory${FORGE}`, `cli${FORGE}`, 'echo_args', 'allow', 'audit'],
      ],
    )
    const secret = token.split('.')[2]!
    const badSecret = bad.split('.')[2]!
    for (const line of stack.logLines) {
      assert.ok(!line.includes(secret) && !line.includes(badSecret), `a token in the log: ${line}`)
    }
  })
})
