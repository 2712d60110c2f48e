// Reading whole SSE bodies in tests: the JSON-RPC messages only, whatever else a stream carries.

/**
 * The `data` of each event of an SSE body that carries a message, in order. Priming events
 * (an id and empty data, sent to 2025-11-25 clients for resumability) and keep-alive
 * comments carry none. A JSON body has no `data:` lines, so it gives [].
 */
export function sseData(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l.length > 6)
    .map((l) => l.slice(6))
}

/** The first message of an SSE body, undefined for a JSON body. */
export function firstData(text: string): string | undefined {
  return sseData(text)[0]
}
