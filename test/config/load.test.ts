import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { ConfigError, formatProblem, type ConfigProblem } from '../../gateway/config/errors.js'
import { loadConfigFile, validateConfig } from '../../gateway/config/load.js'

const SERVERS = 'servers:\n  echo:\n    command: /bin/echo\n'
const NO_RECORD = 'Invalid input: expected record, received undefined'
const CANONICAL = 'must have no query, no fragment and no trailing slash'
const EMPTY = 'Too small: expected string to have >=1 characters'

let dir: string
let n = 0
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mcp-edge-config-'))
})
after(() => rm(dir, { recursive: true, force: true }))

/** Writes `text` to a fresh file in the temp folder and returns its path. */
async function yamlFile(text: string, name = `config-${++n}.yaml`): Promise<string> {
  const file = path.join(dir, name)
  await writeFile(file, text)
  return file
}

/** The ConfigError `fn` throws (fails the test if it returns). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`)
    assert.equal(err.code, 'config_invalid')
    assert.equal(err.status, 500)
    return err
  }
  assert.fail('expected a ConfigError')
}

/** Each problem reduced to the fields its expectation names. */
function project(
  problems: ConfigProblem[],
  like: Partial<ConfigProblem>[],
): Partial<ConfigProblem>[] {
  return problems.map((p, i) => {
    const keys = Object.keys(like[i] ?? p) as (keyof ConfigProblem)[]
    return Object.fromEntries(keys.map((k) => [k, p[k]]))
  })
}

const byFileLine = (a: Partial<ConfigProblem>, b: Partial<ConfigProblem>) =>
  (a.file ?? '').localeCompare(b.file ?? '') || (a.line ?? 0) - (b.line ?? 0)

interface FileCase {
  name: string
  yaml: string
  env?: NodeJS.ProcessEnv
  /** Expected problems, in order; `file` defaults to the temp file. */
  expect: Partial<ConfigProblem>[]
  /** The problems may come in any order. */
  anyOrder?: boolean
}

