// A real redis-server as a test child: loopback only, a free port, no persistence, a temp dir.
// Outside CI a machine without redis-server skips the Redis tests; in CI (CI=true) a missing
// redis-server is a failure, never a skip (.ci/run installs it).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { createRedisStore } from '../../gateway/store/redis.js'
import type { Store } from '../../gateway/store/store.js'
import { freePort } from './ports.js'

const BINARY = 'redis-server'

/** The `skip` option of a Redis suite: a reason outside CI when redis-server is absent, else false. */
export const NO_REDIS: string | false =
  spawnSync(BINARY, ['--version']).status !== 0 &&
  process.env.CI !== 'true' &&
  `no ${BINARY} on PATH`

/** A running (or stopped, or paused) redis-server on one port. */
export interface RedisServer {
  port: number
  /** `redis://127.0.0.1:<port>` (with the password when one was asked for). */
  url: string
  /** SIGTERM, and wait for it to exit. */
  stop(): Promise<void>
  /** Starts it again on the same port (empty unless started with `persist`); resolves once it answers PING. */
  start(): Promise<void>
  /** SIGSTOP: connections stay open, nothing answers. */
  pause(): void
  /** SIGCONT. */
  resume(): void
  /** Stops it and removes its folder (for `after`). */
  close(): Promise<void>
}

/**
 * Starts redis-server on a free loopback port; resolves once it answers PING. With `persist`
 * it keeps an append-only file, so after stop() and start() it holds what it held.
 */
export async function startRedis(
  o: { password?: string; persist?: boolean } = {},
): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-redis-'))
  const port = await freePort()
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    o.persist ? 'yes' : 'no',
    '--dir',
    dir,
    '--daemonize',
    'no',
    ...(o.password ? ['--requirepass', o.password] : []),
  ]
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()
  let paused = false

  async function start(): Promise<void> {
    let output = ''
    let gone = false
    const proc = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    proc.stdout!.on('data', (d: Buffer) => void (output += d.toString()))
    proc.stderr!.on('data', (d: Buffer) => void (output += d.toString()))
    exited = new Promise<void>((resolve) => proc.once('close', () => resolve()))
    const spawned = new Promise<never>((_, reject) => {
      proc.once('error', (err) => {
        gone = true
        reject(new Error(`cannot run ${BINARY}: ${err.message}`))
      })
      proc.once('exit', (code, signal) => {
        gone = true
        reject(new Error(`${BINARY} exited (${code ?? signal}) before answering PING:\n${output}`))
      })
    })
    spawned.catch(() => {})
    // Polls until it answers; a server that dies instead ends the wait with its output.
    const ready = (async () => {
      while (!gone && !(await answersPing(port))) await sleep(20)
    })()
    await Promise.race([ready, spawned])
  }

  async function stop(): Promise<void> {
    const proc = child
    if (proc === undefined) return
    if (paused) proc.kill('SIGCONT')
    paused = false
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
    await exited
    child = undefined
  }

  await start()
  const auth = o.password ? `:${encodeURIComponent(o.password)}@` : ''
  return {
    port,
    url: `redis://${auth}127.0.0.1:${port}`,
    start,
    stop,
    pause() {
      paused = true
      child?.kill('SIGSTOP')
    },
    resume() {
      paused = false
      child?.kill('SIGCONT')
    },
    async close() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Whether something on the port answers `PING` (a password-protected Redis answers NOAUTH: yes). */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = ''
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
    socket.on('data', (d) => {
      reply += d.toString()
      if (!reply.includes('\r\n')) return
      socket.destroy()
      resolve(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'))
    })
    socket.on('error', () => resolve(false))
    socket.on('close', () => resolve(false))
  })
}

/** The gateway's Redis store at `url` under `keyPrefix`, logging nothing: a test's own view of it. */
export function redisStoreAt(url: string, keyPrefix: string): Promise<Store> {
  return createRedisStore({ url, keyPrefix, log: pino({ level: 'silent' }) })
}
