import { createHmac, randomBytes } from 'node:crypto'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig, ServerConfig } from '../config/schema.js'
import { CredentialError } from './errors.js'
import type { UserSecrets } from './secrets.js'

/** Where a credential's value came from, as the audit log names it. */
export type CredentialSource = 'secret' | 'exchange' | 'upstreamToken'

/** A secret the user has not set, that a server needs. */
export interface MissingSecret {
  /** The environment variable it would fill. */
  variable: string
  /** The secret's name, as the account page and the API know it. */
  secret: string
  describe: string | undefined
}

/** Who a server's process acts for, and the token they presented (exchange's subject, never passed on). */
export interface Caller {
  principal: Principal
  /** The bearer token of this request, when there is one. Only ever sent to the IdP's token endpoint. */
  bearer: string | undefined
}

/** A user's credentials for one server, ready for a process's environment. */
export interface ResolvedCredentials {
  env: Record<string, string>
  /**
   * Which values a process was started with, as a keyed hash (a random key per gateway, so
   * it reveals nothing about the values): two processes share it exactly when they were
   * started with the same values. '' for a server without credentials.
   */
  fingerprint: string
  /**
   * When an exchange traded the presenting client's own token: which client (and scopes) it
   * was, and the fingerprint of the user's own values alone (secrets, upstream tokens), each a
   * keyed hash. Another client of the user holds another exchanged token, and its processes
   * are not stale for it: only when the user's own values differ.
   */
  presented?: { by: string; shared: string }
  /** Secrets not set: the process starts without them, and a call asks the user. */
  missing: MissingSecret[]
  /** Which variable came from which source, for the audit log (never a value). */
  supplied: { variable: string; source: CredentialSource }[]
}

/** The RFC 8693 exchange, as the resolver uses it (credentials/exchange.ts). */
export interface ExchangeSource {
  token(
    owner: string,
    variable: string,
    spec: { audience?: string; resource?: string; scope?: string },
    subject: { token: string; type: string },
    /** Whose token is traded besides its owner (the client and scopes of a presented bearer). */
    presenter?: string,
  ): Promise<{ value: string }>
}

/** The broker's kept upstream tokens of a user, fresh (refreshed with the upstream when near expiry). */
export interface UpstreamTokenSource {
  /** The broker's issuer: only its principals have upstream tokens. */
  issuer: string
  token(sub: string, kind: 'access_token' | 'id_token'): Promise<string | undefined>
}

/** RFC 8693 §3 token type identifiers. */
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

/** Nothing to resolve: the answer for a server without credentials. */
const NONE: ResolvedCredentials = Object.freeze({
  env: {},
  fingerprint: '',
  missing: [],
  supplied: [],
}) as ResolvedCredentials

/**
 * Each user's credentials for a server's processes, from the sources its `credentials` name:
 * their own secrets, an RFC 8693 exchange of their token at the IdP, or the upstream token
 * the broker got when they logged in. A secret not set is reported `missing` (a call asks the
 * user for it); a source that fails (the IdP refuses or is down, no upstream token is kept)
 * raises a CredentialError. Values only ever go to the process's environment: the fingerprint
 * is a keyed hash of them, so nothing here can be read back from logs or metrics.
 */
export class CredentialResolver {
  private readonly key: Buffer

  constructor(
    private readonly o: {
      config: GatewayConfig
      secrets: UserSecrets | undefined
      exchange?: ExchangeSource
      upstream?: UpstreamTokenSource
      /** Whose token an exchange trades: the request's bearer or the broker's upstream token. */
      subjectToken: 'bearer' | 'upstream'
      /** The fingerprint key; default: random, per gateway process. */
      key?: Buffer
    },
  ) {
    this.key = o.key ?? randomBytes(32)
  }

  /** Whether the server's processes take per-user credentials. */
  needs(server: string): boolean {
    const config = this.o.config.servers[server]
    return config !== undefined && Object.keys(config.credentials).length > 0
  }

