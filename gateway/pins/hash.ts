import { createHash } from 'node:crypto'

/** A pinned hash as it is written in the pin file: `sha256:` and 64 lowercase hex digits. */
export const PIN_HASH = /^sha256:[0-9a-f]{64}$/

/**
 * The hash a tool is pinned by: SHA-256 over the canonical JSON of the whole definition as the
 * server sent it (name, title, description, input and output schemas, annotations, icons, its
 * own `_meta`, and any member a later protocol adds). Taken before the gateway adds anything of
 * its own (the policy filter's `_meta` marks), so a policy edit never looks like a change.
 */
export function toolHash(tool: unknown): string {
  return `sha256:${createHash('sha256').update(canonicalJson(tool), 'utf8').digest('hex')}`
}

/**
 * JSON with object members sorted by key and no whitespace: the JSON Canonicalization Scheme
 * (RFC 8785) for values parsed from JSON. RFC 8785 §3.2.3 sorts by UTF-16 code units, which is
 * what `Array.prototype.sort` does on strings; §3.2.2 strings and numbers are serialized as
 * ECMAScript's `JSON.stringify` does (lone surrogates escaped). Strings are not normalized
 * (NFC or otherwise): a description that differs by one code point is a different description,
 * which is the point against look-alike characters.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    // Not JSON (undefined, a function) never comes out of JSON.parse; null stands for it.
    return JSON.stringify(value) ?? 'null'
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const record = value as Record<string, unknown>
  const members = Object.keys(record)
    .sort()
    .filter((k) => record[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`)
  return `{${members.join(',')}}`
}
