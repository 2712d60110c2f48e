// A session counts toward maxSessionsPerSubject (every session bound) until its process is gone,
// not only until the session ends: exited, its stdout read, and the stop ladder on its process
// group over, as a lane and a pool's process do. A server whose process leaves a helper that
// ignores SIGTERM (servers/holder.js, `stubborn`) keeps its group for up to three stopGraces
// after its session ended; a user reopening then must not hold more groups than the bound.
// At the bound a new session waits for the ended one's group to be gone (a DELETE's takes a few
// milliseconds), then opens; with two at once, the other gets today's refusal (429, no
// Retry-After). Every era that opens a session, each way a session ends with its group left
// running: its process crashed, it exited leaving a descendant on its stdout (which the test
// ends), its client ended it. Real gateway and processes; stopGrace is long, so each gap lasts
// until the test ends the helper itself, and every wait is for an event (a log line, a reap).
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { request } from 'undici'
import { scopeOf } from '../../gateway/bridge/bounds.js'
import { ownerKey } from '../../gateway/bridge/session.js'
import { initBody } from '../checklist/open-session.js'
import { gone, pidsIn } from '../helpers/pids.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { reaped, waitFor } from '../helpers/wait-for.js'

const ERAS = ['2025-03-26', '2025-06-18', '2025-11-25', 'legacy'] as const
const WAYS = ['crashed', 'exited holding stdout', 'ended by its client'] as const
type Era = (typeof ERAS)[number]
type Way = (typeof WAYS)[number]

const dir = mkdtempSync(join(tmpdir(), 'ending-holds-'))
const CASES = ERAS.flatMap((era) => WAYS.map((way) => ({ era, way })))
const nameOf = (i: number) => `held${i}`
/** What each case's holder processes started, in order: each start's helper, each exit's descendant. */
const pidsFile = (i: number) => join(dir, `pids${i}`)

const SERVERS = Object.fromEntries(
  CASES.map((_, i) => [
    nameOf(i),
    {
      command: process.execPath,
      args: [join(SERVERS_DIR, 'holder.js')],
      maxSessionsPerSubject: 1,
      // Longer than any case: a group is left running until the test ends its helper.
      stopGrace: 60_000,
      pool: { min: 0 },
      env: { HOLDER_PIDS_FILE: pidsFile(i), HOLDER_START_HELPER: 'stubborn' },
    },
  ]),
)
const POLICY =
  TEST_POLICY +
  Object.keys(SERVERS)
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
    .join('')

let stack: Stack
before(async () => {
  stack = await startStack({ servers: SERVERS, policy: POLICY })
})
after(() => stack.close())

/** Everything the holders started, ended: no group is left for a 60 s grace. */
const kill = (pids: number[]) => {
  for (const pid of pids)
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
}
const streams: { destroy(): void }[] = []
/** Reopens of a case that failed before they were answered: waited for, then ended too. */
const unanswered: Promise<unknown>[] = []
const killAll = () => CASES.forEach((_, i) => kill(pidsIn(pidsFile(i))))
afterEach(async () => {
  killAll()
  await Promise.allSettled(unanswered.splice(0))
  for (const s of streams.splice(0)) s.destroy()
  killAll()
})

/** The parent of `pid` (/proc: Linux). */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
}

/** The lines of the gateway's log saying an open waits at a bound for ended processes. */
const waits = () =>
  stack.logLines.filter((l) => l.includes('at a bound: waiting for ended sessions or lanes')).length

interface Opened {
  status: number
  headers: Record<string, unknown>
  text: string
  /** The session's id (none when refused). */
  sid: string
  /** Ends the session the way its client does (DELETE; the legacy stream closed). */
  end(): Promise<void>
}

