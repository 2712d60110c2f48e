// Stop 42: an outsider's attack on the session bounds as stop 41 changed them: an endpoint's
// sessions count toward limits.maxSessionsPerSubject and limits.maxSessions with server
// sessions and lanes. Real gateway, real conformance processes, the SDK v2 client.
// Findings (each a failing test first, then the fix):
// - an endpoint session and the lanes its calls run on were counted apart: a user at a bound
//   of 1, or one below their bound, had an endpoint whose tools/list was empty and whose every
//   call was "no tool named" (its own session filled the room its lanes needed; nothing was
//   logged above debug). Per user, endpoint sessions and lanes now count as the more of the
//   two: a user holds at most the bound's processes and at most the bound's sessions.
// - an open at a bound waited for every ended hold in the bound's scope to be gone (Promise.all),
//   though the first one gone made room: one helper ignoring SIGTERM held every open at that
//   bound for its whole stop ladder (three stopGraces), another user's too at a gateway bound.
//   It now looks again as soon as the first is gone.
// - an endpoint client's own resources/unsubscribe (the last holder of the URI on its lane) went
//   to a shared process as the gateway's own request (asOwn, bridge41): a process that exits on
//   it charged no one, so a user could crash the shared process (every user's) again and again
//   past limits.sharedCrashesPerSubject; the same request in a server session was charged. It
//   is sent as the user's request now; a session ending still gives its subscriptions back as
//   the gateway's own.
// What held is pinned as "held: …".
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import type { Client } from '@modelcontextprotocol/client'
import { scopeOf } from '../../gateway/bridge/bounds.js'
import { ownerKey } from '../../gateway/bridge/session.js'
import { initBody } from '../checklist/open-session.js'
import { openAndDelete, stubbornServer, unsubscribeExitStack } from '../helpers/held-stacks.js'
import { listeningClient } from '../helpers/listening-client.js'
import { pidsIn } from '../helpers/pids.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ALLOW = '    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n'
const conformance = (name: string) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'conformance.js'), name],
  pool: { min: 0 },
})

/** A stack whose users may hold `max` sessions, an endpoint `agg` over `eb` and `pb`. */
function bounded(max: number) {
  const o = { stack: undefined as unknown as Stack, held: [] as (() => Promise<void>)[] }
  before(async () => {
    o.stack = await startStack({
      policy: `${TEST_POLICY}  eb:\n${ALLOW}  pb:\n${ALLOW}  sb:\n${ALLOW}`,
      servers: { eb: conformance('eb'), pb: conformance('pb'), sb: conformance('sb') },
      config: {
        limits: { maxSessionsPerSubject: max, maxSessions: 3 },
        endpoints: { agg: { servers: ['eb', 'pb'] } },
      },
    })
  })
  afterEach(async () => {
    await Promise.allSettled(o.held.splice(0).map((end) => end()))
    // Lanes stay idle for laneIdle: each is ended now, as a bound would end it.
    const bounds = o.stack.gateway.registry.bounds
    while (await bounds.reclaimIdleLane(scopeOf({}), 'test over')) {}
    await waitFor(() => o.stack.gateway.registry.bounds.count(scopeOf({})) === 0, 'holds gone')
  })
  after(() => o.stack.close())
  return o
}

type Bounded = ReturnType<typeof bounded>

const urlOf = (b: Bounded, target: string) =>
  target === 'agg' ? `${b.stack.url}/mcp/agg` : b.stack.local(target)

/** A token of `user` for `target` (an endpoint's URL, or a server's resource). */
const tokenOf = (b: Bounded, user: string, target: string) =>
  b.stack.token(user, { resource: target === 'agg' ? urlOf(b, target) : b.stack.endpoint(target) })

/** A session of `user` at `target` held by the SDK client, listening (so never idle). */
async function hold(b: Bounded, user: string, target: string) {
  const { c, end } = await listeningClient(
    urlOf(b, target),
    await tokenOf(b, user, target),
    `stop42-${user}`,
  )
  b.held.push(end)
  return c
}

