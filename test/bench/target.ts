import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { setTimeout as delay } from 'node:timers/promises'
import { Pool, request } from 'undici'
import { HttpSession, ModernSession, WrongReply } from './mcp-http.js'
import { stopTree } from './procs.js'

/** One session of a row: calls the echo tool, verified. */
export interface BenchSession {
  /** `worker`: which of the calls in flight this is (0…15), for rows that spread them over tools. */
  call(worker?: number): Promise<void>
  close(): Promise<void>
  /** Session start (handshake) time, ms. */
  ms: number
  /** Own serving process, when a session is a process (stdio). */
  pid?: number
}

/** A server under test. */
export interface Target {
  name: string
  /** Root of the serving process tree; undefined: the first session's own process (stdio). */
  pid: number | undefined
  /** Concurrency mode: true = 16 calls in flight on one session, false = 16 sessions. */
  sharedSession: boolean
  /**
   * What the row's 16 clients are: one label per mode, e.g. "16 sessions, 1 in flight each"
   * (default from `sharedSession`).
   */
  concurrencyMode?: string
  open(): Promise<BenchSession>
  /** Problems the server reported while running (warn/error log lines), for the report. */
  problems(): string[]
  /** The server's latest log lines, printed when the row fails. */
  recentLog(): string[]
  stop(): Promise<void>
}

/**
 * Resolves with the first stdout line `match` accepts (its return value); rejects if the
 * process exits first, with its stderr tail. Later lines go to `onLine`.
 */
export function awaitLine<T>(
  child: ChildProcess,
  match: (line: string) => T | undefined,
  onLine: (line: string) => void = () => {},
): Promise<T> {
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  return new Promise<T>((resolve, reject) => {
    let done = false
    const timer = setTimeout(() => {
      done = true
      reject(new Error(`no ready line on stdout after 15 s; stderr: ${stderr.trim()}`))
    }, 15_000)
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (done) return onLine(line)
      let value: T | undefined
      try {
        value = match(line)
      } catch {
        value = undefined // not the line we wait for (e.g. not JSON)
      }
      if (value !== undefined) {
        done = true
        clearTimeout(timer)
        resolve(value)
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (done) return
      reject(new Error(`exited (${signal ?? code}) before it was ready; stderr: ${stderr.trim()}`))
    })
  })
}

/** Without a readiness log line: poll a health endpoint every 25 ms, 15 s at most. */
export async function pollReady(url: string, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (exited()) throw new Error('exited before it was ready')
    const ok = await request(url).then(
      async (r) => {
        await r.body.dump()
        return r.statusCode === 200
      },
      () => false,
    )
    if (ok) return
    await delay(25)
  }
  throw new Error(`not ready after 15 s at ${url}`)
}

/** A Streamable HTTP row: sessions over one keep-alive undici pool to `origin`. */
export function httpTarget(o: {
  name: string
  origin: string
  path: string
  child: ChildProcess
  /** true: the row's calls in flight share one session (the `×16/1s` rows). */
  oneSession?: boolean
  concurrencyMode?: string
  /** Headers of the k-th session opened (e.g. its user's bearer token). */
  headers?: (k: number) => Record<string, string>
  problems?: () => string[]
  recentLog?: () => string[]
  stop?: () => Promise<void>
  /** Sessionless 2026-07-28 requests instead of sessions. */
  modern?: boolean
  /**
   * The echo tools to call instead of `echo` (an endpoint's public names): the k-th session
   * opened calls `tools[k % n]`, and lists the tools first, as a client learns the names; on
   * one session, the w-th call in flight calls `tools[w % n]`.
   */
  tools?: readonly string[]
}): Target {
  const pool = new Pool(o.origin, {
    connections: 32,
    pipelining: 1,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
  let opened = 0
  return {
    name: o.name,
    pid: o.child.pid,
    sharedSession: o.oneSession === true,
    concurrencyMode: o.concurrencyMode,
    async open() {
      const k = opened++
      const headers = o.headers?.(k) ?? {}
      if (o.modern) {
        const { session, ms } = await ModernSession.open(pool, o.path, headers)
        return { ms, call: () => session.callEcho(), close: async () => {} }
      }
      const { session, ms } = await HttpSession.open(pool, o.path, headers)
      const close = async () => void (await session.close())
      const tools = o.tools
      if (tools === undefined) return { ms, call: () => session.callEcho(), close }
      const listed = await session.listTools()
      const missing = tools.filter((t) => !listed.includes(t))
      if (missing.length > 0) {
        throw new WrongReply(`tools/list: no ${missing.join(', ')} in ${listed.join(', ')}`)
      }
      const tool = (w: number | undefined) => tools[(o.oneSession ? (w ?? 0) : k) % tools.length]!
      return { ms, call: (w) => session.callEcho(tool(w)), close }
    },
    problems: o.problems ?? (() => []),
    recentLog: o.recentLog ?? (() => []),
    async stop() {
      await pool.close()
      await stopTree(o.child)
      await o.stop?.()
    },
  }
}
