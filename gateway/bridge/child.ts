import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'

/** stderr lines logged per child per window before the rest are counted and dropped. */
export const DEFAULT_STDERR_LINES_PER_WINDOW = 50
/** The stderr rate-limit window, in ms. */
export const DEFAULT_STDERR_WINDOW_MS = 10_000
/** Longest stderr line logged, in characters; the rest is cut. */
export const DEFAULT_STDERR_LINE_MAX = 2_000
/** Largest single stdout message accepted from a child, in bytes; past it the child is closed. */
export const DEFAULT_CHILD_MAX_MESSAGE_BYTES = 8 * 1024 * 1024

/** A running stdio MCP server process, spoken to in JSON-RPC messages. */
export interface Child {
  readonly pid: number
  /** False once the process has exited. */
  readonly alive: boolean
  /** Resolves when the process has exited, for whoever else needs to know. */
  readonly exited: Promise<void>
  send(message: JSONRPCMessage): Promise<void>
  /** Closes stdin, then SIGTERM, then SIGKILL (the SDK's ladder). Resolves once it is gone. */
  close(): Promise<void>
  /** Moves the child's log lines (stderr, stream errors) under another logger, e.g. its session's. */
  retag(log: Logger): void
  onmessage?: (message: JSONRPCMessage) => void
  onexit?: () => void
}

/**
 * Spawns a server process: no shell, a minimal environment (the SDK's allow-list of HOME,
 * LOGNAME, PATH, SHELL, TERM, USER, plus the names in `inheritEnv`) and the server's own
 * `env`, then `extraEnv` (identity), the configured `cwd`. Nothing from the request (token,
 * headers) reaches its argv or environment. Its stderr is logged line by line, rate-limited.
 */
export async function spawnChild(config: ServerConfig, log: Logger, extraEnv: Record<string, string> = {}): Promise<Child> {
  const inherited: Record<string, string> = {}
  for (const name of config.inheritEnv) {
    const value = process.env[name]
    if (value !== undefined) inherited[name] = value
  }
  const transport = new StdioClientTransport({
    command: config.command,
    args: config.args,
    env: { ...inherited, ...config.env, ...extraEnv },
    cwd: config.cwd,
    stderr: 'pipe',
    maxBufferSize: DEFAULT_CHILD_MAX_MESSAGE_BYTES,
  })
  let current = log
  let alive = true
  let markExited!: () => void
  const exited = new Promise<void>((resolve) => (markExited = resolve))
  const child: Child = {
    pid: 0,
    exited,
    get alive() {
      return alive
    },
    send: (message) => transport.send(message),
    close: async () => {
      if (alive) await transport.close()
    },
    retag: (next) => {
      current = next.child({ pid: child.pid })
    },
  }
  transport.onmessage = (message) => child.onmessage?.(message)
  transport.onerror = (err) => current.warn({ err: { message: err.message } }, 'server process stream error')
  transport.onclose = () => {
    alive = false
    markExited()
    child.onexit?.()
  }
  await transport.start()
  ;(child as { pid: number }).pid = transport.pid ?? 0
  current = log.child({ pid: child.pid })
  // The stderr pass-through buffers until read, so nothing written before this is lost.
  logStderr(transport.stderr as Readable, () => current)
  return child
}

function logStderr(stream: Readable, log: () => Logger): void {
  let windowStart = Date.now()
  let lines = 0
  let dropped = 0
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
    const now = Date.now()
    if (now - windowStart >= DEFAULT_STDERR_WINDOW_MS) {
      if (dropped > 0) log().warn({ dropped }, 'server stderr lines dropped by rate limit')
      windowStart = now
      lines = 0
      dropped = 0
    }
    if (++lines > DEFAULT_STDERR_LINES_PER_WINDOW) {
      dropped++
      return
    }
    log().info({ stderr: line.slice(0, DEFAULT_STDERR_LINE_MAX) }, 'server stderr')
  })
}