const fileCases: FileCase[] = [
  {
    name: 'YAML syntax error, located',
    yaml: 'servers:\n  echo: {command: x\n',
    expect: [
      {
        line: 3,
        column: 1,
        message: 'Flow map in block collection must be sufficiently indented and end with a }',
      },
    ],
  },
  {
    name: 'duplicate key, at the second occurrence',
    yaml: 'servers:\n  echo:\n    command: a\n  echo:\n    command: b\n',
    expect: [{ line: 4, column: 3, message: 'Map keys must be unique' }],
  },
  {
    name: 'unknown nested key, at its own line',
    yaml: `listen:\n  host: 127.0.0.1\n  bogus: 1\n${SERVERS}`,
    expect: [{ line: 3, column: 3, path: 'listen', message: 'unknown key "bogus"' }],
  },
  {
    name: 'unknown top-level key, at its own line',
    yaml: `${SERVERS}extra: 1\n`,
    expect: [{ line: 4, column: 1, path: undefined, message: 'unknown key "extra"' }],
  },
  {
    name: 'two unknown keys in one mapping: one problem each',
    yaml: `${SERVERS}    comand: x\n    arg: []\n`,
    expect: [
      { line: 4, column: 5, path: 'servers.echo', message: 'unknown key "comand"' },
      { line: 5, column: 5, path: 'servers.echo', message: 'unknown key "arg"' },
    ],
  },
  {
    name: 'wrong type, at its line',
    yaml: `listen:\n  host: 127.0.0.1\n  port: "80"\n${SERVERS}`,
    expect: [
      {
        line: 3,
        column: 3,
        path: 'listen.port',
        message: 'Invalid input: expected number, received string',
      },
    ],
  },
  {
    name: 'missing servers',
    yaml: 'listen:\n  port: 1\n',
    expect: [{ line: 1, path: 'servers', message: NO_RECORD }],
  },
  {
    name: 'empty servers',
    yaml: 'servers: {}\n',
    expect: [{ line: 1, path: 'servers', message: 'at least one server is required' }],
  },
  {
    name: 'empty file: servers missing',
    yaml: '',
    expect: [{ path: 'servers', message: NO_RECORD }],
  },
  {
    name: 'top level not a mapping',
    yaml: '- servers\n',
    expect: [{ line: 1, message: 'the top level must be a mapping' }],
  },
  {
    name: 'bad server name, at its key',
    yaml: 'servers:\n  Echo Server:\n    command: a\n',
    expect: [{ line: 2, column: 3, path: 'servers.Echo Server' }],
  },
  {
    name: 'bad server name says which names are allowed',
    yaml: 'servers:\n  Echo Server:\n    command: a\n',
    expect: [{ line: 2, message: 'server names are lowercase letters, digits, - and _' }],
  },
  {
    name: 'algorithms [HS256] refused',
    yaml: `auth:\n  algorithms: [HS256]\n${SERVERS}`,
    expect: [
      {
        line: 2,
        column: 16,
        path: 'auth.algorithms.0',
        message: 'only asymmetric algorithms are accepted',
      },
    ],
  },
  {
    name: 'algorithms [none] refused',
    yaml: `auth:\n  algorithms:\n    - RS256\n    - none\n${SERVERS}`,
    expect: [
      {
        line: 4,
        column: 7,
        path: 'auth.algorithms.1',
        message: 'only asymmetric algorithms are accepted',
      },
    ],
  },
  {
    name: 'empty algorithms refused',
    yaml: `auth:\n  algorithms: []\n${SERVERS}`,
    expect: [
      { line: 2, path: 'auth.algorithms', message: 'Too small: expected array to have >=1 items' },
    ],
  },
  ...[
    'http://127.0.0.1:8080/',
    'http://127.0.0.1:8080/base?x=1',
    'http://127.0.0.1:8080/base#f',
  ].map(
    (url): FileCase => ({
      name: `publicUrl ${url} refused`,
      yaml: `${SERVERS}publicUrl: ${url}\n`,
      expect: [{ line: 4, column: 1, path: 'publicUrl', message: CANONICAL }],
    }),
  ),
  {
    name: 'publicUrl with another scheme refused',
    yaml: `${SERVERS}publicUrl: ftp://127.0.0.1\n`,
    expect: [{ line: 4, path: 'publicUrl', message: 'must be an http(s) URL' }],
  },
  ...[
    { name: 'ssePolling with JSON replies refused', extra: '    responses: json\n' },
    {
      name: 'ssePolling without resumability refused',
      extra: '    resumability: { enabled: false }\n',
    },
  ].map(
    (c): FileCase => ({
      name: c.name,
      yaml: `${SERVERS}${c.extra}    ssePolling: { closeAfter: 30000 }\n`,
      expect: [
        {
          path: 'servers.echo.ssePolling',
          message:
            'ssePolling needs responses: sse and resumability.enabled (clients resume from the replay buffer)',
        },
      ],
    }),
  ),
  {
    name: 'resumability bounds checked',
    yaml: `${SERVERS}    resumability: { maxEvents: 0, maxBytes: 10, maxAge: 5, bogus: 1 }\n`,
    expect: [
      {
        line: 4,
        path: 'servers.echo.resumability.maxEvents',
        message: 'Too small: expected number to be >=1',
      },
      {
        line: 4,
        path: 'servers.echo.resumability.maxBytes',
        message: 'Too small: expected number to be >=1024',
      },
      {
        line: 4,
        path: 'servers.echo.resumability.maxAge',
        message: 'Too small: expected number to be >=1000',
      },
      { line: 4, path: 'servers.echo.resumability', message: 'unknown key "bogus"' },
    ],
  },
  {
    name: 'stream queue bounds checked',
    yaml: `${SERVERS}limits:\n  streamQueueBytes: 10\n  streamQueueEvents: 0\n`,
    expect: [
      {
        line: 5,
        path: 'limits.streamQueueBytes',
        message: 'Too small: expected number to be >=1024',
      },
      {
        line: 6,
        path: 'limits.streamQueueEvents',
        message: 'Too small: expected number to be >=1',
      },
    ],
  },
  {
    name: "a stream's queue bound larger than its session's refused",
    yaml: `${SERVERS}limits:\n  streamQueueBytes: 8388608\n  streamQueueEvents: 5000\n`,
    expect: [
      { line: 5, path: 'limits.streamQueueBytes', message: 'must not exceed sessionQueueBytes' },
      { line: 6, path: 'limits.streamQueueEvents', message: 'must not exceed sessionQueueEvents' },
    ],
  },
  {
    name: 'several problems reported together, in file order',
    yaml: [
      'listen:',
      '  port: -1',
      'publicUrl: http://x.example/',
      'auth:',
      '  algorithms: [HS256]',
      'servers:',
      '  echo:',
      '    command: ""',
      '',
    ].join('\n'),
    expect: [
      { line: 2, path: 'listen.port', message: 'Too small: expected number to be >=0' },
      { line: 3, path: 'publicUrl', message: CANONICAL },
      { line: 5, path: 'auth.algorithms.0', message: 'only asymmetric algorithms are accepted' },
      { line: 8, path: 'servers.echo.command', message: EMPTY },
    ],
  },
  {
    name: 'invalid MCP_EDGE_PORT is blamed on the variable',
    yaml: SERVERS,
    env: { MCP_EDGE_PORT: 'abc' },
    expect: [
      {
        file: 'environment variable MCP_EDGE_PORT',
        line: undefined,
        path: undefined,
        message: 'Invalid input: expected number, received string',
      },
    ],
  },
  {
    name: 'out of range MCP_EDGE_PORT is blamed on the variable',
    yaml: `listen:\n  port: 8080\n${SERVERS}`,
    env: { MCP_EDGE_PORT: '70000' },
    expect: [
      {
        file: 'environment variable MCP_EDGE_PORT',
        line: undefined,
        message: 'Too big: expected number to be <=65535',
      },
    ],
  },
  {
    name: 'invalid MCP_EDGE_PUBLIC_URL is blamed on the variable',
    yaml: SERVERS,
    env: { MCP_EDGE_PUBLIC_URL: 'http://127.0.0.1:8080/' },
    expect: [{ file: 'environment variable MCP_EDGE_PUBLIC_URL', message: CANONICAL }],
  },
  {
    name: 'an env problem and a file problem together',
    yaml: `listen:\n  host: ""\n${SERVERS}`,
    env: { MCP_EDGE_ISSUER: 'not a url' },
    anyOrder: true,
    expect: [
      { line: 2, path: 'listen.host', message: EMPTY },
      { file: 'environment variable MCP_EDGE_ISSUER', message: 'must be an http(s) URL' },
    ],
  },
]

