// Stop 42: an outsider's attack on what stop 41 changed: the client address behind a proxy
// (trustProxy), the pretty log's escaping, endpoint sessions under the session bounds, and a
// JSON reply written before its audit line. Real gateways, real tokens, real stdio servers.
// Findings (each a failing test first, then the fix):
// - an X-Forwarded-For entry with a port (`203.0.113.5:40001`, as Azure Application Gateway
//   writes it, `[2001:db8::5]:443`) or in brackets was the client's address as written: the
//   broker counted registrations per address and port, so a client opening a new connection
//   (a new source port) per registration had no broker.registration.perAddressPerMinute, and a
//   trusted proxy writing its own address with a port was taken for the client. The address is
//   read without its port and brackets now.
// - the pretty log left format characters as they were: zero-width spaces and joiners, the BOM,
//   Unicode tag characters (invisible text) in a subject or a tool name, so `alice` and
//   `alice\u200b` printed alike, and a field's name (pino-pretty writes names raw) kept bidi
//   overrides. Every control and format character is shown as \uXXXX now, in names too.
// What held is pinned as "held: …" (see the describe blocks).
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { createLogger } from '../../gateway/observability/logger.js'
import { clientMetadata, register } from '../helpers/broker-raw.js'
import { startProxiedBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { loggedIp } from '../helpers/logged-ip.js'
import { initBody } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

/** A public client's registration body. */
const metadata = () => clientMetadata(['http://127.0.0.1:43142/cb'], { client_name: 'stop42' })

/** The logged client address of a 404 sent with `forwarded` as its X-Forwarded-For. */
async function ipOf(stack: Stack, forwarded: string | string[], path: string): Promise<unknown> {
  const res = await request(`${stack.url}${path}`, { headers: { 'x-forwarded-for': forwarded } })
  await res.body.dump()
  assert.equal(res.statusCode, 404)
  return loggedIp(stack.logLines, path)
}

describe('stop 42: an X-Forwarded-For address with a port or brackets is the address', () => {
  // [what the proxy appended, the address it names]
  const SPELLINGS: [string, string][] = [
    ['198.51.100.7:40001', '198.51.100.7'],
    ['198.51.100.7:1', '198.51.100.7'],
    ['[2001:db8::7]:443', '2001:db8::7'],
    ['[2001:db8::7]', '2001:db8::7'],
    ['  [2001:DB8::7]:8443 ', '2001:DB8::7'],
  ]
  for (const trust of [true, ['127.0.0.1', '10.0.0.0/8']] as const) {
    describe(`trustProxy ${JSON.stringify(trust)}`, () => {
      let stack: Stack
      before(async () => {
        stack = await startStack({ config: { trustProxy: trust } })
      })
      after(() => stack.close())

      for (const [i, [entry, address]] of SPELLINGS.entries())
        it(`${JSON.stringify(entry)} after a client's own entry: the ip is ${address}`, async () => {
          assert.equal(await ipOf(stack, `6.6.6.6, ${entry}`, `/p${i}`), address)
        })

      it('held: garbage, an empty last entry, a bare port, a bracket left open: never a client-written address before it', async () => {
        for (const [j, entry] of ['unknown', '[2001:db8::7', ':443', '1.2.3.4:x', '[]:1'].entries())
          assert.equal(await ipOf(stack, `6.6.6.6, ${entry}`, `/g${j}`), entry.trim())
      })

      it("two header lines are one list (the proxy's line last): its address, without the port", async () => {
        assert.equal(await ipOf(stack, ['6.6.6.6', '198.51.100.8:2'], '/two'), '198.51.100.8')
      })
    })
  }

  it('trustProxy [10.0.0.0/8]: a trusted proxy that wrote its own address with a port is skipped', async () => {
    const stack = await startStack({ config: { trustProxy: ['127.0.0.1', '10.0.0.0/8'] } })
    try {
      assert.equal(await ipOf(stack, '203.0.113.9:5000, 10.1.2.3:6000', '/hop'), '203.0.113.9')
      assert.equal(
        await ipOf(stack, '6.6.6.6, 203.0.113.9, [::ffff:10.1.2.3]:1', '/m'),
        '203.0.113.9',
      )
    } finally {
      await stack.close()
    }
  })
})

describe('stop 42: a client on new source ports is still counted at its address (broker registrations)', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startProxiedBrokerStack()
  })
  after(() => stack.close())

  /**
   * Registrations 1-4 from `address` with a new port each: the fourth's answer. The window is a
   * clock minute: a run that crossed one is run again from another address (never twice).
   */
  async function fourth(address: (port: number, round: number) => string) {
    for (let round = 0; ; round++) {
      const minute = Math.floor(Date.now() / 60_000)
      const answers = []
      for (let port = 40001; port <= 40004; port++)
        answers.push(await register(stack, metadata(), { 'x-forwarded-for': address(port, round) }))
      if (Math.floor(Date.now() / 60_000) === minute || round > 0) {
        for (const [i, a] of answers.slice(0, 3).entries())
          assert.equal(a.status, 201, `registration ${i + 1}: ${a.text}`)
        return answers[3]!
      }
    }
  }

  for (const [name, address] of [
    ['IPv4', (port: number, round: number) => `203.0.113.${20 + round}:${port}`],
    ['IPv6', (port: number, round: number) => `[2001:db8:${round + 1}::5]:${port}`],
  ] as const)
    it(`${name}: the fourth registration in a minute is 429 slow_down, no client registered`, async () => {
      const over = await fourth(address)
      assert.equal(over.status, 429, over.text)
      assert.equal(over.json.error, 'slow_down')
      assert.equal(over.json.client_id, undefined)
    })
})

