// What a serving gateway loads: code its configuration does not use is never imported (the
// broker with oidc-provider and openid-client, the dev IdP, the Redis client, the account page,
// per-user credentials, the other commands), so an idle gateway does not pay for it in memory
// (issue 14: idle RSS <= 100 MB). A real `mcp-edge serve` in its own process, read by a
// preloaded probe (test/helpers/loaded-scripts.ts) once it listens.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { SEALING } from '../helpers/account.js'
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const PROBE = fileURLToPath(new URL('../helpers/loaded-scripts.js', import.meta.url))
const POLICIES = fileURLToPath(new URL('../../../policies/', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-modules-'))
const echo = { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] }

/** Code a gateway must load only when its config asks for it, by where it lives. */
const LAZY = {
  // first-party.js: the account page's client id and callback path, constants without imports.
  broker: /\/dist\/gateway\/broker\/(?!first-party\.js$)/,
  devIdp: /\/dist\/gateway\/devidp\//,
  account: /\/dist\/gateway\/account\//,
  credentials: /\/dist\/gateway\/credentials\//,
  otherCommands: /\/dist\/gateway\/cli\//,
  store: /\/dist\/gateway\/store\//,
  oidcProvider: /\/node_modules\/oidc-provider\//,
  openidClient: /\/node_modules\/(openid-client|oauth4webapi)\//,
  redis: /\/node_modules\/@redis\//,
  puppeteer: /\/node_modules\/puppeteer/,
}
type Lazy = keyof typeof LAZY

const running: ChildProcess[] = []
let idp: JwksServer
before(async () => {
  idp = await startJwksServer()
})
after(async () => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
  await idp.close()
  rmSync(dir, { recursive: true, force: true })
})

/**
 * Starts `mcp-edge serve` on `config` (JSON is YAML) with the probe, waits for "listening",
 * and returns the URL of every script it has loaded; the process is stopped afterwards.
 */
async function loadedBy(name: string, config: Record<string, unknown>): Promise<string[]> {
  const file = join(dir, `${name}.yaml`)
  const out = join(dir, `${name}.json`)
  writeFileSync(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, ...config }))
  const p = spawn(process.execPath, ['--import', PROBE, MAIN, 'serve', '--config', file], {
    env: { ...process.env, LOADED_SCRIPTS_OUT: out },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.push(p)
  let stderr = ''
  p.stderr!.on('data', (d) => (stderr += d))
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: p.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"listening"')) resolve()
    })
    p.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)))
  })
  p.kill('SIGUSR2')
  // Written in one call; a read racing it sees a partial file, so read until it parses.
  const urls = await waitFor(() => {
    try {
      return JSON.parse(readFileSync(out, 'utf8')) as string[]
    } catch {
      return undefined
    }
  }, 'the gateway wrote its loaded modules')
  p.kill('SIGTERM')
  await new Promise((resolve) => p.once('exit', resolve))
  return urls
}

const loaded = (urls: string[], what: Lazy) => urls.filter((u) => LAZY[what].test(u))

describe('a serving gateway loads only what its configuration uses', () => {
  const cases: {
    name: string
    config: () => Record<string, unknown>
    /** Must not be loaded. */
    absent: Lazy[]
    /** Must be loaded: the probe sees lazily imported code when it is used. */
    present: Lazy[]
  }[] = [
    {
      name: 'resource server (an external issuer, the bench configuration)',
      config: () => ({
        auth: { issuer: idp.origin },
        servers: { echo },
        policies: POLICIES,
      }),
      absent: Object.keys(LAZY) as Lazy[],
      present: [],
    },
    {
      name: 'shared mode, several servers, metrics on their own listener',
      config: () => ({
        auth: { issuer: idp.origin },
        servers: { echo: { ...echo, mode: 'shared' }, other: echo },
        policies: POLICIES,
        metrics: { listen: { host: '127.0.0.1', port: 0 } },
      }),
      absent: Object.keys(LAZY) as Lazy[],
      present: [],
    },
    {
      name: 'a server taking users’ secrets: credentials, the store and the account page load',
      config: () => ({
        auth: { issuer: idp.origin },
        servers: { vault: { ...echo, credentials: { VAULT_TOKEN: { secret: 'vault-token' } } } },
        policies: POLICIES,
        secrets: SEALING,
      }),
      absent: ['broker', 'devIdp', 'otherCommands', 'oidcProvider', 'openidClient', 'redis'],
      present: ['credentials', 'store', 'account'],
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const urls = await loadedBy(c.name.replace(/\W+/g, '-'), c.config())
      // The probe saw the gateway's own modules and its packages, ESM and CommonJS.
      assert.ok(urls.some((u) => u.endsWith('/dist/gateway/gateway.js')))
      assert.ok(urls.some((u) => /\/node_modules\/jose\//.test(u)))
      assert.ok(urls.some((u) => /\/node_modules\/pino\//.test(u)))
      for (const what of c.absent) assert.deepEqual(loaded(urls, what), [], `${what} was loaded`)
      for (const what of c.present) assert.notDeepEqual(loaded(urls, what), [], `${what} absent`)
    })
  }
})
