// `mcp-edge secrets` as users run it: the built command, spawned against a running gateway (its
// dev IdP issues the tokens), the value on standard input (piped: whole, one final line break
// dropped), never on the command line; the token from MCP_EDGE_TOKEN or --token-file; the
// gateway's refusals with their codes and exit 1, usage errors with exit 2.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import {
  ACCOUNT_EXCHANGE,
  ACCOUNT_POLICY,
  accountServers,
  SEALING,
  secretsIn,
} from '../helpers/account.js'
import { closedPortUrl } from '../helpers/jwks-server.js'
import { recordingStore, type RecordingStore } from '../helpers/recording-store.js'
import { startStack, type Stack } from '../helpers/stack.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))

/** Runs `mcp-edge secrets …` to completion with `stdin` piped in (closed at once when undefined). */
function cli(
  args: string[],
  o: { token?: string; stdin?: string | Buffer; env?: Record<string, string> } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...o.env }
    delete env.MCP_EDGE_TOKEN
    if (o.token !== undefined) env.MCP_EDGE_TOKEN = o.token
    const p = spawn(process.execPath, [MAIN, 'secrets', ...args], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('close', (code) => resolve({ code, stdout, stderr }))
    p.stdin.end(o.stdin)
  })
}

describe('mcp-edge secrets', () => {
  let stack: Stack
  let store: RecordingStore
  let token: string
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-secrets-cli-'))
  const alice = () => ({ iss: stack.gateway.issuer!, sub: 'alice' })
  const url = () => ['--url', stack.url]
  let nobody: string

  before(async () => {
    store = recordingStore()
    stack = await startStack({
      policy: ACCOUNT_POLICY,
      servers: accountServers({ upstreamToken: false }),
      store,
      auth: ACCOUNT_EXCHANGE,
      config: { secrets: SEALING },
    })
    token = await stack.token('alice', { server: 'github' })
    nobody = await closedPortUrl()
  })
  after(async () => {
    await stack?.close()
  })

  it('set: the piped value, one final line break dropped; then list shows it set, never the value', async () => {
    const set = await cli(['set', 'github-token', ...url()], { token, stdin: 'ghp_piped-value\n' })
    assert.equal(set.code, 0, set.stderr)
    // When it goes unused: secretUnusedTtl (90 days) from its set, to the minute.
    const [, setAt, expires] =
      /^github-token set (\d{4}-\d\d-\d\d \d\d:\d\d) UTC, expires (\d{4}-\d\d-\d\d \d\d:\d\d) UTC unless used\n$/.exec(
        set.stdout,
      ) ?? assert.fail(set.stdout)
    const minute = (text: string) => Date.parse(`${text.replace(' ', 'T')}:00Z`)
    assert.equal(minute(expires!) - minute(setAt!), 90 * 24 * 3600 * 1000)
    assert.equal(await secretsIn(store).value(alice(), 'github-token'), 'ghp_piped-value')

    const list = await cli(['list', ...url()], { token })
    assert.equal(list.code, 0, list.stderr)
    assert.match(
      list.stdout,
      /^github: GitHub tools\n {2}github-token {2}set \d{4}-\d\d-\d\d \d\d:\d\d UTC, expires \d{4}-\d\d-\d\d \d\d:\d\d UTC unless used {2}\(a GitHub personal access token\)$/m,
    )
    // Listed from the store's time to live: the set's expiry, or a minute before it (read back
    // a few ms later, it may fall in the minute before).
    const held = /^held for you: github-token \(set [^,]+, expires (.+) UTC unless used\)$/m.exec(
      list.stdout,
    )
    assert.ok(held, list.stdout)
    assert.ok([0, 60_000].includes(minute(expires!) - minute(held[1]!)), list.stdout)
    assert.doesNotMatch(list.stdout + list.stderr, /ghp_piped-value/)
  })

  it('set again replaces; a value of several lines (a PEM key) is kept whole', async () => {
    const pem =
      '-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7\nAgEAAkEAq7BFUpkGp3+LQmlQ\n-----END PRIVATE KEY-----\n'
    const res = await cli(['set', 'github-token', ...url()], { token, stdin: pem })
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^github-token replaced /)
    assert.equal(await secretsIn(store).value(alice(), 'github-token'), pem.slice(0, -1))
  })

  it("--token-file instead of MCP_EDGE_TOKEN; list --json is the API's answer", async () => {
    const file = join(dir, 'token')
    writeFileSync(file, `${token}\n`)
    const res = await cli(['list', '--json', '--token-file', file, ...url()])
    assert.equal(res.code, 0, res.stderr)
    const body = JSON.parse(res.stdout) as { sub: string; secrets: { name: string }[] }
    assert.equal(body.sub, 'alice')
    assert.deepEqual(
      body.secrets.map((s) => s.name),
      ['github-token'],
    )
  })

  it('delete, then list shows it not set', async () => {
    const del = await cli(['delete', 'github-token', ...url()], { token })
    assert.equal(del.code, 0, del.stderr)
    assert.equal(del.stdout, 'github-token deleted\n')
    assert.equal(await secretsIn(store).value(alice(), 'github-token'), undefined)
    const list = await cli(['list', ...url()], { token })
    assert.match(list.stdout, /^ {2}github-token {2}not set/m)
    assert.match(list.stdout, /^held for you: nothing$/m)
  })

  const refusals: {
    name: string
    args: () => string[]
    token?: () => string | undefined
    stdin?: string
    code: number
    stderr: RegExp
  }[] = [
    {
      name: 'a value on the command line',
      args: () => ['set', 'github-token', 'ghp_in-argv', ...url()],
      stdin: 'x',
      code: 2,
      stderr: /the value is read from standard input, never from the command line/,
    },
    {
      name: 'no token',
      args: () => ['set', 'github-token', ...url()],
      token: () => undefined,
      stdin: 'x',
      code: 2,
      stderr: /no access token: set MCP_EDGE_TOKEN or pass --token-file/,
    },
    {
      name: 'a token the gateway refuses',
      args: () => ['set', 'github-token', ...url()],
      token: () => 'not-a-jwt',
      stdin: 'x',
      code: 1,
      stderr: /\(unauthorized, HTTP 401\)/,
    },
    {
      name: 'a name no server of the user takes',
      args: () => ['set', 'vault-token', ...url()],
      stdin: 'x',
      code: 1,
      stderr: /no server you may use takes a secret of that name \(secret_not_allowed, HTTP 403\)/,
    },
    {
      name: 'a name with a slash (sent encoded, refused as a name)',
      args: () => ['set', '../github-token', ...url()],
      stdin: 'x',
      code: 1,
      stderr: /\(secret_not_allowed, HTTP 403\)/,
    },
    {
      name: 'empty standard input',
      args: () => ['set', 'github-token', ...url()],
      stdin: '',
      code: 1,
      stderr: /no value was given/,
    },
    {
      name: 'only a line break',
      args: () => ['set', 'github-token', ...url()],
      stdin: '\n',
      code: 1,
      stderr: /no value was given/,
    },
    {
      name: 'a value the store refuses (NUL)',
      args: () => ['set', 'github-token', ...url()],
      stdin: 'a\u0000b',
      code: 1,
      stderr: /NUL character \(secret_refused, HTTP 400\)/,
    },
    {
      name: 'no name',
      args: () => ['set', ...url()],
      stdin: 'x',
      code: 2,
      stderr: /set needs a secret NAME/,
    },
    {
      name: 'an unknown subcommand',
      args: () => ['show', ...url()],
      code: 2,
      stderr: /unknown subcommand show/,
    },
    {
      name: 'a gateway that is not there',
      args: () => ['list', '--url', nobody],
      code: 1,
      stderr: /cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
    },
  ]
  for (const r of refusals) {
    it(`${r.name}: exit ${r.code}, nothing stored`, async () => {
      const before = (await store.keys('secrets:')).filter((k) => k.split(':').length > 2)
      const res = await cli(r.args(), { token: r.token ? r.token() : token, stdin: r.stdin })
      assert.equal(res.code, r.code, `${res.stdout}${res.stderr}`)
      assert.match(res.stderr, r.stderr)
      assert.deepEqual(
        (await store.keys('secrets:')).filter((k) => k.split(':').length > 2),
        before,
      )
      assert.ok(!stack.logLines.join('\n').includes('ghp_in-argv'))
    })
  }
})
