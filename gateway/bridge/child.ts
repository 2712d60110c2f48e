import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { getDefaultEnvironment } from '@modelcontextprotocol/client/stdio'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { FrameReader, FrameWriter, type Frame } from './stdio-frames.js'

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
  /** Blots out the user's credentials this process was started with (as its stderr is); absent: none. */
  readonly redact?: (text: string) => string
  onmessage?: (message: JSONRPCMessage) => void
  onexit?: () => void
}

/**
 * Spawns a server process: no shell, a minimal environment (the SDK's allow-list of HOME,
 * LOGNAME, PATH, SHELL, TERM, USER, plus the names in `inheritEnv`) and the server's own
 * `env`, then `extraEnv` (identity), the configured `cwd`. Nothing from the request (token,
 * headers) reaches its argv or environment. Its stderr is logged line by line, rate-limited,
 * with every value in `redact` (the user's credentials it was started with) blotted out.
 */
export async function spawnChild(
  config: ServerConfig,
  log: Logger,
  extraEnv: Record<string, string> = {},
  redact: readonly string[] = [],
): Promise<Child> {
  const inherited: Record<string, string> = {}
  for (const name of config.inheritEnv) {
    const value = process.env[name]
    if (value !== undefined) inherited[name] = value
  }
  // The SDK's stdio transport validated every message with zod and wrote each to the pipe on
  // its own; framing is ours now (stdio-frames.ts), the environment allow-list still the SDK's.
  const proc = spawn(config.command, config.args, {
    env: { ...getDefaultEnvironment(), ...inherited, ...config.env, ...extraEnv },
    cwd: config.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
    shell: false,
    windowsHide: process.platform === 'win32',
  })
  await new Promise<void>((resolve, reject) => {
    proc.once('spawn', resolve)
    proc.once('error', reject)
  })
  let current = log.child({ pid: proc.pid })
  let alive = true
  let markExited!: () => void
  const exited = new Promise<void>((resolve) => (markExited = resolve))
  const writer = new FrameWriter(proc.stdin)
  const reader = new FrameReader(config.maxMessageBytes, config.maxJsonDepth)
  let closing: Promise<void> | undefined
  const blot = redactor(redact)
  const child: Child = {
    pid: proc.pid ?? 0,
    exited,
    get alive() {
      return alive
    },
    send: (message) => writer.send(message),
    close: () => (closing ??= alive ? stop(proc, exited, config.stopGrace) : Promise.resolve()),
    retag: (next) => {
      current = next.child({ pid: child.pid })
    },
    ...(blot.longest > 0 ? { redact: blot } : {}),
  }
  const streamError = (err: Error) =>
    current.warn({ err: { message: err.message } }, 'server process stream error')
  proc.on('error', streamError)
  proc.stdin.on('error', streamError)
  proc.stdout.on('error', streamError)
  proc.stdout.on('data', (chunk: Buffer) => {
    let frames: Frame[]
    try {
      frames = reader.push(chunk)
    } catch (err) {
      streamError(err as Error)
      void child.close()
      return
    }
    for (const f of frames) {
      if ('message' in f) child.onmessage?.(f.message)
      else
        current.debug(
          { skipped: f.skipped },
          'server process wrote a line that is not a JSON-RPC message',
        )
    }
  })
  proc.once('close', () => {
    alive = false
    markExited()
    child.onexit?.()
  })
  logStderr(proc.stderr, () => current, config.stderr, blot)
  return child
}

/** Closes stdin, then SIGTERM, then SIGKILL, each after `graceMs`; resolves once the process is gone. */
async function stop(proc: ChildProcess, exited: Promise<void>, graceMs: number): Promise<void> {
  const gone = (ms: number) =>
    Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())])
  try {
    proc.stdin?.end()
  } catch {}
  await gone(graceMs)
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    if (proc.exitCode !== null || proc.signalCode !== null) break
    try {
      proc.kill(signal)
    } catch {}
    await gone(graceMs)
  }
}

/** A redacting function, and the length of the longest form it blots out. */
export type Redactor = ((line: string) => string) & { longest: number }

