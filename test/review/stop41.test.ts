// Stop 41: an outsider's attack on the surfaces around the relay: the edge middleware, the
// forwarded headers, /metrics and /readyz, the legacy HTTP+SSE transport, the logs and the
// command line, with real gateways, real tokens, real stdio servers and real processes.
// Findings (each a failing test first, then the fix):
// - `trustProxy: true` believed the leftmost X-Forwarded-For entry, the one a client writes
//   itself behind any proxy that appends (nginx's $proxy_add_x_forwarded_for, cloud load
//   balancers): the broker's registrations per address (broker.registration.perAddressPerMinute)
//   were unlimited by writing a new address in each request, and the log's `ip` was the
//   client's word. With `true` only the last entry (the one the peer itself wrote) is believed.
// - `mcp-edge tools pins` printed pending tool names as the server wrote them: a pinned server
//   (the one the pins guard against) could put terminal escapes and line breaks in a name and
//   redraw the operator's review (hide a pending change, fake a "pinned" line). A name that is
//   not plain text is printed as a JSON string, as `approve` already prints it. So are a
//   token's subject, client id, roles and scopes in `mcp-edge policy check`'s explanation (a
//   user's claims, pasted by an operator asking why they were refused).
// - the pretty log format (a person at a terminal) wrote the message and an error's stack as
//   they were: a subject in "failed to start a session of <sub>", or an error's text, could
//   carry escape sequences and line breaks to the operator's terminal (a forged line, a cleared
//   screen). Control and bidi characters are shown as \uXXXX there now (JSON lines escaped them).
// What held is pinned as "held: …" (see the describe blocks).
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { clientMetadata, register } from '../helpers/broker-raw.js'
import { startProxiedBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { loggedIp } from '../helpers/logged-ip.js'
import { createLogger } from '../../gateway/observability/logger.js'
import { startStack } from '../helpers/stack.js'
import { runCli } from '../helpers/cli-run.js'

/** A public client's registration body. */
const metadata = () => clientMetadata(['http://127.0.0.1:43141/cb'], { client_name: 'stop41' })

describe('stop 41: trustProxy true believes only what the peer wrote in X-Forwarded-For', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startProxiedBrokerStack()
  })
  after(() => stack.close())

  it('a client writing a new address in front of the proxy’s is still counted at its own (429 slow_down)', async () => {
    // The proxy appends the address it saw (198.51.100.7); the client wrote the rest.
    const via = (i: number) => ({ 'x-forwarded-for': `203.0.113.${i}, 198.51.100.7` })
    for (let i = 1; i <= 3; i++)
      assert.equal((await register(stack, metadata(), via(i))).status, 201, `registration ${i}`)
    const over = await register(stack, metadata(), via(4))
    assert.equal(over.status, 429, over.text)
    assert.equal(over.json.error, 'slow_down')
    assert.equal(over.json.client_id, undefined)
    assert.equal(loggedIp(stack.logLines, '/register'), '198.51.100.7')
  })

  it('held: a lone entry (a proxy that overwrites the header, as the shipped nginx does) is believed', async () => {
    const res = await request(`${stack.url}/no-such-path`, {
      headers: { 'x-forwarded-for': '192.0.2.44' },
    })
    await res.body.dump()
    assert.equal(res.statusCode, 404)
    assert.equal(loggedIp(stack.logLines, '/no-such-path'), '192.0.2.44')
  })
})

describe('stop 41: the log ip with trustProxy true and a list', () => {
  for (const trust of [true, ['127.0.0.1']] as const) {
    it(`trustProxy ${JSON.stringify(trust)}: the client's own leftmost entry is never the ip`, async () => {
      const stack = await startStack({ config: { trustProxy: trust } })
      try {
        // Refused requests are logged at info: a 404 is one.
        const res = await request(`${stack.url}/no-such-path`, {
          headers: { 'x-forwarded-for': '6.6.6.6, 198.51.100.9' },
        })
        await res.body.dump()
        assert.equal(res.statusCode, 404)
        assert.equal(loggedIp(stack.logLines, '/no-such-path'), '198.51.100.9')
      } finally {
        await stack.close()
      }
    })
  }
})

const run = runCli

