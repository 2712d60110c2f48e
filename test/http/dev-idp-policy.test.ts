// The gateway feeds its embedded dev IdP the live policy: what roles grant after a reload is
// what the next token carries.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { pino } from 'pino'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { tokenRequest } from '../helpers/oauth-flow.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const policy = (userScopes: string) => `
roles:
  mcp-admin: ["*"]
  mcp-user: [${userScopes}]
servers:
  echo:
    access: ["mcp:read"]
    tools: { echo: ["mcp:read"] }
`

describe('embedded dev IdP and the live policy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-devidp-policy-'))
  const policyFile = join(dir, 'policy.yaml')
  let gateway: Gateway

  before(async () => {
    writeFileSync(policyFile, policy('"mcp:read"'))
    const config = validateConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        devIdp: {
          port: 0,
          users: [
            { sub: 'dev-user', roles: ['mcp-user'] },
            { sub: 'ada', roles: ['mcp-admin'] },
          ],
        },
        servers: { echo: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] } },
        policies: policyFile,
        log: { audit: 'off' },
      },
      { file: 'test', baseDir: dir },
    )
    gateway = await startGateway(config, {
      log: pino({ level: 'silent' }),
      allowDevIdp: true,
      devIdp: { stateFile: false },
    })
  })
  after(async () => {
    await gateway.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** A client_credentials token as the CLI client of `sub` (what `mcp-edge token --user` does). */
  const token = async (sub: string, scope: string) => {
    const cli = gateway.devIdp!.cliClients.find((c) => c.subject === sub)!
    const basic = Buffer.from(
      `${encodeURIComponent(cli.clientId)}:${encodeURIComponent(cli.clientSecret)}`,
    ).toString('base64')
    const res = await tokenRequest(
      `${gateway.issuer}/token`,
      { grant_type: 'client_credentials', scope },
      { authorization: `Basic ${basic}` },
    )
    return decodeJwt(res.access_token)
  }

  it('has the configured users, one CLI client each', () => {
    assert.deepEqual(
      gateway.devIdp!.cliClients.map((c) => [c.clientId, c.subject, c.roles]),
      [
        ['mcp-edge-cli', 'dev-user', ['mcp-user']],
        ['mcp-edge-cli:ada', 'ada', ['mcp-admin']],
      ],
    )
  })

  it('grants what the roles allow now: before a reload, after it, and after a refused edit', async () => {
    const steps: {
      name: string
      policy?: string
      sub: string
      ask: string
      granted: string | undefined
    }[] = [
      {
        name: 'shipped roles',
        sub: 'dev-user',
        ask: 'mcp:read mcp:write mcp:admin',
        granted: 'mcp:read',
      },
      { name: 'admin', sub: 'ada', ask: 'mcp:read mcp:admin', granted: 'mcp:read mcp:admin' },
      {
        name: 'mcp-user may write now',
        policy: policy('"mcp:read", "mcp:write"'),
        sub: 'dev-user',
        ask: 'mcp:read mcp:write mcp:admin',
        granted: 'mcp:read mcp:write',
      },
      {
        name: 'a broken edit is refused: the last good policy still decides',
        policy: 'roles: [',
        sub: 'dev-user',
        ask: 'mcp:read mcp:write',
        granted: 'mcp:read mcp:write',
      },
      {
        name: 'mcp-user may do nothing now',
        policy: policy(''),
        sub: 'dev-user',
        ask: 'mcp:read',
        granted: undefined,
      },
    ]
    for (const s of steps) {
      if (s.policy !== undefined) {
        writeFileSync(policyFile, s.policy)
        assert.equal(gateway.reloadPolicy()?.ok, !s.policy.startsWith('roles: ['), s.name)
      }
      const claims = await token(s.sub, s.ask)
      assert.equal(claims.sub, s.sub, s.name)
      assert.equal(claims.scope, s.granted, s.name)
    }
  })
})
