// The endpoints and hosts parts of the configuration: what start-up refuses, and why.
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

describe('config: endpoints and hosts', () => {
  it('accepts endpoints at their own paths and hosts routing to what exists', () => {
    assert.deepEqual(
      problems({
        endpoints: {
          all: { path: '/mcp', servers: '*' },
          support: { servers: ['notes'], prefix: '' },
        },
        hosts: {
          'notes.example.com': { server: 'notes' },
          'tools.example.com': { endpoint: 'all' },
        },
      }),
      [],
    )
  })
  const refused: [string, Record<string, unknown>, RegExp][] = [
    [
      "a server's path",
      { endpoints: { x: { path: '/mcp/notes', servers: '*' } } },
      /endpoints\.x\.path: \/mcp\/notes is already server notes's/,
    ],
    [
      "another endpoint's path",
      { endpoints: { a: { path: '/mcp', servers: '*' }, b: { path: '/mcp', servers: '*' } } },
      /\/mcp is already endpoint a's/,
    ],
    [
      'a gateway path',
      { endpoints: { a: { path: '/account', servers: '*' } } },
      /one of the gateway's own paths/,
    ],
    [
      'a path below a gateway path',
      { endpoints: { a: { path: '/.well-known/x', servers: '*' } } },
      /a path of lowercase letters|one of the gateway's own paths/,
    ],
    ['an unknown server', { endpoints: { a: { servers: ['nope'] } } }, /no server named nope/],
    ['a server twice', { endpoints: { a: { servers: ['notes', 'notes'] } } }, /each server once/],
    [
      "a server's name",
      { endpoints: { notes: { path: '/mcp', servers: '*' } } },
      /also a server's name/,
    ],
    ['no servers', { endpoints: { a: { servers: [] } } }, /servers/],
    [
      'a prefix with two {server}',
      { endpoints: { a: { servers: '*', prefix: '{server}{server}' } } },
      /at most one \{server\}/,
    ],
    [
      'a prefix with a space',
      { endpoints: { a: { servers: '*', prefix: '{server}: ' } } },
      /letters, digits/,
    ],
    [
      'a path with a trailing slash',
      { endpoints: { a: { path: '/mcp/', servers: '*' } } },
      /a path of lowercase letters/,
    ],
    [
      'a path with a query',
      { endpoints: { a: { path: '/mcp?x', servers: '*' } } },
      /a path of lowercase letters/,
    ],
    [
      'names longer than 128',
      { endpoints: { a: { servers: '*', maxNameLength: 129 } } },
      /maxNameLength/,
    ],
    [
      'a host routing to no server',
      { hosts: { 'x.example.com': { server: 'nope' } } },
      /no server named nope/,
    ],
    [
      'a host routing to no endpoint',
      { hosts: { 'x.example.com': { endpoint: 'nope' } } },
      /no endpoint named nope/,
    ],
    [
      'SSE polling without resumability',
      {
        endpoints: {
          a: { servers: '*', resumability: { enabled: false }, ssePolling: { closeAfter: 1000 } },
        },
      },
      /endpoints\.a\.ssePolling: ssePolling needs resumability\.enabled/,
    ],
    [
      'a replay buffer of no events',
      { endpoints: { a: { servers: '*', resumability: { maxEvents: 0 } } } },
      /endpoints\.a\.resumability\.maxEvents: Too small/,
    ],
    [
      'an unknown resumability key',
      { endpoints: { a: { servers: '*', resumability: { bogus: 1 } } } },
      /endpoints\.a\.resumability: unknown key "bogus"/,
    ],
    [
      'a host with a port',
      { hosts: { 'x.example.com:443': { server: 'notes' } } },
      /DNS host name/,
    ],
    ['an upper-case host', { hosts: { 'X.example.com': { server: 'notes' } } }, /DNS host name/],
    ['a bare host name', { hosts: { localhost: { server: 'notes' } } }, /DNS host name/],
    [
      'a host routing to both',
      { hosts: { 'x.example.com': { server: 'notes', endpoint: 'a' } } },
      /a host routes to/,
    ],
  ]
  it('gives an endpoint resumable streams and no SSE polling unless set', () => {
    const config = validateConfig(
      { servers: SERVERS, endpoints: { a: { servers: '*' } } },
      { file: 'test.yaml', baseDir: '/tmp' },
    )
    assert.equal(config.endpoints.a?.resumability.enabled, true)
    assert.equal(config.endpoints.a?.ssePolling, undefined)
  })
  for (const [what, input, message] of refused) {
    it(`refuses ${what}`, () => {
      const found = problems(input)
      assert.ok(
        found.some((p) => message.test(p)),
        found.join('\n') || 'no problem reported',
      )
    })
  }
})
