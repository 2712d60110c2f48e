/**
 * The one error base every layer extends. `code` is stable and switched on; `status` is the
 * HTTP status a client sees; `expose` says whether `message` may reach the client (otherwise
 * the client gets a fixed text and the message goes to the log only).
 */
export class GatewayError<C extends string = string> extends Error {
  readonly code: C
  readonly status: number
  readonly expose: boolean
  /** For a refusal the client can wait out: in how many seconds to retry (`Retry-After`). */
  readonly retryAfter: number | undefined

  constructor(
    code: C,
    message: string,
    opts: { status?: number; expose?: boolean; cause?: unknown; retryAfter?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = code
    this.status = opts.status ?? 500
    this.expose = opts.expose ?? false
    this.retryAfter = opts.retryAfter
  }
}
