// With auth.broker the gateway is an authorization server: MCP requires every one of its
// endpoints on https, and its sign-in cookies, codes and tokens would otherwise cross a network
// in clear. A publicUrl on plain http is refused unless its host never leaves the machine; on
// loopback the gateway starts, and warns that browsers send its cookies to every local port.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'
import { startBrokerStack } from '../helpers/broker-stack.js'

const MESSAGE =
  'must be https with auth.broker (its sign-in, codes and tokens would cross the network in clear); http only for loopback'
const WARNING = 'the broker serves on plain http'

function config(publicUrl: string | undefined, broker = true, env: NodeJS.ProcessEnv = {}) {
  return validateConfig(
    {
      ...(publicUrl === undefined ? {} : { publicUrl }),
      auth: broker
        ? {
            broker: {
              upstream: {
                issuer: 'https://login.example',
                clientId: 'gw',
                clientSecret: { env: 'S' },
              },
            },
          }
        : { issuer: 'https://login.example' },
      servers: { echo: { command: '/bin/echo' } },
    },
    { file: 'test', baseDir: '/', env },
  )
}

/** The problems `fn` refuses with, as path: message. */
function problems(fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    return err.problems.map((p) => `${p.path ?? p.file}: ${p.message}`)
  }
  return []
}

const REFUSED = [
  'http://gw.example.com',
  'HTTP://GW.EXAMPLE.COM',
  'http://gw.example.com:8080',
  'http://localhost.evil.example',
  'http://127.0.0.1.nip.io',
  'http://localhost.',
  'http://[::ffff:127.0.0.1]',
  'http://[::]',
  'http://0.0.0.0',
  'http://10.0.0.1',
  'http://169.254.169.254',
  'http://[fe80::1]',
  'http://[fd00::1]:8443',
  'http://xn--lcalhost-ev0d.example',
  'http://127-0-0-1.example',
]

const ACCEPTED = [
  'https://gw.example.com',
  'HTTPS://GW.EXAMPLE.COM',
  'https://10.0.0.1:8443',
  'http://127.0.0.1:8080',
  'http://127.9.9.9',
  'http://localhost:1',
  'http://LOCALHOST',
  'http://[::1]:8080',
  // WHATWG URL parsing makes these 127.0.0.1: loopback, as the socket would be.
  'http://0x7f000001',
  'http://2130706433',
  'http://127.1',
]

describe('broker publicUrl: https, or plain http on loopback only', () => {
  for (const url of REFUSED)
    test(`refused: ${url}`, () => {
      assert.deepEqual(
        problems(() => config(url)),
        [`publicUrl: ${MESSAGE}`],
      )
    })
  for (const url of ACCEPTED)
    test(`accepted: ${url}`, () => {
      assert.deepEqual(
        problems(() => config(url)),
        [],
      )
    })

  test('no publicUrl (a loopback listener) is accepted', () => {
    assert.deepEqual(
      problems(() => config(undefined)),
      [],
    )
  })

  test('MCP_EDGE_PUBLIC_URL is held to the same rule as the file', () => {
    assert.deepEqual(
      problems(() =>
        config('https://gw.example.com', true, { MCP_EDGE_PUBLIC_URL: 'http://gw.example.com' }),
      ),
      [`environment variable MCP_EDGE_PUBLIC_URL: ${MESSAGE}`],
    )
  })

  test('without the broker, a resource server may still be told an http publicUrl', () => {
    // A service mesh's in-cluster http (TLS by its sidecars) is the gateway's public URL there.
    assert.deepEqual(
      problems(() => config('http://gw.example.com', false)),
      [],
    )
  })
})

describe('a broker on plain-http loopback warns at start', () => {
  for (const [name, publicUrl, warned] of [
    ['http on loopback: warned', undefined, true],
    ['https public URL (TLS in front): not warned', 'https://gw.example.com', false],
  ] as const) {
    test(name, async () => {
      const stack = await startBrokerStack({
        config: publicUrl === undefined ? {} : { publicUrl },
      })
      try {
        const lines = stack.logLines.map((l) => JSON.parse(l) as { level: number; msg: string })
        const warning = lines.filter((l) => l.msg.startsWith(WARNING))
        assert.equal(warning.length, warned ? 1 : 0, JSON.stringify(warning))
        if (warned) assert.equal(warning[0]!.level, 40)
        // The broker's parts name their own component, once per line: pino repeats a parent's
        // bindings, and a strict JSON reader (a log pipeline) refuses a key written twice.
        for (const l of stack.logLines) assert.ok(l.split('"component":').length <= 2, l)
        const components = new Set(lines.map((l) => (l as { component?: string }).component))
        for (const c of ['broker', 'upstream']) assert.ok(components.has(c), c)
      } finally {
        await stack.close()
      }
    })
  }
})
