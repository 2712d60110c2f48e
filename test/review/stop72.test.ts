// Review stop 72 (an outsider's attack on stop 71's changes). Findings are marked in the test's
// name with their rating; what held is kept here as tests that can fail (stop72b: the log's
// stdout stream, CIMD cache headers; stop72-browser: cookies a sibling subdomain plants).
// Fixed: IPv6 forms carrying an IPv4 address (NAT64 64:ff9b::/96, Teredo, 6to4, IPv4-compatible)
// were counted by the translator's /64 and /48, so behind SIIT-DC one IPv4 client refused every
// other; now counted as that IPv4 address (medium). inheritEnv may not name the OpenTelemetry
// exporter's headers, the gateway's collector credential (low). The OTLP endpoints as written are
// blotted from the SDK's warnings: one holding a quote, or `http//`, kept its password (low).
// Requests at once each made a counter past the bound (200 /64s of a /48: 200, not 6); a counter
// a wider bound refuses is now taken out again (low).
// Open (todo): a harmless inherited value blotted from every line (low, a design choice).
// Held: every spelling of one /48 (case, zeros, zone ids, dotted tails, brackets and ports from a
// trusted proxy) is one bucket; Retry-After is the rest of the window for each bound, never 0;
// two replicas on a real redis-server share the counts.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createClient } from '@redis/client'
import {
  addressBucket,
  countInWindow,
  networkBucket,
  type WindowBounds,
} from '../../gateway/broker/addresses.js'
import { redactor } from '../../gateway/bridge/redact.js'
import type { Store } from '../../gateway/store/store.js'
import {
  type BrokerReplicas,
  REPLICA_HEADER,
  startBrokerReplicas,
} from '../helpers/broker-replicas.js'
import { clientMetadata, register } from '../helpers/broker-raw.js'
import { configProblems } from '../helpers/config-problems.js'
import { NO_REDIS, type RedisServer, redisStoreAt, startRedis } from '../helpers/redis.js'
import { startStack } from '../helpers/stack.js'
import { recordingStore } from '../helpers/recording-store.js'

const WINDOW_MS = 60_000
/** 45.5 s into a minute: 14.5 s left, so Retry-After 15. */
const AT = Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS + 45_500
const BOUNDS: WindowBounds = { perAddress: 3, perNetwork: 6, perAll: 20 }
const times = <T>(n: number, x: T): T[] => Array<T>(n).fill(x)

/** Counts one request from each peer in turn: each peer's outcome. */
async function countEach(store: Store, peers: (string | undefined)[], at = AT) {
  const outcomes: string[] = []
  for (const peer of peers) {
    const o = { store, kind: 'stop72', windowMs: WINDOW_MS, bounds: BOUNDS }
    const r = await countInWindow(o, peer, at)
    outcomes.push(r === undefined ? 'admitted' : `${r.bound} ${r.retryAfterS}`)
  }
  return outcomes
}