describe('loadConfigFile refuses bad files with located problems', () => {
  for (const c of fileCases) {
    test(c.name, async () => {
      const file = await yamlFile(c.yaml)
      const err = configError(() => loadConfigFile(file, c.env ?? {}))
      const want = c.expect.map((p) => ({ file, ...p }))
      const got = c.anyOrder ? [...err.problems].sort(byFileLine) : err.problems
      assert.deepEqual(project(got, want), c.anyOrder ? want.sort(byFileLine) : want)
      for (const p of err.problems) assert.ok(err.message.includes(formatProblem(p)))
    })
  }
})

interface EnvCase {
  name: string
  yaml?: string
  env: NodeJS.ProcessEnv
  get: (c: ReturnType<typeof loadConfigFile>) => unknown
  expect: unknown
}

const envCases: EnvCase[] = [
  {
    name: 'MCP_EDGE_PORT',
    env: { MCP_EDGE_PORT: '9090' },
    get: (c) => c.listen.port,
    expect: 9090,
  },
  {
    name: 'MCP_EDGE_PORT over the file',
    yaml: `listen:\n  port: 1234\n${SERVERS}`,
    env: { MCP_EDGE_PORT: '0' },
    get: (c) => c.listen.port,
    expect: 0,
  },
  {
    name: 'MCP_EDGE_ISSUER',
    env: { MCP_EDGE_ISSUER: 'https://idp.example/realms/mcp' },
    get: (c) => c.auth.issuer,
    expect: 'https://idp.example/realms/mcp',
  },
  {
    name: 'MCP_EDGE_PUBLIC_URL over the file',
    yaml: `publicUrl: http://a.example\n${SERVERS}`,
    env: { MCP_EDGE_PUBLIC_URL: 'https://mcp.example.com' },
    get: (c) => c.publicUrl,
    expect: 'https://mcp.example.com',
  },
  {
    name: 'MCP_EDGE_AUDIENCE',
    env: { MCP_EDGE_AUDIENCE: 'api://mcp' },
    get: (c) => c.auth.audience,
    expect: 'api://mcp',
  },
  {
    name: 'MCP_EDGE_HOST',
    env: { MCP_EDGE_HOST: '0.0.0.0' },
    get: (c) => c.listen.host,
    expect: '0.0.0.0',
  },
  {
    name: 'MCP_EDGE_LOG_LEVEL',
    env: { MCP_EDGE_LOG_LEVEL: 'debug' },
    get: (c) => c.log.level,
    expect: 'debug',
  },
  {
    name: 'MCP_EDGE_LOG_FORMAT',
    env: { MCP_EDGE_LOG_FORMAT: 'pretty' },
    get: (c) => c.log.format,
    expect: 'pretty',
  },
  {
    name: 'an empty variable is ignored',
    yaml: `listen:\n  port: 1234\n${SERVERS}`,
    env: { MCP_EDGE_PORT: '' },
    get: (c) => c.listen.port,
    expect: 1234,
  },
  {
    name: 'the auth section keeps its other fields',
    yaml: `auth:\n  clockTolerance: 5\n${SERVERS}`,
    env: { MCP_EDGE_ISSUER: 'http://127.0.0.1:8090' },
    get: (c) => [c.auth.issuer, c.auth.clockTolerance],
    expect: ['http://127.0.0.1:8090', 5],
  },
  {
    name: 'no variables: defaults',
    env: {},
    get: (c) => [c.listen, c.publicUrl, c.auth.issuer, c.auth.algorithms.includes('ES256')],
    expect: [{ host: '127.0.0.1', port: 8080 }, undefined, undefined, true],
  },
]

