import { isIP } from 'node:net'
import type { Store } from '../store/store.js'

/**
 * IP addresses a fetch made on a stranger's behalf must not reach: everything that is not
 * plainly public (loopback, RFC 1918, link-local, CGNAT, unique-local, multicast, unspecified,
 * documentation, benchmarking, reserved and protocol ranges), IPv4-mapped and NAT64 forms
 * judged by the IPv4 address inside. Anything that does not parse as an address is refused.
 * And the other question the broker asks of a peer's address: which requests it counts with
 * (its /64, its /48), for the per-address limits of sign-ins and registrations.
 */

/** IPv4 special-purpose ranges (IANA IPv4 Special-Purpose Address Registry, RFC 6890). */
const V4_SPECIAL: readonly [string, number][] = [
  ['0.0.0.0', 8], // RFC 791: "this network"
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // RFC 6598: shared address space (CGNAT)
  ['127.0.0.0', 8], // RFC 1122: loopback
  ['169.254.0.0', 16], // RFC 3927: link-local (cloud metadata at 169.254.169.254)
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // RFC 6890: IETF protocol assignments
  ['192.0.2.0', 24], // RFC 5737: TEST-NET-1
  ['192.31.196.0', 24], // RFC 7535: AS112-v4
  ['192.52.193.0', 24], // RFC 7450: AMT
  ['192.88.99.0', 24], // RFC 7526: deprecated 6to4 relay anycast
  ['192.168.0.0', 16], // RFC 1918
  ['192.175.48.0', 24], // RFC 7534: AS112 direct delegation
  ['198.18.0.0', 15], // RFC 2544: benchmarking
  ['198.51.100.0', 24], // RFC 5737: TEST-NET-2
  ['203.0.113.0', 24], // RFC 5737: TEST-NET-3
  ['224.0.0.0', 4], // RFC 5771: multicast
  ['240.0.0.0', 4], // RFC 1112: reserved, and 255.255.255.255 broadcast (RFC 919)
]

/** RFC 4291 §2.4: only global unicast, 2000::/3, is public at all; outside it every block is special. */
const V6_GLOBAL_UNICAST: readonly [string, number] = ['2000::', 3]

/** Special-purpose blocks inside 2000::/3 (IANA IPv6 Special-Purpose Address Registry). */
const V6_SPECIAL_IN_GLOBAL: readonly [string, number][] = [
  ['2001::', 23], // RFC 2928: IETF protocol assignments (Teredo, ORCHID, benchmarking, …)
  ['2001:db8::', 32], // RFC 3849: documentation
  ['2002::', 16], // RFC 3056: 6to4, reaches any IPv4 address through a relay
  ['2620:4f:8000::', 48], // RFC 7534: AS112-v6
  ['3fff::', 20], // RFC 9637: documentation
]

/** Prefixes whose last 32 bits are an IPv4 address the packet really goes to. */
const V6_EMBEDDING_V4: readonly [string, number][] = [
  ['::ffff:0:0', 96], // RFC 4291 §2.5.5.2: IPv4-mapped
  ['64:ff9b::', 96], // RFC 6052: NAT64 well-known prefix
]

/** A compiled CIDR range: the address bytes and how many leading bits count. */
interface Range {
  bytes: Uint8Array
  bits: number
}

const range = ([address, bits]: readonly [string, number]): Range => ({
  bytes: parseIp(address)!,
  bits,
})
const V4_RANGES = V4_SPECIAL.map(range)
const V6_GLOBAL = range(V6_GLOBAL_UNICAST)
const V6_RANGES = V6_SPECIAL_IN_GLOBAL.map(range)
const V6_EMBEDDING = V6_EMBEDDING_V4.map(range)

/**
 * The 4 (IPv4) or 16 (IPv6) bytes of an address literal, or undefined when `ip` is not one.
 * Refused forms: brackets, zone ids (`fe80::1%eth0`), and everything `net.isIP` refuses
 * (octal/hex/short IPv4 such as `0127.0.0.1` or `127.1`).
 */
