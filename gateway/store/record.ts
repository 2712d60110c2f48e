import type { Logger } from 'pino'

/**
 * Largest stored record parsed, in characters. Not a setting: the gateway writes records of a
 * few KB (a registered client's metadata is the largest); a larger value was not written by it,
 * and parsing it would cost its size in CPU and memory at every read.
 */
export const MAX_RECORD_CHARS = 1 << 20

/** A field's type in a record: `?` when it may be absent. */
type FieldType = 'string' | 'number' | 'boolean' | 'object' | 'string[]'
export type Fields = Readonly<Record<string, FieldType | `${FieldType}?`>>

const TYPES: Record<FieldType, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  boolean: (v) => typeof v === 'boolean',
  object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  'string[]': (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'),
}

/** Thrown inside the reviver: a `__proto__` key, which a copy of the record would turn into its prototype. */
const PROTO = new Error('__proto__')

/**
 * A record read back from the store, as the gateway wrote it: a JSON object whose `fields`
 * have their types (others may be present). Anything else (not JSON, another JSON type, a field
 * missing or of another type, a `__proto__` key at any depth, more than
 * {@link MAX_RECORD_CHARS}) was not written by this gateway (someone with write access to the
 * store, a half-written value, another version): it counts as absent, and `log` is told the
 * record's `kind` (never its key nor its value, which may hold tokens or claims).
 */
export function parseRecord<T>(
  text: string | undefined,
  kind: string,
  fields: Fields,
  log: Logger | undefined,
): T | undefined {
  if (text === undefined) return undefined
  const value = text.length > MAX_RECORD_CHARS ? undefined : parse(text)
  if (TYPES.object(value) && matches(value as Record<string, unknown>, fields)) return value as T
  log?.warn(
    { kind },
    'a stored record is not what this gateway writes (tampered with, half-written, or another version); treated as absent',
  )
  return undefined
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text, (key, v) => {
      if (key === '__proto__') throw PROTO
      return v
    })
  } catch {
    return undefined
  }
}

function matches(value: Record<string, unknown>, fields: Fields): boolean {
  for (const [name, spec] of Object.entries(fields)) {
    const optional = spec.endsWith('?')
    const v = Object.hasOwn(value, name) ? value[name] : undefined
    // An optional field may be null too (JSON has no undefined).
    if (v === undefined || (optional && v === null)) {
      if (!optional) return false
    } else if (!TYPES[spec.replace('?', '') as FieldType](v)) return false
  }
  return true
}
