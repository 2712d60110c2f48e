// Bench-only: what a server process's stdout costs the gateway when it writes one line in tiny
// pieces. A real child (node -e) writes FRAMING_MB megabytes with no newline in FRAMING_CHUNK-
// byte writes, then a valid reply; the gateway side is spawnChild, as every owner uses it. It
// prints, per chunk size: the reads the gateway saw (chunks), wall time, the gateway's CPU per
// MB (and the kernel's part of it), its longest event-loop stall, its RSS growth, and that the
// valid line after came through.
// `node dist/test/bench/stdout-framing.js` (FRAMING_CHUNKS="1,64,1024,65536", FRAMING_MB=100,
// FRAMING_MAX_MESSAGE_BYTES: the cap, default the gateway's).
import { Writable } from 'node:stream'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { pino } from 'pino'
import { spawnChild } from '../../gateway/bridge/child.js'
import { FrameReader } from '../../gateway/bridge/stdio-frames.js'
import { configSchema } from '../../gateway/config/schema.js'

const sizes = (process.env.FRAMING_CHUNKS ?? '1,64,1024,65536').split(',').map(Number)
const mb = Number(process.env.FRAMING_MB ?? 100)
const cap = process.env.FRAMING_MAX_MESSAGE_BYTES

// The child: `total` bytes of a JSON string in `n`-byte writes (each one write(2)), then the end
// of that reply and a valid one after it.
const writer = `
const fs = require('node:fs')
const [n, total] = process.argv.slice(1).map(Number)
const head = '{"jsonrpc":"2.0","id":1,"result":{"t":"'
fs.writeSync(1, head)
const piece = Buffer.alloc(n, 0x78)
for (let sent = head.length; sent < total; sent += n) fs.writeSync(1, piece)
fs.writeSync(1, '"}}\\n{"jsonrpc":"2.0","id":2,"result":{}}\\n')
`

// Counts the reads handed to the reader (one per 'data' event).
let reads = 0
const push = FrameReader.prototype.push
FrameReader.prototype.push = function (chunk: Buffer) {
  reads++
  return push.call(this, chunk)
}

async function run(n: number): Promise<void> {
  const total = Math.round(mb * 1024 * 1024)
  const config = configSchema.parse({
    servers: {
      f: {
        command: process.execPath,
        args: ['-e', writer, String(n), String(total)],
        ...(cap !== undefined ? { maxMessageBytes: Number(cap) } : {}),
      },
    },
  }).servers.f!
  const sink = new Writable({ write: (_c, _e, done) => done() })
  reads = 0
  globalThis.gc?.()
  const rss0 = process.memoryUsage().rss
  let rssMax = rss0
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, process.memoryUsage().rss)
  }, 50)
  const stalls = monitorEventLoopDelay({ resolution: 10 })
  stalls.enable()
  const t0 = process.hrtime.bigint()
  const c0 = process.cpuUsage()
  const child = await spawnChild(config, pino({ level: 'silent' }, sink))
  const got: unknown[] = []
  child.onmessage = (m) => got.push('result' in m ? 'result' : 'error' in m ? m.error : m)
  await child.exited
  const cpu = process.cpuUsage(c0)
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  stalls.disable()
  clearInterval(sampler)
  const cpuMs = (cpu.user + cpu.system) / 1000
  console.log(
    JSON.stringify({
      chunkBytes: n,
      mb,
      reads,
      bytesPerRead: Math.round(total / reads),
      wallMs: Math.round(ms),
      gatewayCpuMs: Math.round(cpuMs),
      gatewayCpuUsPerMb: Math.round((cpuMs * 1000) / mb),
      // The kernel's part: a pipe's reads cost it per write(2) read, however few the reads.
      gatewaySysUsPerMb: Math.round(cpu.system / mb),
      longestStallMs: Math.round(stalls.max / 1e6),
      rssGrowthMb: Math.round((rssMax - rss0) / 1048576),
      after: got,
    }),
  )
}

for (const n of sizes) await run(n)
