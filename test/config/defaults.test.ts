import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import {
  ConfigError,
  DEMO_TICKETS_SECRET,
  defaultConfig,
  PACKAGE_ROOT,
} from '../../gateway/config/defaults.js'
import { loadPolicy } from '../../gateway/policy/load.js'

describe('defaultConfig', () => {
  const config = defaultConfig({})
  const servers = Object.values(config.servers)

  const cases: { name: string; get: () => unknown; expect: unknown }[] = [
    {
      name: 'lists servers echo, notes and tickets',
      get: () => Object.keys(config.servers),
      expect: ['echo', 'notes', 'tickets'],
    },
    {
      name: 'servers run this node',
      get: () => servers.map((s) => s.command),
      expect: [process.execPath, process.execPath, process.execPath],
    },
    {
      name: 'server scripts exist',
      get: () => servers.map((s) => existsSync(s.args[0]!)),
      expect: [true, true, true],
    },
    {
      name: "tickets takes each user's own API key from their secret, with no warm process",
      get: () => {
        const t = config.servers.tickets!
        return { credentials: t.credentials, min: t.pool.min, mode: t.mode }
      },
      expect: {
        credentials: {
          TICKETS_API_KEY: {
            secret: DEMO_TICKETS_SECRET,
            describe: 'your API key for the tickets demo',
          },
        },
        min: 0,
        mode: 'session',
      },
    },
    {
      name: 'no sealing keys: the in-memory store seals under a key made at each start',
      get: () => [config.secrets, config.store.kind],
      expect: [undefined, 'memory'],
    },
    {
      name: 'the warm pools stay for the servers that take no credentials',
      get: () => [config.servers.echo!.pool.min, config.servers.notes!.pool.min],
      expect: [1, 1],
    },
    {
      name: 'listens on loopback 8080',
      get: () => config.listen,
      expect: { host: '127.0.0.1', port: 8080 },
    },
    { name: 'no issuer (dev IdP runs)', get: () => config.auth.issuer, expect: undefined },
    {
      name: 'policies resolved under the package root',
      get: () => config.policies,
      expect: path.join(PACKAGE_ROOT, 'policies'),
    },
    {
      name: 'package root holds package.json',
      get: () => existsSync(path.join(PACKAGE_ROOT, 'package.json')),
      expect: true,
    },
  ]
  for (const c of cases) test(c.name, () => assert.deepEqual(c.get(), c.expect))

  test('its policies load and cover every server', () => {
    const policy = loadPolicy(config.policies!)
    assert.deepEqual([...policy.servers.keys()].sort(), ['echo', 'notes', 'tickets'])
  })

  test('environment overrides apply', () => {
    const c = defaultConfig({ MCP_EDGE_PORT: '0', MCP_EDGE_ISSUER: 'http://127.0.0.1:8090' })
    assert.deepEqual([c.listen.port, c.auth.issuer], [0, 'http://127.0.0.1:8090'])
  })

  test('an invalid override is a ConfigError naming the variable', () => {
    assert.throws(
      () => defaultConfig({ MCP_EDGE_PORT: 'eighty' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError)
        assert.equal(err.code, 'config_invalid')
        assert.deepEqual(err.problems, [
          {
            file: 'environment variable MCP_EDGE_PORT',
            message: 'Invalid input: expected number, received string',
          },
        ])
        return true
      },
    )
  })
})