/** The IPv4 address a.b.c.d as Teredo obfuscates it (RFC 4380 §4: every bit inverted), as two groups. */
const teredoClient = (v4: string) => {
  const b = v4.split('.').map((x) => 255 - Number(x))
  return `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
}

describe('stop72: per-address counting of translated addresses', () => {
  // Each form carries the IPv4 address the packet came from; the prefix before it is the
  // translator's (or, for Teredo, the Teredo server's), shared by everyone it translates.
  const forms: [string, (v4: string) => string][] = [
    [
      'NAT64 64:ff9b::/96 (RFC 6052; SIIT-DC in front of an IPv6-only gateway)',
      (v4) => `64:ff9b::${v4}`,
    ],
    [
      'Teredo 2001::/32 (RFC 4380), one Teredo server',
      (v4) => `2001:0:4136:e378:8000:63bf:${teredoClient(v4)}`,
    ],
    [
      '6to4 2002::/16 (RFC 3056)',
      (v4) => {
        const b = v4.split('.').map(Number)
        return `2002:${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}:1::1`
      },
    ],
    ['IPv4-compatible ::a.b.c.d (RFC 4291 §2.5.5.1)', (v4) => `::${v4}`],
  ]
  for (const [name, form] of forms) {
    test(`finding (medium): ${name}: each client is counted as its IPv4 address, so one client does not refuse every other client of the translator`, async () => {
      const store = recordingStore()
      // One client spends its own bound.
      assert.deepEqual(await countEach(store, times(4, form('198.51.100.7'))), [
        ...times(3, 'admitted'),
        'address 15',
      ])
      // Other clients behind the same translator still sign in, more than a /48 may.
      const others = Array.from({ length: 8 }, (_, i) => form(`203.0.113.${i + 10}`))
      assert.deepEqual(await countEach(store, others), times(8, 'admitted'))
      // The same client in its plain IPv4 spelling shares its counter.
      assert.equal(addressBucket(form('198.51.100.7')), '198.51.100.7')
      assert.equal(networkBucket(form('198.51.100.7')), undefined)
    })
  }

  test('held: native IPv6 next to the translated prefixes is still counted by /64 and /48', () => {
    assert.equal(addressBucket('2001:db8:1:2::5'), '2001:db8:1:2::/64')
    assert.equal(networkBucket('2001:db8:1:2::5'), '2001:db8:1::/48')
    // 2001:1::/32 is not Teredo; 64:ff9b:1::/48 (RFC 8215 local use) is not the well-known prefix.
    assert.equal(addressBucket('2001:1:4136:e378:8000:63bf:3fff:fdd2'), '2001:1:4136:e378::/64')
    assert.equal(networkBucket('64:ff9b:1::c000:205'), '64:ff9b:1::/48')
    // Mapped stays as it was.
    assert.equal(addressBucket('::ffff:192.0.2.5'), '192.0.2.5')
    // Loopback and link-local: each their own bucket, a zone id left out.
    assert.equal(addressBucket('fe80::1%eth0'), addressBucket('fe80::1%2'))
    assert.equal(addressBucket('::1'), addressBucket('0:0:0:0:0:0:0:1'))
  })
})

describe('stop72: Retry-After of each bound', () => {
  test('held: the whole seconds to the next window, whichever bound refused: 60 at its first ms, 1 at its last, never 0', async () => {
    const start = Math.floor(AT / WINDOW_MS) * WINDOW_MS
    for (const [at, retry] of [
      [start, 60],
      [start + 1, 60],
      [start + 59_000, 1],
      [start + 59_999, 1],
    ] as const) {
      const store = recordingStore()
      // The address bound, then the /48's (another /64 of it), then the bound in all (another /48).
      const peers = [
        ...times(4, '2001:db8:9:1::1'),
        ...times(3, '2001:db8:9:2::1'),
        '2001:db8:9:3::1',
        ...Array.from({ length: 15 }, (_, i) => `2001:db8:${(0xa00 + i).toString(16)}::1`),
      ]
      const got = await countEach(store, peers, at)
      assert.deepEqual(
        [got[3], got[7], got.at(-1)],
        [`address ${retry}`, `network ${retry}`, `all ${retry}`],
        `${at - start} ms into the window: ${got.join(', ')}`,
      )
    }
  })
})

describe('stop72: the counters a window stores, requests at once', () => {
  test('held: what is admitted stays within each bound, however many come at once', async () => {
    const store = recordingStore()
    const o = { store, kind: 'stop72c', windowMs: WINDOW_MS, bounds: BOUNDS }
    const oneNetwork = Array.from(
      { length: 200 },
      (_, i) => `2001:db8:5:${(i + 1).toString(16)}::1`,
    )
    const many = Array.from({ length: 200 }, (_, i) => `2001:db8:${(i + 0x100).toString(16)}::1`)
    for (const peers of [oneNetwork, many]) {
      const got = await Promise.all(peers.map((p) => countInWindow(o, p, AT)))
      const admitted = got.filter((r) => r === undefined).length
      assert.equal(
        admitted,
        peers === oneNetwork ? BOUNDS.perNetwork : BOUNDS.perAll - BOUNDS.perNetwork,
      )
    }
  })

  test('finding (low): past a bound, requests at once store no more counters than requests one by one', async () => {
    const store = recordingStore()
    const o = { store, kind: 'stop72d', windowMs: WINDOW_MS, bounds: BOUNDS }
    const peers = Array.from({ length: 200 }, (_, i) => `2001:db8:5:${(i + 1).toString(16)}::1`)
    await Promise.all(peers.map((p) => countInWindow(o, p, AT)))
    // 6 /64 counters, the /48's and the count in all (before: 200 /64 counters).
    assert.equal((await store.keys('stop72d:')).length, BOUNDS.perNetwork + 2)
    // 200 /48s at once: 14 more admitted, their /64s' and /48s' counters (before: 400).
    const many = Array.from({ length: 200 }, (_, i) => `2001:db8:${(i + 0x100).toString(16)}::1`)
    await Promise.all(many.map((p) => countInWindow(o, p, AT)))
    assert.equal((await store.keys('stop72d:')).length, BOUNDS.perAll * 2 - BOUNDS.perNetwork + 2)
  })
})

describe('stop72: requests at once through two replicas sharing a real redis-server', {
  skip: NO_REDIS,
}, () => {
  let redis: RedisServer
  let replicas: Store[] = []
  before(async () => {
    redis = await startRedis()
    replicas = [await redisStoreAt(redis.url, 'stop72:'), await redisStoreAt(redis.url, 'stop72:')]
  })
  after(async () => {
    await Promise.all(replicas.map((r) => r.close()))
    await redis?.close()
  })

  test('finding (low): 200 /64s of one /48 at once, half at each replica: 6 admitted, their counters and no more stored', async () => {
    const peers = Array.from({ length: 200 }, (_, i) => `2001:db8:5:${(i + 1).toString(16)}::1`)
    const got = await Promise.all(
      peers.map((p, i) =>
        countInWindow(
          { store: replicas[i % 2]!, kind: 'burst', windowMs: WINDOW_MS, bounds: BOUNDS },
          p,
          AT,
        ),
      ),
    )
    assert.equal(got.filter((r) => r === undefined).length, BOUNDS.perNetwork)
    assert.deepEqual(
      got.filter((r) => r !== undefined).map((r) => `${r!.bound} ${r!.retryAfterS}`),
      times(200 - BOUNDS.perNetwork, 'network 15'),
    )
    const client = createClient({ url: redis.url })
    client.on('error', () => {})
    await client.connect()
    try {
      const keys = await client.keys('stop72:burst:*')
      assert.equal(keys.length, BOUNDS.perNetwork + 2, keys.join(' '))
    } finally {
      await client.quit()
    }
  })
})

describe("stop72: inheritEnv and the gateway's own secret variables", () => {
  const config = (inheritEnv: string[]) => ({
    servers: { files: { command: 'node', inheritEnv } },
  })
  const refusal = (variable: string, at: string) =>
    `servers.files.inheritEnv.0: ${variable} holds the gateway's own secret (${at}): a server process never gets the gateway's secrets`

  test('finding (low): the OpenTelemetry exporter headers (the collector credential the gateway exports with) are refused like the other secret variables', () => {
    for (const signal of ['', 'TRACES_', 'METRICS_', 'LOGS_']) {
      const variable = `OTEL_EXPORTER_OTLP_${signal}HEADERS`
      assert.deepEqual(configProblems(config([variable, 'LANG'])), [
        refusal(variable, 'the OpenTelemetry exporter'),
      ])
    }
  })

  test('held: the exporter endpoint and other OTEL_ settings (no credential by themselves) and other names pass', () => {
    assert.deepEqual(
      configProblems(
        config([
          'OTEL_EXPORTER_OTLP_ENDPOINT',
          'OTEL_SERVICE_NAME',
          'OTEL_EXPORTER_OTLP_HEADERS_X',
        ]),
      ),
      [],
    )
  })
})

describe('stop72: what inherited values blot', () => {
  test('held: empty and one-character values blot nothing; values that are prefixes of each other and values of regex metacharacters are blotted whole, and nothing else', () => {
    const blot = redactor([
      '',
      'x',
      '-',
      'stop72-token-abcdef',
      'stop72-token-abcdef0123456789',
      'a.b*c+d?(e)[f]{g}|h^$\\',
    ])
    assert.equal(blot('x - marks -x- the spot'), 'x - marks -x- the spot')
    assert.equal(blot('k stop72-token-abcdef0123456789 e'), 'k [redacted] e')
    assert.equal(blot('k stop72-token-abcdef e'), 'k [redacted] e')
    assert.equal(blot('m a.b*c+d?(e)[f]{g}|h^$\\ e'), 'm [redacted] e')
    // The same characters, one changed: a pattern would have matched it, a value does not.
    assert.equal(blot('m aXb*c+d?(e)[f]{g}|h^$\\ e'), 'm aXb*c+d?(e)[f]{g}|h^$\\ e')
  })

  test('todo (low, a design choice): a harmless inherited value (LOG_LEVEL=info, TZ=UTC, NODE_ENV=production) is not blotted out of every line', {
    todo: 'every inheritEnv value is taken for a secret: "info", "UTC", "production" become [redacted] wherever they stand alone; marking which inherited names are secret (or blotting only values of a secret\'s length) is the lead\'s call',
  }, () => {
    const blot = redactor(['info', 'UTC', 'production'])
    assert.equal(
      blot('info: started in production mode, TZ UTC'),
      'info: started in production mode, TZ UTC',
    )
  })
})

describe("stop72: the tracing SDK's warnings quote an endpoint that does not parse", () => {
  const names = [
    'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
    'OTEL_EXPORTER_OTLP_PROTOCOL',
  ]
  const saved = Object.fromEntries(names.map((k) => [k, process.env[k]]))
  after(() => {
    for (const k of names)
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
  })

  test('finding (low): its password is in no log line when it holds a quote or the scheme lost a colon', async () => {
    // A quote in a password left unescaped (the SDK quotes the URL in '…'), and `http//`.
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT =
      "https://otel:pa'ss-stop72-one@collector.example:44x3/v1/traces"
    process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT =
      'http//otel:stop72-two@collector.example:4318/v1/metrics'
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json'
    const stack = await startStack({})
    for (const k of names) delete process.env[k]
    try {
      const warned = stack.logLines.filter((l) => l.includes('Could not parse'))
      assert.equal(warned.length, 2, stack.logLines.join('\n'))
      for (const line of warned) {
        assert.match(line, /collector\.example:4/)
        assert.doesNotMatch(line, /stop72-|pa'ss|otel:/, line)
      }
    } finally {
      await stack.close()
    }
  })
})

