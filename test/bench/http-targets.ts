import { freePort } from '../helpers/ports.js'
import { spawnTracked, stopTree } from './procs.js'
import { awaitLine, httpTarget, pollReady, type Target } from './target.js'

/** A row's name and load shape: `oneSession` = every call in flight on one session. */
export interface RowShape {
  name: string
  oneSession: boolean
}

/** The SDK's own Streamable HTTP server (test/bench/sdk-http-server.ts) as its own process. */
export async function sdkHttpTarget(serverJs: string, shape: RowShape): Promise<Target> {
  const child = spawnTracked(process.execPath, [serverJs, '--serve'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  try {
    const port = await awaitLine(child, (line) => (JSON.parse(line) as { port?: number }).port)
    const origin = `http://127.0.0.1:${port}`
    return httpTarget({ ...shape, origin, path: '/mcp', child })
  } catch (err) {
    await stopTree(child)
    throw err
  }
}

/**
 * supergateway 4.x, stdio → Streamable HTTP, stateful (a child per session, like mcp-edge).
 * Its `info` log prints every message; it runs with `--logLevel none` (env
 * BENCH_SUPERGATEWAY_LOG to change), so readiness is polled on its health endpoint.
 */
export async function supergatewayTarget(
  bin: string,
  echoJs: string,
  shape: RowShape,
): Promise<Target> {
  const port = await freePort()
  const logLevel = process.env.BENCH_SUPERGATEWAY_LOG ?? 'none'
  return peerTarget(
    bin,
    [
      '--stdio',
      `${process.execPath} ${echoJs}`,
      '--outputTransport',
      'streamableHttp',
      '--stateful',
      '--port',
      String(port),
      '--healthEndpoint',
      '/healthz',
      '--logLevel',
      logLevel,
    ],
    { port, health: '/healthz', label: 'supergateway', shape },
  )
}

/**
 * punkpeye's mcp-proxy (npm `mcp-proxy`), stdio → Streamable HTTP at /mcp with its defaults
 * (stateful sessions, resumability event store, both protocol eras), no auth. Unlike
 * supergateway it starts the stdio server once and serves every session from that one process.
 * Runs on this Node (its CLI needs nothing newer); readiness is polled on its `/ping`.
 */
export async function mcpProxyTarget(
  bin: string,
  echoJs: string,
  shape: RowShape,
): Promise<Target> {
  const port = await freePort()
  return peerTarget(
    process.execPath,
    [
      bin,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--server',
      'stream',
      '--',
      process.execPath,
      echoJs,
    ],
    { port, health: '/ping', label: 'mcp-proxy', shape },
  )
}

/** A peer gateway as its own process, ready once `health` answers 200; its stderr kept for the report. */
async function peerTarget(
  command: string,
  args: string[],
  o: { port: number; health: string; label: string; shape: RowShape },
): Promise<Target> {
  const child = spawnTracked(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const origin = `http://127.0.0.1:${o.port}`
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  child.stdout!.resume()
  try {
    await pollReady(
      `${origin}${o.health}`,
      () => child.exitCode !== null || child.signalCode !== null,
    )
  } catch (err) {
    await stopTree(child)
    throw new Error(`${o.label}: ${(err as Error).message}; stderr: ${stderr.trim()}`)
  }
  const problems = () => (stderr.trim() === '' ? [] : [`stderr: ${stderr.trim().slice(-500)}`])
  return httpTarget({ ...o.shape, origin, path: '/mcp', child, problems })
}
