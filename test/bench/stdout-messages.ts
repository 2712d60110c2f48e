// Bench-only: what ordinary stdout traffic costs the gateway, the counterpart of
// stdout-framing.ts (one line in tiny writes). Two runs through spawnChild, as every owner uses
// it, with a real child (node -e):
// - `burst`: the child writes MESSAGES_COUNT small messages, each in one write(2); the
//   gateway's reads and CPU per message.
// - `echo`: the gateway sends MESSAGES_ROUNDS requests one after the other, the child answers
//   each as it reads it (one write each); round-trip median and p99 in microseconds.
// `node dist/test/bench/stdout-messages.js` (MESSAGES_COUNT=200000, MESSAGES_ROUNDS=5000).
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { spawnChild } from '../../gateway/bridge/child.js'
import { FrameReader } from '../../gateway/bridge/stdio-frames.js'
import { configSchema } from '../../gateway/config/schema.js'

const count = Number(process.env.MESSAGES_COUNT ?? 200_000)
const rounds = Number(process.env.MESSAGES_ROUNDS ?? 5000)

const burst = `
const fs = require('node:fs')
const n = Number(process.argv[1])
for (let i = 0; i < n; i++) fs.writeSync(1, '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":' + i + '}}\\n')
`

const echo = `
const fs = require('node:fs')
let rest = ''
process.stdin.on('data', (c) => {
  const lines = (rest + c).split('\\n')
  rest = lines.pop()
  for (const l of lines) fs.writeSync(1, JSON.stringify({ jsonrpc: '2.0', id: JSON.parse(l).id, result: { content: [{ type: 'text', text: 'ok' }] } }) + '\\n')
})
`

let reads = 0
const push = FrameReader.prototype.push
FrameReader.prototype.push = function (chunk: Buffer) {
  reads++
  return push.call(this, chunk)
}

function config(script: string, arg: string) {
  return configSchema.parse({
    servers: { f: { command: process.execPath, args: ['-e', script, arg] } },
  }).servers.f!
}

const silent = () => pino({ level: 'silent' }, new Writable({ write: (_c, _e, done) => done() }))

async function runBurst(): Promise<void> {
  reads = 0
  let got = 0
  const c0 = process.cpuUsage()
  const child = await spawnChild(config(burst, String(count)), silent())
  child.onmessage = () => got++
  await child.exited
  const cpu = process.cpuUsage(c0)
  const cpuUs = cpu.user + cpu.system
  console.log(
    JSON.stringify({
      run: 'burst',
      messages: count,
      got,
      reads,
      gatewayCpuMs: Math.round(cpuUs / 1000),
      gatewayCpuUsPerMessage: Number((cpuUs / count).toFixed(2)),
    }),
  )
}

async function runEcho(): Promise<void> {
  const child = await spawnChild(config(echo, ''), silent())
  const times: number[] = []
  let answered: (() => void) | undefined
  child.onmessage = () => answered?.()
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint()
    const got = new Promise<void>((resolve) => (answered = resolve))
    await child.send({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo' } })
    await got
    times.push(Number(process.hrtime.bigint() - t0) / 1000)
  }
  await child.close()
  times.sort((a, b) => a - b)
  const at = (q: number) => Math.round(times[Math.floor(q * (times.length - 1))]!)
  console.log(JSON.stringify({ run: 'echo', rounds, p50Us: at(0.5), p99Us: at(0.99) }))
}

await runBurst()
await runEcho()