describe('loadConfigFile applies environment overrides', () => {
  for (const c of envCases) {
    test(c.name, async () => {
      const file = await yamlFile(c.yaml ?? SERVERS)
      assert.deepEqual(c.get(loadConfigFile(file, c.env)), c.expect)
    })
  }
})

describe('loadConfigFile resolves relative paths against the file folder', () => {
  const cases = [
    {
      name: 'relative policies and cwd',
      policies: 'policies',
      cwd: './work',
      expect: (d: string) => ({ policies: path.join(d, 'policies'), cwd: path.join(d, 'work') }),
    },
    {
      name: 'parent-relative',
      policies: '../shared/p.yaml',
      cwd: '..',
      expect: (d: string) => ({
        policies: path.join(path.dirname(d), 'shared/p.yaml'),
        cwd: path.dirname(d),
      }),
    },
    {
      name: 'absolute kept',
      policies: '/etc/mcp-edge/policies',
      cwd: '/srv',
      expect: () => ({ policies: '/etc/mcp-edge/policies', cwd: '/srv' }),
    },
  ]
  for (const c of cases) {
    test(c.name, async () => {
      const file = await yamlFile(
        `policies: ${c.policies}\nservers:\n  echo:\n    command: /bin/echo\n    cwd: ${c.cwd}\n`,
      )
      // A path relative to the process cwd must still resolve against the file's folder.
      const config = loadConfigFile(path.relative(process.cwd(), file), {})
      assert.deepEqual({ policies: config.policies, cwd: config.servers.echo?.cwd }, c.expect(dir))
    })
  }

  test('toolPins.file: next to the config by default, relative to it, or absolute', async () => {
    const cases: [string, (d: string) => string][] = [
      ['', (d) => path.join(d, 'tool-pins.yaml')],
      ['toolPins: { file: ../pins/p.yaml }\n', (d) => path.join(path.dirname(d), 'pins/p.yaml')],
      ['toolPins: { file: /var/lib/mcp-edge/p.yaml }\n', () => '/var/lib/mcp-edge/p.yaml'],
    ]
    for (const [yaml, expected] of cases) {
      const file = await yamlFile(`${yaml}servers:\n  echo:\n    command: /bin/echo\n`)
      const config = loadConfigFile(path.relative(process.cwd(), file), {})
      assert.equal(config.toolPins.file, expected(path.dirname(file)))
    }
  })

  test('a missing file is a ConfigError naming it', () => {
    const file = path.join(dir, 'absent.yaml')
    const err = configError(() => loadConfigFile(file, {}))
    assert.deepEqual(err.problems, [{ file, message: 'cannot read: ENOENT' }])
  })
})

