import type { Context, Hono } from 'hono'
import { bearerChallenge } from '../auth/challenge.js'
import { AuthError } from '../auth/errors.js'
import type { Principal } from '../auth/principal.js'
import { canonical } from '../auth/verify.js'
import { GatewayError } from '../errors.js'
import { decideAccess } from '../policy/evaluate.js'
import { readJsonBody } from '../http/body.js'
import { originAllowed } from '../http/origin.js'
import { IDP_UNAVAILABLE, retryAfterHeader } from '../http/respond.js'
import type { Vars } from '../http/request-id.js'
import type { AccountDeps } from './deps.js'
import { AccountError } from './errors.js'
import { accountNeeds, serverTaking, type AccountNeeds, type CredentialNeed } from './needs.js'

/** Where the API lives, below the public URL's path. */
export const ACCOUNT_API_PATH = '/account/api'

const JSON_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
}

/**
 * The account page's API, for scripts and `mcp-edge secrets`: `GET /account/api` (the caller's
 * servers, what they need, what is set and when), `PUT` and `DELETE /account/api/secrets/:name`.
 * Authenticated like MCP requests, with a bearer token for any of the gateway's servers or
 * endpoints, so the secrets are the same (iss, sub)'s the page and the processes see; a set or
 * delete takes a token for a server that takes that secret. Values go in, never out.
 * Errors are JSON `{ error, message }` with stable codes; no CORS (not for other sites' pages).
 */
