// MCP Inspector's CLI mode against the gateway with a bearer header (the Inspector needs
// Node >= 22: it runs from the registry's `node` package; .ci/run fetches both beforehand).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { npxBin, npxEnv } from '../helpers/npx-bin.js'
import { startStack, type Stack } from '../helpers/stack.js'

/**
 * The Inspector the tests pin, and the Node it runs on: resolved by npx once for the file
 * (test/helpers/npx-bin.ts), then its `mcp-inspector` started directly at each run.
 */
export const INSPECTOR = ['node@24', '@modelcontextprotocol/inspector@0.17.5']

const execFileAsync = promisify(execFile)
/** The Inspector with `args`, as `npx -y -p node@24 -p <inspector> -- mcp-inspector` runs it. */
async function run(args: string[], o: { timeout: number; maxBuffer?: number }) {
  const bin = await npxBin(INSPECTOR, 'mcp-inspector')
  return execFileAsync(join(bin, 'mcp-inspector'), args, { ...o, env: npxEnv(bin) })
}

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

async function inspector(token: string, ...args: string[]) {
  const { stdout } = await run(
    [
      '--cli',
      stack.local('echo'),
      '--transport',
      'http',
      '--header',
      `Authorization: Bearer ${token}`,
      ...args,
    ],
    { timeout: 240_000, maxBuffer: 10 * 1024 * 1024 },
  )
  return JSON.parse(stdout.slice(stdout.indexOf('{')))
}

describe('MCP Inspector CLI', { timeout: 600_000 }, () => {
  it('lists the tools and calls one through the gateway', async () => {
    const token = await stack.token('alice')
    const listed = await inspector(token, '--method', 'tools/list')
    assert.deepEqual(
      listed.tools.map((t: { name: string }) => t.name),
      ['echo'],
    )
    const called = await inspector(
      token,
      '--method',
      'tools/call',
      '--tool-name',
      'echo',
      '--tool-arg',
      'text=from the inspector',
    )
    assert.equal(called.content[0].text, 'from the inspector')
  })

  it('without a token it fails', async () => {
    // Resolved outside the assertion: an npx that fails must not pass for the Inspector's refusal.
    await npxBin(INSPECTOR, 'mcp-inspector')
    await assert.rejects(
      run(['--cli', stack.local('echo'), '--transport', 'http', '--method', 'tools/list'], {
        timeout: 240_000,
      }),
    )
  })
})