describe('validateConfig', () => {
  test('fills defaults and does not mutate its input', () => {
    const raw = { servers: { echo: { command: 'node' } } }
    const before = structuredClone(raw)
    const config = validateConfig(raw, { file: 'x', baseDir: '/base', env: { MCP_EDGE_PORT: '1' } })
    assert.deepEqual(raw, before)
    assert.equal(config.listen.port, 1)
    assert.deepEqual(config.servers.echo, {
      command: 'node',
      args: [],
      env: {},
      inheritEnv: [],
      mode: 'session',
      pool: {
        min: 0,
        max: 1000,
        burst: 0,
        cooldown: 60_000,
        preinitialize: false,
        primeTimeout: 10_000,
      },
      replicas: 1,
      identityEnv: false,
      responses: 'sse',
      requestTimeout: 60_000,
      resumability: { enabled: true, maxEvents: 1000, maxBytes: 1_048_576, maxAge: 300_000 },
      idleTimeout: 600_000,
      shutdownGrace: 5_000,
      maxSessionsPerSubject: 8,
      maxSubscriptions: 256,
      credentials: {},
      initializeTimeout: 30_000,
      readyWait: 10_000,
      respawnBackoff: 500,
      respawnBackoffMax: 30_000,
      respawnStableAfter: 60_000,
      maxMessageBytes: 8_388_608,
      maxJsonDepth: 256,
      stopGrace: 2000,
      stderr: { linesPerWindow: 50, window: 10_000, lineMax: 2000, keepLast: 10 },
      warnings: { linesPerWindow: 20, window: 10_000 },
      output: { overflow: 'truncate', tools: {} },
      pinTools: false,
    })
    assert.equal(config.servers.echo?.ssePolling, undefined, 'SSE polling is off by default')
    assert.deepEqual(config.toolPins, {
      file: '/base/tool-pins.yaml',
      learn: true,
      maxFileBytes: 1_048_576,
      maxPending: 1000,
      reloadDebounce: 150,
    })
    assert.deepEqual(config.limits, {
      maxBodyBytes: 1_048_576,
      maxSessions: 1000,
      maxSessionsPerSubject: 32,
      startFailureUsers: 10_000,
      processStartsPerSubject: 60,
      processStartsWindow: 60_000,
      sharedCrashesPerSubject: 3,
      sharedCrashesWindow: 600_000,
      sharedCrashesSubjects: 1000,
      maxBatch: 100,
      maxJsonDepth: 64,
      bodyTimeout: 10_000,
      streamQueueBytes: 1_048_576,
      streamQueueEvents: 1000,
      sessionQueueBytes: 4_194_304,
      sessionQueueEvents: 4000,
      keepAliveTimeout: 65_000,
      sseKeepAlive: 15_000,
      shutdownDeadline: 10_000,
      idleGcAfter: 10_000,
      policyReloadDebounce: 150,
      sessionless: {
        lanesPerSubject: 4,
        lanePlainConcurrency: 16,
        laneWait: 10_000,
        laneWaiters: 16,
        laneIdle: 300_000,
        toolPages: 20,
        inputTtl: 300_000,
        waitingPerSubject: 4,
        listensPerSubject: 8,
        listenResources: 64,
        listenRecheck: 30_000,
        subscribeTimeout: 10_000,
      },
    })
    assert.equal(config.auth.clockTolerance, 30)
    assert.deepEqual(config.auth.roleClaims, [
      'realm_access.roles',
      'resource_access.mcp-edge.roles',
    ])
  })

  test('without a locator, problems carry file and path only', () => {
    const raw = { servers: { echo: { command: 'node', args: 'x' } } }
    const err = configError(() => validateConfig(raw, { file: 'obj', baseDir: '/' }))
    assert.deepEqual(err.problems, [
      {
        file: 'obj',
        path: 'servers.echo.args',
        message: 'Invalid input: expected array, received string',
      },
    ])
  })
})