export function accountApi(app: Hono<Vars>, d: AccountDeps): void {
  const servers = Object.keys(d.config.servers)
  // A connector at an endpoint (`/mcp`) holds a token for the endpoint, not for one server.
  const audiences = [
    ...new Set([
      ...servers.flatMap((s) => d.resources.audiences(s)),
      ...Object.keys(d.config.endpoints).flatMap((e) => d.resources.endpointAudiences(e)),
    ]),
  ]
  // Which servers take each secret, whoever may use them (config, not policy).
  const takers = new Map<string, string[]>()
  for (const [server, c] of Object.entries(d.config.servers))
    for (const cred of Object.values(c.credentials))
      if ('secret' in cred) takers.set(cred.secret, [...(takers.get(cred.secret) ?? []), server])
  /**
   * Whether the token may change secret `name`: it was issued for every server of the user's
   * (the live policy) that takes it, through their own `aud` or an endpoint's serving them,
   * and its own scopes open each (as an MCP request there would be decided).
   * Any token of the user's reads the list, but a token one app holds for one server must not
   * write the key another server acts with: an app could put its own account's key in place of
   * the user's and read what the user then sends through that server (or delete it). A key two
   * servers share is the other's too, so a token for one of them is not enough. A server the
   * policy closes to the user counts for nothing (no call of theirs runs there), except for a
   * held secret only such servers take, which takes a token for one of them. A secret no
   * server takes any more (only deleted) is anyone's of the user's to clear. `aud` is compared
   * as at authentication (scheme and host in any case).
   */
  const tokenTakes = (p: Principal, needs: AccountNeeds, name: string): boolean => {
    const using = takers.get(name)
    if (using === undefined) return true
    const aud = p.claims.aud
    const auds = new Set(
      (typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [])
        .filter((a): a is string => typeof a === 'string')
        .map(canonical),
    )
    // Issued for it, and good there: a token of no scope for it (an IdP's with scope=openid)
    // is refused by MCP there, and the roles-only `needs` would not see that.
    const covers = (s: string) =>
      (d.resources.audiences(s).some((a) => auds.has(canonical(a))) ||
        [...auds].some((a) => d.resources.serversOf(a).includes(s))) &&
      decideAccess(d.policy.current, p, s).effect === 'allow'
    return using.some(covers) && openTakers(needs, name).every(covers)
  }
  /** The servers the user may use that take secret `name`. */
  const openTakers = (needs: AccountNeeds, name: string) =>
    (takers.get(name) ?? []).filter((s) => needs.servers.some((n) => n.name === s))
  const notForIt = (p: Principal, needs: AccountNeeds, method: string, name: string) => {
    record(
      p,
      needs,
      method,
      name,
      'deny',
      'refused: the token is not for every server of the user that takes it',
    )
    const open = openTakers(needs, name)
    return new AccountError(
      'token_not_for_server',
      open.length > 0
        ? `this token was not issued for (or has no scope at) every server that takes ${name} (${open.join(', ')}): ` +
            'use a token for them all (or an endpoint serving them), or the account page'
        : `this token was not issued for a server that takes ${name}: use the account page`,
    )
  }
  const reply = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(body === undefined ? null : JSON.stringify(body), {
      status,
      headers: { ...JSON_HEADERS, ...headers },
    })

  /** The one place an API error becomes a response: the client gets the code and safe text, the log the rest. */
  const failure = (c: Context<Vars>, err: unknown): Response => {
    const log = c.get('log')
    if (err instanceof AuthError) {
      log.info({ auth: err.code, reason: err.message }, 'account API: authentication failed')
      if (err.code === 'idp_unavailable')
        return reply(
          503,
          { error: 'idp_unavailable', message: IDP_UNAVAILABLE },
          retryAfterHeader(err.retryAfter),
        )
      const resourceMetadata = d.resources.metadata(servers[0] ?? '', 'mcp', c.req.header('host'))
      // RFC 6750 §3.1: no error code when no credentials came.
      const error =
        err.code === 'missing_token'
          ? undefined
          : err.code === 'invalid_request'
            ? 'invalid_request'
            : 'invalid_token'
      const challenge = bearerChallenge({ resourceMetadata, error, description: err.message })
      return reply(
        err.status,
        {
          error: err.code === 'invalid_request' ? 'invalid_request' : 'unauthorized',
          message: err.message,
        },
        { 'www-authenticate': challenge },
      )
    }
    if (err instanceof GatewayError && err.expose) {
      log.info({ code: err.code, reason: err.message }, 'account API: request refused')
      // The rest of an oversized or stalled body is never read: the connection cannot be reused.
      const headers: Record<string, string> =
        err.status === 413 || err.status === 408 ? { connection: 'close' } : {}
      const code =
        err.code === 'parse_error' || err.code === 'invalid_message' ? 'invalid_body' : err.code
      return reply(err.status, { error: code, message: err.message }, headers)
    }
    log.error({ err }, 'account API: unexpected error')
    return reply(500, { error: 'internal_error', message: 'internal error' })
  }

  /**
   * Origin (a present one must be ours), then the bearer token for any of the gateway's servers
   * or endpoints. `method` and `name`: what an audit line of an Origin refusal names.
   */
  const caller = async (c: Context<Vars>, method: string, name?: string): Promise<Principal> => {
    const origin = c.req.header('origin')
    const authorization = c.req.header('authorization')
    if (origin !== undefined && !originAllowed(origin, d.origin)) {
      const err = new AccountError(
        'origin_not_allowed',
        'requests from this origin are not accepted',
      )
      // Another site's page sent a user's token (its script held one): audited as that user's
      // deny, as the page audits a forged form. A token that does not verify names no one:
      // the refusal is the access log's alone, as before authentication anywhere.
      const p = await d.authenticator.authenticate(authorization, audiences).catch(() => undefined)
      if (p !== undefined)
        d.audit.record({
          sub: p.sub,
          iss: p.iss,
          clientId: p.clientId,
          server: '',
          method,
          name,
          decision: 'deny',
          rule: 'account api',
          outcome: `refused: ${err.code}`,
        })
      throw err
    }
    return d.authenticator.authenticate(authorization, audiences)
  }
  const needsOf = async (p: Principal): Promise<AccountNeeds> => {
    const b = d.broker
    // Whether the broker holds an upstream token is known for users signed in through it.
    const upstream = b && {
      name: b.upstream,
      held: p.iss === b.issuer ? await b.holdsUpstreamToken(p.sub) : undefined,
    }
    // Secrets are the user's, not one client's delegation: what the user may use is what their
    // roles open (the page decides the same way), not the scopes of the token that happened to
    // be presented (the broker's are those of one server). With no role map, the token's scopes.
    const user: Principal = { ...p, hasScopeClaim: false }
    return accountNeeds({
      servers: d.config.servers,
      policy: d.policy.current,
      principal: user,
      held: await d.secrets.list({ iss: p.iss, sub: p.sub }),
      upstream,
    })
  }
  const record = (
    p: Principal,
    needs: AccountNeeds,
    method: string,
    name: string,
    decision: 'allow' | 'deny',
    outcome: string,
  ) =>
    d.audit.record({
      sub: p.sub,
      iss: p.iss,
      clientId: p.clientId,
      server: serverTaking(needs, name),
      method,
      name,
      decision,
      rule: 'account api',
      outcome,
    })
  const handle = (fn: (c: Context<Vars>) => Promise<Response>) => async (c: Context<Vars>) => {
    try {
      return await fn(c)
    } catch (err) {
      return failure(c, err)
    }
  }

  app.get(
    ACCOUNT_API_PATH,
    handle(async (c) => {
      const p = await caller(c, 'account/read')
      const needs = await needsOf(p)
      return reply(200, {
        iss: p.iss,
        sub: p.sub,
        servers: needs.servers.map((s) => ({
          name: s.name,
          ...(s.description ? { description: s.description } : {}),
          credentials: s.credentials.map(credentialJson),
        })),
        secrets: needs.held.map((s) => ({
          name: s.name,
          setAt: new Date(s.setAt).toISOString(),
          expiresAt: iso(s.expiresAt),
        })),
      })
    }),
  )

  app.put(
    `${ACCOUNT_API_PATH}/secrets/:name`,
    handle(async (c) => {
      const name = c.req.param('name') ?? ''
      const p = await caller(c, 'account/secret.set', name)
      const needs = await needsOf(p)
      // No free-form storage: only names a server this caller may use takes.
      if (!needs.settable.has(name)) {
        record(
          p,
          needs,
          'account/secret.set',
          name,
          'deny',
          'refused: no server of the caller takes it',
        )
        throw new AccountError(
          'secret_not_allowed',
          'no server you may use takes a secret of that name',
        )
      }
      if (!tokenTakes(p, needs, name)) throw notForIt(p, needs, 'account/secret.set', name)
      if (!/^application\/json\s*(;|$)/i.test(c.req.header('content-type') ?? ''))
        throw new AccountError(
          'unsupported_media_type',
          'the body must be application/json: { "value": "…" }',
        )
      const body = await readJsonBody(c.req.raw, {
        maxBodyBytes: d.config.account.maxBodyBytes,
        bodyTimeout: d.config.limits.bodyTimeout,
        maxJsonDepth: 2,
        maxBatch: 1,
      })
      if (
        typeof body !== 'object' ||
        body === null ||
        Array.isArray(body) ||
        Object.keys(body).join() !== 'value' ||
        typeof (body as { value: unknown }).value !== 'string'
      ) {
        throw new AccountError(
          'invalid_body',
          'the body must be { "value": "…" } with a string value, and nothing else',
        )
      }
      const replaced = needs.held.some((h) => h.name === name)
      let setAt: number
      let expiresAt: number | null
      try {
        ;({ setAt, expiresAt } = await d.secrets.set(
          { iss: p.iss, sub: p.sub },
          name,
          (body as { value: string }).value,
        ))
      } catch (err) {
        // The secret store's refusals (length, NUL, how many) are written for the user.
        if (err instanceof GatewayError) throw err
        const why = (err as Error).message
        record(p, needs, 'account/secret.set', name, 'deny', `refused: ${why}`)
        throw new AccountError('secret_refused', why)
      }
      record(p, needs, 'account/secret.set', name, 'allow', replaced ? 'replaced' : 'set')
      return reply(replaced ? 200 : 201, {
        name,
        setAt: new Date(setAt).toISOString(),
        expiresAt: iso(expiresAt),
        replaced,
      })
    }),
  )

  app.delete(
    `${ACCOUNT_API_PATH}/secrets/:name`,
    handle(async (c) => {
      const name = c.req.param('name') ?? ''
      const p = await caller(c, 'account/secret.delete', name)
      const needs = await needsOf(p)
      const held = needs.held.some((h) => h.name === name)
      // What a server of theirs takes, or what is held for them anyway (a server dropped it since).
      if (!held && !needs.settable.has(name)) {
        record(
          p,
          needs,
          'account/secret.delete',
          name,
          'deny',
          'refused: no server of the caller takes it',
        )
        throw new AccountError(
          'secret_not_allowed',
          'no server you may use takes a secret of that name',
        )
      }
      if (!tokenTakes(p, needs, name)) throw notForIt(p, needs, 'account/secret.delete', name)
      await d.secrets.remove({ iss: p.iss, sub: p.sub }, name)
      record(p, needs, 'account/secret.delete', name, 'allow', held ? 'deleted' : 'not set')
      return reply(204, undefined)
    }),
  )

  // Other methods (OPTIONS included: no preflight succeeds, so no other site's script calls it).
  for (const [path, methods] of [
    [ACCOUNT_API_PATH, 'GET'],
    [`${ACCOUNT_API_PATH}/secrets/:name`, 'PUT, DELETE'],
  ] as const) {
    app.all(path, () =>
      reply(
        405,
        { error: 'method_not_allowed', message: `this address answers ${methods} only` },
        { allow: methods },
      ),
    )
  }
}

/** A credential as the API shows it: what it is, never a value. */
function credentialJson(c: CredentialNeed): Record<string, unknown> {
  switch (c.kind) {
    case 'secret':
      return {
        env: c.env,
        kind: c.kind,
        secret: c.secret,
        ...(c.describe ? { describe: c.describe } : {}),
        set: c.setAt !== undefined,
        setAt: c.setAt === undefined ? null : new Date(c.setAt).toISOString(),
        expiresAt: iso(c.expiresAt),
      }
    case 'exchange':
      return {
        env: c.env,
        kind: c.kind,
        ...(c.audience ? { audience: c.audience } : {}),
        ...(c.resource ? { resource: c.resource } : {}),
        ...(c.scope ? { scope: c.scope } : {}),
      }
    case 'upstreamToken':
      return {
        env: c.env,
        kind: c.kind,
        token: c.token,
        ...(c.upstream ? { upstream: c.upstream } : {}),
        held: c.held ?? null,
      }
  }
}

/** An instant as the API writes it; null for none (not set, or never expires). */
function iso(ms: number | null | undefined): string | null {
  return ms == null ? null : new Date(ms).toISOString()
}
