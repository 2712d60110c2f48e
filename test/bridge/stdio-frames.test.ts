// The stdio framing, both ways: hostile and awkward stdout (split anywhere, several messages a
// chunk, CRLF, blank lines, multi-byte characters cut in two, lines that are not JSON or not
// JSON-RPC, a line past the cap), and stdin writes joined per loop turn with their promises kept.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import {
  FrameReader,
  FrameWriter,
  OVERSIZE_EDGE_BYTES,
  type Frame,
} from '../../gateway/bridge/stdio-frames.js'
import { oversizeReplyId } from '../../gateway/bridge/oversize-id.js'

const msg = (id: number, extra: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  result: { n: id, ...extra },
})
const line = (v: unknown) => `${JSON.stringify(v)}\n`

/** Every frame of `text` fed in the given chunk sizes (bytes). */
function frames(text: string | Buffer, sizes: number[] = [], max = 1024): Frame[] {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text
  const r = new FrameReader(max)
  const out: Frame[] = []
  let at = 0
  for (const n of sizes) {
    out.push(...r.push(bytes.subarray(at, at + n)))
    at += n
  }
  out.push(...r.push(bytes.subarray(at)))
  return out
}
const messages = (fs: Frame[]) => fs.flatMap((f) => ('message' in f ? [f.message] : []))