describe('stop 41: mcp-edge tools pins with tool names a server chose', () => {
  const A = `sha256:${'a'.repeat(64)}`
  const B = `sha256:${'b'.repeat(64)}`
  // What a server can name a tool (the gateway records any name it lists as pending): a line
  // that erases the line above and writes a fake "pinned" one, a bell, a bidi override.
  const HOSTILE = [
    `\u001b[1A\u001b[2K\r  pinned   read  ${A}`,
    'a\nb',
    'x\u0007\u009b2J',
    'safe\u202eevil',
  ]

  it('every name that is not plain text is printed quoted: no escape, no line break, one line each', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop41-'))
    const file = join(dir, 'tool-pins.yaml')
    const pending = HOSTILE.map(
      (name, i) =>
        `      ${JSON.stringify(name)}: { hash: ${B}, seen: "2026-12-04T0${i}:00:00.000Z" }`,
    )
    writeFileSync(
      file,
      `servers:\n  files:\n    tools:\n      read: ${A}\n    pending:\n${pending.join('\n')}\n      plain_name: { hash: ${B}, seen: "2026-12-04T09:00:00.000Z", previous: ${A} }\n`,
    )
    const r = await run(['tools', 'pins', '--file', file])
    assert.equal(r.code, 0, r.stderr)
    assert.doesNotMatch(r.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/)
    const lines = r.stdout.split('\n')
    // pin file, server, one pinned, five pending, and the end.
    assert.equal(lines.length, 9, r.stdout)
    // Each odd name is one JSON string, read back as the name it is.
    const quoted = lines
      .map((l) => /^ {2}PENDING {2}(".*") {2}sha256:/.exec(l)?.[1])
      .filter((q) => q !== undefined)
      .map((q) => JSON.parse(q) as string)
    assert.deepEqual(quoted.sort(), [...HOSTILE].sort())
    // Plain names are shown as they are.
    assert.ok(lines.includes(`  pinned   read  ${A}`))
    assert.ok(lines.some((l) => l.startsWith(`  PENDING  plain_name  ${B}`)))
  })
})

describe('stop 41: the pretty log shows what a terminal would act on, never acts on it', () => {
  // A terminal acts on these: C0 and C1 controls but tab and newline, bidi overrides.
  const ACTED_ON =
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/

  it('a message, a field and an error with escapes and line breaks: shown escaped, one line for the message', () => {
    const lines: string[] = []
    const log = createLogger(
      { level: 'info', bufferBytes: 0, flushInterval: 1000, format: 'pretty' },
      { write: (line: string) => void lines.push(line) },
    )
    // A subject as an IdP may hand it over, in the one message that names one.
    const sub = 'bob\u001b[2J\r\n[12:00:00.000] INFO: forged'
    log.warn(
      { server: 's', sub },
      `server s failed to start a session of ${sub}; that user is refused for 1 s`,
    )
    log.info({ stderr: 'x\u009b31m\u202etxt' }, 'server stderr')
    log.error({ err: new Error('bad \u001b]0;title\u0007 text') }, 'unhandled error')
    const out = lines.join('')
    assert.doesNotMatch(out, ACTED_ON, JSON.stringify(out))
    assert.ok(!out.split('\n').some((l) => l.startsWith('[12:00:00.000] INFO: forged')), out)
    assert.match(out, /failed to start a session of bob\\u001b\[2J\\u000d\\u000a\[12:00/)
    assert.match(out, /bad \\u001b\]0;title\\u0007 text/)
  })

  it('held: the JSON format escapes every control character (the default off a terminal)', () => {
    const lines: string[] = []
    const log = createLogger(
      { level: 'info', bufferBytes: 0, flushInterval: 1000, format: 'json' },
      { write: (line: string) => void lines.push(line) },
    )
    log.warn({ sub: 'a\u001b\nb' }, 'x\u001b\ny')
    assert.equal(lines.length, 1)
    assert.doesNotMatch(lines[0]!.slice(0, -1), /[\u0000-\u001f]/)
    assert.equal(JSON.parse(lines[0]!).msg, 'x\u001b\ny')
  })
})

describe('stop 41: mcp-edge policy check with claims a user can shape', () => {
  it('subject, client id, roles and scopes that are not plain text are printed quoted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop41-'))
    const policy = join(dir, 'policy.yaml')
    writeFileSync(
      policy,
      'roles:\n  "ops\\u001b[2J": ["mcp:read"]\nservers:\n  notes:\n    access: ["mcp:read"]\n    tools: { read_note: ["mcp:read"] }\n',
    )
    const claims = join(dir, 'claims.json')
    writeFileSync(
      claims,
      JSON.stringify({
        sub: 'bob\r\n  rule      allow-all at policy.yaml:1',
        azp: 'client\u001b]0;title\u0007',
        realm_access: { roles: ['ops\u001b[2J'] },
        scope: 'mcp:read x\u202ey',
      }),
    )
    const r = await run([
      'policy',
      'check',
      '--policy',
      policy,
      '--claims',
      claims,
      '--server',
      'notes',
      '--tool',
      'read_note',
    ])
    assert.equal(r.code, 0, r.stderr + r.stdout)
    assert.doesNotMatch(r.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/)
    assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('  rule ')).length, 1, r.stdout)
    const caller = r.stdout.split('\n').find((l) => l.startsWith('  caller '))!
    assert.ok(
      caller.includes(JSON.stringify('bob\r\n  rule      allow-all at policy.yaml:1')),
      caller,
    )
    assert.ok(caller.includes('client_id "client\\u001b]0;title\\u0007"'), caller)
    assert.ok(caller.includes('roles "ops\\u001b[2J"'), caller)
  })
})
