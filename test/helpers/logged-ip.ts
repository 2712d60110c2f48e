// The client address the gateway logged for a request (`ip` of its main-log request line).
import assert from 'node:assert/strict'

/** The `ip` of the main log's request line for `path`, the last one. */
export function loggedIp(lines: string[], path: string): unknown {
  const line = lines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'request' && l.path === path)
    .at(-1)
  assert.ok(line, `a request line for ${path}`)
  return line.ip
}