describe('FrameReader', () => {
  const text =
    line(msg(1)) +
    line(msg(2, { s: 'é😀' })) +
    line({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1 } })
  const expected = [
    msg(1),
    msg(2, { s: 'é😀' }),
    { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1 } },
  ]

  it('gives the same messages however the bytes are split, down to one byte at a time', () => {
    const bytes = Buffer.from(text)
    assert.deepEqual(messages(frames(bytes)), expected)
    for (let cut = 1; cut < bytes.length; cut++)
      assert.deepEqual(messages(frames(bytes, [cut])), expected, `cut at ${cut}`)
    assert.deepEqual(messages(frames(bytes, Array(bytes.length).fill(1))), expected)
  })

  const cases: { name: string; input: string; want: (Frame | 'message')[] }[] = [
    { name: 'CRLF line ends', input: `${JSON.stringify(msg(1))}\r\n`, want: ['message'] },
    {
      name: 'blank and whitespace lines',
      input: `\n \n\t\r\n${line(msg(1))}\n`,
      want: ['message'],
    },
    { name: 'not JSON', input: 'hello world\n', want: [{ skipped: 'not JSON' }] },
    { name: 'half a JSON object', input: '{"jsonrpc":"2.0",\n', want: [{ skipped: 'not JSON' }] },
    { name: 'a JSON string', input: '"x"\n', want: [{ skipped: 'not JSON-RPC' }] },
    { name: 'null', input: 'null\n', want: [{ skipped: 'not JSON-RPC' }] },
    {
      name: 'a batch (stdio frames one message a line)',
      input: `[${JSON.stringify(msg(1))}]\n`,
      want: [{ skipped: 'not JSON-RPC' }],
    },
    {
      name: 'no jsonrpc member',
      input: '{"id":1,"result":{}}\n',
      want: [{ skipped: 'not JSON-RPC' }],
    },
    {
      name: 'jsonrpc 1.0',
      input: '{"jsonrpc":"1.0","id":1,"result":{}}\n',
      want: [{ skipped: 'not JSON-RPC' }],
    },
    {
      name: 'an object id',
      input: '{"jsonrpc":"2.0","id":{},"result":{}}\n',
      want: [{ skipped: 'not JSON-RPC' }],
    },
    {
      name: 'a boolean id',
      input: '{"jsonrpc":"2.0","id":true,"method":"x"}\n',
      want: [{ skipped: 'not JSON-RPC' }],
    },
    {
      name: 'a response without result or error',
      input: '{"jsonrpc":"2.0","id":1}\n',
      want: [{ skipped: 'not JSON-RPC' }],
    },
    {
      name: 'a bad line between good ones',
      input: `${line(msg(1))}oops\n${line(msg(2))}`,
      want: ['message', { skipped: 'not JSON' }, 'message'],
    },
    {
      name: 'an unfinished last line (kept for later)',
      input: `${line(msg(1))}{"jsonrpc"`,
      want: ['message'],
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      const got = frames(c.input)
      assert.equal(got.length, c.want.length)
      c.want.forEach((w, i) =>
        w === 'message' ? assert.ok('message' in got[i]!) : assert.deepEqual(got[i], w),
      )
    })
  }

  it('a line of exactly the cap is read; one byte more is dropped whole, in one chunk or split, and the reader goes on', () => {
    const exact = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { pad: '' } })
    const max = exact.length + 10
    const fits = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { pad: 'x'.repeat(10) } })
    assert.equal(fits.length, max)
    assert.equal(messages(frames(`${fits}\n`, [], max)).length, 1)
    const over = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { pad: 'x'.repeat(11) } })
    const dropped = { skipped: 'too large', bytes: max + 1, reply: 1 }
    const after = `${over}\n${line(msg(3))}`
    for (let cut = 1; cut < after.length; cut++)
      assert.deepEqual(frames(after, [cut], max), [dropped, { message: msg(3) }], `cut at ${cut}`)
    assert.deepEqual(frames(after, Array(after.length).fill(1), max), [
      dropped,
      { message: msg(3) },
    ])
    // No newline for a long time: nothing comes out, the line's end is the end of what is dropped.
    const r = new FrameReader(max)
    assert.deepEqual(r.push(Buffer.from('x'.repeat(max))), [])
    for (let i = 0; i < 100; i++) assert.deepEqual(r.push(Buffer.from('x'.repeat(1000))), [])
    assert.deepEqual(r.push(Buffer.from(`\n${line(msg(3))}`)), [
      { skipped: 'too large', bytes: max + 100_000 },
      { message: msg(3) },
    ])
  })

  it('a line far past the cap holds at most the cap, then only its two ends', () => {
    const max = 64 * 1024
    const r = new FrameReader(max)
    const inside = r as unknown as {
      held: number
      over?: { head: Buffer; tail: Buffer }
    }
    const chunk = Buffer.alloc(64 * 1024, 0x78)
    r.push(Buffer.from('{"result":{"text":"'))
    let most = 0
    for (let i = 0; i < 300; i++) {
      assert.deepEqual(r.push(chunk), [])
      const held =
        inside.held + (inside.over ? inside.over.head.length + inside.over.tail.length : 0)
      most = Math.max(most, held)
    }
    assert.ok(most <= max, `held ${most} bytes`)
    assert.equal(inside.over!.head.length, OVERSIZE_EDGE_BYTES)
    assert.equal(inside.over!.tail.length, OVERSIZE_EDGE_BYTES)
    // The ends are copies: neither keeps the 64 KiB chunk it was cut from.
    assert.notEqual(inside.over!.head.buffer, chunk.buffer)
    assert.notEqual(inside.over!.tail.buffer, chunk.buffer)
    // What holds them while the line goes on is memory of their own, 4 KiB each, not a slice of
    // Node's shared pool that it would keep alive (its slabs are 64 KiB since Node 24).
    const kept = inside.over as unknown as { first: Buffer; ring: Buffer }
    assert.equal(kept.first.buffer.byteLength, OVERSIZE_EDGE_BYTES)
    assert.equal(kept.ring.buffer.byteLength, OVERSIZE_EDGE_BYTES)
    assert.deepEqual(r.push(Buffer.from('"}]},"jsonrpc":"2.0","id":"s1f"}\r\n')), [
      // A CRLF's \r is part of the line.
      { skipped: 'too large', bytes: 19 + 300 * chunk.length + 33, reply: 's1f' },
    ])
  })
})

/** Bytes copied by Buffer.concat and Buffer#copy while `f` runs. */
function copiedBy(f: () => void): number {
  const concat = Buffer.concat
  const copy = Buffer.prototype.copy
  let bytes = 0
  Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
    const out = concat(list, total)
    bytes += out.length
    return out
  }) as typeof Buffer.concat
  Buffer.prototype.copy = function (this: Buffer, ...args: Parameters<Buffer['copy']>) {
    const n = copy.apply(this, args)
    bytes += n
    return n
  }
  try {
    f()
  } finally {
    Buffer.concat = concat
    Buffer.prototype.copy = copy
  }
  return bytes
}

