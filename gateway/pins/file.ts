import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { z } from 'zod'
import { ConfigError, schemaProblems, type ConfigProblem } from '../config/errors.js'
import { parseYamlText } from '../config/yaml.js'
import { PIN_HASH } from './hash.js'

/** A definition seen that no one approved yet: its hash, when it was first seen, what was pinned. */
export interface PendingPin {
  hash: string
  /** ISO time the gateway first saw this definition. */
  seen: string
  /** The pinned hash it would replace; undefined for a tool never pinned. */
  previous: string | undefined
}

/** One server's pins: approved hashes by tool name, and changes waiting for an operator. */
export interface ServerPins {
  tools: ReadonlyMap<string, string>
  pending: ReadonlyMap<string, PendingPin>
}

/** A pin file as the gateway holds it: per server, by tool name (Maps: names are the server's). */
export interface PinFile {
  servers: ReadonlyMap<string, ServerPins>
}

/** The pins of a file that does not exist yet. */
export const NO_PINS: PinFile = { servers: new Map() }

/** The pin file's format version (`version:`); a file of another version is refused. */
export const PIN_FILE_VERSION = 1

const hash = z
  .string()
  .regex(PIN_HASH, 'a pinned hash is "sha256:" followed by 64 lowercase hex digits')
/** `tools:` with nothing under it is an empty mapping, not an error. */
const orEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((v) => v ?? {}, schema)
const toolName = z.string().min(1, 'a tool name is not empty')

/** Whether the pin file can hold `name` as a tool's key (the same rule it is read with). */
export function pinnableName(name: string): boolean {
  return toolName.safeParse(name).success
}
const pendingSchema = z.strictObject({
  hash,
  seen: z.string().min(1).max(64),
  previous: hash.optional(),
})
/** A mapping by tool name; its entries are checked one by one (see {@link parsePins}). */
const byTool = orEmpty(z.record(toolName, z.unknown()))

const pinFileSchema = orEmpty(
  z.strictObject({
    version: z.literal(PIN_FILE_VERSION, `the version is ${PIN_FILE_VERSION}`).default(1),
    servers: orEmpty(
      z.record(
        z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a server name of the config'),
        orEmpty(z.strictObject({ tools: byTool, pending: byTool })),
      ),
    ),
  }),
)

/**
 * Parses and checks pin file text: YAML (duplicate keys refused), known keys only, every hash
 * of the pinned form.
 * @throws ConfigError every problem, with file and line
 */
export function parsePins(file: string, text: string): PinFile {
  const yaml = parseYaml(file, text)
  const parsed = pinFileSchema.safeParse(yaml.value)
  if (!parsed.success) throw new ConfigError(schemaProblems(parsed.error.issues, file, yaml.locate))
  const problems: ConfigProblem[] = []
  const check = <T>(schema: z.ZodType<T>, value: unknown, path: PropertyKey[]): T | undefined => {
    const r = schema.safeParse(value)
    if (r.success) return r.data
    const issues = r.error.issues.map((i) => ({ ...i, path: [...path, ...i.path] }))
    problems.push(...schemaProblems(issues, file, yaml.locate))
    return undefined
  }
  const servers = new Map<string, ServerPins>()
  for (const server of Object.keys(parsed.data.servers)) {
    // Entries are read from the YAML itself: a schema record drops a `__proto__` key, which
    // is a tool name like any other here.
    const raw = (yaml.value as { servers: Record<string, Record<string, unknown> | null> }).servers[
      server
    ]
    const tools = new Map<string, string>()
    const pending = new Map<string, PendingPin>()
    for (const [name, value] of ownEntries(raw?.tools)) {
      const h = check(hash, value, ['servers', server, 'tools', name])
      if (h !== undefined) tools.set(name, h)
    }
    for (const [name, value] of ownEntries(raw?.pending)) {
      const p = check(pendingSchema, value, ['servers', server, 'pending', name])
      if (p !== undefined) pending.set(name, { hash: p.hash, seen: p.seen, previous: p.previous })
    }
    servers.set(server, { tools, pending })
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return { servers }
}

/** YAML text, with an alias bomb (the parser's own guard) reported like any other problem. */
function parseYaml(file: string, text: string) {
  try {
    return parseYamlText(file, text)
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError([{ file, message: `not loaded: ${(err as Error).message}` }])
  }
}

/**
 * Reads the pin file, at most `maxBytes` of it: undefined when it does not exist (nothing is
 * pinned yet).
 * @throws ConfigError when it cannot be read or is larger than `maxBytes`
 */
export function readPinText(file: string, maxBytes: number): string | undefined {
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ConfigError([
      { file, message: `cannot read: ${(err as NodeJS.ErrnoException).code}` },
    ])
  }
  try {
    return readBounded(file, fd, maxBytes)
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError([
      { file, message: `cannot read: ${(err as NodeJS.ErrnoException).code}` },
    ])
  } finally {
    closeSync(fd)
  }
}

/** At most `maxBytes` of the open file; one byte more tells a file at the limit from a larger one. */
function readBounded(file: string, fd: number, maxBytes: number): string {
  const buf = Buffer.alloc(Math.min(fstatSync(fd).size, maxBytes) + 1)
  let n = 0
  while (n < buf.length) {
    const read = readSync(fd, buf, n, buf.length - n, n)
    if (read === 0) break
    n += read
  }
  if (n > maxBytes)
    throw new ConfigError([
      { file, message: `larger than toolPins.maxFileBytes (${maxBytes} bytes); not read` },
    ])
  return buf.subarray(0, n).toString('utf8')
}

/**
 * Reads and parses the pin file (no file: nothing pinned).
 * @throws ConfigError
 */
export function loadPins(file: string, maxBytes: number): PinFile {
  const text = readPinText(file, maxBytes)
  return text === undefined ? NO_PINS : parsePins(file, text)
}

/** A mapping's own entries (none for an empty value); a `__proto__` key is a name like any other. */
function ownEntries(record: unknown): [string, unknown][] {
  if (typeof record !== 'object' || record === null) return []
  return Object.keys(record).map((k) => [k, (record as Record<string, unknown>)[k]])
}
