// What the outside review of stop 20 found, on one real broker (its memory store) in front of
// the Entra-like upstream fixture, each token used in a real MCP request.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import {
  exchange,
  login,
  newClient,
  newConfidentialClient,
  refresh,
  send,
  useAt,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { BOB, basicAuth, loginTokens, revokeAs, type TokenPair } from '../helpers/broker-tokens.js'
import { editPolicy } from '../helpers/policy-edit.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { connectClient, raw, TASKS_TOOLS } from '../helpers/tasks-stack.js'
import {
  ACCOUNT_EXCHANGE,
  ACCOUNT_POLICY,
  accountServers,
  pageSignIn,
  SEALING,
} from '../helpers/account.js'

const REDIRECT = 'http://127.0.0.1:43126/cb'
/** The smallest list the schema allows: what an attacker must fill is this, or the default 100,000. */
const LIST_MAX = 100
const PER_USER = 5

let stack: BrokerStack
describe('broker', () => {
  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      broker: {
        revocationListMax: LIST_MAX,
        revocationsPerUser: PER_USER,
        registration: { perAddressPerMinute: 1000 },
      },
    })
  })
  afterEach(() => stack.idp.reset())
  after(() => stack.close())

  /** A fresh login (its own browser: its own grant) of the fixture's user, or Bob. */
  const tokens = (client: string, user?: string): Promise<TokenPair> =>
    loginTokens(stack, { client, redirectUri: REDIRECT, user })

  describe('/revoke of another client’s token is answered byte for byte as an unknown one', () => {
    /** Everything a client sees of an answer but the clock. */
    const seen = (r: { status: number; text: string; headers: Record<string, unknown> }) => {
      const { date: _date, ...headers } = r.headers
      return { status: r.status, text: r.text, headers }
    }

    it('access and refresh tokens, public and confidential callers, token_type_hint either way', async () => {
      const owner = await newClient(stack, [REDIRECT])
      const pub = await newClient(stack, [REDIRECT])
      const confidential = await newConfidentialClient(stack, [REDIRECT])
      const t = await tokens(owner)
      const callers: [string, Record<string, string>][] = [
        [pub, {}],
        [confidential.id, basicAuth(confidential)],
      ]
      for (const [client, headers] of callers) {
        const unknown = seen(await revokeAs(stack, 'not-a-token-at-all', client, headers))
        assert.equal(unknown.status, 200)
        for (const token of [t.access, t.refresh]) {
          assert.deepEqual(seen(await revokeAs(stack, token, client, headers)), unknown, client)
          for (const hint of ['access_token', 'refresh_token']) {
            const r = await revokeAs(stack, token, client, headers, { token_type_hint: hint })
            assert.deepEqual(seen(r), unknown, `${client} hint ${hint}`)
          }
        }
      }
      assert.equal(await useAt(stack, 'notes', t.access), 200, 'the access token lives on')
      assert.equal((await refresh(stack, t.refresh, owner)).status, 200, 'the grant lives on')
    })
  })

  describe("a user's share of revocations bounds the grants they get revoked", () => {
    // Finding: stop 20 counted grant revocations at /revoke against the user's share so that one
    // user with many grants cannot fill the list; a grant the broker revokes itself because its
    // refresh token (or code) was used twice is not counted, and using one's own refresh token
    // twice costs what /revoke did (one login per grant). Past revocationListMax the list
    // overflows and refuses every broker token issued until then, every other user's included.
    it("one user replaying their own refresh tokens does not get every other user's token refused", {
      timeout: 120_000,
    }, async () => {
      const victim = await tokens(await newClient(stack, [REDIRECT]), BOB)
      stack.idp.reset()
      assert.equal(await useAt(stack, 'notes', victim.access), 200, 'the victim, before')
      const attacker = await newClient(stack, [REDIRECT])
      for (let i = 0; i <= LIST_MAX; i++) {
        const t = await tokens(attacker)
        assert.equal((await refresh(stack, t.refresh, attacker)).status, 200)
        const replay = await refresh(stack, t.refresh, attacker)
        assert.equal(replay.json.error, 'invalid_grant', replay.text)
        // The replayed grant ends (its access token refused) whether or not the share is spent.
        assert.equal(await useAt(stack, 'notes', t.access), 401, `grant ${i + 1} ended`)
      }
      assert.equal(await useAt(stack, 'notes', victim.access), 200, 'the victim, after')
    })
  })
})

