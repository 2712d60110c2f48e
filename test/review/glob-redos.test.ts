// Review (issue 10, claim 1 "tool and prompt names … very long"): policy patterns compile to
// backtracking regular expressions (policy/glob.ts: `*` → `.*`). A pattern with two wildcards
// and a literal after the second (`*_admin_*_v2`, `file:///*/secret/*.key`) takes time
// quadratic in the name it is tested against, and the name is the caller's: any caller with
// access sends a tools/call (or resources/read) whose name repeats the pattern's middle
// literal, up to limits.maxBodyBytes (1 MiB), and the gateway's one event loop is busy for
// minutes: every other request of every user waits. The matcher's reads are counted (linear in
// the name); a 210 kB name is decided and relayed end to end.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { DEFAULT_AUDIT_FIELD_MAX } from '../../gateway/config/schema.js'
import { compileGlob } from '../../gateway/policy/glob.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const POLICY = `${TEST_POLICY}  globby:
    access: ["mcp:read"]
    tools:
      "*_admin_*_v2": deny
      "*": ["mcp:read"]
    resources:
      "file:///*/secret/*.key": deny
      "*": ["mcp:read"]
`

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: { globby: { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] } },
    policy: POLICY,
  })
})
after(() => stack.close())

describe('review: policy patterns against long names', () => {
  it('compileGlob decides a long name in linear time (two wildcards, a literal after the second)', () => {
    const m = compileGlob('*_admin_*_v2')
    // The matcher reads the name by charCodeAt only: a String that counts the reads measures
    // its work in steps, whatever the machine's speed.
    const reads = (n: number) => {
      let count = 0
      class Counted extends String {
        override charCodeAt(i: number): number {
          count++
          return super.charCodeAt(i)
        }
      }
      const name = new Counted('_admin_'.repeat(n)) as unknown as string
      assert.equal(m(name), false)
      return { count, length: name.length }
    }
    const small = reads(4_000)
    const large = reads(32_000)
    // 8× the input: a linear matcher reads about 8× as much; a backtracking one about 64×.
    assert.ok(
      large.count <= small.count * 8 * 1.01,
      `8× longer name took ${(large.count / small.count).toFixed(1)}× the reads (${small.count} → ${large.count})`,
    )
    // At most a few reads per character of the name (the pattern's tail after the last star).
    assert.ok(large.count <= large.length * 4, `${large.count} reads of ${large.length} characters`)
  })

  it('compileGlob agrees with the regular-expression reading of a pattern (random patterns and names)', () => {
    // The reference: `*` any run of characters (newlines too), `?` one UTF-16 unit, the rest literal.
    const reference = (pattern: string) =>
      new RegExp(
        `^${pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
        's',
      )
    const alphabet = ['a', 'b', '_', '*', '?', '.', '\\', '\n', 'é', '😀']
    let seed = 7
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n)
    const word = (len: number, chars: string[]) =>
      Array.from({ length: len }, () => chars[rand(chars.length)]).join('')
    for (let i = 0; i < 20_000; i++) {
      const pattern = word(rand(7), alphabet)
      const name = word(rand(9), alphabet.filter((c) => c !== '*' && c !== '?').concat(['*', '?']))
      assert.equal(
        compileGlob(pattern)(name),
        reference(pattern).test(name),
        `${JSON.stringify(pattern)} on ${JSON.stringify(name)}`,
      )
    }
  })

  it('a tools/call whose name is 210 kB does not stall the gateway for everyone', async () => {
    const token = await stack.token('alice', { server: 'globby' })
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
    }
    const init = await request(stack.local('globby'), {
      method: 'POST',
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'review', version: '0' },
        },
      }),
    })
    await init.body.text()
    const sid = init.headers['mcp-session-id'] as string
    const name = '_admin_'.repeat(30_000)
    const attack = request(stack.local('globby'), {
      method: 'POST',
      headers: { ...headers, 'mcp-session-id': sid },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name, arguments: {} },
      }),
    }).then(async (r) => {
      await r.body.text()
      return r.statusCode
    })
    // Decided by the policy (allowed by "*": it does not end in _v2) and relayed: the fixture
    // answers that it has no such tool. How long the event loop was held is not measured here
    // (it depends on the machine); the matcher's reads, counted above, are.
    assert.equal(await attack, 200)
    // The audit line names it cut at log.auditFieldMax, the rest counted.
    const line = stack
      .audit()
      .find(
        (l) =>
          l.method === 'tools/call' &&
          String(l.name).endsWith(`…[${name.length - DEFAULT_AUDIT_FIELD_MAX} more characters]`),
      )
    assert.ok(line, 'an audit line for the long name')
    assert.ok(String(line.name).startsWith(name.slice(0, DEFAULT_AUDIT_FIELD_MAX)))
    assert.equal(line.decision, 'allow')
  })
})
