// `mcp-edge policy check` and the running gateway never disagree: randomized (role set, tool)
// pairs, each asked of both, the gateway through real tools/call requests on real sessions.
// POLICY_AGREEMENT_SEED=<n> replays a run; POLICY_AGREEMENT_PAIRS changes the count.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, before, it } from 'node:test'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { firstData } from '../helpers/sse.js'
import { startStack, type Stack } from '../helpers/stack.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const SEED = Number(process.env.POLICY_AGREEMENT_SEED ?? Math.floor(Math.random() * 2 ** 32))
const PAIRS = Number(process.env.POLICY_AGREEMENT_PAIRS ?? 1000)
const ROLES = ['mcp-user', 'mcp-developer', 'mcp-admin', 'guest']
const TOOLS = [
  'list_notes',
  'read_note',
  'write_note',
  'delete_note',
  // Unknown to the policy and the server: near misses and case.
  'purge_notes',
  'read_notes',
  'LIST_NOTES',
  'note',
]
const ACCEPT = 'application/json, text/event-stream'

type Outcome = 'allow' | 'deny' | 'challenge' | `unexpected ${string}`
interface Answer {
  status: number
  headers: Record<string, unknown>
  text: string
}

/** mulberry32: a small seeded PRNG, uniform on [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

async function post(token: string, body: unknown, sid?: string): Promise<Answer> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: ACCEPT,
    authorization: `Bearer ${token}`,
  }
  if (sid !== undefined) headers['mcp-session-id'] = sid
  const res = await request(stack.local('notes'), {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

/** The one JSON-RPC message of a JSON or SSE body. */
function message(text: string): { result?: unknown; error?: { code: number } } {
  const data = text.startsWith('{') ? text : firstData(text)
  return JSON.parse(data ?? 'null') ?? {}
}

/** What the gateway did with a tools/call, from its answer alone. */
function classify(res: Answer): Outcome {
  if (res.status === 200) {
    const m = message(res.text)
    if (m.result !== undefined) return 'allow'
    if (m.error?.code === -32010) return 'deny'
  }
  const challenge = String(res.headers['www-authenticate'])
  if (res.status === 403 && challenge.includes('error="insufficient_scope"')) return 'challenge'
  return `unexpected ${res.status} ${res.text.slice(0, 120)}`
}

/** A session for the token, or undefined when the gateway refuses to open one. */
async function openSession(token: string): Promise<string | undefined> {
  const init = await post(token, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'agree', version: '0' },
    },
  })
  if (init.status !== 200) return undefined
  const sid = init.headers['mcp-session-id'] as string
  await post(token, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
  return sid
}

type Checked = { line: number; decision?: Outcome; error?: string }

/** Every line through one `policy check --batch -` process; results in input order. */
function batch(policy: string, lines: unknown[]): Promise<Checked[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, 'policy', 'check', '--policy', policy, '--batch', '-'])
    const out: Checked[] = []
    let stderr = ''
    createInterface({ input: p.stdout }).on('line', (l) => void out.push(JSON.parse(l)))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code) => {
      if (code === 0) resolve(out)
      else reject(new Error(`policy check exited ${code}: ${stderr}`))
    })
    p.stdin.end(lines.map((l) => JSON.stringify(l)).join('\n'))
  })
}

it(`${PAIRS} random (role set, tool) pairs: policy check agrees with the gateway`, async (t) => {
  t.diagnostic(`seed ${SEED} (replay with POLICY_AGREEMENT_SEED=${SEED})`)
  const random = prng(SEED)
  const pairs = Array.from({ length: PAIRS }, () => ({
    roles: ROLES.filter(() => random() < 0.5),
    tool: TOOLS[Math.floor(random() * TOOLS.length)]!,
  }))
  const keyOf = (roles: string[]) => roles.join(',')

  // One token and one session per distinct role set: spawning a server per pair is slow.
  const sets = new Map<string, { token: string; claims: object; sid?: string; calls: number[] }>()
  for (const [i, { roles }] of pairs.entries()) {
    let set = sets.get(keyOf(roles))
    if (set === undefined) {
      const token = await stack.forge({
        sub: `rs-${sets.size}`,
        aud: stack.endpoint('notes'),
        realm_access: { roles },
      })
      // The claims exactly as the gateway reads them from the token.
      set = { token, claims: decodeJwt(token), calls: [] }
      sets.set(keyOf(roles), set)
    }
    set.calls.push(i)
  }

  // The gateway: one role set's calls in order on its session, role sets in parallel. A role
  // set refused at initialize has no session; the policy still answers before the session
  // lookup, so its calls are still the gateway's real decisions.
  const gateway: Outcome[] = new Array(pairs.length)
  await Promise.all(
    [...sets.values()].map(async (set) => {
      set.sid = await openSession(set.token)
      for (const i of set.calls) {
        const params = { name: pairs[i]!.tool, arguments: { name: `n${i}`, text: 'x' } }
        const call = { jsonrpc: '2.0', id: i + 1, method: 'tools/call', params }
        gateway[i] = classify(await post(set.token, call, set.sid))
      }
    }),
  )

  // policy check: the same policy file, the same claims, one process for every pair.
  const lines = pairs.map((p) => {
    return { claims: sets.get(keyOf(p.roles))!.claims, server: 'notes', tool: p.tool }
  })
  const checked = await batch(join(stack.dir, 'policy.yaml'), lines)
  assert.equal(checked.length, pairs.length)

  const disagree = pairs.flatMap((p, i) => {
    const cli = checked[i]?.decision ?? `error ${checked[i]?.error}`
    if (cli === gateway[i]) return []
    const pair = `#${i} roles [${p.roles.join(' ')}] tool ${p.tool}`
    return [`${pair}: gateway ${gateway[i]}, policy check ${cli}`]
  })
  const seen = new Set(gateway)
  t.diagnostic(`${sets.size} role sets; outcomes seen: ${[...seen].join(', ')}`)
  const summary = `seed ${SEED}: ${disagree.length} of ${pairs.length} disagree`
  assert.deepEqual(disagree.slice(0, 10), [], summary)
  if (PAIRS < 100) return
  for (const o of ['allow', 'deny', 'challenge'] as const) {
    assert.ok(seen.has(o), `seed ${SEED}: no ${o} in the sample`)
  }
})
