/**
 * The names an aggregated endpoint shows its clients for its backends' tools (or prompts), and
 * the way back: a table built once per list, pure, with no I/O.
 *
 * Rules, in the order they apply:
 * 1. The public name is the endpoint's prefix template with every `{server}` replaced by the
 *    server's name, followed by the backend's own name: `"{server}_"` + `read_note` on `notes`
 *    is `notes_read_note`. An empty prefix keeps backend names as they are.
 * 2. A public name must be 1 to `maxLength` characters of `A-Z a-z 0-9 _ - .` (MCP 2025-11-25,
 *    server/tools "Tool names": at most 128; OpenAI's clients stop at 64). One that is longer,
 *    or holds other characters (a backend's own odd name), takes its short form instead:
 *    a readable head, then `_`, then the first 8 lowercase base32 characters of SHA-256 over
 *    the JSON of `[server, name]`; `maxLength` characters at most. The head is the public name
 *    with every run of other characters made one `_`, cut to fit; when the prefix part and the
 *    name do not both fit, each keeps at least half the head and what one does not need goes
 *    to the other (a 60-character server name does not push the tool's name out).
 * 3. Names are collision-checked: when two different (server, name) pairs would show the same
 *    name (an empty prefix and one tool on two servers, a short form equal to another's real
 *    name, servers `a` and `a_b` with tools `b_c` and `c`), every one of them moves to the next
 *    form, the hash growing 8 → 16 → 32 → 52 characters (all 256 bits, within `maxLength`),
 *    and again until no name is shared. Nobody keeps a contested name, so the outcome does not
 *    depend on the order of backends or names; the same inputs always give the same table.
 *    Pairs still sharing a name at the longest hash (a SHA-256 collision on 256 bits at
 *    maxLength 64, on 75 at the smallest maxLength, 16) are left out rather than guessed between.
 * 4. Names that are empty or not strings are left out; duplicates within a backend count once.
 *    A name left out has no public name (`publicName` answers undefined), which is how the
 *    caller finds what to log.
 *
 * `resolve` is a lookup in the built map, never a parse of the name, so a public name can only
 * ever lead to the one pair the table gave it. Building costs one pass plus a SHA-256 for each
 * name that needs a short form: 20 backends × 500 names take about 5 ms on two cores (about
 * 40 ms when every name needs a hash), so a table is built when a list changes, not per request.
 */
import { hash } from 'node:crypto'

/** Longest name MCP allows (2025-11-25, server/tools "Tool names"): the top of `maxNameLength`, not a setting. */
export const MAX_NAME_LENGTH = 128
/** Shortest `maxLength` accepted: room for a head of a few characters, `_` and an 8-character hash. */
export const MIN_MAX_NAME_LENGTH = 16

/** One backend's names of one kind (tools, or prompts), unfiltered by policy. */
export interface BackendNames {
  server: string
  names: readonly string[]
}

/** Public names of one endpoint's tools (or prompts), both ways. */
export interface NameTable {
  /** The name clients see for a backend's own name; undefined when not in the table. */
  publicName(server: string, name: string): string | undefined
  /** The backend and its own name for a name a client sent; undefined when unknown. */
  resolve(publicName: string): { server: string; name: string } | undefined
}

const VALID = /^[A-Za-z0-9_.-]+$/
const OTHER = /[^A-Za-z0-9_.-]+/g
/** Hash lengths by level (level 0 is the plain public name); 52 base32 characters hold all 256 bits. */
const HASH_LENGTHS = [0, 8, 16, 32, 52] as const
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

interface Entry {
  readonly server: string
  readonly name: string
  /** The prefix with `{server}` filled in. */
  readonly lead: string
  level: number
  current: string
  hash?: string
}

/**
 * Builds the table for one endpoint and one kind of name (see the module comment for the rules).
 * Throws a RangeError when `maxLength` is outside 16…128 or the prefix holds characters a name
 * may not (a configuration error, caught at start-up).
 */
