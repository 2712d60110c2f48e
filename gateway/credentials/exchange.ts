import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import { Agent, type Dispatcher } from 'undici'
import type { AuthConfig } from '../config/schema.js'
import { CredentialError } from './errors.js'
import { logSafe, readAnswer } from './exchange-answer.js'
import { checkTokenEndpoint } from './exchange-endpoint.js'
import { exchangeRequest, type ExchangeSpec, type SubjectToken } from './exchange-form.js'
import { postForm, type Answer } from './exchange-http.js'

export { tokenEndpointFor } from './exchange-endpoint.js'
export {
  ACCESS_TOKEN_TYPE,
  TOKEN_EXCHANGE_GRANT,
  type ExchangeSpec,
  type SubjectToken,
} from './exchange-form.js'

/** The parsed `auth.tokenExchange`. */
export type TokenExchangeConfig = NonNullable<AuthConfig['tokenExchange']>

/** A token for a downstream service, and when it expires (epoch ms; undefined: the IdP did not say). */
export interface ExchangedToken {
  value: string
  expiresAt: number | undefined
}

export interface TokenExchangeOptions {
  config: TokenExchangeConfig
  /** The secret read from `config.clientSecret` (readSecret), for client_secret_basic/post. */
  clientSecret?: string
  /** The token endpoint: `config.tokenEndpoint` or discovery's (see tokenEndpointFor). */
  tokenEndpoint: () => Promise<string>
  log: Logger
  now?: () => number
  /** The HTTP client (tests: one trusting a test CA); default: an agent of this instance's own. */
  dispatcher?: Dispatcher
}

interface Cached {
  token: ExchangedToken
  /** Reused while now < freshUntil. */
  freshUntil: number
}

interface Flight {
  owner: string
  promise: Promise<ExchangedToken>
}

/**
 * RFC 8693 token exchange at the IdP, per user: trades a user's token for one meant for a
 * downstream service (`audience`, `resource`, `scope`), to be handed to that user's server
 * process. Tokens are cached per (owner, variable, spec, presenter), LRU-bounded by `cacheMax`, and
 * reused while `expiresAt - renewBefore` is ahead (at most `maxReuse`, or `unknownLifetime`
 * without expires_in); the lifetime counts from when the
 * request was sent. Concurrent asks for one key share one request. A refusal or failure is never
 * cached: the next ask asks the IdP again. The answer is read strictly (see readAnswer).
 * No token, subject or issued, is ever logged or put in an error; the log gets the endpoint's
 * host, the status and the OAuth error code.
 */
export class TokenExchange {
  readonly #config: TokenExchangeConfig
  readonly #secret: string | undefined
  readonly #endpoint: () => Promise<string>
  readonly #log: Logger
  readonly #now: () => number
  readonly #dispatcher: Dispatcher
  readonly #ownAgent: Agent | undefined
  readonly #cache: LRUCache<string, Cached>
  readonly #flights = new Map<string, Flight>()
  #warnedShortLived = false

  /** @throws TypeError when the client authentication needs a secret and none is given */
  constructor(o: TokenExchangeOptions) {
    if (o.config.clientAuth !== 'none' && !o.clientSecret) {
      throw new TypeError(
        `auth.tokenExchange.clientAuth ${o.config.clientAuth} needs the client secret`,
      )
    }
    this.#config = o.config
    this.#secret = o.config.clientAuth === 'none' ? undefined : o.clientSecret
    this.#endpoint = o.tokenEndpoint
    this.#log = o.log
    this.#now = o.now ?? Date.now
    const timeout = o.config.timeout
    this.#ownAgent = o.dispatcher
      ? undefined
      : new Agent({
          connect: { timeout },
          headersTimeout: timeout,
          bodyTimeout: timeout,
          connections: o.config.connections,
        })
    this.#dispatcher = o.dispatcher ?? this.#ownAgent!
    this.#cache = new LRUCache({ max: o.config.cacheMax })
  }