describe('stop 42: the pretty log shows format characters, and field names, escaped', () => {
  /** What a terminal acts on or shows as nothing: controls but tab and newline, format characters. */
  const UNSEEN = /(?![\t\n])[\p{Cc}\p{Cf}]/u

  function pretty(write: (log: ReturnType<typeof createLogger>) => void): string {
    const lines: string[] = []
    const log = createLogger(
      { level: 'info', bufferBytes: 0, flushInterval: 1000, format: 'pretty' },
      { write: (line: string) => void lines.push(line) },
    )
    write(log)
    return lines.join('')
  }

  it('zero-width characters, the BOM, a soft hyphen and tag characters in a message and a field: \\uXXXX', () => {
    const sub = 'alice\u200b\u200d\ufeff\u00ad\u2060\u{e0041}\u{e007f}'
    const out = pretty((log) =>
      log.warn({ sub, tool: `read\u200cfile` }, `server s failed to start a session of ${sub}`),
    )
    assert.doesNotMatch(out, UNSEEN, JSON.stringify(out))
    assert.match(
      out,
      /session of alice\\u200b\\u200d\\ufeff\\u00ad\\u2060\\udb40\\udc41\\udb40\\udc7f/,
    )
    assert.match(out, /read\\u200cfile/)
  })

  it("a field's name, at the top and nested, with a bidi override or an escape: \\uXXXX", () => {
    const out = pretty((log) =>
      log.info(
        { 'k\u202eey': 'v', nested: { 'a\u001b[2Jb': 1, 'c\u200bd': [{ 'e\u2066f': 2 }] } },
        'm',
      ),
    )
    assert.doesNotMatch(out, UNSEEN, JSON.stringify(out))
    assert.match(out, /k\\u202eey/)
    assert.match(out, /c\\u200bd/)
  })

  it('held: a line break in an error (its stack) is indented under the error, never a line of its own at column 0', () => {
    const out = pretty((log) =>
      log.error({ err: new Error('bad\n[12:00:00.000] INFO: forged') }, 'unhandled error'),
    )
    assert.ok(!out.split('\n').some((l) => l.startsWith('[12:00:00.000] INFO: forged')), out)
  })

  it('held: plain text, tabs in a field, and characters of other scripts are shown as they are', () => {
    const out = pretty((log) => log.info({ name: 'Zoë 東京 مرحبا' }, 'plain message'))
    assert.match(out, /plain message/)
    assert.match(out, /Zoë 東京 مرحبا/)
  })
})