export function parseIp(ip: string): Uint8Array | undefined {
  const family = isIP(ip)
  if (family === 4) return new Uint8Array(ip.split('.').map(Number))
  if (family !== 6 || ip.includes('%')) return undefined
  let text = ip.toLowerCase()
  const tail: number[] = []
  const lastColon = text.lastIndexOf(':')
  if (text.includes('.', lastColon)) {
    // A dotted IPv4 tail (`::ffff:1.2.3.4`) is the last two 16-bit groups.
    tail.push(
      ...text
        .slice(lastColon + 1)
        .split('.')
        .map(Number),
    )
    text = `${text.slice(0, lastColon + 1)}0:0`
  }
  const [head, rest] = text.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = rest === undefined || rest === '' ? [] : rest.split(':')
  const zeros = Array<string>(8 - left.length - right.length).fill('0')
  const groups = rest === undefined ? left : [...left, ...zeros, ...right]
  const bytes = new Uint8Array(16)
  groups.forEach((g, i) => {
    const n = parseInt(g, 16)
    bytes[2 * i] = n >> 8
    bytes[2 * i + 1] = n & 0xff
  })
  if (tail.length === 4) bytes.set(tail, 12)
  return bytes
}

/** Whether `bytes` lies in `r` (same family, first `r.bits` bits equal). */
function inRange(bytes: Uint8Array, r: Range): boolean {
  if (bytes.length !== r.bytes.length) return false
  const whole = r.bits >> 3
  for (let i = 0; i < whole; i++) if (bytes[i] !== r.bytes[i]) return false
  const rest = r.bits & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return ((bytes[whole]! ^ r.bytes[whole]!) & mask) === 0
}

/** An IPv4-mapped IPv6 address as the IPv4 address it is; any other address unchanged. */
function unmapped(bytes: Uint8Array): Uint8Array {
  return bytes.length === 16 && inRange(bytes, V6_EMBEDDING[0]!) ? bytes.subarray(12) : bytes
}

/**
 * True unless `ip` is a plainly public unicast address: loopback, private, link-local, CGNAT,
 * unique-local, multicast, unspecified, documentation, benchmarking, reserved, protocol
 * ranges, IPv4-mapped or NAT64 forms of any of those, and anything that is not an IP address
 * literal (zone ids and brackets included) are special.
 */
export function isSpecialUseAddress(ip: string): boolean {
  const bytes = parseIp(ip)
  if (bytes === undefined) return true
  return isSpecialBytes(bytes)
}

function isSpecialBytes(bytes: Uint8Array): boolean {
  if (bytes.length === 4) return V4_RANGES.some((r) => inRange(bytes, r))
  // The IPv4 address inside a mapped or NAT64 address is where the packet goes.
  if (V6_EMBEDDING.some((r) => inRange(bytes, r))) return isSpecialBytes(bytes.subarray(12))
  if (!inRange(bytes, V6_GLOBAL)) return true
  return V6_RANGES.some((r) => inRange(bytes, r))
}

/**
 * Compiles CIDR ranges (`10.0.0.0/8`, `::1/128`, a bare address for one host) into a test on
 * address literals. IPv4-mapped IPv6 addresses are tested as IPv4, so `127.0.0.1/32` covers
 * `::ffff:127.0.0.1`. Resolves the problems instead when any entry is not a CIDR range.
 */
