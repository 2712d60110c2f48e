// Review (issue 13): a routed host's resource URL is `<scheme>://<host>[:port]/mcp`. When the
// host is the gateway's own public host (or, on loopback, `127.0.0.1`, which the host-name rule
// let through as a "DNS name"), that URL is also the resource of an endpoint served at `/mcp`:
// one `aud` then belonged to two resources, and a token meant for the routed server was good at
// the aggregate of every server (`/sse/<endpoint>`), and a token for the aggregate at the server.
// Start-up now refuses such a host, as it refuses an endpoint path that is a server's.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'

const SERVERS = { notes: { command: 'node' }, echo: { command: 'node' } }

function problems(input: Record<string, unknown>): string[] {
  try {
    validateConfig({ servers: SERVERS, ...input }, { file: 'test.yaml', baseDir: '/tmp' })
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    return err.problems.map((p) => `${p.path ?? ''}: ${p.message}`)
  }
  return []
}

describe("review: a routed host whose resource is another resource's", () => {
  it("the public URL's own host is refused as a routed host", () => {
    const found = problems({
      publicUrl: 'https://gw.example.com',
      endpoints: { all: { path: '/mcp', servers: '*' } },
      hosts: { 'gw.example.com': { server: 'notes' } },
    })
    assert.ok(
      found.some((p) => /hosts\.gw\.example\.com: .*public URL/.test(p)),
      found.join(' | '),
    )
  })

  it('an IP address is refused as a routed host (127.0.0.1 is the loopback base of every resource)', () => {
    const found = problems({
      endpoints: { all: { path: '/mcp', servers: '*' } },
      hosts: { '127.0.0.1': { server: 'notes' } },
    })
    assert.ok(
      found.some((p) => /hosts\.127\.0\.0\.1: /.test(p)),
      found.join(' | '),
    )
  })

  it('control: other host names are accepted', () => {
    assert.deepEqual(
      problems({
        publicUrl: 'https://gw.example.com',
        endpoints: { all: { path: '/mcp', servers: '*' } },
        hosts: { 'notes.example.com': { server: 'notes' } },
      }),
      [],
    )
  })
})