describe('FrameReader: a line written a few bytes at a time costs its bytes, not a copy or an object per piece', () => {
  const big = (n: number) =>
    Buffer.from(`{"jsonrpc":"2.0","id":7,"result":{"t":"${'x'.repeat(n)}"}}`)
  const inside = (r: FrameReader) => r as unknown as { chunks: Buffer[]; held: number }

  for (const piece of [1, 7, 64, 1000]) {
    it(`a line that fits, in ${piece}-byte pieces: a few pieces held, each byte copied at most twice`, () => {
      const bytes = big(200_000)
      const r = new FrameReader(1 << 20)
      let most = 0
      let out: Frame[] = []
      const copied = copiedBy(() => {
        for (let at = 0; at < bytes.length; at += piece) {
          assert.deepEqual(r.push(bytes.subarray(at, at + piece)), [])
          most = Math.max(most, inside(r).chunks.length)
        }
        out = r.push(Buffer.from('\n'))
      })
      assert.equal(out.length, 1)
      assert.equal((out[0] as { message: { id: number } }).message.id, 7)
      // One piece per 16 KiB block, not one per write (1 byte each: 200,000 Buffers held).
      assert.ok(most <= Math.ceil(bytes.length / (16 * 1024)) + 1, `${most} pieces held`)
      assert.ok(copied <= 2 * bytes.length, `${copied} bytes copied for ${bytes.length}`)
      // A piece held keeps no more than its block: what the line holds is about its length.
      const kept = new Set(inside(r).chunks.map((c) => c.buffer))
      assert.equal(kept.size, 0, 'nothing held once the line is read')
    })

    it(`a line past the cap, in ${piece}-byte pieces: at most its piece and two edges copied per piece`, () => {
      const max = 64 * 1024
      const bytes = big(300_000)
      const r = new FrameReader(max)
      let out: Frame[] = []
      const copied = copiedBy(() => {
        for (let at = 0; at < bytes.length; at += piece)
          assert.deepEqual(r.push(bytes.subarray(at, at + piece)), [])
        out = r.push(Buffer.from('\n'))
      })
      assert.deepEqual(out, [{ skipped: 'too large', bytes: bytes.length, reply: 7 }])
      // Crossing the cap copies the held part's ends once; each piece after it, its own bytes.
      // (Before: the 4 KiB tail copied again for every piece, 4 KiB per byte written.)
      assert.ok(
        copied <= 3 * bytes.length + 4 * OVERSIZE_EDGE_BYTES,
        `${copied} bytes copied for ${bytes.length}`,
      )
    })
  }

  it('a line held across reads keeps none of the larger reads its first piece came from', () => {
    const r = new FrameReader(1 << 20)
    // A read of 64 KiB whose last 10 bytes start a line.
    const read = Buffer.from(`${line(msg(1))}${' '.repeat(65_000)}\n`)
    const start = Buffer.concat([read, Buffer.from('{"jsonrpc"')])
    assert.equal(r.push(start).length, 1)
    for (const c of inside(r).chunks)
      assert.ok(c.buffer.byteLength <= 16 * 1024, `${c.buffer.byteLength}`)
    // The block the piece was copied into, kept while the process lives, is memory of its own:
    // 16 KiB, not a slab of Node's pool (64 KiB since Node 24) that it would keep alive.
    const { block } = r as unknown as { block: Buffer }
    assert.equal(block.buffer.byteLength, 16 * 1024)
    assert.deepEqual(r.push(Buffer.from(':"2.0","id":2,"result":{}}\n')), [
      { message: { jsonrpc: '2.0', id: 2, result: {} } },
    ])
  })
})

