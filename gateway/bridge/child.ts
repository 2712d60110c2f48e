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
  send(message: JSONRPCMessage): Promise<void>
  /** Closes stdin, then SIGTERM, then SIGKILL (the SDK's ladder). Resolves once it is gone. */
  close(): Promise<void>
  onmessage?: (message: JSONRPCMessage) => void
  onexit?: () => void
}

/**
 * Spawns a server process: no shell, a minimal environment (the SDK's allow-list of HOME,
 * LOGNAME, PATH, SHELL, TERM, USER) plus the server's own `env`, the configured `cwd`.
 * Nothing from the request (token, headers) reaches its argv or environment. Its stderr is
 * logged line by line, rate-limited, tagged with the server and session.
 */
export async function spawnChild(config: ServerConfig, log: Logger): Promise<Child> {
  const transport = new StdioClientTransport({
    command: config.command,
    args: config.args,
    env: config.env,
    cwd: config.cwd,
    stderr: 'pipe',
    maxBufferSize: DEFAULT_CHILD_MAX_MESSAGE_BYTES,
  })
  let exited = false
  const child: Child = {
    pid: 0,
    send: (message) => transport.send(message),
    close: async () => {
      if (!exited) await transport.close()
    },
  }
  transport.onmessage = (message) => child.onmessage?.(message)
  transport.onerror = (err) => log.warn({ err: { message: err.message } }, 'server process stream error')
  transport.onclose = () => {
    exited = true
    child.onexit?.()
  }
  await transport.start()
  ;(child as { pid: number }).pid = transport.pid ?? 0
  // The stderr pass-through buffers until read, so nothing written before this is lost.
  logStderr(transport.stderr as Readable, log.child({ pid: child.pid }))
  return child
}

function logStderr(stream: Readable, log: Logger): void {
  let windowStart = Date.now()
  let lines = 0
  let dropped = 0
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
    const now = Date.now()
    if (now - windowStart >= DEFAULT_STDERR_WINDOW_MS) {
      if (dropped > 0) log.warn({ dropped }, 'server stderr lines dropped by rate limit')
      windowStart = now
      lines = 0
      dropped = 0
    }
    if (++lines > DEFAULT_STDERR_LINES_PER_WINDOW) {
      dropped++
      return
    }
    log.info({ stderr: line.slice(0, DEFAULT_STDERR_LINE_MAX) }, 'server stderr')
  })
}
