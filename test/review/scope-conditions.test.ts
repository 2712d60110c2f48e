// Review (issue 10, claim 6 "scopes count only within role grants"): grantsOf cuts a token's
// scopes to what its roles grant ("a token that claims mcp:admin without a role granting it
// gets nothing for it", README), but a rule's `when: { scope: … }` (or `scp`) condition reads
// the token's raw scope claim (evaluate.ts conditionsHold), so a scope no role grants still
// opens a rule. A token whose IdP adds a scope the user's roles do not allow (a default client
// scope, a consent the user gave a client) gets an allow it should not.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const POLICY = `${TEST_POLICY}  scoped:
    access: ["mcp:read"]
    tools:
      pid:
        effect: allow
        when: { scope: ["mcp:admin"] }
      env:
        effect: allow
        when: { scp: ["mcp:admin"] }
      "*": deny
`

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: {
      scoped: {
        command: process.execPath,
        args: [new URL('../../servers/fixture.js', import.meta.url).pathname],
      },
    },
    policy: POLICY,
  })
})
after(() => stack.close())

async function call(token: string, name: string): Promise<Record<string, any>> {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`,
  }
  const post = async (body: unknown, sid?: string) => {
    const res = await request(stack.local('scoped'), {
      method: 'POST',
      headers: { ...headers, ...(sid ? { 'mcp-session-id': sid } : {}) },
      body: JSON.stringify(body),
    })
    const text = await res.body.text()
    const data = text
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l.length > 6)
      .map((l) => l.slice(6))
    return {
      sid: res.headers['mcp-session-id'] as string | undefined,
      json: (data.length
        ? JSON.parse(data.at(-1)!)
        : text
          ? JSON.parse(text)
          : undefined) as Record<string, any>,
    }
  }
  const init = await post({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'review', version: '0' },
    },
  })
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, init.sid)
  return (
    await post(
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: {} } },
      init.sid,
    )
  ).json
}

describe('review: when: { scope } counts only scopes the roles grant', () => {
  it('an mcp-user whose token claims mcp:admin does not pass a rule conditioned on mcp:admin (scope)', async () => {
    const token = await stack.forge({
      sub: 'alice',
      aud: stack.endpoint('scoped'),
      realm_access: { roles: ['mcp-user'] },
      scope: 'mcp:read mcp:admin',
    })
    const whoami = (await (
      await request(`${stack.url}/whoami`, { headers: { authorization: `Bearer ${token}` } })
    ).body.json()) as Record<string, any>
    // The gateway itself says the token does not hold mcp:admin...
    assert.deepEqual(whoami.grantedScopes, ['mcp:read'], JSON.stringify(whoami))
    // ...yet a rule that needs it lets the call through.
    const res = await call(token, 'pid')
    assert.equal(
      res.error?.code,
      -32010,
      `pid ran for a token whose roles do not grant mcp:admin: ${JSON.stringify(res)}`,
    )
  })

  it('the same through scp', async () => {
    const token = await stack.forge({
      sub: 'alice',
      aud: stack.endpoint('scoped'),
      realm_access: { roles: ['mcp-user'] },
      scp: ['mcp:read', 'mcp:admin'],
    })
    const res = await call(token, 'env')
    assert.equal(
      res.error?.code,
      -32010,
      `env ran for a token whose roles do not grant mcp:admin: ${JSON.stringify(res).slice(0, 200)}`,
    )
  })
})
