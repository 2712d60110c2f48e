// A published stdio server that reads a token from its environment, unmodified:
// @modelcontextprotocol/server-github, behind the gateway with each user's own
// GITHUB_PERSONAL_ACCESS_TOKEN from the secret store. Its calls to GitHub fail offline; what
// is checked is what its process was started with, read from the kernel (/proc/<pid>/environ).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import type { Client } from '@modelcontextprotocol/client'
import { connectAs } from '../helpers/sdk-session.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const MODULES = fileURLToPath(
  new URL('../../../node_modules/@modelcontextprotocol/', import.meta.url),
)
const ENTRY = join(MODULES, 'server-github/dist/index.js')
const POLICY = `${TEST_POLICY}  github:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      github: {
        command: process.execPath,
        args: [ENTRY],
        credentials: {
          GITHUB_PERSONAL_ACCESS_TOKEN: {
            secret: 'github_token',
            describe: 'A GitHub token with repo scope',
          },
        },
      },
    },
  })
})
after(() => stack.close())

/** The environment of each live server-github process started by this test's gateway. */
function githubEnvs(): Map<number, Record<string, string>> {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  })
  const envs = new Map<number, Record<string, string>>()
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line)
    if (!m || !m[2]!.includes(ENTRY)) continue
    const raw = readFileSync(`/proc/${m[1]}/environ`, 'utf8')
    envs.set(
      Number(m[1]),
      Object.fromEntries(
        raw
          .split('\0')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      ),
    )
  }
  return envs
}

async function connect(user: string): Promise<Client> {
  return (await connectAs(stack, user, 'github', { name: 'github-test' })).client
}

describe("@modelcontextprotocol/server-github with each user's own token", () => {
  it("each user's process is started with their own GITHUB_PERSONAL_ACCESS_TOKEN and nothing of the gateway's", async () => {
    const secrets = stack.gateway.secrets!
    await secrets.set(
      { iss: stack.idp.issuer, sub: 'alice' },
      'github_token',
      'ghp_alice0000000000000000000000000000',
    )
    await secrets.set(
      { iss: stack.idp.issuer, sub: 'bob' },
      'github_token',
      'ghp_bob00000000000000000000000000000',
    )
    const before = new Set(githubEnvs().keys())
    const alice = await connect('alice')
    const bob = await connect('bob')
    try {
      assert.ok(
        (await alice.listTools()).tools.some((t) => t.name === 'search_repositories'),
        'the published server runs',
      )
      // A call that needs the token: GitHub cannot be reached here, so it fails, from the server.
      const r = (await alice
        .callTool({ name: 'search_repositories', arguments: { query: 'mcp' } })
        .catch((e: Error) => ({ isError: true, message: e.message }))) as { isError?: boolean }
      assert.equal(r.isError, true)
      const started = [...githubEnvs()].filter(([pid]) => !before.has(pid)).map(([, env]) => env)
      const tokens = started.map((env) => env.GITHUB_PERSONAL_ACCESS_TOKEN).sort()
      assert.deepEqual(tokens, [
        'ghp_alice0000000000000000000000000000',
        'ghp_bob00000000000000000000000000000',
      ])
      for (const env of started) {
        assert.equal(
          Object.keys(env).some((k) => k.startsWith('MCP_EDGE_')),
          false,
          'no gateway identity (identityEnv is off)',
        )
        assert.ok(
          !Object.values(env).some((v) => v.startsWith('eyJ')),
          'no bearer token in its environment',
        )
      }
    } finally {
      await alice.close()
      await bob.close()
    }
  })
})
