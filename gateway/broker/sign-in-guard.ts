import type { Context } from 'hono'
import type { Store } from '../store/store.js'
import { addressWindow } from './addresses.js'
import { messagePage, PAGE_HEADERS } from './consent-page.js'
import { isStoreOutage, storeUnavailablePage } from './errors.js'

/**
 * The bound on sign-in steps that store state for anyone who asks: an authorization request
 * (oidc-provider stores an Interaction) and a trip to the upstream IdP (a login transaction),
 * each living `loginTtl`. Neither needs a credential, so without a bound one client could fill
 * the memory store (`store.maxKeys`: then nobody signs in or refreshes) or grow Redis. Counted
 * per address (an IPv6 /64, as registrations are) and in all, in the store, so replicas share
 * the counts; past either bound the step is refused with a page and `429 Retry-After`.
 */

/**
 * Sign-in steps are counted in fixed windows of this length, in ms. Not a setting: the
 * operator's bounds are `perAddressPerMinute` and `perMinute`, whose names fix the window.
 */
export const SIGN_IN_WINDOW_MS = 60_000

export interface SignInGuardOptions {
  store: Store
  /** Steps one address (an IPv6 /64) may start per window. */
  perAddressPerMinute: number
  /** Steps every address together may start per window (what one address was refused is not counted). */
  perMinute: number
  /** The client's address, as the broker trusts it (the socket's, or a trusted proxy's header). */
  peer: (c: Context) => string | undefined
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number
}

/** A refused step: whose bound, and whole seconds to the next window. */
export interface SignInRefusal {
  bound: 'address' | 'all'
  retryAfterS: number
}

/**
 * Counts one sign-in step from `peer`; resolves undefined when it may go on, else the refusal.
 * @throws StoreError when the store cannot count
 */
export async function admitSignIn(
  o: Omit<SignInGuardOptions, 'peer'>,
  peer: string | undefined,
): Promise<SignInRefusal | undefined> {
  const now = (o.now ?? Date.now)()
  const { key, window, retryAfterS } = addressWindow('broker:sign-in', peer, now, SIGN_IN_WINDOW_MS)
  const allKey = `broker:sign-in:*:${window}`
  // Read before the address's count is made: past the bound in all, a new address stores no
  // counter either, so many addresses (an IPv6 /48 is 65,536 of them) cannot fill the store with
  // counters; a window holds at most about perMinute of them.
  if (Number((await o.store.get(allKey)) ?? 0) >= o.perMinute) return { bound: 'all', retryAfterS }
  const mine = await o.store.incr(key, SIGN_IN_WINDOW_MS)
  if (mine > o.perAddressPerMinute) return { bound: 'address', retryAfterS }
  // After the address's own bound: one address hammering spends its share, not everyone's.
  const all = await o.store.incr(allKey, SIGN_IN_WINDOW_MS)
  if (all > o.perMinute) return { bound: 'all', retryAfterS }
  return undefined
}

/** The page a refused step gets: `429` with `Retry-After`, or `503` while the store is down. */
function refusalPage(refusal: SignInRefusal | 'outage'): Response {
  if (refusal === 'outage') return storeUnavailablePage()
  const why =
    refusal.bound === 'address'
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
