import type { Context, Next } from 'hono'
import type { Store } from '../store/store.js'
import { CLIENTS_SET } from './adapter.js'
import { countInWindow, type WindowRefusal } from './addresses.js'
import { RegistrationGuardError } from './client-errors.js'
import { isStoreOutage, storeUnavailableResponse } from './errors.js'

/**
 * The bounds of `POST /register` that oidc-provider has no setting for, checked before it
 * reads a byte of the body: a declared, bounded body size; registrations per minute per
 * address, per IPv6 /48 and in all; registered clients in all. The body stream is left
 * untouched for oidc-provider.
 */

/**
 * Registrations are counted in fixed windows of this length, in ms. Not a setting: the
 * operator's bounds are `perAddressPerMinute`, `perNetworkPerMinute` and `perMinute`, whose
 * names fix the window.
 */
export const REGISTRATION_WINDOW_MS = 60_000

export interface RegistrationGuardOptions {
  store: Store
  /** Largest registration body, in bytes (Content-Length). */
  maxBodyBytes: number
  /** Registered clients at most. */
  maxClients: number
  /** Registrations one address (an IPv6 /64) may make per window. */
  perAddressPerMinute: number
  /** Registrations one IPv6 /48 may make per window, its /64s together. */
  perNetworkPerMinute: number
  /**
   * Registrations every address together may make per window (what one address or /48 was
   * refused is not counted): registrations oidc-provider refuses add no client, so the client
   * cap alone does not bound their counters.
   */
  perMinute: number
  /** `Retry-After` when the client cap is reached, in s (unused clients expire slowly). */
  retryAfterWhenFull: number
  /**
   * Recounts the registered clients, forgetting those that expired, when the set says the cap
   * is reached (the adapter knows which still exist). Without it the set's size is the count.
   */
  recount?: () => Promise<number>
  /** The client's address, as the broker trusts it (the socket's, or a trusted proxy's header). */
  peer: (c: Context) => string | undefined
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number
}

/** Why a registration was refused `slow_down`, by the bound it met. */
const SLOW_DOWN: Record<WindowRefusal['bound'], string> = {
  address: 'too many registrations from this address; retry later',
  network: 'too many registrations from this network; retry later',
  all: 'too many registrations right now; retry later',
}

/**
 * Decides whether a registration request may reach oidc-provider; the peer counts one
 * attempt per call that gets past the header checks.
 * @throws RegistrationGuardError `length_required`, `bad_content_length`, `body_too_large`,
 * `slow_down`, `too_many_clients`
 */
export async function admitRegistration(
  o: RegistrationGuardOptions,
  headers: { contentLength: string | undefined; transferEncoding: string | undefined },
  peer: string | undefined,
): Promise<void> {
  // RFC 9112 §6.1: a chunked body has no length to check before reading it; demand one.
  if (headers.transferEncoding !== undefined || headers.contentLength === undefined) {
    throw new RegistrationGuardError(
      'length_required',
      'a registration request needs a Content-Length',
    )
  }
  // RFC 9110 §8.6: Content-Length = 1*DIGIT; anything else (two joined values, a sign) is not one.
  if (!/^\d+$/.test(headers.contentLength)) {
    throw new RegistrationGuardError(
      'bad_content_length',
      'Content-Length must be one decimal number',
    )
  }
  if (Number(headers.contentLength) > o.maxBodyBytes) {
    const why = `a registration request is at most ${o.maxBodyBytes} bytes`
    throw new RegistrationGuardError('body_too_large', why)
  }
  const bounds = {
    perAddress: o.perAddressPerMinute,
    perNetwork: o.perNetworkPerMinute,
    perAll: o.perMinute,
  }
  const count = {
    store: o.store,
    kind: 'broker:register',
    windowMs: REGISTRATION_WINDOW_MS,
    bounds,
  }
  const refused = await countInWindow(count, peer, (o.now ?? Date.now)())
  if (refused !== undefined)
    throw new RegistrationGuardError('slow_down', SLOW_DOWN[refused.bound], refused.retryAfterS)
  // A soft cap: concurrent registrations may each see room for one more. Expired clients
  // leave the set only when recounted, so a full set is recounted before it refuses.
  const full = (await o.store.scard(CLIENTS_SET)) >= o.maxClients
  if (full && (o.recount === undefined || (await o.recount()) >= o.maxClients)) {
    const why = 'this server holds as many client registrations as it accepts; retry later'
    throw new RegistrationGuardError('too_many_clients', why, o.retryAfterWhenFull)
  }
}

/** An RFC 7591 §3.2.2-style error response for a refused registration. */
export function registrationRefusal(err: RegistrationGuardError): Response {
  const headers = new Headers({ 'content-type': 'application/json', 'cache-control': 'no-store' })
  if (err.retryAfterS !== undefined) headers.set('retry-after', String(err.retryAfterS))
  // The unread body is not worth draining: close the connection after the answer.
  if (err.status === 411 || err.status === 413 || err.status === 400)
    headers.set('connection', 'close')
  const error = err.status === 429 ? err.code : 'invalid_request'
  const body = JSON.stringify({ error, error_description: err.message })
  return new Response(body, { status: err.status, headers })
}

/**
 * Hono middleware for `POST /register`: refuses with {@link registrationRefusal} what
 * {@link admitRegistration} refuses, else hands the untouched request on. A store outage is
 * a 503 temporarily_unavailable; other store failures propagate to the app's error handler.
 */
export function registrationGuard(o: RegistrationGuardOptions) {
  return async function guardRegistration(c: Context, next: Next): Promise<Response | void> {
    try {
      const headers = {
        contentLength: c.req.header('content-length'),
        transferEncoding: c.req.header('transfer-encoding'),
      }
      await admitRegistration(o, headers, o.peer(c))
    } catch (err) {
      if (err instanceof RegistrationGuardError) return registrationRefusal(err)
      if (isStoreOutage(err)) return storeUnavailableResponse()
      throw err
    }
    await next()
  }
}
