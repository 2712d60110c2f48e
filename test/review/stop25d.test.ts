// Stop 25d: an outsider's review of review26 (abandoned lanes), hotpath26 (one timer per
// lane/session, one turn-end for stdin writers, held priming events) and the stderr splitter.
// Finding: what is logged of a stderr line is its first lineMax characters once redacted, and
// redacting shortens a line (each secret becomes `[redacted]`): with the credential written
// several times in a long line, text from past the kept cut (lineMax + the longest form of a
// secret) moved up under lineMax, and a secret the cut left in half was not recognised there:
// its first characters were logged in the clear.
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { spawnChild } from '../../gateway/bridge/child.js'
import { configSchema } from '../../gateway/config/schema.js'

/** Runs `script` as a real process whose stderr the gateway logs; the stderr lines logged. */
async function stderrOf(
  script: string,
  secrets: string[],
  stderr: { lineMax: number; linesPerWindow?: number },
): Promise<string[]> {
  const config = configSchema.parse({
    servers: { f: { command: process.execPath, args: ['-e', script], stderr } },
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
  const child = await spawnChild(config, pino({ level: 'info' }, sink), {}, secrets)
  await child.exited
  return lines
}

describe('stop 25d: no part of a secret past the kept cut reaches the log', () => {
  const secret = 'tok_9f2c81d7e4a6b3095c1d8e7f2a4b6c8d0e1f3a5b'
  const lineMax = 100
  // The longest form of the secret: 6 characters a byte (`\u00XX`), 264 here; kept: 364.
  const longest = secret.length * 6
  // Every partial secret the cut can leave: starting 1..len-1 characters before it.
  for (const copies of [2, 7, 8]) {
    for (const tail of [1, 12, secret.length - 1]) {
      if (secret.length * copies > lineMax + longest - tail) continue
      it(`${copies} whole copies, then one cut ${tail} characters in`, async () => {
        const start = lineMax + longest - tail
        const head = secret.repeat(copies)
        const line = head + 'x'.repeat(start - head.length) + secret + ' end'
        const logged = await stderrOf(
          `process.stderr.write(${JSON.stringify(`${line}\n`)})`,
          [secret],
          { lineMax },
        )
        assert.equal(logged.length, 1)
        const out = logged[0]!
        assert.ok(out.length <= lineMax)
        // No 6 characters of the secret in a row (its `tok_` prefix aside) are in the log.
        for (let i = 4; i + 6 <= secret.length; i++)
          assert.ok(!out.includes(secret.slice(i, i + 6)), `logged: ${out}`)
        assert.ok(out.startsWith('[redacted]'), out)
      })
    }
  }
})
