// Addresses a fetch on a stranger's behalf must not reach: every special-use range, its edges,
// its IPv4-mapped and NAT64 spellings, and anything that is not an address at all.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  addressBucket,
  compileCidrs,
  isSpecialUseAddress,
  networkBucket,
  parseIp,
} from '../../gateway/broker/addresses.js'

describe('isSpecialUseAddress', () => {
  const special: [string, string][] = [
    // IPv4: each range, at its first and last address
    ['0.0.0.0', 'this network (unspecified)'],
    ['0.255.255.255', 'this network, last'],
    ['10.0.0.0', 'RFC 1918 10/8, first'],
    ['10.255.255.255', 'RFC 1918 10/8, last'],
    ['100.64.0.0', 'CGNAT, first'],
    ['100.127.255.255', 'CGNAT, last'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback, far end'],
    ['169.254.0.1', 'link-local'],
    ['169.254.169.254', 'cloud metadata'],
    ['169.254.255.255', 'link-local, last'],
    ['172.16.0.0', 'RFC 1918 172.16/12, first'],
    ['172.31.255.255', 'RFC 1918 172.16/12, last'],
    ['192.0.0.1', 'IETF protocol assignments'],
    ['192.0.0.255', 'IETF protocol assignments, last'],
    ['192.0.2.1', 'TEST-NET-1'],
    ['192.31.196.1', 'AS112-v4'],
    ['192.52.193.1', 'AMT'],
    ['192.88.99.1', '6to4 relay anycast'],
    ['192.168.0.1', 'RFC 1918 192.168/16'],
    ['192.168.255.255', 'RFC 1918 192.168/16, last'],
    ['192.175.48.1', 'AS112 direct delegation'],
    ['198.18.0.0', 'benchmarking, first'],
    ['198.19.255.255', 'benchmarking, last'],
    ['198.51.100.7', 'TEST-NET-2'],
    ['203.0.113.9', 'TEST-NET-3'],
    ['224.0.0.1', 'multicast, first block'],
    ['239.255.255.255', 'multicast, last'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    // IPv6
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback, long form'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', 'loopback, zero-padded'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::FFFF:127.0.0.1', 'IPv4-mapped loopback, upper case'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback, hex'],
    ['0:0:0:0:0:ffff:7f00:1', 'IPv4-mapped loopback, long hex'],
    ['::ffff:10.1.2.3', 'IPv4-mapped RFC 1918'],
    ['::ffff:169.254.169.254', 'IPv4-mapped cloud metadata'],
    ['::ffff:a9fe:a9fe', 'IPv4-mapped cloud metadata, hex'],
    ['::ffff:0.0.0.0', 'IPv4-mapped unspecified'],
    ['::127.0.0.1', 'IPv4-compatible (deprecated, ::/96)'],
    ['::8.8.8.8', 'IPv4-compatible public (deprecated, outside 2000::/3)'],
    ['::ffff:0:8.8.8.8', 'IPv4-translated (outside 2000::/3)'],
    ['64:ff9b::127.0.0.1', 'NAT64 of loopback'],
    ['64:ff9b::a00:1', 'NAT64 of 10.0.0.1'],
    ['64:ff9b:1::1', 'local-use NAT64 (RFC 8215)'],
    ['100::1', 'discard-only'],
    ['fc00::1', 'unique-local fc00::/7, first half'],
    ['fd12:3456:789a::1', 'unique-local fd00::/8'],
    ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'unique-local, last'],
    ['fe80::1', 'link-local'],
    ['febf:ffff::1', 'link-local, last'],
    ['fec0::1', 'site-local (deprecated)'],
    ['ff02::1', 'multicast'],
    ['ff05::2', 'multicast, site'],
    ['2001::1', 'Teredo'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo, real shape'],
    ['2001:1::1', 'IETF protocol assignments'],
    ['2001:2::1', 'benchmarking'],
    ['2001:10::1', 'ORCHID'],
    ['2001:1ff:ffff::1', 'IETF protocol assignments, last'],
    ['2001:db8::1', 'documentation'],
    ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', 'documentation, last'],
    ['2002::1', '6to4'],
    ['2002:7f00:1::1', '6to4 of loopback'],
    ['2620:4f:8000::1', 'AS112-v6'],
    ['3fff::1', 'documentation (RFC 9637)'],
    ['3fff:fff::1', 'documentation (RFC 9637), last'],
    ['4000::1', 'outside 2000::/3'],
    ['5f00::1', 'SRv6 SIDs, outside 2000::/3'],
    ['1000::1', 'below 2000::/3'],
    // Not addresses: fail closed
    ['', 'empty'],
    ['localhost', 'a name'],
    ['[::1]', 'bracketed'],
    ['fe80::1%eth0', 'zone id'],
    ['fe80::1%1', 'numeric zone id'],
    ['2606:4700::1111%eth0', 'zone id on a public address'],
    ['127.1', 'short IPv4'],
    ['0177.0.0.1', 'octal IPv4'],
    ['0x7f.0.0.1', 'hex IPv4'],
    ['2130706433', 'integer IPv4'],
    ['1.2.3.4 ', 'trailing space'],
    [' 1.2.3.4', 'leading space'],
    ['1.2.3.4.5', 'five octets'],
    ['256.1.1.1', 'octet out of range'],
    ['1:2:3:4:5:6:7:8:9', 'nine groups'],
    ['1::2::3', 'two ::'],
  ]
  for (const [ip, why] of special)
    test(`${JSON.stringify(ip)} is special (${why})`, () =>
      assert.equal(isSpecialUseAddress(ip), true))

  const ordinary: [string, string][] = [
    ['1.1.1.1', 'public'],
    ['8.8.8.8', 'public'],
    ['9.255.255.255', 'just below 10/8'],
    ['11.0.0.0', 'just above 10/8'],
    ['100.63.255.255', 'just below CGNAT'],
    ['100.128.0.0', 'just above CGNAT'],
    ['126.255.255.255', 'just below loopback'],
    ['128.0.0.0', 'just above loopback'],
    ['169.253.255.255', 'just below link-local'],
    ['169.255.0.0', 'just above link-local'],
    ['172.15.255.255', 'just below 172.16/12'],
    ['172.32.0.0', 'just above 172.16/12'],
    ['192.0.1.1', 'between 192.0.0/24 and TEST-NET-1'],
    ['192.0.3.0', 'just above TEST-NET-1'],
    ['192.167.255.255', 'just below 192.168/16'],
    ['192.169.0.0', 'just above 192.168/16'],
    ['198.17.255.255', 'just below benchmarking'],
    ['198.20.0.0', 'just above benchmarking'],
    ['223.255.255.255', 'just below multicast'],
    ['::ffff:8.8.8.8', 'IPv4-mapped public: judged by the IPv4 address inside'],
    ['::ffff:8.8.4.4', 'IPv4-mapped public'],
    ['::ffff:808:404', 'IPv4-mapped public, hex'],
    ['64:ff9b::8.8.8.8', 'NAT64 of a public address'],
    ['64:ff9b::808:808', 'NAT64 of a public address, hex'],
    ['2606:4700:4700::1111', 'public IPv6'],
    ['2001:4860:4860::8888', 'public IPv6 in 2001::/16, outside 2001::/23'],
    ['2001:200::1', 'just above 2001::/23'],
    ['2001:db7:ffff::1', 'just below documentation'],
    ['2001:db9::1', 'just above documentation'],
    ['2003::1', 'just above 6to4'],
    ['3ffe::1', 'old 6bone space, inside 2000::/3'],
    ['3fff:1000::1', 'just above 3fff::/20'],
    ['2000::1', 'first of 2000::/3'],
    ['3fef:ffff::1', 'near the end of 2000::/3'],
    ['2620:4f:8001::1', 'just above AS112-v6'],
    ['2A00:1450:4001::200E', 'public IPv6, upper case'],
  ]
  for (const [ip, why] of ordinary)
    test(`${JSON.stringify(ip)} is ordinary (${why})`, () =>
      assert.equal(isSpecialUseAddress(ip), false))
})

describe('parseIp', () => {
  const cases: [string, number[] | undefined][] = [
    ['1.2.3.4', [1, 2, 3, 4]],
    ['::1', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['::ffff:1.2.3.4', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]],
    ['1:2:3:4:5:6:7.8.9.10', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 7, 8, 9, 10]],
    ['abcd::', [0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
    ['1:0::0:2', [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]],
    ['fe80::1%eth0', undefined],
    ['[::1]', undefined],
    ['x', undefined],
  ]
  for (const [ip, bytes] of cases) {
    test(`${JSON.stringify(ip)}`, () =>
      assert.deepEqual(parseIp(ip) === undefined ? undefined : [...parseIp(ip)!], bytes))
  }
})

describe('compileCidrs', () => {
  const { test: inside, problems } = compileCidrs([
    '127.0.0.1/32',
    '10.0.0.0/8',
    '::1',
    'fd00::/8',
    '::ffff:192.168.1.0/120',
    '172.16.5.7/12',
  ])
  test('valid entries compile', () => assert.deepEqual(problems, []))
  const cases: [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.0.0.2', false],
    ['::ffff:127.0.0.1', true],
    ['::ffff:7f00:1', true],
    ['10.200.3.4', true],
    ['11.0.0.1', false],
    ['::1', true],
    ['::2', false],
    ['fd12::1', true],
    ['fc00::1', false],
    ['192.168.1.9', true],
    ['192.168.2.9', false],
    ['172.31.0.1', true],
    ['localhost', false],
    ['fe80::1%eth0', false],
  ]
  for (const [ip, expected] of cases)
    test(`${ip} ${expected ? 'inside' : 'outside'}`, () => assert.equal(inside(ip), expected))

  const bad = [
    '10.0.0.0/33',
    '::/129',
    '10.0.0.0/8/8',
    'example.com/8',
    '10.0.0/8',
    '10.0.0.0/',
    '10.0.0.0/x',
    '',
    '1.2.3.4/-1',
    '1.2.3.4/08a',
  ]
  for (const entry of bad) {
    test(`${JSON.stringify(entry)} is refused`, () =>
      assert.equal(compileCidrs([entry]).problems.length, 1))
  }
  test('all problems at once', () => assert.equal(compileCidrs(bad).problems.length, bad.length))
})

describe('addressBucket', () => {
  const cases: [string, string][] = [
    ['203.0.113.5', '203.0.113.5'],
    ['::ffff:203.0.113.5', '203.0.113.5'],
    ['2001:db8:1:2:aaaa::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:bbbb::2', '2001:db8:1:2::/64'],
    ['2001:db8:1:3::1', '2001:db8:1:3::/64'],
    ['2001:0DB8:0001:0003:0000:0000:0000:0001', '2001:db8:1:3::/64'],
    ['2001:db8:1:3::1%eth0', '2001:db8:1:3::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['unknown', 'unknown'],
  ]
  for (const [ip, bucket] of cases)
    test(`${ip} → ${bucket}`, () => assert.equal(addressBucket(ip), bucket))
})

describe('networkBucket: every spelling of one IPv6 /48 is one bucket; IPv4 has none', () => {
  const cases: [string, string, string | undefined][] = [
    ['compressed', '2001:db8:5:1::1', '2001:db8:5::/48'],
    ['expanded', '2001:0db8:0005:0002:0000:0000:0000:0001', '2001:db8:5::/48'],
    ['upper case', '2001:DB8:5:3::ABCD', '2001:db8:5::/48'],
    ['zone id', '2001:db8:5:4::1%eth0', '2001:db8:5::/48'],
    ['numeric zone id', '2001:db8:5:4::1%2', '2001:db8:5::/48'],
    ['leading zeros in some groups', '2001:0db8:05:0005::1', '2001:db8:5::/48'],
    ['no ::', '2001:db8:5:ffff:ffff:ffff:ffff:ffff', '2001:db8:5::/48'],
    ['a dotted tail', '2001:db8:5:6::192.0.2.1', '2001:db8:5::/48'],
    ['the next /48', '2001:db8:6::1', '2001:db8:6::/48'],
    ['a zero group inside', '2a01:0:5::1', '2a01:0:5::/48'],
    ['6to4: counted as the IPv4 address it carries', '2002:c000:0201::1', undefined],
    ['Teredo: counted as the IPv4 address it carries', '2001:0:4136:e378::1', undefined],
    ['NAT64: counted as the IPv4 address it carries', '64:ff9b::192.0.2.1', undefined],
    ['IPv4', '192.0.2.1', undefined],
    ['IPv4-mapped', '::ffff:192.0.2.1', undefined],
    ['IPv4-mapped, upper case hex', '::FFFF:C000:201', undefined],
    ['IPv4-mapped, expanded', '0:0:0:0:0:ffff:192.0.2.1', undefined],
    ['IPv4-mapped, zone id', '::ffff:192.0.2.1%eth0', undefined],
    ['not an address', 'unknown', undefined],
    ['empty', '', undefined],
    ['bracketed', '[2001:db8:5::1]', undefined],
    ['only a zone id', '%eth0', undefined],
  ]
  for (const [what, ip, bucket] of cases)
    test(`${what}: ${JSON.stringify(ip)} → ${bucket}`, () =>
      assert.equal(networkBucket(ip), bucket))

  test('a mapped IPv4 address is its IPv4 address, not an address of ::/48', () => {
    assert.equal(addressBucket('::ffff:192.0.2.1'), addressBucket('192.0.2.1'))
    assert.equal(addressBucket('::FFFF:C000:201'), '192.0.2.1')
    // IPv4-compatible (deprecated ::/96) too: its /64 would be every such address's.
    assert.equal(addressBucket('::192.0.2.1'), '192.0.2.1')
    assert.equal(networkBucket('::192.0.2.1'), undefined)
  })
})
