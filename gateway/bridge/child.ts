import { spawn, type ChildProcess } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Readable } from 'node:stream'
import {
  DEFAULT_INHERITED_ENV_VARS,
  getDefaultEnvironment,
} from '@modelcontextprotocol/client/stdio'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { disguisedMethod } from '../policy/method-names.js'
import { within } from '../timeout.js'
import { redactor, type Redactor } from './redact.js'
import { procFind } from './proc-scan.js'
import { leaseUid, runAsStdio } from './run-as.js'
import { RESULT_TOO_LARGE as REPLY_TOO_LARGE } from './result-cap.js'
import { LineSplitter } from './stderr-lines.js'
import { LogWindow } from './log-window.js'
import { rpcError, type RequestId } from './jsonrpc.js'
import { FrameReader, FrameWriter } from './stdio-frames.js'
import { readPaced } from './stdout-pacing.js'

/** A running stdio MCP server process, spoken to in JSON-RPC messages. */
export interface Child {
  readonly pid: number
  /**
   * False once the process has exited or its stdin broke: from then on it is handed out no more
   * (no pool take, no shared attach, no lane lease) and `send` fails at once, though what it
   * wrote before is still read (`ondead`, then `exited` and `onexit` once its stdout ended).
   */
  readonly alive: boolean
  /**
   * Resolves when the process has exited and its stdout was read to the end (a descendant
   * holding it open is not waited for past stopGrace), for whoever else needs to know.
   */
  readonly exited: Promise<void>
  send(message: JSONRPCMessage): Promise<void>
  /**
   * Closes stdin, then SIGTERM, then SIGKILL, each to its whole process group (what it started
   * too). Resolves once it is gone and its group is empty, or the ladder ran out.
   */
  close(): Promise<void>
  /** Moves the child's log lines (stderr, stream errors) under another logger, e.g. its session's. */
  retag(log: Logger): void
  /**
   * Blots out the user's credentials this process was started with (as its stderr is), reading
   * `upTo` characters of the text at most when given; absent: none.
   */
  readonly redact?: (text: string, upTo?: number) => string
  /**
   * Logs a warning about what the process wrote (a message dropped or refused) under its
   * logger, within its budget: `warnings.linesPerWindow` per window, the rest counted and
   * summed up in one line when the window ends (log-window.ts).
   */
  warn(fields: object, msg: string): void
  onmessage?: (message: JSONRPCMessage) => void
  /**
   * The process exited or its stdin broke (`alive` turned false): whoever hands it out stops
   * now. Its last messages may still come; `onexit` follows when they have.
   */
  ondead?: () => void
  /** The process is gone: exited, and its stdout read to the end. */
  onexit?: () => void
  /** Log lines of the process a rate limit suppressed (`stderr`, `warnings`), told as each window ends. */
  onsuppressed?: (source: SuppressedSource, lines: number) => void
}

/**
 * Resolves once `child` is gone: exited, its stdout read to the end, and the stop ladder on its
 * group over (what it started ended too, or the ladder ran out). Until then a process that
 * exited may still hold its stdout open, or leave what it started running, for up to three
 * stopGraces: `pool.max` and the bounds on sessions and lanes count it until this resolves.
 * Ends nothing that is running: the ladder starts at the exit (or when its owner closes it).
 */
export function goneOf(child: Child): Promise<void> {
  return child.exited.then(() => child.close())
}

/** Which of a process's log lines a rate limit suppressed: its stderr, or warnings about its stdout. */
export type SuppressedSource = 'stderr' | 'warnings'

