// `mcp-edge serve` stopped by a signal ends what its servers started (each server leads a process
// group of its own, bridge/child.ts): SIGTERM to the gateway alone (docker stop, systemd), and
// SIGINT to the gateway's whole group as a terminal's Ctrl-C sends it (the servers, in groups
// of their own, do not get it: the gateway stops them). Each server (servers/holder.js, a
// warm pool) starts a helper holding none of its pipes, its pid in a file. Every wait is for an
// event or a pid to be gone.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, it } from 'node:test'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'
import { gone, pidsIn } from '../helpers/pids.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const POLICIES = fileURLToPath(new URL('../../../policies/', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'cli-process-groups-'))

const left: number[] = []
afterEach(() => {
  for (const pid of left.splice(0))
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
})

/** Starts `serve` leading a process group of its own (a terminal's job); stops it with `signal`. */
async function serveAndStop(name: string, stop: (pid: number) => void) {
  const pids = join(dir, `${name}.pids`)
  writeFileSync(pids, '')
  const config = join(dir, `${name}.yaml`)
  const holder = (count: number) => `
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(join(SERVERS_DIR, 'holder.js'))}]
    pool: { min: ${count} }
    stopGrace: 200
    env: { HOLDER_PIDS_FILE: ${JSON.stringify(pids)}, HOLDER_START_HELPER: "1" }`
  writeFileSync(
    config,
    `listen: { port: 0 }
devIdp: { port: 0 }
servers:
  one:${holder(1)}
  two:${holder(2)}
policies: ${JSON.stringify(POLICIES)}
`,
  )
  const gateway = spawn(process.execPath, [MAIN, 'serve', '--config', config, '--dev-idp'], {
    env: { ...process.env, MCP_EDGE_DEV_IDP_STATE: join(dir, `${name}-devidp.json`) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  left.push(gateway.pid!)
  let stderr = ''
  gateway.stderr!.on('data', (d) => (stderr += d))
  const msgs: unknown[] = []
  createInterface({ input: gateway.stdout! }).on('line', (l) => msgs.push(JSON.parse(l).msg))
  const closed = new Promise<[number | null, string | null]>((resolve) =>
    gateway.once('close', (c, s) => resolve([c, s])),
  )
  await waitFor(
    () => msgs.includes('listening'),
    () => `listening: ${stderr}`,
  )
  await waitFor(() => pidsIn(pids).length >= 3, 'three helpers started')
  const helpers = pidsIn(pids)
  left.push(...helpers)
  for (const pid of helpers) assert.equal(gone(pid), false, `helper ${pid} runs`)
  stop(gateway.pid!)
  const [code, signal] = await closed
  assert.deepEqual([code, signal], [0, null], `exit; stderr: ${stderr}`)
  await waitFor(
    () => helpers.every(gone),
    () => `helpers gone: ${helpers.filter((p) => !gone(p)).join(', ')} left`,
  )
}

describe('serve stopped by a signal ends what its servers started', () => {
  it('SIGTERM to the gateway alone: every helper is gone', async () => {
    await serveAndStop('sigterm', (pid) => process.kill(pid, 'SIGTERM'))
  })

  it("SIGINT to the gateway's whole group (a terminal's Ctrl-C): every helper is gone", async () => {
    await serveAndStop('sigint', (pid) => process.kill(-pid, 'SIGINT'))
  })
})