describe('stop 42: a JSON reply written before its audit line, its client gone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop42-'))
  const record = join(dir, 'record.jsonl')
  const got = (text: string) => existsSync(record) && readFileSync(record, 'utf8').includes(text)
  let stack: Stack
  before(async () => {
    stack = await startStack({
      servers: {
        fixjson: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'fixture.js')],
          env: { FIXTURE_RECORD_FILE: record },
          responses: 'json',
        },
      },
      policy: `${TEST_POLICY}  fixjson:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
    })
  })
  after(async () => {
    await stack.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** The audit lines of `sub` for tool `name` so far. */
  const lines = (sub: string, name: string) =>
    stack.audit().filter((e) => e.server === 'fixjson' && e.sub === sub && e.name === name)

  for (const [how, user] of [
    ['aborted its request', 'alice'],
    ['closed its connection', 'bob'],
  ] as const)
    it(`held: the call's client ${how} before its reply: one audit line, once the reply came`, async () => {
      const gate = `gate-of-${user}`
      const token = await stack.token(user, { server: 'fixjson' })
      const auth = { authorization: `Bearer ${token}` }
      const init = await postMcp(stack.local('fixjson'), initBody({}), auth)
      assert.equal(init.status, 200, init.text)
      const session = {
        ...auth,
        'mcp-session-id': init.headers['mcp-session-id'] as string,
        'mcp-protocol-version': '2025-11-25',
      }
      const rpc = (id: number, name: string, args: Record<string, unknown>) =>
        JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name, arguments: args },
        })
      const headers = {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...session,
      }
      await postMcp(
        stack.local('fixjson'),
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        session,
      )
      // The gate call, left by its client once the process has it.
      const gone = new AbortController()
      let socket: Socket | undefined
      if (how === 'aborted its request')
        void request(stack.local('fixjson'), {
          method: 'POST',
          headers,
          body: rpc(2, 'gate', { name: gate }),
          signal: gone.signal,
        }).catch(() => {})
      else {
        const url = new URL(stack.local('fixjson'))
        socket = connect(Number(url.port), url.hostname)
        const body = rpc(2, 'gate', { name: gate })
        const head = Object.entries({
          ...headers,
          host: url.host,
          'content-length': String(Buffer.byteLength(body)),
        })
          .map(([k, v]) => `${k}: ${v}`)
          .join('\r\n')
        socket.on('error', () => {})
        socket.write(`POST ${url.pathname} HTTP/1.1\r\n${head}\r\n\r\n${body}`)
      }
      await waitFor(() => got(`"name":"${gate}"`), 'the gate call reached the process')
      gone.abort()
      socket?.destroy()
      const opened = await request(stack.local('fixjson'), {
        method: 'POST',
        headers,
        body: rpc(3, 'open_gate', { name: gate }),
      })
      assert.equal(opened.statusCode, 200)
      await opened.body.dump()
      await waitFor(() => lines(user, 'gate').length > 0, 'the gate call audited')
      // A later call of the same user audited: a second line of the gate call would be written by now.
      const later = await request(stack.local('fixjson'), {
        method: 'POST',
        headers,
        body: rpc(4, 'open_gate', { name: `${gate}-later` }),
      })
      await later.body.dump()
      await waitFor(() => lines(user, 'open_gate').length === 2, 'the later call audited')
      assert.equal(lines(user, 'gate').length, 1, JSON.stringify(lines(user, 'gate')))
    })
})
