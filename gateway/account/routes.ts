import type { Context, Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import { ACCOUNT_CALLBACK_PATH } from '../broker/first-party.js'
import { GatewayError } from '../errors.js'
import { originAllowed } from '../http/origin.js'
import { pageHeaders } from '../http/page.js'
import type { Vars } from '../http/request-id.js'
import { pagePrincipal, type AccountBroker, type AccountDeps } from './deps.js'
import { AccountError, type AccountErrorCode } from './errors.js'
import { readForm } from './form.js'
import { accountNeeds, serverTaking, type AccountNeeds } from './needs.js'
import { accountCookies, PageSessions, type PageSession } from './session.js'
import { accountPage, apiOnlyPage, refusalPage, savedPage, signInPage } from './page.js'
import { brokerSignIn } from './sign-in.js'

/** Why a set or delete of a name no server of the user takes is refused (as the API says it). */
const NOT_TAKEN = 'no server of the caller takes it'

/** What a link may ask the page to point at: a server and a secret name, as the config spells them. */
const LINK_PARAM = /^[A-Za-z0-9_.-]{1,64}$/

/** Titles of the refusal pages, by code. */
const TITLES: Partial<Record<AccountErrorCode, string>> = {
  not_signed_in: 'You are not signed in',
  csrf_mismatch: 'Request refused',
  origin_not_allowed: 'Request refused',
  secret_not_allowed: 'Not a credential of yours',
  secret_refused: 'Not saved',
  sign_in_expired: 'This sign-in has expired',
  sign_in_mismatch: 'Sign-in refused',
  sign_in_refused: 'Sign-in failed',
  sign_in_failed: 'Sign-in failed',
}

/**
 * The account page's routes, under `/account`: the page, its sign-in through the broker (the
 * gateway's first-party client, no consent page), and its forms. Every form is a POST from
 * this site (Origin), by a signed-in session (sealed cookie), carrying that session's CSRF
 * token; every answer is a page that cannot be framed or cached, and a successful POST ends in
 * a redirect (POST-redirect-GET). Without the broker the page explains the API instead.
 */
export function accountPages(app: Hono<Vars>, d: AccountDeps): void {
  const base = new URL(d.publicUrl).pathname.replace(/\/$/, '')
  const sessionCookie = accountCookies(d.publicUrl).session.name
  const sessions = new PageSessions({
    sealer: d.sealer,
    store: d.store,
    publicUrl: d.publicUrl,
    sessionTtlS: d.config.account.sessionTtl,
    loginTtlS: d.config.account.loginTtl,
    now: d.now,
  })
  const broker = d.broker
  const signIn = broker && brokerSignIn({ ...broker, timeoutMs: d.config.account.tokenTimeout })
  // Its forms post to itself only, with their Origin (checked below).
  const headers = pageHeaders({ csp: "form-action 'self'", referrer: 'same-origin' })
  const html = (c: Context, status: number, body: string, extra: Record<string, string> = {}) =>
    c.body(body, status as 200, { ...headers, ...extra })
  const refuse = (c: Context, err: AccountError) => {
    const signInAgain = err.code === 'not_signed_in' || err.code.startsWith('sign_in')
    return html(
      c,
      err.status,
      refusalPage(base, TITLES[err.code] ?? 'Request refused', err.message, {
        code: err.code,
        signIn: signInAgain,
      }),
    )
  }
  const noSignIn = (c: Context) => html(c, 404, apiOnlyPage(d.publicUrl))
  /** `server` and `secret` of a link, passed through sign-in (only names the config could hold). */
  const linkQuery = (q: { server?: string; secret?: string }) => {
    const params = new URLSearchParams()
    if (q.server !== undefined && LINK_PARAM.test(q.server)) params.set('server', q.server)
    if (q.secret !== undefined && LINK_PARAM.test(q.secret)) params.set('secret', q.secret)
    return params.toString()
  }

  /** The signed-in user as the page sees them: a name to show, and what they may use and set. */
  const who = async (
    b: AccountBroker,
    session: PageSession,
  ): Promise<{ label: string; needs: AccountNeeds } | undefined> => {
    const account = await b.account(session.sub)
    if (account === undefined) return undefined
    const owner = { iss: session.iss, sub: session.sub }
    const needs = accountNeeds({
      servers: d.config.servers,
      policy: d.policy.current,
      principal: pagePrincipal(session.iss, session.sub, account.roles, b.client.clientId),
      held: await d.secrets.list(owner),
      upstream: { name: b.upstream, held: await b.holdsUpstreamToken(session.sub) },
    })
    return { label: account.label, needs }
  }

  /**
   * A form POST's checks, in order: from this site, by a live session, a bounded urlencoded
   * body, the session's CSRF token.
   * @throws AccountError; GatewayError for the body's limits
   */
  const posted = async (
    c: Context,
    method: string,
  ): Promise<{ b: AccountBroker; session: PageSession; form: URLSearchParams } | Response> => {
    if (broker === undefined) return noSignIn(c)
    const origin = c.req.header('origin')
    // A browser names the page a form came from; another site's is refused before the body is
    // read. A forged form that rode on a signed-in user's cookie is audited as that user's.
    if (origin !== undefined && !originAllowed(origin, d.origin)) {
      const err = new AccountError('origin_not_allowed', 'The form was sent from another site.')
      // The store unreachable: the refusal stands, unaudited (no user is known).
      const session = await sessions.read(c).catch(() => undefined)
      if (session !== undefined) forged(method, session, broker, err)
      throw err
    }
    const session = await sessions.read(c)
    // Sign out with the page's session gone (account.sessionTtl went by, the page left open):
    // the broker's sign-in of this browser ends all the same, or the next person's "Sign in"
    // became this one. Another site's form was refused above; the broker's cookie is SameSite.
    if (session === undefined && method === 'account/logout') {
      await broker.endBrowserSession((name) => getCookie(c, name))
      return c.redirect(`${base}/account?signed_out=1`, 303)
    }
    if (session === undefined)
      throw new AccountError(
        'not_signed_in',
        'Your session on this page has ended, or never began. Sign in again.',
      )
    const form = await readForm(c.req.raw, {
      maxBodyBytes: d.config.account.maxBodyBytes,
      bodyTimeout: d.config.limits.bodyTimeout,
    })
    if (!sessions.csrfOk(session, form.get('csrf'))) {
      const err = new AccountError(
        'csrf_mismatch',
        'The form did not come from your account page. Open the page again and retry.',
      )
      forged(method, session, broker, err)
      throw err
    }
    return { b: broker, session, form }
  }
  /**
   * A form refused as not the page's own (another site's Origin, no CSRF token of the session):
   * a possible cross-site request, audited as the signed-in user's `deny`, named by the form's
   * action (nothing the form says is read for it: no name, no value).
   */
  const forged = (method: string, session: PageSession, b: AccountBroker, err: AccountError) =>
    record(session, b, '', method, undefined, `refused: ${err.code}`, 'deny')
  /** Runs a form's action after its checks; refusals become pages. */
  const onPost =
    (
      /** What the audit log names the form's request (`account/secret.set`, …). */
      method: string,
      action: (
        c: Context,
        p: { b: AccountBroker; session: PageSession; form: URLSearchParams },
      ) => Promise<Response>,
    ) =>
    async (c: Context): Promise<Response> => {
      let p: Awaited<ReturnType<typeof posted>>
      try {
        p = await posted(c, method)
      } catch (err) {
        if (err instanceof AccountError) return refuse(c, err)
        // The body's own limits (size, time): a page too; the rest of the body is never read.
        if (err instanceof GatewayError && err.expose)
          return html(
            c,
            err.status,
            refusalPage(base, 'Not saved', err.message, { code: err.code }),
            { connection: 'close' },
          )
        throw err
      }
      if (p instanceof Response) return p
      try {
        return await action(c, p)
      } catch (err) {
        if (err instanceof AccountError) return refuse(c, err)
        throw err
      }
    }
  const record = (
    session: PageSession,
    b: AccountBroker,
    server: string,
    method: string,
    name: string | undefined,
    outcome: string,
    decision: 'allow' | 'deny' = 'allow',
  ) =>
    d.audit.record({
      sub: session.sub,
      iss: session.iss,
      clientId: b.client.clientId,
      server,
      method,
      name,
      decision,
      rule: 'account page',
      outcome,
    })
  /** A set or delete refused for the user: audited as the account API audits its own (deny). */
  const refused = (
    session: PageSession,
    b: AccountBroker,
    needs: AccountNeeds,
    method: string,
    name: string,
    form: URLSearchParams,
    why: string,
  ) =>
    record(
      session,
      b,
      serverTaking(needs, name, form.get('server') ?? undefined),
      method,
      name,
      `refused: ${why}`,
      'deny',
    )

  app.get('/account', async (c) => {
    if (broker === undefined) return html(c, 200, apiOnlyPage(d.publicUrl))
    const query = linkQuery({ server: c.req.query('server'), secret: c.req.query('secret') })
    const session = await sessions.read(c)
    const user = session && (await who(broker, session))
    if (session === undefined || user === undefined) {
      // A cookie that no longer opens (expired, forged, signed out, the user forgotten) is cleared.
      const stale = getCookie(c, sessionCookie) !== undefined
      if (stale) await sessions.end(c)
      return html(
        c,
        200,
        signInPage(base, { query, ended: stale, signedOut: c.req.query('signed_out') === '1' }),
      )
    }
    const server = c.req.query('server')
    const secret = c.req.query('secret')
    // A link names a secret (and the server that asked for it); a server alone points at nothing.
    const asked = secret !== undefined
    const matches =
      asked &&
      user.needs.servers.some(
        (s) =>
          s.name === server &&
          s.credentials.some((x) => x.kind === 'secret' && x.secret === secret),
      )
    const deleted = c.req.query('deleted')
    const notice =
      deleted !== undefined &&
      LINK_PARAM.test(deleted) &&
      !user.needs.held.some((h) => h.name === deleted)
        ? `${deleted} is deleted.`
        : undefined
    return html(
      c,
      200,
      accountPage({
        base,
        user: user.label,
        needs: user.needs,
        csrf: session.csrf,
        notice,
        maxLength: d.secrets.maxLength,
        wanted: matches ? { server: server!, secret: secret! } : undefined,
        unmatched: asked && !matches,
      }),
    )
  })

  app.get('/account/login', (c) => {
    if (broker === undefined || signIn === undefined) return noSignIn(c)
    const { url, tx } = signIn.begin()
    const server = c.req.query('server')
    const secret = c.req.query('secret')
    sessions.beginLogin(c, {
      ...tx,
      ...(server && LINK_PARAM.test(server) ? { server } : {}),
      ...(secret && LINK_PARAM.test(secret) ? { secret } : {}),
    })
    return c.redirect(url, 303)
  })

  app.get(ACCOUNT_CALLBACK_PATH, async (c) => {
    if (broker === undefined || signIn === undefined) return noSignIn(c)
    const tx = sessions.takeLogin(c)
    if (tx === undefined)
      return refuse(
        c,
        new AccountError(
          'sign_in_expired',
          'No sign-in of this browser is in progress, or it took too long. Start again.',
        ),
      )
    let who: { iss: string; sub: string }
    try {
      who = await signIn.finish(new URL(c.req.url).searchParams, tx)
    } catch (err) {
      if (!(err instanceof AccountError)) throw err
      c.get('log').info(
        { code: err.code, reason: err.message, cause: (err.cause as Error | undefined)?.message },
        'account page sign-in refused',
      )
      return refuse(c, err)
    }
    sessions.start(c, who.iss, who.sub)
    const query = linkQuery(tx)
    return c.redirect(`${base}/account${query ? `?${query}` : ''}`, 303)
  })

  app.post(
    '/account/secrets',
    onPost('account/secret.set', async (c, { b, session, form }) => {
      const name = form.get('name') ?? ''
      const value = form.get('value') ?? ''
      const user = await who(b, session)
      if (user === undefined)
        throw new AccountError(
          'not_signed_in',
          'Your account is no longer known here. Sign in again.',
        )
      // No free-form storage: only what a server this user may use takes.
      if (!user.needs.settable.has(name)) {
        refused(session, b, user.needs, 'account/secret.set', name, form, NOT_TAKEN)
        throw new AccountError(
          'secret_not_allowed',
          'No server you may use takes a secret of that name.',
        )
      }
      const replaced = user.needs.held.some((h) => h.name === name)
      try {
        await d.secrets.set({ iss: session.iss, sub: session.sub }, name, value)
      } catch (err) {
        // The secret store's refusals (length, NUL, how many) are written for the user.
        if (err instanceof GatewayError) throw err
        refused(session, b, user.needs, 'account/secret.set', name, form, (err as Error).message)
        throw new AccountError('secret_refused', (err as Error).message)
      }
      record(
        session,
        b,
        serverTaking(user.needs, name, form.get('server') ?? undefined),
        'account/secret.set',
        name,
        replaced ? 'replaced' : 'set',
      )
      return c.redirect(`${base}/account/saved?${new URLSearchParams({ secret: name })}`, 303)
    }),
  )

  app.get('/account/saved', async (c) => {
    if (broker === undefined) return noSignIn(c)
    const session = await sessions.read(c)
    const name = c.req.query('secret') ?? ''
    const held =
      session &&
      (await d.secrets.list({ iss: session.iss, sub: session.sub })).find((s) => s.name === name)
    if (held === undefined) return c.redirect(`${base}/account`, 303)
    return html(c, 200, savedPage(base, held))
  })

  app.post(
    '/account/secrets/delete',
    onPost('account/secret.delete', async (c, { b, session, form }) => {
      const name = form.get('name') ?? ''
      const user = await who(b, session)
      if (user === undefined)
        throw new AccountError(
          'not_signed_in',
          'Your account is no longer known here. Sign in again.',
        )
      // What a server of theirs takes, or what is held for them anyway (a server dropped it since).
      const held = user.needs.held.some((h) => h.name === name)
      if (!held && !user.needs.settable.has(name)) {
        refused(session, b, user.needs, 'account/secret.delete', name, form, NOT_TAKEN)
        throw new AccountError(
          'secret_not_allowed',
          'No server you may use takes a secret of that name.',
        )
      }
      await d.secrets.remove({ iss: session.iss, sub: session.sub }, name)
      record(
        session,
        b,
        serverTaking(user.needs, name, form.get('server') ?? undefined),
        'account/secret.delete',
        name,
        held ? 'deleted' : 'not set',
      )
      return c.redirect(`${base}/account?${new URLSearchParams({ deleted: name })}`, 303)
    }),
  )

  app.post(
    '/account/logout',
    onPost('account/logout', async (c, { b, session }) => {
      await sessions.end(c, session)
      // And the broker's sign-in of this browser, or "Sign in" next signed the same user back in
      // with no upstream login (the next person at a shared browser became the previous one).
      await b.endBrowserSession((name) => getCookie(c, name))
      return c.redirect(`${base}/account?signed_out=1`, 303)
    }),
  )

  // Any other method on these paths: refused, saying which one is served.
  const allow: [string, string][] = [
    ['/account', 'GET'],
    ['/account/login', 'GET'],
    [ACCOUNT_CALLBACK_PATH, 'GET'],
    ['/account/saved', 'GET'],
    ['/account/secrets', 'POST'],
    ['/account/secrets/delete', 'POST'],
    ['/account/logout', 'POST'],
  ]
  for (const [path, method] of allow) {
    app.all(path, (c) =>
      html(
        c,
        405,
        refusalPage(base, 'Not here', `This address answers ${method} only.`, {
          code: 'method_not_allowed',
        }),
        { allow: method },
      ),
    )
  }
}
