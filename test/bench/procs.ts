import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'
import { treePids } from './proc.js'

/** Root pids of every process tree the bench started and has not stopped yet. */
const live = new Set<number>()
/** Synchronous cleanups still due (temporary files). */
const cleanups = new Set<() => void>()

function killTree(pid: number, signal: NodeJS.Signals): void {
  for (const p of treePids(pid).reverse()) {
    try {
      process.kill(p, signal)
    } catch {
      // already gone
    }
  }
}

// Last resort: whatever still runs when the bench exits (error, Ctrl-C) is killed with it.
process.on('exit', () => {
  for (const pid of live) killTree(pid, 'SIGKILL')
  for (const fn of cleanups) fn()
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => process.exit(130))
}

/** Runs `fn` now or at exit, whichever comes first; returns the "now" trigger. */
export function cleanup(fn: () => void): () => void {
  cleanups.add(fn)
  return () => {
    if (cleanups.delete(fn)) fn()
  }
}

/** Registers a process tree started elsewhere (the SDK's stdio transport) for cleanup. */
export function track(pid: number): void {
  live.add(pid)
}

/** Forgets a tree that was stopped elsewhere. */
export function untrack(pid: number): void {
  live.delete(pid)
}

/** Spawns a process whose tree is killed when the bench exits. */
export function spawnTracked(
  command: string,
  args: string[],
  opts: SpawnOptions = {},
): ChildProcess {
  const child = spawn(command, args, opts)
  if (child.pid !== undefined) track(child.pid)
  return child
}

/**
 * Stops a tree: SIGTERM to the root (servers end their own children), SIGKILL after
 * `graceMs`, then SIGKILL to any descendant that outlived the root.
 */
export async function stopTree(child: ChildProcess, graceMs = 3000): Promise<void> {
  const pid = child.pid
  if (pid === undefined) return
  const tree = treePids(pid)
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }
  for (const p of tree.slice(1)) {
    try {
      process.kill(p, 'SIGKILL')
    } catch {
      // already gone, as it should be
    }
  }
  untrack(pid)
}
