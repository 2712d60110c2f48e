import { Writable } from 'node:stream'
import { pino } from 'pino'
import { spawnChild } from '../../gateway/bridge/child.js'
import { configSchema } from '../../gateway/config/schema.js'

/**
 * Runs a real process that writes `text` to its stderr, started with `secrets` as a user's
 * credentials; the stderr lines the gateway logged, as an operator reads them.
 */
export async function stderrLogged(
  text: string,
  secrets: readonly string[],
  stderr: { lineMax?: number; linesPerWindow?: number } = {},
): Promise<string[]> {
  const config = configSchema.parse({
    servers: {
      f: {
        command: process.execPath,
        args: ['-e', `process.stderr.write(${JSON.stringify(text)})`],
        stderr: { linesPerWindow: 100_000, ...stderr },
      },
    },
  }).servers.f!
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n'))
        if (l !== '') {
          const entry = JSON.parse(l) as { msg?: string; stderr?: string }
          if (entry.msg === 'server stderr') lines.push(entry.stderr!)
        }
      done()
    },
  })
  const child = await spawnChild(config, pino({ level: 'info' }, sink), {}, [...secrets])
  await child.exited
  return lines
}