/** A seeded generator (mulberry32): the same cases every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// Two caps: lines of a few kB (pieces copied into one block) and of a 100 kB (pieces of a whole
// read kept as views between copied ones, blocks filled and replaced).
for (const max of [10_000, 100_000])
  describe(`FrameReader: fuzz, any cut of any stream reads as its lines do whole (cap ${max})`, () => {
    /** One line: a message, an oversize reply (id at either end), a bad line, blanks. */
    const lineOf = (next: () => number, i: number): string => {
      const pad = (n: number) => 'y'.repeat(n)
      switch (Math.floor(next() * 7)) {
        case 0:
          return JSON.stringify(msg(i, { s: pad(Math.floor(next() * 200)) }))
        case 1:
          return JSON.stringify(msg(i, { s: pad(Math.floor(next() * (max + 200))) }))
        case 2:
          return `{"result":{"t":"${pad(max + Math.floor(next() * 30_000))}"},"jsonrpc":"2.0","id":${i}}`
        case 3:
          return `{"jsonrpc":"2.0","id":"s${i}","result":{"t":"${pad(max + Math.floor(next() * 9000))}"}}\r`
        case 4:
          return `${'é😀'.repeat(Math.floor(next() * 4000))}`
        case 5:
          return ' \t'
        default:
          return JSON.stringify({
            jsonrpc: '2.0',
            method: 'notifications/progress',
            params: { n: i },
          })
      }
    }
    /** What a line read whole gives: the reference. */
    const whole = (l: Buffer): Frame[] => {
      if (l.length > max) {
        const reply = oversizeReplyId(
          l.subarray(0, OVERSIZE_EDGE_BYTES),
          l.subarray(-OVERSIZE_EDGE_BYTES),
        )
        return [
          { skipped: 'too large', bytes: l.length, ...(reply !== undefined ? { reply } : {}) },
        ]
      }
      return new FrameReader(max).push(Buffer.concat([l, Buffer.from('\n')]))
    }

    for (let seed = 1; seed <= 25; seed++)
      it(`seed ${seed}`, () => {
        const next = random(seed)
        const lines = Array.from({ length: 1 + Math.floor(next() * 12) }, (_, i) =>
          Buffer.from(lineOf(next, i)),
        )
        const want = lines.flatMap(whole)
        const bytes = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')]))
        const r = new FrameReader(max)
        const got: Frame[] = []
        // Cuts: runs of tiny pieces, middling ones, a whole pipe read, cuts inside characters.
        for (let at = 0; at < bytes.length; ) {
          const kind = next()
          const n =
            kind < 0.4
              ? 1 + Math.floor(next() * 8)
              : kind < 0.8
                ? Math.floor(next() * 5000)
                : 65_536
          got.push(...r.push(bytes.subarray(at, at + n)))
          at += n
        }
        assert.deepEqual(got, want)
      })
  })

/** A stdin that counts writes; `full` makes write() report a full pipe. */
function sink(o: { full?: boolean } = {}) {
  const writes: string[] = []
  // A full pipe: the write completes later, so write() reports the buffer over its mark.
  const w = new Writable({
    write(chunk, _enc, cb) {
      writes.push(String(chunk))
      if (o.full) setImmediate(cb)
      else cb()
    },
    highWaterMark: o.full ? 1 : 1 << 20,
  })
  return { w, writes }
}

describe('FrameReader: nesting depth', () => {
  const nested = (depth: number, open = '[', close = ']') =>
    `{"jsonrpc":"2.0","id":1,"result":{"v":${open.repeat(depth - 2)}1${close.repeat(depth - 2)}}}`
  const read = (text: string, depth = 16) => {
    const r = new FrameReader(1 << 20, depth)
    return r.push(Buffer.from(`${text}\n`))
  }
  for (const [what, text, ok] of [
    ['exactly at the bound (arrays)', nested(16), true],
    ['one past the bound (arrays)', nested(17), false],
    ['one past the bound (objects)', nested(17, '{"a":', '}'), false],
    ['20,000 deep', nested(20_000), false],
    [
      'brackets inside a string do not count',
      `{"jsonrpc":"2.0","id":1,"result":{"s":"${'['.repeat(100)}"}}`,
      true,
    ],
    [
      'an escaped quote does not end the string',
      `{"jsonrpc":"2.0","id":1,"result":{"s":"\\"${'['.repeat(100)}"}}`,
      true,
    ],
    ['a deep line that is not JSON is skipped as deep', `${'['.repeat(100)}`, false],
  ] as const)
    it(`${what}: ${ok ? 'parsed' : 'skipped, nested too deep'}`, () => {
      const out = read(text)
      if (ok) assert.ok('message' in out[0]!, JSON.stringify(out))
      else assert.deepEqual(out, [{ skipped: 'nested too deep' }])
    })
  it('later lines still parse after a deep one', () => {
    const r = new FrameReader(1 << 20, 16)
    const out = r.push(Buffer.from(`${nested(20_000)}\n${line(msg(2))}`))
    assert.deepEqual(out[0], { skipped: 'nested too deep' })
    assert.deepEqual(messages(out), [msg(2)])
  })
})