  /**
   * The caller's credentials for `server`.
   * @throws CredentialError exchange_refused / exchange_unavailable / no_subject_token / upstream_token_unavailable
   */
  async resolve(server: string, caller: Caller): Promise<ResolvedCredentials> {
    const config = this.o.config.servers[server]
    if (config === undefined || Object.keys(config.credentials).length === 0) return NONE
    const env: Record<string, string> = {}
    const missing: MissingSecret[] = []
    const supplied: ResolvedCredentials['supplied'] = []
    const traded: string[] = []
    // One at a time, in a stable order: few per server, and an exchange failing first stops the rest.
    for (const [variable, spec] of Object.entries(config.credentials).sort(([a], [b]) =>
      a < b ? -1 : 1,
    )) {
      if ('secret' in spec) {
        const value = await this.secretOf(caller.principal, spec.secret)
        if (value === undefined)
          missing.push({ variable, secret: spec.secret, describe: spec.describe })
        else {
          env[variable] = value
          supplied.push({ variable, source: 'secret' })
        }
      } else if ('exchange' in spec) {
        env[variable] = await this.exchanged(caller, variable, spec.exchange)
        supplied.push({ variable, source: 'exchange' })
        traded.push(variable)
      } else {
        env[variable] = await this.upstreamToken(caller.principal, spec.upstreamToken)
        supplied.push({ variable, source: 'upstreamToken' })
      }
    }
    const fingerprint = this.fingerprint(env)
    const presenter = this.presenter(caller.principal)
    if (traded.length === 0 || presenter === undefined)
      return { env, fingerprint, missing, supplied }
    const own = Object.fromEntries(Object.entries(env).filter(([v]) => !traded.includes(v)))
    const presented = { by: this.fingerprint({ presenter }), shared: this.fingerprint(own) }
    return { env, fingerprint, presented, missing, supplied }
  }

  /** Whose own token an exchange trades besides its owner's: the client and scopes of a presented bearer. */
  private presenter(p: Principal): string | undefined {
    return this.o.subjectToken === 'bearer'
      ? JSON.stringify([p.clientId ?? null, [...p.scopes].sort()])
      : undefined
  }

  /**
   * Whether `principal` has set every secret `server` names: what a call waiting for one looks
   * at. Only the store is read (no exchange, no upstream token), so the answer is the same for
   * every token of that user and one look serves all their waiting calls.
   */
  async secretsSet(server: string, principal: Principal): Promise<boolean> {
    for (const { secret } of this.secretsOf(server))
      if ((await this.secretOf(principal, secret)) === undefined) return false
    return true
  }

  /** The secrets `server` names that its processes need from users (the account page lists them). */
  secretsOf(server: string): MissingSecret[] {
    const config: ServerConfig | undefined = this.o.config.servers[server]
    if (config === undefined) return []
    return Object.entries(config.credentials).flatMap(([variable, spec]) =>
      'secret' in spec ? [{ variable, secret: spec.secret, describe: spec.describe }] : [],
    )
  }

  private async secretOf(p: Principal, name: string): Promise<string | undefined> {
    if (this.o.secrets === undefined) return undefined
    return this.o.secrets.value({ iss: p.iss, sub: p.sub }, name)
  }

  private async exchanged(
    caller: Caller,
    variable: string,
    spec: { audience?: string; resource?: string; scope?: string },
  ): Promise<string> {
    if (this.o.exchange === undefined)
      throw new CredentialError(
        'exchange_unavailable',
        'token exchange is not configured on this gateway (auth.tokenExchange)',
      )
    const subject =
      this.o.subjectToken === 'upstream'
        ? await this.upstreamToken(caller.principal, 'access_token')
        : caller.bearer
    if (subject === undefined || subject === '')
      throw new CredentialError(
        'no_subject_token',
        'there is no token of yours to exchange; sign in again',
      )
    const p = caller.principal
    const owner = JSON.stringify([p.iss, p.sub])
    // The token a client presented is that client's delegation, with its scopes: what the IdP
    // exchanged for one client is never handed to another client of the same user (a narrower
    // app would act with what a broader one got). The upstream token is the user's alone.
    const presenter = this.presenter(p)
    return (
      await this.o.exchange.token(
        owner,
        variable,
        spec,
        { token: subject, type: ACCESS_TOKEN_TYPE },
        presenter,
      )
    ).value
  }

  private async upstreamToken(p: Principal, kind: 'access_token' | 'id_token'): Promise<string> {
    const upstream = this.o.upstream
    if (upstream === undefined || p.iss !== upstream.issuer) {
      throw new CredentialError(
        'upstream_token_unavailable',
        "this server needs your sign-in at the identity provider, which only a login through this gateway's broker provides",
      )
    }
    const token = await upstream.token(p.sub, kind)
    if (token === undefined)
      throw new CredentialError(
        'upstream_token_unavailable',
        `the gateway holds no ${kind === 'id_token' ? 'ID' : 'access'} token from your sign-in any more; sign in again`,
      )
    return token
  }

  private fingerprint(env: Record<string, string>): string {
    return createHmac('sha256', this.key)
      .update(JSON.stringify(Object.entries(env)))
      .digest('base64url')
      .slice(0, 22)
  }
}
