import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Context, Hono } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import type Provider from 'oidc-provider'
import type { Logger } from 'pino'
import type { Resources } from '../auth/resources.js'
import type { GatewayConfig } from '../config/schema.js'
import { GatewayError } from '../errors.js'
import type { AuditLog } from '../observability/audit.js'
import type { PolicyStore } from '../policy/store.js'
import { type Fields, parseRecord } from '../store/record.js'
import type { Store } from '../store/store.js'
import type { Accounts } from './accounts.js'
import { heldFor, recordApproval } from './approval.js'
import { consentPage, messagePage, missingRolePage, PAGE_HEADERS } from './consent-page.js'
import { isOutage, storeUnavailablePage } from './errors.js'
import { askedEveryTime, INTERACTION_PREFIX } from './provider.js'
import { grantableScopes, rolesGranting, serverScopes } from './scopes.js'
import type { Upstream, UpstreamIdentity, UpstreamTx } from './upstream.js'

/** Where the upstream IdP sends the browser back (register it there as the redirect URI). */
export const UPSTREAM_CALLBACK_PATH = '/oauth/callback'
/**
 * Largest form body the consent pages accept, in bytes. Not a setting: the gateway's own pages
 * post a few short fields (a CSRF token, a choice); anything larger is not from them.
 */
const MAX_FORM_BYTES = 4096
const OIDC_SCOPES = new Set(['openid', 'email', 'profile', 'offline_access'])

/** A sign-in between the consent page and the upstream's callback, as stored. */
const TX: Fields = { uid: 'string', tx: 'object', binding: 'string' }

/** Who signed in, handed from one step of the sign-in to the next, as stored. */
type Handoff = { uid: string; accountId: string }
const HANDOFF: Fields = { uid: 'string', accountId: 'string' }
/** What the missing-role page's choice is about: the sign-in, its user, and whether the browser's session vouched for them. */
type DecideRecord = Handoff & { signedIn?: boolean }
const DECIDE: Fields = { ...HANDOFF, signedIn: 'boolean?' }

/** The upstream login the interactions drive. */
export type UpstreamLogin = Pick<Upstream, 'begin' | 'finish'>

type Details = Awaited<ReturnType<Provider['interactionDetails']>>

/** What the login and consent routes need. */
export interface InteractionDeps {
  provider: Provider
  issuer: string
  config: GatewayConfig
  upstream: UpstreamLogin
  accounts: Accounts
  store: Store
  policy: PolicyStore
  resources: Resources
  cookieKeys: readonly string[]
  audit: AuditLog
  log: Logger
  /** The gateway's own client (the account page): it asks for no scope of any server, so no consent page. */
  firstPartyId?: string
  /** Counts a trip upstream (it stores a login transaction): the refusal page, or undefined to go on. */
  admitSignIn?: (c: Context) => Promise<Response | undefined>
}

/**
 * The person-facing half of the broker: the consent page (before anything goes upstream, so
 * no client gets a user's login without their say: MCP authorization, confused deputy), the
 * trip to the company IdP and back (bound to the browser that approved, so a login link sent
 * to someone else cannot be finished by them), the check against the user's roles (a page
 * naming the missing role when the client asked for more), and the result handed back to
 * oidc-provider, which redirects to the client with a code.
 */