describe('tasks/cancel of a task whose tool is denied now', () => {
  // Finding: tasks/get and tasks/result of a task whose tool was denied (or whose scope was
  // withdrawn) after it began are refused, "withholding its status"; tasks/cancel went by server
  // access alone, and its answer is the task, status message and all (and it ends the task).
  let tasks: Stack
  before(async () => {
    tasks = await startStack({
      servers: { tasks: { command: process.execPath, args: [join(SERVERS_DIR, 'tasks.js')] } },
      policy: `${TEST_POLICY}  tasks:\n    access: ["mcp:read"]\n    ${TASKS_TOOLS}\n`,
    })
  })
  after(() => tasks.close())

  it('is refused as tasks/get is (its answer is the task); the task is not cancelled', async () => {
    const client = await connectClient(tasks, 'tasks')
    const call = (method: string, params: unknown) => raw('tasks', client, method, params)
    const policy = editPolicy(tasks)
    try {
      const created = await call('tools/call', {
        name: 'chatty',
        arguments: { chars: 12 },
        task: {},
      })
      const taskId = (created.result?.task as { taskId?: string } | undefined)?.taskId
      assert.equal(typeof taskId, 'string', JSON.stringify(created))
      assert.equal((await call('tasks/get', { taskId })).result?.statusMessage, 'é'.repeat(12))
      policy.replace(TASKS_TOOLS, 'tools: { forever: deny, chatty: deny, "*": ["mcp:read"] }')
      assert.equal((await call('tasks/get', { taskId })).error?.code, -32010, 'tasks/get withheld')
      const cancel = await call('tasks/cancel', { taskId })
      assert.equal(cancel.error?.code, -32010, JSON.stringify(cancel))
      // Allowed again: the task was not cancelled by the refused request.
      policy.restore()
      assert.equal((await call('tasks/get', { taskId })).result?.status, 'working')
      // A task the session does not know still goes by access: only its own process has it.
      const unknown = await call('tasks/cancel', { taskId: 'never-created' })
      assert.notEqual(unknown.error?.code, -32010, JSON.stringify(unknown))
    } finally {
      policy.restore()
      await client.close()
    }
  })
})

describe('the account page after the user was signed out everywhere', () => {
  // Checked, holds: a browser signed in to the account page before the IdP refused the user at
  // a re-check (the user's, or a stolen cookie's) can no longer set or replace their secrets.
  let page: BrokerStack
  before(async () => {
    page = await startBrokerStack({
      policy: ACCOUNT_POLICY,
      auth: ACCOUNT_EXCHANGE,
      upstream: { recheckInterval: 0 },
      config: { servers: accountServers(), secrets: SEALING },
    })
  })
  after(() => page.close())

  it('ends with the sign-out', async () => {
    page.idp.nextUser('alice-pairwise-sub')
    const jar = new Map<string, string>()
    const signedIn = await pageSignIn(page.url, jar)
    assert.match(signedIn.page.text, /Signed in as/)
    const client = await newClient(page, [REDIRECT])
    page.idp.nextUser('alice-pairwise-sub')
    const l = await login(page, {
      clientId: client,
      redirectUri: REDIRECT,
      scope: 'mcp:read',
      server: 'github',
    })
    const t = await exchange(page, l, { clientId: client, redirectUri: REDIRECT, server: 'github' })
    assert.equal(t.status, 200, t.text)
    const before = await send(`${page.url}/account`, { jar })
    assert.match(before.text, /Signed in as/, 'the page, before')
    page.idp.disable('alice-pairwise-sub')
    const r = await refresh(page, String(t.json.refresh_token), client)
    assert.equal(r.json.error, 'invalid_grant', r.text)
    assert.ok(page.audit().some((a) => /signed out everywhere/.test(String(a.outcome))))
    const after = await send(`${page.url}/account`, { jar })
    assert.doesNotMatch(after.text, /Signed in as/, `status ${after.status}`)
  })
})