describe('FrameWriter', () => {
  it("a turn's first message goes out at once, the rest of the turn as one write, in order", async () => {
    const { w, writes } = sink()
    const fw = new FrameWriter(w)
    const lines = (text: string) =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    const first = fw.send(msg(1) as JSONRPCMessage)
    // Before the turn ends: a lone request is not held back by what its turn does next.
    assert.deepEqual(writes.map(lines), [[msg(1)]])
    await Promise.all([first, ...[2, 3].map((i) => fw.send(msg(i) as JSONRPCMessage))])
    assert.deepEqual(writes.map(lines), [[msg(1)], [msg(2), msg(3)]])
    const later = fw.send(msg(4) as JSONRPCMessage)
    assert.equal(writes.length, 3, 'a later turn: its first message at once')
    await later
    await new Promise((r) => setImmediate(r))
    assert.equal(writes.length, 3, 'a turn with one message writes once')
  })

  it("several writers' turns end together, each writer's rest in one write of its own", async () => {
    const a = sink()
    const b = sink()
    const fa = new FrameWriter(a.w)
    const fb = new FrameWriter(b.w)
    const immediates = countImmediates()
    try {
      const sent = [fa.send(msg(1) as JSONRPCMessage), fb.send(msg(2) as JSONRPCMessage)]
      sent.push(fa.send(msg(3) as JSONRPCMessage), fb.send(msg(4) as JSONRPCMessage))
      sent.push(fb.send(msg(5) as JSONRPCMessage))
      // One turn's end for both writers.
      assert.equal(immediates.count, 1)
      await Promise.all(sent)
    } finally {
      immediates.restore()
    }
    const ids = (writes: string[]) =>
      writes.map((t) =>
        t
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l).id),
      )
    assert.deepEqual(ids(a.writes), [[1], [3]])
    assert.deepEqual(ids(b.writes), [[2], [4, 5]])
    // The next turn starts afresh for each: its first message at once.
    const next = fb.send(msg(6) as JSONRPCMessage)
    assert.deepEqual(ids(b.writes).at(-1), [6])
    await next
  })

  it('a full pipe: the promise waits for drain', async () => {
    const { w } = sink({ full: true })
    const fw = new FrameWriter(w)
    const order: string[] = []
    w.once('drain', () => order.push('drain'))
    await fw.send(msg(1) as JSONRPCMessage).then(() => order.push('sent'))
    assert.deepEqual(order, ['drain', 'sent'])
  })

  it('a closed stdin refuses at once, and one closed before the turn ends refuses what waited', async () => {
    const { w, writes } = sink()
    const fw = new FrameWriter(w)
    const taken = fw.send(msg(1) as JSONRPCMessage)
    const waiting = fw.send(msg(2) as JSONRPCMessage)
    w.destroy()
    await taken // written before the close
    await assert.rejects(waiting, /not running/)
    await assert.rejects(fw.send(msg(3) as JSONRPCMessage), /not running/)
    assert.equal(writes.length, 1)
  })

  it('a stdin that closes while the pipe is full refuses what waited for drain', async () => {
    const w = new Writable({
      write(_c, _e, _cb) {
        /* never done: the pipe stays full */
      },
      highWaterMark: 1,
    })
    const fw = new FrameWriter(w)
    const p = fw.send(msg(1) as JSONRPCMessage)
    await new Promise((r) => setImmediate(r))
    w.destroy()
    await assert.rejects(p, /not running/)
  })
})

