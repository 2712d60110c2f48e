import type { Context } from 'hono'
import type { Store } from '../store/store.js'
import { countInWindow, type WindowRefusal } from './addresses.js'
import { messagePage, PAGE_HEADERS } from './consent-page.js'
import { isStoreOutage, storeUnavailablePage } from './errors.js'

/**
 * The bound on sign-in steps that store state for anyone who asks: an authorization request
 * (oidc-provider stores an Interaction) and a trip to the upstream IdP (a login transaction),
 * each living `loginTtl`. Neither needs a credential, so without a bound one client could fill
 * the memory store (`store.maxKeys`: then nobody signs in or refreshes) or grow Redis. Counted
 * per address (an IPv6 /64, as registrations are), per IPv6 /48 (one person's delegation holds
 * many /64s) and in all, in the store, so replicas share the counts; past any bound the step is
 * refused with a page and `429 Retry-After`.
 */

/**
 * Sign-in steps are counted in fixed windows of this length, in ms. Not a setting: the
 * operator's bounds are `perAddressPerMinute`, `perNetworkPerMinute` and `perMinute`, whose
 * names fix the window.
 */
export const SIGN_IN_WINDOW_MS = 60_000

export interface SignInGuardOptions {
  store: Store
  /** Steps one address (an IPv6 /64) may start per window. */
  perAddressPerMinute: number
  /** Steps one IPv6 /48 may start per window, its /64s together. */
  perNetworkPerMinute: number
  /** Steps every address together may start per window (what one address was refused is not counted). */
  perMinute: number
  /** The client's address, as the broker trusts it (the socket's, or a trusted proxy's header). */
  peer: (c: Context) => string | undefined
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number
}

/** A refused step: whose bound, and whole seconds to the next window. */
export type SignInRefusal = WindowRefusal

/**
 * Counts one sign-in step from `peer`; resolves undefined when it may go on, else the refusal.
 * @throws StoreError when the store cannot count
 */
export function admitSignIn(
  o: Omit<SignInGuardOptions, 'peer'>,
  peer: string | undefined,
): Promise<SignInRefusal | undefined> {
  const bounds = {
    perAddress: o.perAddressPerMinute,
    perNetwork: o.perNetworkPerMinute,
    perAll: o.perMinute,
  }
  const count = { store: o.store, kind: 'broker:sign-in', windowMs: SIGN_IN_WINDOW_MS, bounds }
  return countInWindow(count, peer, (o.now ?? Date.now)())
}

/** The page a refused step gets: `429` with `Retry-After`, or `503` while the store is down. */
function refusalPage(refusal: SignInRefusal | 'outage'): Response {
  if (refusal === 'outage') return storeUnavailablePage()
  const why =
    refusal.bound !== 'all'
      ? 'Too many sign-ins were started from your network in the last minute.'
      : 'Too many sign-ins are being started right now.'
  const body = messagePage(
    'Too many sign-ins',
    `${why} Try again in ${refusal.retryAfterS} seconds.`,
  )
  const headers = new Headers(PAGE_HEADERS)
  headers.set('retry-after', String(refusal.retryAfterS))
  return new Response(body, { status: 429, headers })
}

/**
 * A check for the routes that start a sign-in step: resolves the refusal page, or undefined
 * when the step may go on. Other store failures propagate to the app's error handler.
 */
export function signInGuard(o: SignInGuardOptions) {
  return async function guardSignIn(c: Context): Promise<Response | undefined> {
    try {
      const refused = await admitSignIn(o, o.peer(c))
      return refused === undefined ? undefined : refusalPage(refused)
    } catch (err) {
      if (isStoreOutage(err)) return refusalPage('outage')
      throw err
    }
  }
}

/**
 * Whether a request to oidc-provider is an authorization request, as its router matches one
 * (lib/helpers/router.js): GET (and so HEAD) or POST, the path in any case, one trailing slash
 * allowed. `path` is the request's path and query, relative to the issuer.
 */
export function startsSignIn(method: string, path: string, authorization: string): boolean {
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') return false
  const bare = path.split('?')[0]!
  const trimmed = bare.length > 1 && bare.endsWith('/') ? bare.slice(0, -1) : bare
  return trimmed.toUpperCase() === authorization.toUpperCase()
}
