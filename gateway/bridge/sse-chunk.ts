// What a chunk of SSE is to the client it is for, read only when a bound is passed.

/** What a chunk of SSE is to its client, as far as the bound cares. */
export type ChunkKind =
  /** A JSON-RPC notification: dropped past the bound. */
  | 'notification'
  /** A comment (keep-alive) or a priming event (an id, no data): dropped past the bound. */
  | 'control'
  /** A response or a server→client request: the client needs it; past the bound the stream closes. */
  | 'owed'
  /** The last message of a stream that cannot be resumed: always queued. */
  | 'final'

const decoder = new TextDecoder()

/**
 * What an SSE chunk carries, read only past a bound: `control` for comments and events without
 * data (priming), `notification` when every event in it is a JSON-RPC notification, else
 * `owed`. What cannot be read is owed: it is never dropped unseen.
 */
export function classify(chunk: Uint8Array): ChunkKind {
  let kind: ChunkKind = 'control'
  for (const block of decoder.decode(chunk).split('\n\n')) {
    const data = block
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
      .join('\n')
    if (data === '') continue
    let m: unknown
    try {
      m = JSON.parse(data)
    } catch {
      return 'owed'
    }
    if (typeof m !== 'object' || m === null || Array.isArray(m) || 'id' in m || !('method' in m))
      return 'owed'
    kind = 'notification'
  }
  return kind
}