/** Opens a session of `server` as `token`'s client does in `era`. */
async function open(era: Era, server: string, token: string): Promise<Opened> {
  const auth = { authorization: `Bearer ${token}` }
  if (era === 'legacy') {
    const res = await request(`${stack.url}/sse/${server}`, {
      headers: { accept: 'text/event-stream', ...auth },
    })
    const refused = { status: res.statusCode, headers: res.headers, sid: '', end: async () => {} }
    if (res.statusCode !== 200) return { ...refused, text: await res.body.text() }
    streams.push(res.body)
    // Its first event names the session (read without ending the stream); its initialize is
    // answered on the stream (a process gone before that failed its start).
    const events = res.body[Symbol.asyncIterator]()
    let text = ''
    while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
    const endpoint = /event: endpoint\ndata: (.*)\n/.exec(text)![1]!
    const post = await postMcp(`${stack.url}${endpoint}`, initBody({}, '2024-11-05'), auth)
    assert.equal(post.status, 202, post.text)
    while (!text.includes('"id":1')) text += String((await events.next()).value ?? '')
    const sid = /sessionId=([\w.-]+)/.exec(endpoint)![1]!
    return { ...refused, text, sid, end: async () => void res.body.destroy() }
  }
  const res = await postMcp(stack.local(server), initBody({}, era), auth)
  const sid = (res.headers['mcp-session-id'] as string | undefined) ?? ''
  const end = async () => {
    const del = await request(stack.local(server), {
      method: 'DELETE',
      headers: { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': era },
    })
    assert.equal(del.statusCode, 200)
    await del.body.dump()
  }
  return { status: res.status, headers: res.headers, text: res.text, sid, end }
}

/** Ends the session as `way` says, leaving its group running (its stubborn helper). */
async function endSession(way: Way, session: Opened, file: string): Promise<void> {
  if (way === 'ended by its client') return session.end()
  const pid = parentOf(pidsIn(file)[0]!)
  process.kill(pid, way === 'crashed' ? 'SIGKILL' : 'SIGUSR2')
  await reaped(pid)
  if (way === 'crashed') return
  // Its descendant on its stdout: the session ends once the test ends it.
  const [, holding] = await waitFor(() => pidsIn(file).length === 2 && pidsIn(file))
  kill([holding!])
}

describe('a session counts toward maxSessionsPerSubject until its process is gone', () => {
  CASES.forEach(({ era, way }, i) => {
    it(`${era}, process ${way}: reopens wait for its group; then one opens, the other is refused; one process more`, async () => {
      const server = nameOf(i)
      const file = pidsFile(i)
      const sub = `ending-${i}`
      const principal = { iss: stack.gateway.issuer!, sub }
      const token = await stack.forge({ sub, aud: stack.endpoint(server) })
      const held = () =>
        stack.gateway.registry.count(scopeOf({ server, owner: ownerKey(principal) }))
      const first = await open(era, server, token)
      assert.equal(first.status, 200, first.text)
      const [helper] = await waitFor(() => pidsIn(file).length === 1 && pidsIn(file))
      await endSession(way, first, file)
      await waitFor(
        () => stack.gateway.registry.find(first.sid, server, principal as never) === undefined,
        'the session ended',
      )
      const started = pidsIn(file).length
      assert.equal(gone(helper!), false, 'its helper runs on (SIGTERM ignored)')
      assert.equal(held(), 1, 'the ended session counts while its group is stopped')

      // Two reopens at once, at the bound: both wait for the group, no process is started.
      const before = waits()
      let answered = 0
      const reopens = [open(era, server, token), open(era, server, token)].map((p) =>
        p.finally(() => answered++),
      )
      unanswered.push(...reopens)
      await waitFor(() => answered > 0 || waits() >= before + 2, 'both reopens waiting')
      assert.equal(answered, 0, 'a reopen was answered while the old group was being stopped')
      assert.equal(pidsIn(file).length, started, 'no process started meanwhile')
      assert.equal(held(), 1)

      // The group gone, one reopen gets a process of its own; the other is refused as ever.
      kill([helper!])
      const answers = await Promise.all(reopens)
      const statuses = answers.map((a) => a.status).sort()
      assert.deepEqual(statuses, [200, 429], answers.map((a) => `${a.status} ${a.text}`).join('\n'))
      const refused = answers.find((a) => a.status === 429)!
      assert.equal(refused.headers['retry-after'], undefined, 'no made-up Retry-After')
      assert.match(refused.text, new RegExp(`you have 1 sessions in use on ${server} `))
      assert.equal(JSON.parse(refused.text).error.code, -32000)
      assert.equal(pidsIn(file).length, started + 1, 'one process started: the one served')
      assert.equal(held(), 1)
    })
  })
})
