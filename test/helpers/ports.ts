// Ports a test names before it starts something on them (nginx, redis-server, a gateway, an IdP
// restarted on the port it had). `npm test` runs two test files at once: a port bound to 0 and
// released could be handed by the kernel to the other file's port-0 listener or outgoing
// connection before its caller binds it again (EADDRINUSE). So ports come from outside the
// kernel's ephemeral range, where neither ever lands: only another freePort caller could take
// one, and that needs the same random pick. One process never hands out the same port twice.
import { randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/** An inclusive range of ports. */
export type PortRange = readonly [low: number, high: number]

/** Linux's default ephemeral range, when /proc does not say. */
export const DEFAULT_EPHEMERAL: PortRange = [32768, 60999]
/** Where ports are picked, less the ephemeral range: above the usual fixed services, below Linux's default range. */
export const PREFERRED: PortRange = [20000, 31999]
/** Picks tried (each one bound to check it is free) before freePort gives up. */
const TRIES = 200

/** The kernel's ephemeral range from `ip_local_port_range`'s text (read from /proc when not given). */
export function ephemeralRange(text?: string): PortRange {
  try {
    text ??= readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
  } catch {
    return DEFAULT_EPHEMERAL
  }
  const [low, high] = text.trim().split(/\s+/).map(Number)
  const valid = (p: number | undefined): p is number =>
    Number.isInteger(p) && p! >= 1 && p! <= 65535
  return valid(low) && valid(high) && low <= high ? [low, high] : DEFAULT_EPHEMERAL
}

/**
 * The ranges freePort picks from: PREFERRED less the ephemeral range, or, when that leaves
 * nothing, every unprivileged port outside it (empty when the ephemeral range covers them all).
 */
export function pickRanges(ephemeral: PortRange): PortRange[] {
  const outside = ([low, high]: PortRange): PortRange[] =>
    (
      [
        [low, Math.min(high, ephemeral[0] - 1)],
        [Math.max(low, ephemeral[1] + 1), high],
      ] as PortRange[]
    ).filter(([a, b]) => a <= b)
  const preferred = outside(PREFERRED)
  return preferred.length > 0 ? preferred : outside([1024, 65535])
}

const EPHEMERAL = ephemeralRange()
const RANGES = pickRanges(EPHEMERAL)
const handedOut = new Set<number>()

/**
 * A loopback port outside the kernel's ephemeral range that was free a moment ago (bound on
 * 127.0.0.1 and released), never one this process handed out before. Throws when no such port
 * is found in TRIES picks or none lies outside the range.
 */
export async function freePort(): Promise<number> {
  const size = RANGES.reduce((n, [low, high]) => n + high - low + 1, 0)
  if (size === 0) {
    throw new Error(`the ephemeral port range ${EPHEMERAL.join('-')} leaves no port to pick`)
  }
  for (let i = 0; i < TRIES; i++) {
    const port = nth(randomInt(size))
    if (handedOut.has(port) || !(await bindable(port))) continue
    handedOut.add(port)
    return port
  }
  throw new Error(
    `no free port outside the ephemeral range ${EPHEMERAL.join('-')} in ${TRIES} picks`,
  )
}

/** The i-th port of RANGES, counted across them. */
function nth(i: number): number {
  for (const [low, high] of RANGES) {
    if (i <= high - low) return low + i
    i -= high - low + 1
  }
  throw new Error(`port index out of range: ${i}`)
}

/** Whether a listener can bind the port on 127.0.0.1 now (it is released before this resolves). */
export function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}
