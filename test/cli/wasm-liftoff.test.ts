// `mcp-edge serve` compiles WebAssembly with V8's baseline compiler only (gateway/wasm-liftoff.ts):
// TurboFan's compilation zone for undici's parser made glibc raise its malloc thresholds for the
// rest of the process. A real serving process, started with V8's testing mask that compiles a
// module's first function with TurboFan: a module it compiles once it is listening gets Liftoff
// code all the same. Asked after start-up through a preloaded probe (SIGUSR2), so the answer is
// the flag the serving process set, not the command line's.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, describe, it } from 'node:test'
import { SERVERS_DIR } from '../helpers/stack.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-wasm-liftoff-'))
const running: ChildProcess[] = []
after(() => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

// (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
const ADD_WASM = [
  0, 97, 115, 109, 1, 0, 0, 0, 1, 7, 1, 96, 2, 127, 127, 1, 127, 3, 2, 1, 0, 7, 7, 1, 3, 97, 100,
  100, 0, 0, 10, 9, 1, 7, 0, 32, 0, 32, 1, 106, 11,
]
// On SIGUSR2: compiles the module (eagerly: --no-wasm-lazy-compilation), calls it once, and
// writes which compiler made its code. `%` natives parse in a Function under
// --allow-natives-syntax.
const PROBE = `
const tier = new Function('f', 'return %IsTurboFanFunction(f) ? "turbofan" : %IsLiftoffFunction(f) ? "liftoff" : "none"')
process.on('SIGUSR2', () => {
  const module = new WebAssembly.Module(new Uint8Array(${JSON.stringify(ADD_WASM)}))
  const add = new WebAssembly.Instance(module).exports.add
  process.stderr.write('wasm-tier ' + add(1, 2) + ' ' + tier(add) + '\\n')
})
`
const V8_TESTING = [
  '--allow-natives-syntax',
  '--no-wasm-lazy-compilation',
  '--wasm-tier-mask-for-testing=1',
]

/** Starts node with the probe and `args`; resolves the probe's answer once `ready` is seen. */
async function tierAfter(args: string[], ready: RegExp): Promise<string> {
  const probe = join(dir, 'probe.mjs')
  writeFileSync(probe, PROBE)
  const p = spawn(process.execPath, [...V8_TESTING, '--import', probe, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.push(p)
  try {
    const lines = createInterface({ input: p.stdout! })
    const errLines = createInterface({ input: p.stderr! })
    const answer = new Promise<string>((resolve) =>
      errLines.on('line', (l) => l.startsWith('wasm-tier ') && resolve(l.slice(10))),
    )
    await new Promise<void>((resolve, reject) => {
      lines.on('line', (l) => ready.test(l) && resolve())
      p.once('exit', (code) => reject(new Error(`exited ${code} before ${ready}`)))
    })
    p.kill('SIGUSR2')
    return await answer
  } finally {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM')
      await once(p, 'exit')
    }
  }
}

describe('serve: WebAssembly stays on Liftoff', () => {
  it('a module compiled after start-up gets Liftoff code, the testing mask notwithstanding', async () => {
    const config = join(dir, 'gateway.yaml')
    writeFileSync(
      config,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        servers: {
          echo: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')], mode: 'shared' },
        },
        log: { level: 'info', audit: 'off' },
      }),
    )
    const args = [MAIN, 'serve', '--config', config, '--insecure-no-auth']
    assert.equal(await tierAfter(args, /"msg":"listening"/), '3 liftoff')
  })

  it('without the gateway the same probe gets TurboFan code (the mask works)', async () => {
    const script = "console.log('up'); setInterval(() => {}, 1000)"
    assert.equal(await tierAfter(['-e', script], /^up$/), '3 turbofan')
  })
})
