import { fetch as undiciFetch, type Dispatcher } from 'undici'
import { readCapped } from '../auth/idp-http.js'
import { CredentialError } from './errors.js'

/** What came back from the token endpoint: its status, media type and whole (bounded) body. */
export interface Answer {
  status: number
  contentType: string | null
  body: Uint8Array
}

/** Limits of one POST: the deadline covers connect to last body byte. */
export interface PostLimits {
  timeoutMs: number
  maxBytes: number
  dispatcher: Dispatcher
}

// undici's own connect, headers and body timeouts, when its agent's limits fire first.
const UNDICI_TIMEOUTS = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])

/**
 * POSTs `body` to the token endpoint and reads the answer, whatever its status, within
 * `timeoutMs` and `maxBytes`. A redirect is returned as is, never followed (the client secret
 * and the user's token must not be bounced elsewhere). A body is refused as soon as it is known
 * to be too large: by its Content-Length, else while it streams, so an endless body costs
 * `maxBytes`, not memory. Messages name no host and no token (they may reach the client).
 * @throws CredentialError `exchange_unavailable`: unreachable, timed out, or too large
 */
export async function postForm(
  url: URL,
  body: string,
  headers: Record<string, string>,
  o: PostLimits,
): Promise<Answer> {
  const signal = AbortSignal.timeout(o.timeoutMs)
  try {
    const res = await undiciFetch(url, {
      method: 'POST',
      body,
      headers,
      redirect: 'manual',
      signal,
      dispatcher: o.dispatcher,
    })
    const declared = Number(res.headers.get('content-length') ?? NaN)
    if (declared > o.maxBytes) {
      await res.body?.cancel().catch(() => {})
      throw tooLarge(o.maxBytes)
    }
    const stream = res.body as ReadableStream<Uint8Array> | null
    const read =
      stream === null
        ? new Uint8Array(0)
        : await readCapped(stream, o.maxBytes, () => tooLarge(o.maxBytes))
    return { status: res.status, contentType: res.headers.get('content-type'), body: read }
  } catch (err) {
    if (err instanceof CredentialError) throw err
    if (signal.aborted || timedOut(err)) {
      const late = `the IdP did not answer the token exchange within ${o.timeoutMs} ms`
      throw new CredentialError('exchange_unavailable', late, err)
    }
    throw new CredentialError(
      'exchange_unavailable',
      'the IdP could not be reached for the token exchange',
      err,
    )
  }
}

function tooLarge(max: number): CredentialError {
  return new CredentialError(
    'exchange_unavailable',
    `the IdP's token exchange answer exceeds ${max} bytes`,
  )
}

/** Whether undici's own timeouts ended the request (anywhere in the cause chain). */
function timedOut(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (UNDICI_TIMEOUTS.has((e as { code?: string }).code ?? '')) return true
  }
  return false
}
