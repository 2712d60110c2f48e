// A gateway whose stdout reader went away (`mcp-edge serve | head -1`) still ends on SIGTERM,
// its processes with it: the real CLI, its stdout a pipe into a reader that exits after one line.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { it } from 'node:test'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const POLICIES = fileURLToPath(new URL('../../../policies/', import.meta.url))

/** Pids whose parent is `ppid` and that have not exited (zombies are gone for this purpose). */
function childrenOf(ppid: number): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(parent) === ppid && state !== 'Z') pids.push(Number(name))
    } catch {
      // it exited while we looked
    }
  }
  return pids
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

it('SIGTERM ends a gateway whose stdout reader exited, and its processes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stdout-'))
  const config = join(dir, 'gateway.yaml')
  writeFileSync(
    config,
    `listen: { port: 0 }
servers:
  echo:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(join(SERVERS_DIR, 'echo.js'))}]
    pool: { min: 2 }
policies: ${JSON.stringify(POLICIES)}
`,
  )
  // The reader: takes one line, then exits (the pipe's read end closes with it).
  const reader = spawn('head', ['-n', '1'], { stdio: ['pipe', 'pipe', 'ignore'] })
  const gateway = spawn(
    process.execPath,
    [MAIN, 'serve', '--config', config, '--insecure-no-auth'],
    {
      stdio: ['ignore', reader.stdin, 'pipe'],
    },
  )
  reader.stdin.destroy()
  try {
    let stderr = ''
    gateway.stderr!.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((r) => gateway.on('exit', (code) => r(code)))
    await new Promise((r) => reader.on('exit', r))
    // The warm pool is up: the gateway is serving (its handlers installed), with children.
    let kids: number[] = []
    while ((kids = childrenOf(gateway.pid!)).length < 2) {
      assert.equal(gateway.exitCode, null, `the gateway exited before serving: ${stderr}`)
      await new Promise((r) => setImmediate(r))
    }
    gateway.kill('SIGTERM')
    assert.equal(await exited, 0, stderr)
    for (const pid of kids) await waitFor(() => !alive(pid), `child ${pid} ended`)
  } finally {
    if (gateway.exitCode === null) gateway.kill('SIGKILL')
  }
})