export function mountInteractions(app: Hono, d: InteractionDeps): void {
  const broker = d.config.auth.broker!
  const secure = new URL(d.issuer).protocol === 'https:'
  const bindingCookie = secure ? '__Host-mcp_edge_login' : 'mcp_edge_login'
  const loginTtlMs = broker.loginTtl * 1000
  const nodeOf = (c: Context) => c.env as { incoming: IncomingMessage; outgoing: ServerResponse }
  const html = (status: number, body: string) =>
    new Response(body, { status, headers: PAGE_HEADERS })
  // Hono hands a handler's error to onError and sets `c.error`: an outage's answer replaced.
  const onOutage = async (c: Context, next: () => Promise<void>) => {
    await next()
    if (c.error === undefined || !isOutage(c.error)) return
    c.res = undefined
    // The store down (Redis unreachable): the broker's page with 503, as at /authorize. The
    // adapter hands oidc-provider the outage as its TemporarilyUnavailable (503).
    c.res = storeUnavailablePage()
  }
  app.use(`${INTERACTION_PREFIX}*`, onOutage)
  app.use(UPSTREAM_CALLBACK_PATH, onOutage)
  const csrfOf = (uid: string) =>
    createHmac('sha256', d.cookieKeys[0]!).update(`csrf:${uid}`).digest('base64url')
  const csrfOk = (uid: string, token: unknown) =>
    typeof token === 'string' &&
    d.cookieKeys.some((k) =>
      safeEqual(createHmac('sha256', k).update(`csrf:${uid}`).digest('base64url'), token),
    )

  const details = async (c: Context): Promise<Details | Response> => {
    try {
      const { incoming, outgoing } = nodeOf(c)
      const got = await d.provider.interactionDetails(incoming, outgoing)
      if (got.uid !== c.req.param('uid')) throw new Error('interaction mismatch')
      return got
    } catch (err) {
      if (isOutage(err)) return storeUnavailablePage()
      return html(
        400,
        messagePage(
          'This sign-in has expired',
          'The sign-in page was opened in another browser, already used, or left open too long.',
        ),
      )
    }
  }
  const form = async (c: Context): Promise<Record<string, unknown> | undefined> => {
    const length = Number(c.req.header('content-length') ?? NaN)
    if (
      !(length <= MAX_FORM_BYTES) ||
      !/^application\/x-www-form-urlencoded\b/i.test(c.req.header('content-type') ?? '')
    )
      return undefined
    return (await c.req.parseBody()) as Record<string, unknown>
  }
  const audit = (det: Details, decision: 'allow' | 'deny', outcome: string, sub = '') => {
    const resource = [det.params.resource].flat()[0]
    d.audit.record({
      sub,
      iss: d.issuer,
      clientId: String(det.params.client_id ?? ''),
      server: (typeof resource === 'string' && d.resources.serversOf(resource).join(',')) || '',
      method: 'oauth/authorize',
      name: String(det.params.scope ?? ''),
      decision,
      rule: 'consent',
      outcome,
    })
  }
  const finishWith = async (c: Context, result: Parameters<Provider['interactionResult']>[2]) => {
    const { incoming, outgoing } = nodeOf(c)
    const to = await d.provider.interactionResult(incoming, outgoing, result, {
      mergeWithLastSubmission: false,
    })
    return c.redirect(to, 303)
  }
  const toUpstream = async (c: Context, det: Details) => {
    // Each trip stores a login transaction, however often one sign-in page asks for it.
    const refused = await d.admitSignIn?.(c)
    if (refused !== undefined) return refused
    const resource = [det.params.resource].flat()[0]
    const { url, tx } = await d.upstream.begin({
      resource: typeof resource === 'string' ? resource : undefined,
    })
    const binding = randomBytes(32).toString('base64url')
    await d.store.set(
      `broker:tx:${tx.state}`,
      JSON.stringify({ uid: det.uid, tx, binding: sha256(binding) }),
      { ttlMs: loginTtlMs },
    )
    setCookie(c, bindingCookie, binding, {
      path: secure ? '/' : UPSTREAM_CALLBACK_PATH,
      httpOnly: true,
      sameSite: 'Lax',
      secure,
      maxAge: broker.loginTtl,
    })
    return c.redirect(url, 303)
  }
  /** Grants what was asked within the user's roles, or shows what is missing. */
  const decide = async (
    c: Context,
    det: Details,
    accountId: string,
    o: { signedIn?: boolean } = {},
  ) => {
    // Another user signed in upstream over this browser's session (a shared browser): that
    // session ends here, or oidc-provider answered with its logout form, which the broker does
    // not serve (no one else could sign in in this browser until it expired). Whatever was
    // approved before was the other user's doing (a remembered consent): this one is asked.
    if (!o.signedIn && det.session?.accountId && det.session.accountId !== accountId) {
      await endSession(d.provider, det)
      return finishWith(c, { login: { accountId, ts: Math.floor(Date.now() / 1000) } })
    }
    const account = await d.accounts.find(accountId)
    if (account === undefined)
      return html(
        400,
        messagePage(
          'Sign-in failed',
          'Your sign-in could not be completed; start again from your application.',
        ),
      )
    const policy = d.policy.current
    const plan = scopePlan(det, d.resources, policy, account.roles)
    const missing = new Map<string, string[]>()
    for (const p of plan) for (const s of p.missing) missing.set(s, [])
    if (missing.size > 0) {
      const token = randomBytes(24).toString('base64url')
      const held: DecideRecord = { uid: det.uid, accountId, signedIn: o.signedIn === true }
      await d.store.set(`broker:decide:${token}`, JSON.stringify(held), { ttlMs: loginTtlMs })
      audit(det, 'deny', `missing role for ${[...missing.keys()].join(' ')}`, accountId)
      const client = await d.provider.Client.find(String(det.params.client_id))
      return html(
        403,
        missingRolePage({
          user: account.email ?? account.sub,
          clientName: client?.clientName ?? String(det.params.client_id),
          granted: [...new Set(plan.flatMap((p) => p.granted))],
          missing: rolesGranting(policy, [...missing.keys()]),
          csrf: csrfOf(det.uid),
          action: `${INTERACTION_PREFIX}${det.uid}/finish`,
          token,
        }),
      )
    }
    return complete(c, det, accountId, plan, o)
  }
  /** `signedIn`: the browser's session vouches for the user, not a login just made (its time stays). */
  const complete = async (
    c: Context,
    det: Details,
    accountId: string,
    plan: ScopePlan[],
    o: { signedIn?: boolean } = {},
  ) => {
    const clientId = String(det.params.client_id)
    const existing = det.grantId ? await d.provider.Grant.find(det.grantId) : undefined
    const grant =
      existing && existing.accountId === accountId
        ? existing
        : new d.provider.Grant({ accountId, clientId })
    for (const p of plan) {
      if (p.granted.length > 0) grant.addResourceScope(p.resource, p.granted.join(' '))
      // Approved whole (the roles give all it needs, maybe nothing): asked again only for more.
      if (p.missing.length === 0) recordApproval(grant, p.resource)
    }
    const oidcScopes = String(det.params.scope ?? '')
      .split(' ')
      .filter((s) => OIDC_SCOPES.has(s))
    if (oidcScopes.length > 0) grant.addOIDCScope(oidcScopes.join(' '))
    const grantId = await grant.save()
    audit(
      det,
      'allow',
      `granted ${plan.flatMap((p) => p.granted).join(' ') || '(no scope)'}`,
      accountId,
    )
    if (o.signedIn) return finishWith(c, { consent: { grantId } })
    return finishWith(c, {
      login: { accountId, ts: Math.floor(Date.now() / 1000) },
      consent: { grantId },
    })
  }

  app.get(`${INTERACTION_PREFIX}:uid`, async (c) => {
    const det = await details(c)
    if (det instanceof Response) return det
    const client = await d.provider.Client.find(String(det.params.client_id))
    if (client === undefined)
      return html(
        400,
        messagePage('Unknown application', 'The application that sent you here is not registered.'),
      )
    // The gateway's own account page is not a third party: the user signs in (or is signed in
    // already) and nothing is delegated, so there is nothing to consent to.
    if (d.firstPartyId !== undefined && client.clientId === d.firstPartyId) {
      return det.prompt.name === 'consent' && det.session?.accountId
        ? decide(c, det, det.session.accountId, { signedIn: true })
        : toUpstream(c, det)
    }
    // Remembered consent: a grant this browser's user gave this client covers the request;
    // only the upstream login is due again. Never for a redirect to this device (RFC 8252
    // §8.6, provider.ts askedEveryTime): any program can claim a loopback port or an app
    // scheme, and the upstream's single sign-on asks nobody; the page is what keeps a code
    // from going where no person sent it.
    if (
      det.prompt.name === 'login' &&
      broker.consent.remember &&
      !askedEveryTime(det.params.redirect_uri) &&
      det.grantId &&
      (await covers(d.provider, det))
    )
      return toUpstream(c, det)
    const redirect = URL.parse(String(det.params.redirect_uri))
    const resources = [det.params.resource].flat().filter((r): r is string => typeof r === 'string')
    const servers = [...new Set(resources.flatMap((r) => d.resources.serversOf(r)))]
    const clientId = client.clientId
    // A step-up: the person checks who they are signed in as, so name them as they know
    // themselves (the subject is the upstream's opaque object id).
    const signedIn =
      det.prompt.name === 'consent' && det.session?.accountId ? det.session.accountId : undefined
    const account = signedIn === undefined ? undefined : await d.accounts.find(signedIn)
    return html(
      200,
      consentPage({
        clientName: client.clientName,
        clientId,
        documentHost: clientId.startsWith('https://') ? new URL(clientId).host : undefined,
        redirectHost:
          redirect?.protocol === 'http:' || redirect?.protocol === 'https:'
            ? redirect.host
            : `${redirect?.protocol ?? ''}//`,
        redirectLocal:
          redirect === null ||
          !(
            redirect.protocol === 'https:' &&
            !['localhost', '127.0.0.1', '[::1]'].includes(redirect.hostname)
          ),
        servers: servers.map((name) => ({
          name,
          description: d.config.servers[name]?.description,
        })),
        scopes: requestedScopes(det).filter((s) => !OIDC_SCOPES.has(s)),
        user: signedIn === undefined ? undefined : (account?.email ?? account?.name ?? signedIn),
        csrf: csrfOf(det.uid),
        action: {
          approve: `${INTERACTION_PREFIX}${det.uid}/approve`,
          deny: `${INTERACTION_PREFIX}${det.uid}/deny`,
        },
      }),
    )
  })

  app.post(`${INTERACTION_PREFIX}:uid/approve`, async (c) => {
    const det = await details(c)
    if (det instanceof Response) return det
    if (!csrfOk(det.uid, (await form(c))?.csrf))
      return html(
        403,
        messagePage('Request refused', 'The form did not come from this sign-in page.'),
      )
    // A consent on the browser's session is no login: the session keeps its upstream login's
    // time, or approving a page now and then would keep a user the upstream disabled getting
    // codes past every re-check (mcp_edge_stale_login).
    if (det.prompt.name === 'consent' && det.session?.accountId)
      return decide(c, det, det.session.accountId, { signedIn: true })
    return toUpstream(c, det)
  })

  app.post(`${INTERACTION_PREFIX}:uid/deny`, async (c) => {
    const det = await details(c)
    if (det instanceof Response) return det
    if (!csrfOk(det.uid, (await form(c))?.csrf))
      return html(
        403,
        messagePage('Request refused', 'The form did not come from this sign-in page.'),
      )
    audit(det, 'deny', 'denied by the user', det.session?.accountId)
    return finishWith(c, {
      error: 'access_denied',
      error_description: 'the user denied the request',
    })
  })

  app.get(UPSTREAM_CALLBACK_PATH, async (c) => {
    const state = c.req.query('state')
    const tx = parseRecord<{ uid: string; tx: UpstreamTx; binding: string }>(
      state ? await d.store.take(`broker:tx:${state}`) : undefined,
      'sign-in transaction',
      TX,
      d.log,
    )
    if (tx === undefined)
      return html(
        400,
        messagePage(
          'This sign-in has expired',
          'The sign-in was already completed, or left too long. Start again from your application.',
        ),
      )
    const binding = getCookie(c, bindingCookie)
    deleteCookie(c, bindingCookie, { path: secure ? '/' : UPSTREAM_CALLBACK_PATH, secure })
    // FastMCP GHSA-rww4-4w9c-7733: the browser that approved must be the one coming back.
    if (binding === undefined || !safeEqual(sha256(binding), tx.binding)) {
      d.log.warn(
        { uid: tx.uid },
        'an upstream callback came back to another browser than the one that approved; refused',
      )
      return html(
        403,
        messagePage(
          'Sign-in refused',
          'This sign-in was started in another browser. Start again from your application, in this browser.',
        ),
      )
    }
    const callback = new URL(`${d.issuer.replace(/\/$/, '')}${UPSTREAM_CALLBACK_PATH}`)
    callback.search = new URL(c.req.url).search
    let identity: UpstreamIdentity
    try {
      identity = await d.upstream.finish(callback, tx.tx)
    } catch (err) {
      const safe =
        err instanceof GatewayError && err.expose
          ? err.message
          : 'the identity provider did not confirm the sign-in'
      d.log.info(
        { code: (err as { code?: string }).code, reason: (err as Error).message },
        'upstream login refused',
      )
      return html(403, messagePage('Sign-in failed', safe))
    }
    const account = await d.accounts.login(identity)
    const token = randomBytes(24).toString('base64url')
    await d.store.set(
      `broker:finish:${token}`,
      JSON.stringify({ uid: tx.uid, accountId: account.sub }),
      { ttlMs: loginTtlMs },
    )
    return c.redirect(`${INTERACTION_PREFIX}${tx.uid}/finish?t=${token}`, 303)
  })

  app.get(`${INTERACTION_PREFIX}:uid/finish`, async (c) => {
    const det = await details(c)
    if (det instanceof Response) return det
    const t = c.req.query('t')
    const rec = parseRecord<Handoff>(
      t ? await d.store.take(`broker:finish:${t}`) : undefined,
      'sign-in handoff',
      HANDOFF,
      d.log,
    )
    if (rec === undefined || rec.uid !== det.uid)
      return html(
        400,
        messagePage('This sign-in has expired', 'Start again from your application.'),
      )
    return decide(c, det, rec.accountId)
  })

  app.post(`${INTERACTION_PREFIX}:uid/finish`, async (c) => {
    const det = await details(c)
    if (det instanceof Response) return det
    const body = await form(c)
    if (!csrfOk(det.uid, body?.csrf))
      return html(
        403,
        messagePage('Request refused', 'The form did not come from this sign-in page.'),
      )
    const rec = parseRecord<DecideRecord>(
      typeof body?.t === 'string' ? await d.store.take(`broker:decide:${body.t}`) : undefined,
      'sign-in handoff',
      DECIDE,
      d.log,
    )
    if (rec === undefined || rec.uid !== det.uid)
      return html(
        400,
        messagePage('This sign-in has expired', 'Start again from your application.'),
      )
    if (body?.choice !== 'continue') {
      audit(det, 'deny', 'cancelled: a role is missing', rec.accountId)
      return finishWith(c, {
        error: 'access_denied',
        error_description: 'the user lacks a role for the requested scope',
      })
    }
    const account = await d.accounts.find(rec.accountId)
    const plan = scopePlan(det, d.resources, d.policy.current, account?.roles ?? [])
    if (plan.every((p) => p.granted.length === 0))
      return finishWith(c, {
        error: 'access_denied',
        error_description: 'the user lacks a role for the requested scope',
      })
    return complete(c, det, rec.accountId, plan, { signedIn: rec.signedIn === true })
  })
}

