import type { Logger } from 'pino'
import type { EndReason, OutboundStream } from './outbound.js'
import type { QueueBudget } from './outbound-budget.js'

/**
 * The streams of one session-era session (a server's or an endpoint's), whatever transport
 * carries them: each bounded per stream and charged to the session's budget (outbound.ts says
 * what happens past a bound). A listening one (the GET stream, a resumption, the legacy event
 * stream) spares the session from idle reaping while it is open, its idle time starting when
 * it ends, and it lasts no longer than the token that opened it (`exp`, seconds since the
 * epoch): then the client reconnects with a new one.
 */
export class SessionStreams {
  private open = 0

  constructor(
    private readonly budget: QueueBudget,
    private readonly log: Logger,
    /** The session was active now (a listening stream ended). */
    private readonly touch: () => void,
  ) {}

  /** Whether a client holds one of the session's listening streams open. */
  get listening(): boolean {
    return this.open > 0
  }

  /** A new stream to the session's client; `keepAlive`: a comment whenever it is quiet. */
  stream(o: {
    listening: boolean
    exp?: number
    onEnd?: (why: EndReason) => void
    keepAlive?: boolean
  }): OutboundStream {
    let expiry: NodeJS.Timeout | undefined
    if (o.listening) this.open++
    const out = this.budget.stream({
      log: this.log,
      keepAlive: o.keepAlive,
      onEnd: (why) => {
        clearTimeout(expiry)
        if (o.listening) {
          this.open--
          this.touch()
        }
        o.onEnd?.(why)
      },
    })
    if (o.exp !== undefined)
      expiry = setTimeout(
        () => out.close('expired'),
        Math.max(0, o.exp * 1000 - Date.now()),
      ).unref()
    return out
  }
}