/** A raw open at `target` of `user`: its status and text (a session opened is DELETEd). */
async function open(b: Bounded, user: string, target: string) {
  const url = urlOf(b, target)
  const token = await tokenOf(b, user, target)
  const res = await postMcp(url, initBody({}), { authorization: `Bearer ${token}` })
  const sid = res.headers['mcp-session-id'] as string | undefined
  if (sid !== undefined)
    await fetch(url, {
      method: 'DELETE',
      headers: {
        authorization: `Bearer ${token}`,
        'mcp-session-id': sid,
        'mcp-protocol-version': '2025-11-25',
      },
    })
  return { status: res.status, text: res.text }
}

const countOf = (b: Bounded, user: string) =>
  b.stack.gateway.registry.bounds.count(
    scopeOf({ owner: ownerKey({ iss: b.stack.gateway.issuer!, sub: user } as never) }),
  )

/** Lists the endpoint's tools and calls one of each backend: the names it listed. */
async function useEndpoint(c: Client): Promise<string[]> {
  const names = (await c.listTools()).tools.map((t) => t.name)
  for (const name of ['eb_test_simple_text', 'pb_test_simple_text']) {
    assert.ok(names.includes(name), `${name} listed: ${names.join(',')}`)
    const r = (await c.callTool({ name, arguments: {} })) as { content: { text?: string }[] }
    assert.equal(r.content[0]?.text, 'This is a simple text response for testing.')
  }
  return names
}

describe('stop 42: limits.maxSessionsPerSubject 1: an endpoint session is usable', () => {
  const b = bounded(1)

  it('its tools are listed from both servers and called, one lane at a time', async () => {
    const c = await hold(b, 'alice', 'agg')
    await useEndpoint(c)
    assert.ok(countOf(b, 'alice') <= 1, `alice holds ${countOf(b, 'alice')}`)
  })

  it('held: with it open, a server session and a second endpoint session are refused 429', async () => {
    await hold(b, 'alice', 'agg')
    for (const target of ['sb', 'agg']) {
      const a = await open(b, 'alice', target)
      assert.equal(a.status, 429, `${target}: ${a.text}`)
      assert.match(a.text, /you have 1 sessions in use on this gateway/)
    }
    assert.equal(countOf(b, 'alice'), 1)
  })

  it('held: with a server session open (listening), an endpoint open is refused 429', async () => {
    await hold(b, 'alice', 'sb')
    const a = await open(b, 'alice', 'agg')
    assert.equal(a.status, 429, a.text)
  })
})

describe('stop 42: a user one below limits.maxSessionsPerSubject (2) uses an endpoint', () => {
  const b = bounded(2)

  it('a server session listening and an endpoint session: the endpoint lists and calls', async () => {
    await hold(b, 'alice', 'sb')
    await useEndpoint(await hold(b, 'alice', 'agg'))
    assert.ok(countOf(b, 'alice') <= 2, `alice holds ${countOf(b, 'alice')}`)
  })

  it('held: limits.maxSessions (3) counts each user apart: alice, bob and ada; dora is refused 503', async () => {
    await hold(b, 'alice', 'agg')
    await hold(b, 'bob', 'agg')
    await hold(b, 'admin', 'sb')
    for (const target of ['agg', 'sb']) {
      const a = await open(b, 'dev', target)
      assert.equal(a.status, 503, `${target}: ${a.text}`)
    }
  })
})