describe('stop72: translated clients through two replicas sharing a real redis-server', {
  skip: NO_REDIS,
}, () => {
  const MID_WINDOW = Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS + 30_000
  let s: BrokerReplicas
  before(async () => {
    s = await startBrokerReplicas({
      signInClock: () => MID_WINDOW,
      config: { trustProxy: ['127.0.0.1/32'] },
      broker: { registration: { perAddressPerMinute: 2, perNetworkPerMinute: 4 } },
    })
  })
  after(() => s?.close())

  let n = 0
  /** Registers once, as `client` by a trusted proxy's X-Forwarded-For, at replica a or b in turn. */
  const registerAs = async (client: string) => {
    const res = await register(
      { url: s.publicUrl, endpoint: (server) => `${s.publicUrl}/mcp/${server}` },
      clientMetadata(['http://127.0.0.1:43150/cb'], {}),
      { 'x-forwarded-for': client, [REPLICA_HEADER]: n++ % 2 === 0 ? 'a' : 'b' },
    )
    return res.status === 201
      ? 'admitted'
      : `${res.status} ${res.headers['retry-after']} ${res.json.error_description}`
  }

  test("finding (medium): behind NAT64 (SIIT-DC), one IPv4 client spends its own registrations, not every IPv4 client's", async () => {
    // One client in three spellings a proxy may write, the replicas taking turns.
    const one = ['64:ff9b::198.51.100.7', '[64:ff9b::c633:6407]:443', '64:FF9B:0:0:0:0:C633:6407']
    assert.deepEqual(await Promise.all(one.map(registerAs)).then((r) => r.sort()), [
      '429 30 too many registrations from this address; retry later',
      'admitted',
      'admitted',
    ])
    // Six other IPv4 clients through the same translator: more than one /48 may register.
    const others = Array.from({ length: 6 }, (_, i) => `64:ff9b::203.0.113.${i + 10}`)
    const got: string[] = []
    for (const c of others) got.push(await registerAs(c))
    assert.deepEqual(got, times(6, 'admitted'))
    assert.ok(s.router.hits.a > 0 && s.router.hits.b > 0)
  })
})