  /**
   * A token for `owner`'s `variable`: the cached one while fresh, else a new exchange of
   * `subject` (an exchange already under way for the same key is shared: its asker's subject
   * token is the one traded, which is the same user's by the key). `presenter` keeps apart
   * tokens traded for different clients of the user (or scopes) when their own tokens are traded.
   * @throws CredentialError `no_subject_token` (nothing to trade), `exchange_refused`, `exchange_unavailable`
   */
  token(
    owner: string,
    variable: string,
    spec: ExchangeSpec,
    subject: SubjectToken,
    presenter?: string,
  ): Promise<ExchangedToken> {
    // Checked even when a token is cached: no token of the user means no session to act for.
    if (typeof subject.token !== 'string' || subject.token === '') {
      const none = 'there is no token of the user to exchange: sign in again'
      return Promise.reject(new CredentialError('no_subject_token', none))
    }
    const key = JSON.stringify([
      owner,
      variable,
      spec.audience ?? null,
      spec.resource ?? null,
      spec.scope ?? null,
      presenter ?? null,
    ])
    const hit = this.#cache.get(key)
    if (hit !== undefined && this.#now() < hit.freshUntil) return Promise.resolve(hit.token)
    const under = this.#flights.get(key)
    if (under !== undefined) return under.promise
    const flight = { owner } as Flight
    flight.promise = this.#exchange(spec, subject)
      .then(({ token, freshUntil }) => {
        // A flight forgotten while under way (the user signed out) answers its askers, unkept.
        if (this.#flights.get(key) === flight && this.#now() < freshUntil)
          this.#cache.set(key, { token, freshUntil })
        return token
      })
      .finally(() => {
        if (this.#flights.get(key) === flight) this.#flights.delete(key)
      })
    this.#flights.set(key, flight)
    return flight.promise
  }

  /** Drops every token cached for `owner`, and keeps none an exchange under way brings back. */
  forget(owner: string): void {
    const prefix = `${JSON.stringify([owner]).slice(0, -1)},`
    for (const key of [...this.#cache.keys()]) if (key.startsWith(prefix)) this.#cache.delete(key)
    for (const [key, flight] of this.#flights) if (flight.owner === owner) this.#flights.delete(key)
  }

  /**
   * Destroys the connection pool this instance made (not a dispatcher it was given), an exchange
   * under way included: called once no session is left to use an answer, so a hung IdP cannot
   * hold shutdown up for the exchange's whole timeout.
   */
  async close(): Promise<void> {
    await this.#ownAgent?.destroy()
  }

  async #exchange(spec: ExchangeSpec, subject: SubjectToken): Promise<Cached> {
    const target =
      spec.audience !== undefined
        ? `audience ${JSON.stringify(spec.audience)}`
        : spec.resource !== undefined
          ? `resource ${JSON.stringify(spec.resource)}`
          : 'no audience or resource'
    const url = await this.#url(target)
    const host = url.host
    const client = {
      clientId: this.#config.clientId,
      clientSecret: this.#secret,
      clientAuth: this.#config.clientAuth,
    }
    const { body, headers } = exchangeRequest(client, spec, subject)
    const sent = this.#now()
    let answer: Answer
    try {
      answer = await postForm(url, body, headers, {
        timeoutMs: this.#config.timeout,
        maxBytes: this.#config.maxResponseBytes,
        dispatcher: this.#dispatcher,
      })
    } catch (err) {
      if (!(err instanceof CredentialError)) throw err
      this.#log.warn(
        { host, target, reason: err.message, cause: causeCode(err.cause) },
        'token exchange failed',
      )
      throw new CredentialError(err.code, `${err.message}, for ${target}`, err.cause)
    }
    const read = readAnswer(answer)
    if (!read.ok) {
      // A hostile IdP could echo the user's token back in its description.
      const description =
        read.description === undefined ? undefined : logSafe(read.description, subject.token)
      const refused = read.kind === 'refused'
      this.#log[read.level](
        {
          host,
          status: answer.status,
          error: read.error,
          description,
          target,
          reason: read.reason,
        },
        refused ? 'token exchange refused' : 'token exchange failed',
      )
      const code = refused ? 'exchange_refused' : 'exchange_unavailable'
      throw new CredentialError(code, `${read.reason}, for ${target}`)
    }
    const lifetime = read.expiresIn === undefined ? undefined : read.expiresIn * 1000
    const reuse = Math.min(
      this.#config.maxReuse,
      lifetime === undefined ? this.#config.unknownLifetime : lifetime - this.#config.renewBefore,
    )
    if (reuse <= 0 && !this.#warnedShortLived) {
      this.#warnedShortLived = true
      this.#log.warn(
        { host, target, expiresIn: read.expiresIn, renewBefore: this.#config.renewBefore },
        'exchanged tokens live no longer than auth.tokenExchange.renewBefore: every request exchanges anew',
      )
    }
    this.#log.debug(
      { host, status: answer.status, target, expiresIn: read.expiresIn },
      'token exchanged',
    )
    const expiresAt = lifetime === undefined ? undefined : sent + lifetime
    return { token: { value: read.token, expiresAt }, freshUntil: sent + reuse }
  }

  /** The checked token endpoint; a failure to learn it (discovery) is the IdP being unavailable. */
  async #url(target: string): Promise<URL> {
    try {
      return checkTokenEndpoint(await this.#endpoint())
    } catch (err) {
      const failure =
        err instanceof CredentialError
          ? err
          : new CredentialError(
              'exchange_unavailable',
              'the token exchange endpoint is not known (discovery failed)',
              err,
            )
      this.#log.error(
        { target, reason: failure.message, cause: causeCode(failure.cause) },
        'token exchange endpoint unusable',
      )
      throw new CredentialError(failure.code, `${failure.message}, for ${target}`, failure.cause)
    }
  }
}

/** A short, token-free name for a failure's cause (an errno or undici code, or its class). */
function causeCode(cause: unknown): string | undefined {
  for (let e = cause; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    if (!(e.cause instanceof Error)) return e.name
  }
  return undefined
}