/**
 * Spawns a server process: no shell, a minimal environment (the SDK's allow-list of HOME,
 * LOGNAME, PATH, SHELL, TERM, USER, plus the names in `inheritEnv`) and the server's own
 * `env`, then `extraEnv` (identity), the configured `cwd`. Nothing from the request (token,
 * headers) reaches its argv or environment. Its stderr is logged line by line, rate-limited,
 * with every value in `redact` (the user's credentials it was started with) and every value it
 * inherited from the gateway (`inheritEnv`: the operator's tokens for it) blotted out; so are
 * the warnings about what it writes on stdout (`Child.warn`).
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
  // The leader of a process group of its own (POSIX): stopping it signals the group, so what it
  // started (a helper, a browser, with the user's credentials in its environment) ends with it.
  // Its own session too: a terminal's Ctrl-C reaches the gateway only, which stops every group.
  // `runAs`: its own OS user, so it reads no other process's environment (nor the gateway's).
  // libuv drops the supplementary groups (setgroups(0)) when it sets the uid and gid.
  const runAs = await leaseUid(config.runAs, config.stopGrace)
  const proc = spawn(config.command, config.args, {
    detached: PROCESS_GROUPS,
    env: { ...getDefaultEnvironment(), ...inherited, ...config.env, ...extraEnv },
    cwd: config.cwd,
    // Its three pipes first whatever follows (runAsStdio: /dev/null over inherited descriptors).
    stdio: (runAs === undefined ? ['pipe', 'pipe', 'pipe'] : runAsStdio()) as [
      'pipe',
      'pipe',
      'pipe',
    ],
    shell: false,
    windowsHide: process.platform === 'win32',
    ...(runAs === undefined ? {} : { uid: runAs.uid, gid: runAs.gid }),
  })
  try {
    await new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve)
      proc.once('error', reject)
    })
  } catch (err) {
    runAs?.release()
    throw err
  }
  let current = log.child({ pid: proc.pid })
  let alive = true
  let markExited!: () => void
  const exited = new Promise<void>((resolve) => (markExited = resolve))
  const writer = new FrameWriter(proc.stdin)
  const reader = new FrameReader(config.maxMessageBytes, config.maxJsonDepth)
  let closing: Promise<void> | undefined
  /** Exited and its stdout read: gone. */
  let ended = false
  // What it inherited is the gateway's environment, where an operator's secrets live (but the
  // allow-list's, which every process gets anyway: HOME blotted would hide paths in every trace).
  const blot = redactor([
    ...redact,
    ...Object.entries(inherited)
      .filter(([name]) => !DEFAULT_INHERITED_ENV_VARS.includes(name))
      .map(([, value]) => value),
  ])
  const suppressed = (source: SuppressedSource, lines: number) =>
    child.onsuppressed?.(source, lines)
  const warnings = new LogWindow({
    ...config.warnings,
    ended: (n) => {
      current.warn(
        { suppressed: n },
        `${n} more warnings about what the server process wrote suppressed (warnings.linesPerWindow)`,
      )
      suppressed('warnings', n)
    },
  })
  const warn = (fields: object, msg: string) => {
    if (warnings.admit()) current.warn(fields, msg)
  }
  const child: Child = {
    pid: proc.pid ?? 0,
    exited,
    get alive() {
      return alive
    },
    // A dead process reads nothing: a message for it fails now, not after requestTimeout.
    send: (message) =>
      alive ? writer.send(message) : Promise.reject(new Error('the server process exited')),
    // Exited, its stdout maybe still held open: stop() waits for that (stopGrace at most).
    // Gone, its group is ended still: what it started outlives it otherwise.
    close: () => (closing ??= stop(proc, exited, config.stopGrace, () => current)),
    retag: (next) => {
      current = next.child({ pid: child.pid })
    },
    ...(blot.longest > 0 ? { redact: blot } : {}),
    warn,
  }
  const streamError = (err: Error) =>
    current.warn({ err: { message: err.message } }, 'server process stream error')
  // A line past maxMessageBytes was dropped, the process lives on (in shared mode it serves
  // every user). The request it answered gets an error instead of waiting out requestTimeout;
  // whoever owns the process passes it on only when that id is a request of theirs in flight
  // (an unknown id is dropped there as any stray reply is), so a wrong id can only be an error.
  const tooLarge = (bytes: number, reply: RequestId | undefined) => {
    // The id as the process wrote it: blotted as its stderr is (it may write anything there).
    const id = typeof reply === 'string' ? blot(reply) : reply
    warn(
      {
        bytes,
        maxMessageBytes: config.maxMessageBytes,
        ...(id !== undefined ? { reply: id } : {}),
      },
      'server process wrote a message larger than maxMessageBytes; dropped',
    )
    if (reply !== undefined)
      child.onmessage?.(
        rpcError(
          reply,
          REPLY_TOO_LARGE,
          "the MCP server's reply is larger than maxMessageBytes; it was dropped",
        ),
      )
  }
  proc.on('error', streamError)
  // Its stdin broke (EPIPE: the process closed it, or exited): nothing more reaches it. One
  // still running is of no use to anyone, and no owner hands it out to stop it: stopped here.
  proc.stdin.on('error', (err) => {
    dead()
    streamError(err)
    if (!exitSeen) void child.close()
  })
  proc.stdout.on('error', streamError)
  // A notification named like one of MCP's in disguise (`notifications/Resources/updated`,
  // `notifications/progress\u200b`) reaches no owner, and is logged. A session's owner relays
  // what it does not know as it is and checks MCP's notifications by their exact names (a
  // resource update by the policy on its URI, a task's status by its tool's): a disguise went
  // to the client unchecked, and a client that folds names takes it for the real one. (Shared,
  // sessionless and endpoint owners relay MCP's exact names only.) Requests in disguise are the
  // owners' to refuse (-32601): the process waits on an answer.
  const disguised = (message: JSONRPCMessage, meant: string) =>
    warn(
      { method: loggedMethod((message as { method: string }).method, blot), meant },
      'server process wrote a notification named like an MCP method in disguise; dropped',
    )
  // Read paced: a line written a few bytes at a time is read in few reads (stdout-pacing.ts).
  readPaced(proc.stdout, (chunk) => {
    for (const f of reader.push(chunk)) {
      if ('message' in f) {
        const meant = disguisedNotification(f.message)
        if (meant === undefined) child.onmessage?.(f.message)
        else disguised(f.message, meant)
      } else if (f.skipped === 'too large') tooLarge(f.bytes, f.reply)
      else if (current.isLevelEnabled('debug') && warnings.admit())
        current.debug(
          { skipped: f.skipped },
          'server process wrote a line that is not a JSON-RPC message',
        )
    }
  })
  // Gone once it has exited and its stdout (every message it wrote) is read; its stderr is not
  // waited for. The process's 'close' waits for every pipe: one that exited leaving a descendant
  // holding its stderr (a helper it started) was alive to the gateway while that one lived,
  // its requests written to a dead process. A stdout held open past the exit is not waited for
  // past stopGrace.
  // Dead at once, gone once its stdout is read (what it wrote before it exited still counts).
  const dead = () => {
    if (!alive) return
    alive = false
    child.ondead?.()
  }
  const gone = () => {
    if (ended) return
    dead()
    ended = true
    // Its last window's count now: the process's lines end with it.
    warnings.end()
    markExited()
    child.onexit?.()
    // What it started and left running (after a crash too) is ended: the ladder on its group.
    if (PROCESS_GROUPS) void child.close()
  }
  let exitSeen = false
  proc.stdout.once('close', () => {
    if (exitSeen) gone()
  })
  proc.once('exit', () => {
    exitSeen = true
    dead()
    if (proc.stdout.closed) return gone()
    // Let go: its stdout no longer waited for (gone() ends the group holding it).
    const late = setTimeout(() => proc.stdout.destroy(), config.stopGrace).unref()
    proc.stdout.once('close', () => clearTimeout(late))
  })
  proc.once('close', gone)
  // Its uid is free again once it is gone, and what it left under that uid is swept.
  if (runAs !== undefined) {
    proc.once('exit', runAs.exited)
    void goneOf(child).then(runAs.release)
  }
  logStderr(
    proc.stderr,
    () => current,
    config.stderr,
    blot,
    (n) => suppressed('stderr', n),
  )
  return child
}

