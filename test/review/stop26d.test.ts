// Stop 26d (brief review33): an outside attacker of the per-subject process-start budget and of
// the stderr redactor's additions. Real processes, a real gateway and IdP, raw HTTP or the SDK.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { RPC_RATE_LIMITED } from '../../gateway/http/respond.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

describe('stop26d: a process-start refusal inside a session says when to retry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop26d-'))
  let now = Date.now()
  let stack: Stack
  before(async () => {
    stack = await startStack({
      servers: {
        vault: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'fixture.js')],
          credentials: { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } },
        },
      },
      policy: `${TEST_POLICY}  vault:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
      config: { limits: { processStartsPerSubject: 2, processStartsWindow: 60_000 } },
      processStartClock: () => now,
    })
  })
  after(async () => {
    await stack.close()
    rmSync(dir, { recursive: true, force: true })
  })

  // README "Process starts": -32029 with data.retryAfter on every transport and era; inside a
  // session (a replacement after the user's credentials changed) the same error. The session's
  // own answer had the code and text but no data: a client reading data.retryAfter found none.
  it('a replacement refused past the budget: -32029 with data.retryAfter (an integer >= 1)', async () => {
    const secrets = stack.gateway.secrets!
    const owner = { iss: stack.gateway.issuer!, sub: 'rotator26d' }
    await secrets.set(owner, 'vault_token', 'v0')
    const client = new Client({ name: 'rotator', version: '0' })
    const token = await stack.forge({ sub: 'rotator26d', aud: stack.endpoint('vault') })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.local('vault')), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    const call = () => client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })
    try {
      await call()
      await secrets.set(owner, 'vault_token', 'v1')
      await call()
      await secrets.set(owner, 'vault_token', 'v2')
      now += 1500
      await assert.rejects(call(), (err: { code?: number; data?: { retryAfter?: unknown } }) => {
        assert.equal(err.code, RPC_RATE_LIMITED)
        assert.equal(err.data?.retryAfter, 59)
        return true
      })
    } finally {
      await client.close()
    }
  })
})