describe('servers.<name>.output (output caps)', () => {
  const withOutput = (output: unknown) => ({
    servers: { echo: { command: 'node', output } },
  })
  test('caps by size and by tool pattern load', () => {
    const config = validateConfig(
      withOutput({ maxResultBytes: 25_000, overflow: 'refuse', tools: { 'read_*': 100_000 } }),
      { file: 'obj', baseDir: '/' },
    )
    assert.deepEqual(config.servers.echo?.output, {
      maxResultBytes: 25_000,
      overflow: 'refuse',
      tools: { 'read_*': 100_000 },
    })
  })
  for (const [what, output, path] of [
    ['a cap below room for the notice', { maxResultBytes: 1023 }, 'maxResultBytes'],
    ['a fractional cap', { maxResultBytes: 2048.5 }, 'maxResultBytes'],
    ['a cap as text', { maxResultBytes: '25000' }, 'maxResultBytes'],
    ['a negative tool cap', { tools: { x: -1 } }, 'tools.x'],
    ['an empty tool pattern', { tools: { '': 4096 } }, 'tools'],
    ['an unknown overflow', { overflow: 'drop' }, 'overflow'],
    ['an unknown key', { max: 1 }, ''],
    ['a list', [], ''],
  ] as const)
    test(`${what} is refused, located`, () => {
      const err = configError(() =>
        validateConfig(withOutput(output), { file: 'obj', baseDir: '/' }),
      )
      assert.ok(
        err.problems.some((p) =>
          p.path?.startsWith(`servers.echo.output${path ? `.${path}` : ''}`),
        ),
        JSON.stringify(err.problems),
      )
    })
})

describe('servers.<name>.maxJsonDepth', () => {
  for (const value of [15, 2049, 64.5, '256', -1, null])
    test(`${JSON.stringify(value)} is refused, located`, () => {
      const err = configError(() =>
        validateConfig(
          { servers: { echo: { command: 'node', maxJsonDepth: value } } },
          { file: 'obj', baseDir: '/' },
        ),
      )
      assert.ok(err.problems.some((p) => p.path === 'servers.echo.maxJsonDepth'))
    })
})

describe('formatProblem', () => {
  const cases: { name: string; input: ConfigProblem; expect: string }[] = [
    {
      name: 'everything',
      input: { file: 'g.yaml', line: 3, column: 5, path: 'listen.port', message: 'bad' },
      expect: 'g.yaml:3:5: listen.port: bad',
    },
    {
      name: 'no column',
      input: { file: 'g.yaml', line: 3, path: 'a', message: 'bad' },
      expect: 'g.yaml:3: a: bad',
    },
    {
      name: 'no path',
      input: { file: 'g.yaml', line: 1, column: 1, message: 'bad' },
      expect: 'g.yaml:1:1: bad',
    },
    {
      name: 'no line: column ignored',
      input: { file: 'g.yaml', column: 4, message: 'bad' },
      expect: 'g.yaml: bad',
    },
    {
      name: 'environment variable',
      input: { file: 'environment variable MCP_EDGE_PORT', message: 'bad' },
      expect: 'environment variable MCP_EDGE_PORT: bad',
    },
  ]
  for (const c of cases) test(c.name, () => assert.equal(formatProblem(c.input), c.expect))

  test('ConfigError message lists every problem', () => {
    const problems = cases.map((c) => c.input)
    const err = new ConfigError(problems)
    const lines = cases.map((c) => `\n  ${c.expect}`).join('')
    assert.equal(err.message, `invalid configuration:${lines}`)
    assert.equal(err.problems, problems)
  })
})