/**
 * Blots out known secret values in a line: each value as written, and as JSON (JavaScript's,
 * Python's, Go's), URL and form encoding would write it (a process that logs its config or a
 * request). Longest first, so a
 * value containing another is blotted whole. Two forms a line-by-line scan would otherwise miss:
 * - a value of several lines (a PEM key) is printed over several stderr lines: each of its
 *   lines is blotted on its own, once at least {@link MIN_LINE} long;
 * - base64 of a longer text holding the value (`Basic base64(user:token)`) writes the value at
 *   one of three byte alignments, in either alphabet (RFC 4648 §4, §5): the characters that
 *   encode only the value's own bits are blotted, at each alignment, once at least
 *   {@link MIN_BASE64_CORE} long (shorter runs would blot unrelated text; the whole encoding
 *   of a short value is still blotted).
 */
export function redactor(values: readonly string[]): Redactor {
  const forms = new Set<string>()
  for (const v of values) {
    if (v === '') continue
    forms.add(v)
    const json = JSON.stringify(v).slice(1, -1)
    forms.add(json)
    // Other languages' JSON: Python's json.dumps writes non-ASCII as \uXXXX, Go's < > & (and
    // U+2028, U+2029); a server in either logging its config hid nothing otherwise.
    forms.add(json.replace(/[\u0080-\uffff]/g, unicodeEscape))
    forms.add(json.replace(/[<>&\u2028\u2029]/g, unicodeEscape))
    forms.add(encodeURIComponent(v))
    // A form body or query (URLSearchParams; Python's urlencode, Go's QueryEscape): space as +,
    // and RFC 3986's reserved ! ' ( ) * percent-encoded too.
    forms.add(new URLSearchParams({ v }).toString().slice(2))
    const strict = encodeURIComponent(v).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
    forms.add(strict)
    forms.add(strict.replace(/%20/g, '+'))
    forms.add(Buffer.from(v).toString('base64'))
    const lines = v.split(/\r\n|\r|\n/)
    if (lines.length > 1) for (const line of lines) if (line.length >= MIN_LINE) forms.add(line)
    for (const core of base64Cores(Buffer.from(v))) {
      forms.add(core)
      forms.add(core.replace(/\+/g, '-').replace(/\//g, '_'))
    }
  }
  const list = [...forms].filter((f) => f !== '').sort((a, b) => b.length - a.length)
  if (list.length === 0) return Object.assign((line: string) => line, { longest: 0 })
  return Object.assign(
    (line: string) => {
      for (const f of list) if (line.includes(f)) line = line.split(f).join('[redacted]')
      return line
    },
    { longest: list[0]!.length },
  )
}

/** A character as a JSON \uXXXX escape, lower-case hex (as Python and Go write it). */
const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`

/**
 * Shortest line of a multi-line value blotted out on its own: a shorter one (a PEM's `==`, a
 * value's one-letter last line) would blot that text out of every line the process writes,
 * and says next to nothing of the value.
 */
const MIN_LINE = 8

/** Shortest base64 run of a value inside a longer encoding that is blotted out. */
const MIN_BASE64_CORE = 8

/**
 * The base64 characters that encode `bytes` alone when they follow 0, 1 or 2 other bytes:
 * those holding a bit of a neighbour depend on it and are left out.
 */
function base64Cores(bytes: Buffer): string[] {
  const cores: string[] = []
  for (const skip of [0, 1, 2]) {
    const text = Buffer.concat([Buffer.alloc(skip), bytes])
      .toString('base64')
      .replace(/=+$/, '')
    const core = text.slice(Math.ceil((skip * 8) / 6), Math.floor(((skip + bytes.length) * 8) / 6))
    if (core.length >= MIN_BASE64_CORE) cores.push(core)
  }
  return cores
}

function logStderr(
  stream: Readable,
  log: () => Logger,
  bounds: ServerConfig['stderr'],
  redact: Redactor,
): void {
  let windowStart = Date.now()
  let lines = 0
  let dropped = 0
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
    const now = Date.now()
    if (now - windowStart >= bounds.window) {
      if (dropped > 0) log().warn({ dropped }, 'server stderr lines dropped by rate limit')
      windowStart = now
      lines = 0
      dropped = 0
    }
    if (++lines > bounds.linesPerWindow) {
      dropped++
      return
    }
    // Redacted before it is cut: a cut must not leave half a secret showing, so what is read
    // past the cut is as long as the longest form of a secret.
    log().info(
      { stderr: redact(line.slice(0, bounds.lineMax + redact.longest)).slice(0, bounds.lineMax) },
      'server stderr',
    )
  })
}