describe('FrameWriter: sent means written, not taken by write()', () => {
  // Each a stream whose write() returns true (under its mark) and whose write then ends.
  const cases: {
    name: string
    /** How the stream ends the write it was given. */
    end: (w: Writable, cb: (err?: Error | null) => void) => void
    sent: boolean
  }[] = [
    { name: 'written later', end: (_w, cb) => setImmediate(cb), sent: true },
    {
      name: 'failed later (EPIPE: the process closed its stdin or exited)',
      end: (_w, cb) => setImmediate(() => cb(Object.assign(new Error('EPIPE'), { code: 'EPIPE' }))),
      sent: false,
    },
    {
      // Node reports a pipe write cut short by the stream's close as done.
      name: 'reported done after the stream was destroyed (the exit closed stdin first)',
      end: (w, cb) => {
        w.destroy()
        setImmediate(cb)
      },
      sent: false,
    },
  ]
  for (const c of cases)
    it(`${c.name}: ${c.sent ? 'resolves once written' : 'refused'}`, async () => {
      let ended = false
      const w: Writable = new Writable({
        write(_chunk, _enc, cb) {
          c.end(w, (err) => {
            ended = true
            cb(err)
          })
        },
        highWaterMark: 1 << 20,
      })
      w.on('error', () => {})
      const fw = new FrameWriter(w)
      const outcomes: string[] = []
      const watch = (p: Promise<void>, name: string) =>
        p.then(
          () => void outcomes.push(`${name} sent`),
          (err: Error) => void outcomes.push(`${name} ${err.message}`),
        )
      const first = watch(fw.send(msg(1) as JSONRPCMessage), 'first')
      await Promise.resolve()
      assert.deepEqual(outcomes, [], 'nothing settled when write() returned')
      // Behind the first, in the next turn: write() takes it into the stream's buffer.
      await new Promise((r) => setImmediate(r))
      const behind = w.destroyed ? undefined : watch(fw.send(msg(2) as JSONRPCMessage), 'behind')
      await Promise.all([first, behind])
      assert.equal(ended, true)
      const how = c.sent ? 'sent' : 'the MCP server process is not running'
      assert.deepEqual(outcomes, [`first ${how}`, ...(behind ? [`behind ${how}`] : [])])
    })

  it('a real process not reading its stdin, then killed: what was in its pipe was sent, what waited behind was not', async () => {
    const proc = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60000)'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    })
    await new Promise((r) => proc.once('spawn', r))
    proc.stdin.on('error', () => {})
    try {
      const fw = new FrameWriter(proc.stdin)
      const sent: Promise<void>[] = []
      const filler = (id: number) => msg(id, { pad: 'x'.repeat(1000) }) as JSONRPCMessage
      // One message a turn (each written at once) until one waits: the pipe is full.
      while (proc.stdin.writableLength === 0 && sent.length < 100_000) {
        sent.push(fw.send(filler(sent.length)))
        await new Promise((r) => setImmediate(r))
      }
      // Partly in the pipe; one more waits behind it. write() took both (under its mark).
      sent.push(fw.send(filler(sent.length)))
      assert.ok(proc.stdin.writableLength < proc.stdin.writableHighWaterMark)
      proc.kill('SIGKILL')
      const outcomes = await Promise.allSettled(sent)
      const refused = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [i] : []))
      assert.deepEqual(refused, [sent.length - 2, sent.length - 1])
    } finally {
      proc.kill('SIGKILL')
    }
  })
})

/** Counts the `setImmediate` calls made until `restore`. */
function countImmediates(): { count: number; restore: () => void } {
  const real = globalThis.setImmediate
  const counter = {
    count: 0,
    restore: () => void (globalThis.setImmediate = real),
  }
  globalThis.setImmediate = ((...args: Parameters<typeof setImmediate>) => {
    counter.count++
    return real(...args)
  }) as typeof setImmediate
  return counter
}