/**
 * A text of a process's own (an error it answered) as the log shows it: blotted as its stderr
 * is, of the user's credentials and what it inherited (`Child.redact`).
 */
export function blotted(child: Pick<Child, 'redact'>, text: string): string {
  return child.redact?.(text) ?? text
}

/** Characters of a method name a process wrote that are logged (a name may be as long as a message). */
const METHOD_LOG_MAX = 120

/**
 * A method name a process wrote, as a log line shows it: blotted as its stderr is (`redact`,
 * the process's), then cut to METHOD_LOG_MAX characters.
 */
export function loggedMethod(
  method: string,
  redact: ((text: string, upTo?: number) => string) | undefined,
): string {
  return (redact === undefined ? method : redact(method, METHOD_LOG_MAX)).slice(0, METHOD_LOG_MAX)
}

/** The MCP notification `message` is one of in disguise, if it is a notification and one. */
function disguisedNotification(message: JSONRPCMessage): string | undefined {
  const m = message as { id?: unknown; method?: unknown }
  // A message with a method and no id: a notification (jsonrpc.ts envelope).
  if (m.id !== undefined || typeof m.method !== 'string') return undefined
  return disguisedMethod(m.method)
}

/** POSIX: each server process leads a process group of its own, signalled as one. Not Windows. */
const PROCESS_GROUPS = process.platform !== 'win32'

/** How often a stopping process's group is looked at for members left, in ms. */
const GROUP_POLL_MS = 50

/**
 * Waits for `until`, `ms` at most, never failing: timeout.ts's `within`, its timeout taken as an
 * answer. Its timer holds the event loop (cleared when `until` resolves): a shutdown's ladder on
 * what a gone process left runs to its end, where no process of the gateway's own is left to
 * keep the loop alive.
 */
const upTo = (ms: number, until: Promise<void>) => within(until, ms).catch(() => {})

/**
 * Whether the process group led by `pid` has a member left (the leader, or what it started).
 * A zombie does not count where /proc tells (Linux): an init that does not reap (a container's
 * PID 1 without one) keeps a killed orphan as one for good, and the ladder would wait out its grace.
 */
