import { spawnTracked, stopTree } from './procs.js'
import { awaitLine, freePort, httpTarget, pollReady, type Target } from './target.js'

/** The SDK's own Streamable HTTP server (test/bench/sdk-http-server.ts) as its own process. */
export async function sdkHttpTarget(serverJs: string): Promise<Target> {
  const child = spawnTracked(process.execPath, [serverJs, '--serve'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  try {
    const port = await awaitLine(child, (line) => (JSON.parse(line) as { port?: number }).port)
    const origin = `http://127.0.0.1:${port}`
    return httpTarget({ name: 'SDK HTTP (HTTP floor)', origin, path: '/mcp', child })
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
export async function supergatewayTarget(bin: string, echoJs: string): Promise<Target> {
  const port = await freePort()
  const logLevel = process.env.BENCH_SUPERGATEWAY_LOG ?? 'none'
  const child = spawnTracked(bin, [
    '--stdio', `${process.execPath} ${echoJs}`,
    '--outputTransport', 'streamableHttp',
    '--stateful',
    '--port', String(port),
    '--healthEndpoint', '/healthz',
    '--logLevel', logLevel,
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  const origin = `http://127.0.0.1:${port}`
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  child.stdout!.resume()
  try {
    await pollReady(`${origin}/healthz`, () => child.exitCode !== null || child.signalCode !== null)
  } catch (err) {
    await stopTree(child)
    throw new Error(`supergateway: ${(err as Error).message}; stderr: ${stderr.trim()}`)
  }
  const problems = () => (stderr.trim() === '' ? [] : [`stderr: ${stderr.trim().slice(-500)}`])
  return httpTarget({ name: 'supergateway', origin, path: '/mcp', child, problems })
}