interface ScopePlan {
  resource: string
  granted: string[]
  missing: string[]
}

/**
 * Per resource asked for: the scopes asked (the server's `access` scopes when none were),
 * split into those the user's roles grant and those they do not.
 */
function scopePlan(
  det: Details,
  resources: Resources,
  policy: PolicyStore['current'],
  roles: readonly string[],
): ScopePlan[] {
  const asked = requestedScopes(det)
  return [det.params.resource]
    .flat()
    .filter((r): r is string => typeof r === 'string')
    .map((resource) => {
      // An endpoint's resource speaks for its backends: their scopes together.
      const servers = resources.serversOf(resource)
      const vocabulary = new Set(serverScopes(policy, servers))
      const wanted = asked.filter((s) => vocabulary.has(s))
      const effective =
        wanted.length > 0
          ? wanted
          : [...new Set(servers.flatMap((server) => policy.servers.get(server)?.access ?? []))]
      const grantable = new Set(grantableScopes(policy, servers, roles))
      return {
        resource,
        granted: effective.filter((s) => grantable.has(s)),
        missing: effective.filter((s) => !grantable.has(s)),
      }
    })
}

function requestedScopes(det: Details): string[] {
  return [
    ...new Set(
      String(det.params.scope ?? '')
        .split(' ')
        .filter((s) => s !== ''),
    ),
  ]
}

/**
 * Whether the grant found for this client already holds every scope asked, for every resource,
 * and was approved for each: a resource it was never approved for (asked with no scope of its
 * own, `scope=openid`) is not covered, else the login went on to grant it with no page shown.
 */
async function covers(provider: Provider, det: Details): Promise<boolean> {
  const grant = await provider.Grant.find(det.grantId!)
  if (grant === undefined) return false
  const asked = requestedScopes(det).filter((s) => !OIDC_SCOPES.has(s))
  return [det.params.resource].flat().every((r) => {
    if (typeof r !== 'string') return false
    const held = heldFor(grant, r)
    return held.approved && asked.every((s) => held.scopes.has(s))
  })
}

/**
 * Ends the browser's session an interaction started on, and unties the interaction from it:
 * oidc-provider then resumes on a new session (the session cookie finds no record).
 */
async function endSession(provider: Provider, det: Details): Promise<void> {
  const id = det.session?.cookie
  const session = id ? await provider.Session.find(id) : undefined
  await session?.destroy()
  const interaction = await provider.Interaction.find(det.uid)
  if (interaction?.session === undefined) return
  delete interaction.session
  await interaction.save(interaction.exp - Math.floor(Date.now() / 1000))
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url')
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
