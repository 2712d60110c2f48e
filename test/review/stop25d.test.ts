// Stop 25d: an outsider's review of review26 (abandoned lanes), hotpath26 (one timer per
// lane/session, one turn-end for stdin writers, held priming events) and the stderr splitter.
// Finding: what is logged of a stderr line is its first lineMax characters once redacted, and
// redacting shortens a line (each secret becomes `[redacted]`): with the credential written
// several times in a long line, text from past the kept cut (lineMax + the longest form of a
// secret) moved up under lineMax, and a secret the cut left in half was not recognised there:
// its first characters were logged in the clear.
// Finding: a process was taken for alive until its stderr closed (the child's 'close' event):
// one that exited leaving a descendant holding its stderr (a helper or daemon it started) was
// alive to the gateway for as long as that one lived, so its session or lane was not ended
// and its requests were written to a dead process, each waiting out requestTimeout.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { spawnChild } from '../../gateway/bridge/child.js'
import { configSchema } from '../../gateway/config/schema.js'
import { scriptStderrLogged as stderrOf } from '../helpers/stderr-log.js'

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

describe('stop 25d: a process that exits is gone, whoever still holds its stderr', () => {
  const grandchildren: number[] = []
  after(() => {
    for (const pid of grandchildren)
      try {
        process.kill(pid)
      } catch {}
  })
  for (const holds of ['stderr', 'stderr and stdout'] as const) {
    it(`a descendant holding its ${holds}: exited, not alive, onexit called`, async () => {
      const stdio =
        holds === 'stderr' ? "['ignore', 'ignore', 'inherit']" : "['ignore', 'inherit', 'inherit']"
      // The process starts a long-lived descendant, says its pid (a JSON-RPC notification on
      // stdout), writes a last line to stderr, and exits.
      const script = `const c = require('child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: ${stdio} })
        process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'pid', params: { pid: c.pid } }) + '\\n')
        process.stderr.write('last words\\n')
        setTimeout(() => process.exit(0), 50)`
      const config = configSchema.parse({
        servers: { f: { command: process.execPath, args: ['-e', script], stopGrace: 200 } },
      }).servers.f!
      const child = await spawnChild(config, pino({ level: 'silent' }))
      const pid = await new Promise<number>((resolve) => {
        child.onmessage = (m) => resolve((m as unknown as { params: { pid: number } }).params.pid)
      })
      grandchildren.push(pid)
      let onexit = false
      child.onexit = () => (onexit = true)
      // Failing, it waits for the descendant (ten minutes): 20 s bounds the test, not the fix.
      const seen = await Promise.race([
        child.exited.then(() => 'exited'),
        new Promise((r) => setTimeout(r, 20_000, 'still alive').unref()),
      ])
      assert.equal(seen, 'exited')
      assert.equal(child.alive, false)
      assert.equal(onexit, true)
      // The descendant is still there: the exit was seen without it.
      assert.doesNotThrow(() => process.kill(pid, 0))
      await child.close()
    })
  }
})