async function groupAlive(pid: number): Promise<boolean> {
  try {
    process.kill(-pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  if (process.platform !== 'linux') return true
  const member = await procFind(
    'stat',
    (stat) => {
      // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses, the last ')' ends it.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return Number(pgrp) === pid && state !== 'Z' && state !== 'X'
    },
    true,
  )
  return member === undefined || member.length > 0
}

/**
 * Closes stdin, then SIGTERM, then SIGKILL, each after `graceMs`, to the process's whole group
 * (POSIX): its descendants too, also once it has exited itself. Resolves once the process is
 * gone and its group empty, or after the last step's grace. What survives SIGKILL (a process in
 * uninterruptible sleep, stuck on a hung disk or network mount, or one the gateway may not
 * signal) is logged once, at warn: the process itself counts toward `pool.max` and the session
 * bounds until it exits (`goneOf`), however long that takes, since it still holds what it holds;
 * its descendants are no longer waited for.
 */
async function stop(
  proc: ChildProcess,
  exited: Promise<void>,
  graceMs: number,
  log: () => Logger,
): Promise<void> {
  const pid = proc.pid
  const group = PROCESS_GROUPS && pid !== undefined && pid > 0
  const running = () => proc.exitCode === null && proc.signalCode === null
  const left = async () => running() || (group && (await groupAlive(pid)))
  /** Until the process is gone (and its group empty), `ms` at most. */
  const settled = async (ms: number) => {
    let done = false
    const empty = exited.then(async () => {
      while (!done && group && (await groupAlive(pid))) await sleep(GROUP_POLL_MS)
    })
    await upTo(ms, empty)
    done = true
  }
  try {
    proc.stdin?.end()
  } catch {}
  // Closing stdin asks the process (not what it started) to end: it alone is waited for.
  await upTo(graceMs, exited)
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    if (!(await left())) break
    try {
      if (group) process.kill(-pid, signal)
      else proc.kill(signal)
    } catch {
      // A process that moved to another group of its own is still signalled itself.
      try {
        if (running()) proc.kill(signal)
      } catch {}
    }
    await settled(graceMs)
  }
  if (await left())
    log().warn(
      { pid, leaderRunning: running() },
      running()
        ? 'server process still running after SIGKILL (uninterruptible sleep?); it counts toward pool.max and the session limits until it exits'
        : 'server process group still has members after SIGKILL (uninterruptible sleep?); no longer waited for',
    )
}

/**
 * Logs the process's stderr line by line: `linesPerWindow` per window (log-window.ts); of the
 * rest, the last `keepLast` are logged when the window ends, after one line counting the others
 * (`suppressed`): what a process wrote just before it crashed is in the log however much it
 * wrote before (the stream's end ends the window).
 */
function logStderr(
  stream: Readable,
  log: () => Logger,
  bounds: ServerConfig['stderr'],
  redact: Redactor,
  suppressed: (lines: number) => void,
): void {
  // Redacted before it is cut: a cut must not leave half a secret showing, so what is kept of a
  // line is as long as the longest form of a secret past the cut (and no more is held). The
  // redactor cuts at lineMax of the line as written: each `[redacted]` shortens the line, and
  // cutting after would show text from past the kept cut (where a secret may be cut in half).
  // One stream's lines in turn: a value split over two of them is blotted too.
  const blot = redact.lines()
  const redacted = (line: string, end: string | undefined) =>
    blot(line, bounds.lineMax, end).slice(0, bounds.lineMax)
  /**
   * The last lines suppressed in this window, as written: redacted only if they are logged, when
   * it ends. The redactor reads the lines in turn, so one pushed out is skipped then (before
   * any line after it is read), and the ones kept are read before the next window's lines.
   */
  let last: { line: string; end: string | undefined }[] = []
  const window = new LogWindow({
    linesPerWindow: bounds.linesPerWindow,
    window: bounds.window,
    ended: (n) => {
      const kept = last
      last = []
      const more = n - kept.length
      if (more > 0) {
        log().warn(
          { suppressed: more },
          `${more} more server stderr lines suppressed (stderr.linesPerWindow)`,
        )
        suppressed(more)
      }
      // `late`: logged when its window ended, not when written.
      for (const { line, end } of kept)
        log().info({ stderr: redacted(line, end), late: true }, 'server stderr')
    },
  })
  // A line cut there keeps its end too: a value split over it and the next line is joined.
  const splitter = new LineSplitter(
    bounds.lineMax + redact.longest,
    (line, end) => {
      if (window.admit()) return log().info({ stderr: redacted(line, end) }, 'server stderr')
      last.push({ line, end })
      if (last.length <= bounds.keepLast) return
      // Its end still joins the next line logged: a value split over the two is blotted there.
      const out = last.shift()!
      blot.skip(out.line, out.end)
    },
    redact.tail,
  )
  stream.on('data', (chunk: Buffer) => splitter.write(chunk))
  stream.once('end', () => {
    splitter.end()
    window.end()
  })
}