describe('stop 42: an open at a bound waits for the first ended hold to be gone, not for every one', () => {
  // Two ended sessions of alice's whose helpers ignore SIGTERM: each counts until the test
  // ends its helper (stopGrace 60 s: the ladder would take minutes).
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop42b-'))
  const pidsFile = join(dir, 'pids')
  let stack: Stack
  before(async () => {
    stack = await startStack({
      policy: `${TEST_POLICY}  stub:\n${ALLOW}  pb:\n${ALLOW}`,
      servers: {
        pb: conformance('pb'),
        stub: stubbornServer(pidsFile),
      },
      config: { limits: { maxSessionsPerSubject: 2 } },
    })
  })
  after(async () => {
    kill(pidsIn(pidsFile))
    await stack.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const kill = (pids: number[]) => {
    for (const pid of pids)
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
  }
  const stubHolds = () => stack.gateway.registry.bounds.count(scopeOf({ server: 'stub' }))

  it("one of two ended sessions gone: alice's open is answered while the other still ends", async () => {
    const token = await stack.token('alice', { server: 'stub' })
    const auth = { authorization: `Bearer ${token}` }
    /** A stub session opened then DELETEd: the pids of the helpers it started. */
    const openAndEnd = async () => {
      const before = pidsIn(pidsFile).length
      const opened = openAndDelete(stack, 'stub', auth)
      await waitFor(() => pidsIn(pidsFile).length > before, 'its helper started')
      await opened
      return pidsIn(pidsFile).slice(before)
    }
    const first = await openAndEnd()
    await openAndEnd()
    assert.equal(stubHolds(), 2, 'both count while their groups are stopped')
    const waits = () =>
      stack.logLines.filter((l) => l.includes('at a bound: waiting for ended sessions or lanes'))
        .length
    const before = waits()
    let answered: { status: number; text: string } | undefined
    const pbToken = await stack.token('alice', { server: 'pb' })
    void postMcp(stack.local('pb'), initBody({}), { authorization: `Bearer ${pbToken}` }).then(
      (a) => (answered = a),
    )
    await waitFor(() => waits() > before, 'the open waits at the bound')
    kill(first)
    await waitFor(() => stubHolds() === 1, 'the first ended session gone')
    await waitFor(() => answered !== undefined, 'the open answered')
    assert.equal(answered!.status, 200, answered!.text)
    assert.equal(stubHolds(), 1, 'the other still ends')
  })
})

describe("stop 42: an endpoint client's own resources/unsubscribe on a shared process is its own", () => {
  // A shared process that exits on resources/unsubscribe; one exit charged to a subject is their
  // allowance (limits.sharedCrashesPerSubject 1): their next request is refused.
  let stack: Stack
  before(async () => {
    stack = await unsubscribeExitStack()
  })
  after(() => stack.close())

  const url = () => `${stack.url}/mcp/shsub`
  const connect = async (user: string) => {
    const token = await stack.token(user, { resource: url() })
    return listeningClient(url(), token, `own-${user}`)
  }
  const call = (c: Client) =>
    c.callTool({ name: 'shconf_test_simple_text', arguments: {} }).then(
      (r) => JSON.stringify(r),
      (err: Error) => `refused: ${err.message}`,
    )

  it('the process exits on it: alice is charged (her next call refused), bob is not', async () => {
    const alice = await connect('alice')
    try {
      await alice.c.subscribeResource({ uri: 'test://watched-resource' })
      const from = stack.logLines.length
      await alice.c.unsubscribeResource({ uri: 'test://watched-resource' }).catch(() => {})
      await waitFor(
        () =>
          stack.logLines
            .slice(from)
            .some((l) =>
              l.includes('shared server process exited; its sessions end and it restarts'),
            ),
        'the process exited on the unsubscribe',
      )
      const charged = () =>
        stack.logLines
          .slice(from)
          .filter((l) => l.includes('shared server process exit charged to the subjects'))
          .map((l) => JSON.parse(l) as { blamed: string[] })
      await waitFor(() => charged().length > 0, 'the exit charged')
      assert.ok(
        charged()[0]!.blamed.some((b) => b.endsWith('alice')),
        JSON.stringify(charged()),
      )
    } finally {
      await alice.end().catch(() => {})
    }
    const again = await connect('alice')
    try {
      // Refused: the endpoint lists no tool of a server its user may not use now, and says why
      // (the backend's own refusal, not only that the name is unknown).
      const refused = await call(again.c)
      assert.doesNotMatch(refused, /simple text/i)
      assert.match(
        refused,
        /no tool named "shconf_test_simple_text" on this endpoint; left out, could not list: shconf: the shared server process exited too often with your requests in flight \(at most 1 in \d+ s\); retry in \d+ s/,
      )
      // A resource of it is routed by URI and refused by the backend's own budget, as at its URL.
      const read = await again.c.readResource({ uri: 'test://static-text' }).then(
        (r) => JSON.stringify(r),
        (err: Error) => `refused: ${err.message}`,
      )
      assert.match(
        read,
        /^refused: .*the shared server process exited too often with your requests in flight \(at most 1 in \d+ s\); retry in \d+ s$/,
      )
    } finally {
      await again.end().catch(() => {})
    }
    const bob = await connect('bob')
    try {
      assert.match(await call(bob.c), /simple text/i)
    } finally {
      await bob.end()
    }
  })
})