export function compileCidrs(list: readonly string[]): {
  test: (ip: string) => boolean
  problems: string[]
} {
  const ranges: Range[] = []
  const problems: string[] = []
  for (const entry of list) {
    const [address = '', bits, extra] = entry.split('/')
    const bytes = parseIp(address)
    const max = bytes?.length === 4 ? 32 : 128
    const n = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN
    if (bytes === undefined || extra !== undefined || !(n >= 0 && n <= max)) {
      problems.push(`${JSON.stringify(entry)} is not an IP address or CIDR range`)
      continue
    }
    // `::ffff:a.b.c.d/n` with n ≥ 96 is the IPv4 range a.b.c.d/(n-96).
    const mapped = bytes.length === 16 && n >= 96 && inRange(bytes, V6_EMBEDDING[0]!)
    ranges.push(mapped ? { bytes: bytes.subarray(12), bits: n - 96 } : { bytes, bits: n })
  }
  const test = (ip: string): boolean => {
    const bytes = parseIp(ip)
    if (bytes === undefined) return false
    const address = unmapped(bytes)
    return ranges.some((r) => inRange(address, r))
  }
  return { test, problems }
}

/**
 * IPv6 forms that carry the IPv4 address a client connected from, and where it sits: behind a
 * translator, its prefix is shared by every client it translates, so counted by /64 or /48 one
 * client would spend everyone's bound. The IPv4 address cannot be made up: a connection's answers
 * go to it (through the translator, relay or tunnel), so whoever completes one holds it.
 */
const V6_CARRYING_V4: readonly { range: Range; at: number; inverted?: true }[] = [
  { range: range(['::ffff:0:0', 96]), at: 12 }, // RFC 4291 §2.5.5.2: IPv4-mapped
  { range: range(['64:ff9b::', 96]), at: 12 }, // RFC 6052: NAT64 well-known prefix (SIIT-DC)
  { range: range(['::', 96]), at: 12 }, // RFC 4291 §2.5.5.1: IPv4-compatible (deprecated)
  { range: range(['2002::', 16]), at: 2 }, // RFC 3056: 6to4, the /48 is the IPv4 address
  { range: range(['2001::', 32]), at: 12, inverted: true }, // RFC 4380 §4: Teredo, the client's address inverted
]

/**
 * A peer address as counted: its bytes, an IPv6 form carrying an IPv4 address
 * ({@link V6_CARRYING_V4}) as that IPv4 address, a zone id (`fe80::1%eth0`, which names the
 * local interface, not the peer) left out; undefined when it is not an address.
 */
function countedBytes(ip: string): Uint8Array | undefined {
  const bytes = parseIp(ip.split('%')[0]!)
  if (bytes === undefined || bytes.length === 4) return bytes
  const form = V6_CARRYING_V4.find((f) => inRange(bytes, f.range))
  if (form === undefined) return bytes
  const v4 = bytes.slice(form.at, form.at + 4)
  return form.inverted ? v4.map((b) => b ^ 0xff) : v4
}

/** The first `groups` 16-bit groups of an IPv6 address, as `a:b:c::/<16 × groups>`. */
function v6Prefix(address: Uint8Array, groups: number): string {
  const out: string[] = []
  for (let i = 0; i < 2 * groups; i += 2)
    out.push(((address[i]! << 8) | address[i + 1]!).toString(16))
  return `${out.join(':')}::/${16 * groups}`
}

/**
 * The bucket a peer address counts in for per-address limits: an IPv4 address (mapped,
 * translated and tunnelled forms as the IPv4 address they carry) as itself, an IPv6 address by its /64 (one subscriber usually holds a whole /64,
 * RFC 6177), anything else as-is.
 */
export function addressBucket(ip: string): string {
  const address = countedBytes(ip)
  if (address === undefined) return ip
  return address.length === 4 ? address.join('.') : v6Prefix(address, 4)
}

/**
 * The wider bucket an IPv6 address also counts in: its /48, what one site is usually given
 * (RFC 6177) and what a tunnel broker hands anyone for free, 65,536 /64s. Undefined for IPv4
 * (the forms carrying one included) and for anything that is not an address: those count per address only.
 */
export function networkBucket(ip: string): string | undefined {
  const address = countedBytes(ip)
  return address?.length === 16 ? v6Prefix(address, 3) : undefined
}

