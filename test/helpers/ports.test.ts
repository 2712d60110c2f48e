// freePort: ports a test binds later never come from the kernel's ephemeral range (where a
// port-0 listener or an outgoing connection of a test file running beside it could take them),
// are never handed out twice, and are bindable.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import { describe, test } from 'node:test'
import {
  bindable,
  DEFAULT_EPHEMERAL,
  ephemeralRange,
  freePort,
  pickRanges,
  PREFERRED,
  type PortRange,
} from './ports.js'

describe('the ephemeral range, from ip_local_port_range', () => {
  const cases: { name: string; text: string; expect: PortRange }[] = [
    { name: 'as Linux writes it (tab, newline)', text: '32768\t60999\n', expect: [32768, 60999] },
    { name: 'spaces', text: '  1024   65535 ', expect: [1024, 65535] },
    { name: 'one port', text: '40000 40000', expect: [40000, 40000] },
    { name: 'empty: the default', text: '', expect: DEFAULT_EPHEMERAL },
    { name: 'one number: the default', text: '32768', expect: DEFAULT_EPHEMERAL },
    { name: 'not numbers: the default', text: 'low high', expect: DEFAULT_EPHEMERAL },
    { name: 'reversed: the default', text: '60999 32768', expect: DEFAULT_EPHEMERAL },
    { name: 'past 65535: the default', text: '32768 70000', expect: DEFAULT_EPHEMERAL },
    { name: 'port 0: the default', text: '0 60999', expect: DEFAULT_EPHEMERAL },
    { name: 'fractions: the default', text: '32768.5 60999', expect: DEFAULT_EPHEMERAL },
  ]
  for (const c of cases) test(c.name, () => assert.deepEqual(ephemeralRange(c.text), c.expect))

  test("this machine's (from /proc) is a range", () => {
    const [low, high] = ephemeralRange()
    assert.ok(low >= 1 && low <= high && high <= 65535, `${low}-${high}`)
  })
})

describe('where freePort picks', () => {
  const cases: { name: string; ephemeral: PortRange; expect: PortRange[] }[] = [
    { name: "Linux's default: all of PREFERRED", ephemeral: [32768, 60999], expect: [PREFERRED] },
    { name: 'overlapping its top', ephemeral: [30000, 60999], expect: [[20000, 29999]] },
    { name: 'overlapping its bottom', ephemeral: [10000, 24999], expect: [[25000, 31999]] },
    {
      name: 'inside it: both sides',
      ephemeral: [25000, 26000],
      expect: [
        [20000, 24999],
        [26001, 31999],
      ],
    },
    {
      name: 'covering it: the unprivileged ports outside',
      ephemeral: [10000, 49999],
      expect: [
        [1024, 9999],
        [50000, 65535],
      ],
    },
    { name: 'covering every unprivileged port: none', ephemeral: [1024, 65535], expect: [] },
  ]
  for (const c of cases) test(c.name, () => assert.deepEqual(pickRanges(c.ephemeral), c.expect))
})

describe('freePort', () => {
  const [low, high] = ephemeralRange()
  const N = 300

  test(`${N} ports: outside the ephemeral range, in the ranges it picks from, all distinct, each bindable`, async () => {
    const ranges = pickRanges([low, high])
    const ports: number[] = []
    for (let i = 0; i < N; i++) ports.push(await freePort())
    for (const port of ports) {
      assert.ok(port < low || port > high, `${port} is in the ephemeral range ${low}-${high}`)
      assert.ok(
        ranges.some(([a, b]) => port >= a && port <= b),
        `${port} outside ${JSON.stringify(ranges)}`,
      )
    }
    assert.equal(new Set(ports).size, N, 'a port was handed out twice')
    for (const port of ports.slice(0, 50)) assert.ok(await bindable(port), `${port} not bindable`)
  })

  test('the port is free when it is handed out: a listener binds it on 127.0.0.1', async () => {
    const port = await freePort()
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', resolve)
    })
    try {
      assert.equal(await bindable(port), false, 'bindable sees a port in use')
    } finally {
      await close(server)
    }
    assert.equal(await bindable(port), true, 'bindable releases what it binds')
  })

  test('port-0 listeners (what a concurrent test file opens) never get a port it hands out', async () => {
    const servers: Server[] = []
    try {
      for (let i = 0; i < 50; i++) {
        const server = createServer()
        servers.push(server)
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
        const { port } = server.address() as { port: number }
        assert.ok(port >= low && port <= high, `port 0 gave ${port}, outside ${low}-${high}`)
      }
    } finally {
      for (const s of servers) await close(s)
    }
  })
})

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}