export function buildNameTable(
  backends: readonly BackendNames[],
  o: { prefix: string; maxLength: number },
): NameTable {
  const { prefix, maxLength } = o
  if (
    !Number.isInteger(maxLength) ||
    maxLength < MIN_MAX_NAME_LENGTH ||
    maxLength > MAX_NAME_LENGTH
  ) {
    throw new RangeError(
      `maxLength must be an integer from ${MIN_MAX_NAME_LENGTH} to ${MAX_NAME_LENGTH}, not ${maxLength}`,
    )
  }
  const literal = prefix.split('{server}').join('')
  if (literal !== '' && !VALID.test(literal))
    throw new RangeError(
      `prefix ${JSON.stringify(prefix)}: only {server} and the characters A-Z a-z 0-9 _ - . may appear`,
    )

  // `byServer` deduplicates and, once built, answers publicName; `owners` answers resolve.
  const byServer = new Map<string, Map<string, Entry>>()
  const owners = new Map<string, Entry>()
  // A name has one owner (`owners`) or several (`crowd`); a round moves every owner of every
  // crowded name at once, so no order decides who keeps a name: nobody does.
  const crowd = new Map<string, Entry[]>()
  const claim = (e: Entry) => {
    const many = crowd.get(e.current)
    const one = owners.get(e.current)
    if (many !== undefined) {
      many.push(e)
    } else if (one === undefined) {
      owners.set(e.current, e)
    } else {
      owners.delete(e.current)
      crowd.set(e.current, [one, e])
    }
  }

  for (const { server, names } of backends) {
    let own = byServer.get(server)
    if (own === undefined) byServer.set(server, (own = new Map()))
    const lead = prefix.split('{server}').join(server) // not replaceAll: a `$` in a name is no pattern
    for (const name of names) {
      if (typeof name !== 'string' || name === '' || own.has(name)) continue
      const plain = lead + name
      const entry: Entry = { server, name, lead, level: 0, current: plain }
      if (plain.length > maxLength || !VALID.test(plain)) setLevel(entry, 1, maxLength)
      own.set(name, entry)
      claim(entry)
    }
  }
  while (crowd.size > 0) {
    const moving: Entry[] = []
    for (const [name, group] of crowd) {
      const stuck = group.filter((e) => !canGrow(e, maxLength))
      for (const e of group) if (canGrow(e, maxLength)) moving.push(e)
      // Two at the longest hash would take a SHA-256 collision: leave them out, never guess.
      if (stuck.length === 1) owners.set(name, stuck[0]!)
    }
    crowd.clear()
    for (const e of moving) {
      setLevel(e, e.level + 1, maxLength)
      claim(e)
    }
  }

  return {
    publicName(server, name) {
      const e = byServer.get(server)?.get(name)
      // Not the owner of its own name: a pair left out at the longest hash.
      return e !== undefined && owners.get(e.current) === e ? e.current : undefined
    },
    resolve(publicName) {
      const e = owners.get(publicName)
      return e === undefined ? undefined : { server: e.server, name: e.name }
    },
  }
}

function hashLength(level: number, maxLength: number): number {
  return Math.min(HASH_LENGTHS[Math.min(level, HASH_LENGTHS.length - 1)]!, maxLength - 1)
}

/** True while the next level would give this entry a different, longer name. */
function canGrow(e: Entry, maxLength: number): boolean {
  return hashLength(e.level + 1, maxLength) > hashLength(e.level, maxLength)
}

function setLevel(e: Entry, level: number, maxLength: number): void {
  e.level = level
  const size = hashLength(level, maxLength)
  e.hash ??= base32(hash('sha256', JSON.stringify([e.server, e.name]), 'buffer'))
  e.current = `${head(e.lead, e.name, maxLength - 1 - size)}_${e.hash.slice(0, size)}`
}

/** The readable part of a short form: prefix part and name each keep at least half the room they need. */
function head(lead: string, name: string, room: number): string {
  const p = clean(lead.slice(0, room))
  const n = clean(name.slice(0, room))
  const keep =
    p.length + n.length <= room
      ? p.length
      : Math.min(p.length, Math.max(room - n.length, Math.ceil(room / 2)))
  return (p.slice(0, keep) + n).slice(0, room).replace(/[_.-]+$/, '')
}

function clean(text: string): string {
  return text.replace(OTHER, '_')
}

/** RFC 4648 base32, lowercase, no padding. */
function base32(bytes: Uint8Array): string {
  const out = Buffer.allocUnsafe(Math.ceil((bytes.length * 8) / 5))
  let at = 0
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xfff
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out[at++] = BASE32.charCodeAt((value >>> bits) & 31)
    }
  }
  if (bits > 0) out[at++] = BASE32.charCodeAt((value << (5 - bits)) & 31)
  return out.toString('latin1')
}