/** Fixed-window bounds on one kind of request, all counted in the same window. */
export interface WindowBounds {
  /** Requests one address (an IPv4 address, an IPv6 /64, every unknown peer together) may make. */
  perAddress: number
  /** Requests one IPv6 /48 may make, its /64s together (IPv4 and unknown peers: no such bound). */
  perNetwork: number
  /** Requests every address together may make. */
  perAll: number
}

/** A refused request: the bound it met, and when to come back. */
export interface WindowRefusal {
  bound: 'address' | 'network' | 'all'
  /** Whole seconds to the next window, whichever bound refused: 1 in its last ms, never 0. */
  retryAfterS: number
}

/** Where and how one kind of request is counted. */
export interface WindowCount {
  store: Pick<Store, 'getMany' | 'incr' | 'del'>
  /** The store key prefix of the counts: `<kind>:<bucket>:<window>`, `<kind>:*:<window>` in all. */
  kind: string
  windowMs: number
  bounds: WindowBounds
}

/**
 * Counts one request from `peer` at `now` against its address ({@link addressBucket}), its
 * IPv6 /48 ({@link networkBucket}) and every address together; resolves undefined when each had
 * room, else the bound that refused it. Requests without a known peer share one bucket, so they
 * cannot escape the limit. Counts live in the store, so replicas share them.
 * @throws StoreError when the store cannot count
 */
export async function countInWindow(
  o: WindowCount,
  peer: string | undefined,
  now: number,
): Promise<WindowRefusal | undefined> {
  const window = Math.floor(now / o.windowMs)
  const retryAfterS = Math.ceil(((window + 1) * o.windowMs - now) / 1000)
  const from = peer ?? 'unknown'
  const network = networkBucket(from)
  const key = (bucket: string) => `${o.kind}:${bucket}:${window}`
  const allKey = key('*')
  const networkKey = network === undefined ? undefined : key(network)
  // Read before the address's count is made: past the bound in all, or its /48's, a new address
  // stores no counter, so many addresses (a /48 is 65,536 /64s, the Internet many /48s) cannot
  // fill the store with counters; a window holds at most perAll address counters and as many
  // /48 counters, and one /48 at most perNetwork address counters (requests at once: see below).
  const [all, net] = await o.store.getMany(
    networkKey === undefined ? [allKey] : [allKey, networkKey],
  )
  if (Number(all ?? 0) >= o.bounds.perAll) return { bound: 'all', retryAfterS }
  if (Number(net ?? 0) >= o.bounds.perNetwork) return { bound: 'network', retryAfterS }
  const addressKey = key(addressBucket(from))
  const addressCount = await o.store.incr(addressKey, o.windowMs)
  if (addressCount > o.bounds.perAddress) return { bound: 'address', retryAfterS }
  // Counters this request made: requests at once all read the bounds before any is counted, so
  // each may make its address's (and /48's) counter; one a wider bound then refuses is taken out
  // again. That bound refuses every later request of the window before it counts anything
  // (counts only grow), so no count that matters is lost.
  const made = addressCount === 1 ? [addressKey] : []
  const refuse = async (bound: WindowRefusal['bound']): Promise<WindowRefusal> => {
    // A counter left by a store failing here expires with its window.
    if (made.length > 0) await o.store.del(made).catch(() => {})
    return { bound, retryAfterS }
  }
  // Each wider count after the narrower bound: one /64 hammering spends its own share, not its
  // /48's, and one /48 its share, not everyone's.
  if (networkKey !== undefined) {
    const count = await o.store.incr(networkKey, o.windowMs)
    if (count > o.bounds.perNetwork) return refuse('network')
    if (count === 1) made.push(networkKey)
  }
  if ((await o.store.incr(allKey, o.windowMs)) > o.bounds.perAll) return refuse('all')
  return undefined
}
