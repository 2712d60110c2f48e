// The request body reader (http/body.ts) on Node's own requests, both ways a body reaches it:
// whole before it is asked for (a small body comes with its headers: taken at once) and still
// arriving (read as it comes, within bodyTimeout). Each case runs both ways and must get the
// same answer: the bounds (size, UTF-8, nesting, batch) hold whichever way the bytes came.
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { readJsonBody } from '../../gateway/http/body.js'
import { GatewayError } from '../../gateway/errors.js'

const LIMITS = { maxBodyBytes: 64, bodyTimeout: 10_000, maxJsonDepth: 4, maxBatch: 3 }

type Seen = { body: unknown } | { code: string; status: number; message: string }

/** What the reader made of each request, by its x-case header. */
const seen = new Map<string, (s: Seen & { complete: boolean }) => void>()
let server: Server
let port = 0

before(async () => {
  server = createServer(async (req: IncomingMessage, res) => {
    // As in the gateway, the body is asked for after a wait (authentication): by then a body
    // sent with the headers has been parsed whole.
    await new Promise((r) => setImmediate(r))
    const complete = req.complete
    const headers = new Headers()
    if (req.headers['content-length']) headers.set('content-length', req.headers['content-length'])
    const web = new Request('http://127.0.0.1/', { headers })
    let s: Seen
    try {
      s = { body: await readJsonBody(web, LIMITS, req) }
    } catch (err) {
      assert.ok(err instanceof GatewayError, String(err))
      s = { code: err.code, status: err.status, message: err.message }
    }
    seen.get(String(req.headers['x-case']))?.({ ...s, complete })
    res.writeHead(204, { connection: 'close' }).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as { port: number }).port
})
after(() => new Promise<void>((r) => server.close(() => r())))

/**
 * POSTs `body` (with a content-length, or chunked) and resolves with what the reader made of
 * it: in one write with its headers (`whole`), or headers first and the body a moment later.
 */
async function send(
  name: string,
  body: Buffer,
  o: { whole: boolean; chunked?: boolean },
): Promise<Seen & { complete: boolean }> {
  const result = new Promise<Seen & { complete: boolean }>((r) => seen.set(name, r))
  const framing = o.chunked
    ? 'transfer-encoding: chunked\r\n'
    : `content-length: ${body.length}\r\n`
  const head = Buffer.from(
    `POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-case: ${name}\r\n${framing}\r\n`,
  )
  const payload = o.chunked
    ? Buffer.concat([
        Buffer.from(`${body.length.toString(16)}\r\n`),
        body,
        Buffer.from('\r\n0\r\n\r\n'),
      ])
    : body
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.resume()
  await new Promise((r) => socket.once('connect', r))
  if (o.whole) socket.write(Buffer.concat([head, payload]))
  else {
    socket.write(head)
    await sleep(30)
    socket.write(payload)
  }
  try {
    return await result
  } finally {
    socket.destroy()
    seen.delete(name)
  }
}

const utf8 = (s: string) => Buffer.from(s, 'utf8')
const ping = '{"jsonrpc":"2.0","id":1,"method":"ping"}'

const cases: { name: string; body: Buffer; chunked?: boolean; want: Seen }[] = [
  { name: 'a request', body: utf8(ping), want: { body: JSON.parse(ping) } },
  { name: 'chunked', body: utf8(ping), chunked: true, want: { body: JSON.parse(ping) } },
  {
    name: 'a byte order mark first (dropped, as a TextDecoder drops it)',
    body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8(ping)]),
    want: { body: JSON.parse(ping) },
  },
  {
    name: 'multi-byte characters',
    body: utf8('{"a":"é€😀"}'),
    want: { body: { a: 'é€😀' } },
  },
  ...(
    [
      ['a byte that is never UTF-8', [0x7b, 0x22, 0xff, 0x22, 0x7d]],
      ['an overlong encoding', [0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x7d]],
      ['an encoded surrogate', [0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]],
      ['a truncated sequence at the end', [0x22, 0xe2, 0x82]],
      ['latin-1 text', [0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]],
    ] as const
  ).map(([name, bytes]) => ({
    name,
    body: Buffer.from(bytes),
    want: { code: 'parse_error', status: 400, message: 'the request body is not valid UTF-8' },
  })),
  {
    name: 'empty',
    body: Buffer.alloc(0),
    want: { code: 'parse_error', status: 400, message: 'the request body is not valid JSON' },
  },
  {
    name: 'not JSON',
    body: utf8('{"jsonrpc":'),
    want: { code: 'parse_error', status: 400, message: 'the request body is not valid JSON' },
  },
  {
    name: 'a chunked body past the limit (no length declared)',
    body: utf8(`{"a":"${'x'.repeat(80)}"}`),
    chunked: true,
    want: {
      code: 'body_too_large',
      status: 413,
      message: 'the request body is larger than 64 bytes',
    },
  },
  {
    name: 'nested past the bound',
    body: utf8('[[[[[1]]]]]'),
    want: {
      code: 'invalid_message',
      status: 400,
      message: 'Invalid Request: the body nests deeper than 4 levels',
    },
  },
  { name: 'nested to the bound', body: utf8('[[[[1]]]]'), want: { body: [[[[1]]]] } },
  {
    name: 'an empty batch',
    body: utf8('[]'),
    want: { code: 'invalid_message', status: 400, message: 'Invalid Request: an empty batch' },
  },
  {
    name: 'a batch past the bound',
    body: utf8('[1,2,3,4]'),
    want: {
      code: 'invalid_message',
      status: 400,
      message: 'Invalid Request: a batch of more than 3 messages',
    },
  },
]

describe('readJsonBody on Node requests', () => {
  for (const c of cases)
    for (const whole of [true, false])
      it(`${c.name}: ${whole ? 'arrived whole' : 'still arriving'}`, async () => {
        const got = await send(c.name.replace(/[^a-z]/g, '-'), c.body, {
          whole,
          chunked: c.chunked,
        })
        // The way the bytes came is the one this case says (else it tests the other path twice);
        // an empty body has nothing to wait for.
        assert.equal(got.complete, whole || c.body.length === 0)
        const { complete: _, ...answer } = got
        assert.deepEqual(answer, c.want)
      })
})
