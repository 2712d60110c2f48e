// The legacy HTTP+SSE transport's first step, by hand: open `/sse/<server>` and read the
// endpoint event the gateway names the session's POST address in.
import assert from 'node:assert/strict'
import { request } from 'undici'
import type { Stack } from './stack.js'
import { waitFor } from './wait-for.js'

/**
 * Opens `/sse/<server>` on `stack` with `token` (and `headers`), reads its endpoint event
 * without ending the stream; resolves the endpoint and `close`, which ends the stream and
 * resolves once the gateway has ended the session.
 */
export async function legacyEndpoint(
  stack: Stack,
  server: string,
  token: string,
  headers: Record<string, string> = {},
): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const res = await request(`${stack.url}/sse/${server}`, {
    headers: { accept: 'text/event-stream', authorization: `Bearer ${token}`, ...headers },
  })
  assert.equal(res.statusCode, 200)
  // Read the first event without ending the stream (leaving a for-await loop would close it).
  const events = res.body[Symbol.asyncIterator]()
  let text = ''
  while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
  const endpoint = /event: endpoint\ndata: (.*)\n/.exec(text)![1]!
  const close = async () => {
    const before = stack.gateway.registry.size
    res.body.destroy()
    await waitFor(() => stack.gateway.registry.size < before, 'the gateway ended the session')
  }
  return { endpoint, close }
}
