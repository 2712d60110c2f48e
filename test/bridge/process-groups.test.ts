// Stopping a server process stops what it started: each leads a process group of its own and
// the stop ladder (stdin, SIGTERM, SIGKILL) signals the group (bridge/child.ts). A helper the
// server started (servers/holder.js with HOLDER_START_HELPER, its pid in a file) is gone after a
// session's close, a pool's close, the gateway's close, a crash, and when the process exited
// leaving it holding its stdout (let go after stopGrace). Real processes; every wait is for an
// event or for a pid to be gone, never for a time.
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import { pino } from 'pino'
import { spawnChild } from '../../gateway/bridge/child.js'
import { ProcessPool } from '../../gateway/bridge/pool.js'
import { configSchema } from '../../gateway/config/schema.js'
import { SERVERS_DIR, startStack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'
import { gone, pidsIn } from '../helpers/pids.js'

const HOLDER = join(SERVERS_DIR, 'holder.js')
const dir = mkdtempSync(join(tmpdir(), 'process-groups-'))
let files = 0

/** A fresh file the holder appends its descendants' pids to. */
function pidsFile(): string {
  const file = join(dir, `pids-${files++}`)
  writeFileSync(file, '')
  return file
}

const left: number[] = []
const closing: (() => Promise<void>)[] = []
afterEach(async () => {
  // A test that failed leaves nothing running behind.
  for (const pid of left.splice(0))
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  await Promise.all(closing.splice(0).map((c) => c()))
})

function serverConfig(file: string, extra: Record<string, unknown> = {}) {
  return configSchema.parse({
    servers: {
      holder: {
        command: process.execPath,
        args: [HOLDER],
        stopGrace: 200,
        env: { HOLDER_PIDS_FILE: file, HOLDER_START_HELPER: '1' },
        ...extra,
      },
    },
  }).servers.holder!
}

/** The helper's pid (and the others' in the file), once `count` are written; kept to clean up. */
async function helpers(file: string, count = 1): Promise<number[]> {
  await waitFor(() => pidsIn(file).length >= count, `${count} descendants started`)
  const pids = pidsIn(file)
  left.push(...pids)
  for (const pid of pids) assert.equal(gone(pid), false, `descendant ${pid} runs`)
  return pids
}

async function allGone(pids: number[]): Promise<void> {
  await waitFor(() => pids.every(gone), `descendants ${pids.join(', ')} gone`)
}

const call = (id: number, name: string, args: Record<string, unknown> = {}) =>
  ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args },
  }) as const

describe('stopping a server process ends what it started', () => {
  it("a session's close (stdin closed, the process exits at EOF): its helper is gone", async () => {
    const file = pidsFile()
    const child = await spawnChild(serverConfig(file), pino({ level: 'silent' }))
    closing.push(() => child.close())
    const pids = await helpers(file)
    await child.close()
    await allGone(pids)
  })

  it('a helper that ignores SIGTERM is killed (SIGKILL to the group)', async () => {
    const file = pidsFile()
    const config = serverConfig(file, {
      env: { HOLDER_PIDS_FILE: file, HOLDER_START_HELPER: 'stubborn' },
    })
    const child = await spawnChild(config, pino({ level: 'silent' }))
    closing.push(() => child.close())
    const pids = await helpers(file)
    await child.close()
    await allGone(pids)
  })

  it('a server that crashed on its own: the helper it left running is ended', async () => {
    const file = pidsFile()
    const child = await spawnChild(serverConfig(file), pino({ level: 'silent' }))
    closing.push(() => child.close())
    const pids = await helpers(file)
    process.kill(child.pid, 'SIGKILL')
    await child.exited
    await allGone(pids)
  })

  it('exited while a descendant holds its stdout: after stopGrace the group is ended, not only the pipe let go', async () => {
    const file = pidsFile()
    const config = serverConfig(file, { env: { HOLDER_PIDS_FILE: file } })
    const child = await spawnChild(config, pino({ level: 'silent' }))
    closing.push(() => child.close())
    await child.send(call(1, 'exit'))
    const pids = await helpers(file)
    // Gone stopGrace after the exit, though the descendant still held the stdout.
    await child.exited
    await allGone(pids)
  })

  it("a pool's close: every warm process's helper is gone", async () => {
    const file = pidsFile()
    const pool = new ProcessPool({
      name: 'holder',
      config: serverConfig(file, { pool: { min: 2 } }),
      log: pino({ level: 'silent' }),
    })
    closing.push(() => pool.close())
    pool.start()
    const pids = await helpers(file, 2)
    await pool.close()
    await allGone(pids)
  })

  it("the gateway's close: every server's helpers are gone", async () => {
    const file = pidsFile()
    const stack = await startStack({
      servers: {
        holder: {
          command: process.execPath,
          args: [HOLDER],
          stopGrace: 200,
          pool: { min: 2 },
          env: { HOLDER_PIDS_FILE: file, HOLDER_START_HELPER: '1' },
        },
      },
    })
    closing.push(() => stack.close())
    const pids = await helpers(file, 2)
    await stack.close()
    await allGone(pids)
  })
})
