import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { Context } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import type { Sealer } from '../store/sealed.js'
import type { Store } from '../store/store.js'

/** Who the account page is signed in as, for how long, and the token its forms must carry. */
export interface PageSession {
  /** This session's id: signing out marks it ended in the store, so a copied cookie ends too. */
  sid: string
  iss: string
  sub: string
  /** CSRF token of this session: every form carries it; another session's does not match. */
  csrf: string
  /** Expiry, epoch ms. */
  exp: number
}

/** A sign-in at the broker in progress, kept by the browser that started it. */
export interface LoginTx {
  state: string
  nonce: string
  verifier: string
  /** Expiry, epoch ms. */
  exp: number
  /** Where the page goes back to: the credential a link asked for. */
  server?: string
  secret?: string
}

/** A cookie's name, path and whether it needs https. */
export interface CookieSpec {
  name: string
  path: string
  secure: boolean
}

/**
 * The page's cookies for a public URL: on https `__Host-` cookies (Secure, Path=/, no
 * Domain: no other host or plain-http page can set them); on http (loopback) plain ones
 * limited to the account page's path.
 */
export function accountCookies(publicUrl: string): { session: CookieSpec; login: CookieSpec } {
  const url = new URL(publicUrl)
  const base = url.pathname.replace(/\/$/, '')
  const secure = url.protocol === 'https:'
  return secure
    ? {
        session: { name: '__Host-mcp_edge_account', path: '/', secure },
        login: { name: '__Host-mcp_edge_account_login', path: '/', secure },
      }
    : {
        session: { name: 'mcp_edge_account', path: `${base}/account`, secure },
        login: { name: 'mcp_edge_account_login', path: `${base}/account/callback`, secure },
      }
}

// What each cookie is sealed under: a value sealed for one purpose (or a store record) never
// opens as another.
const SESSION_AAD = 'mcp-edge account page session'
const LOGIN_AAD = 'mcp-edge account page sign-in'

/**
 * The account page's session and sign-in cookies: sealed (AES-256-GCM with the gateway's
 * sealing keys, so replicas open each other's), HttpOnly, SameSite=Lax, short-lived. Expiry is
 * checked inside the sealed value against the injected clock, not left to the browser; a
 * session signed out is remembered as ended in the shared store until it would have expired.
 */
export class PageSessions {
  private readonly cookies: { session: CookieSpec; login: CookieSpec }

  constructor(
    private readonly o: {
      sealer: Sealer
      store: Store
      publicUrl: string
      sessionTtlS: number
      loginTtlS: number
      now: () => number
    },
  ) {
    this.cookies = accountCookies(o.publicUrl)
  }

  /** The request's session, if it has one that opens, has not expired and was not signed out. */
  async read(c: Context): Promise<PageSession | undefined> {
    const s = this.open<PageSession>(c, this.cookies.session, SESSION_AAD)
    if (
      !s ||
      typeof s.sid !== 'string' ||
      typeof s.iss !== 'string' ||
      typeof s.sub !== 'string' ||
      typeof s.csrf !== 'string'
    )
      return undefined
    return (await this.o.store.get(endedKey(s.sid))) === undefined ? s : undefined
  }

  /** Starts a session for (iss, sub) with a fresh CSRF token. */
  start(c: Context, iss: string, sub: string): PageSession {
    const session: PageSession = {
      sid: random(),
      iss,
      sub,
      csrf: random(),
      exp: this.o.now() + this.o.sessionTtlS * 1000,
    }
    this.write(c, this.cookies.session, SESSION_AAD, session, this.o.sessionTtlS)
    return session
  }

  /** Clears the session cookie; with `session`, ends that session for good (sign out). */
  async end(c: Context, session?: PageSession): Promise<void> {
    this.clear(c, this.cookies.session)
    const left = session === undefined ? 0 : session.exp - this.o.now()
    if (session !== undefined && left > 0)
      await this.o.store.set(endedKey(session.sid), '1', { ttlMs: Math.ceil(left) })
  }

  /** Whether a form's token is this session's. */
  csrfOk(session: PageSession, token: unknown): boolean {
    if (typeof token !== 'string') return false
    const a = Buffer.from(session.csrf)
    const b = Buffer.from(token)
    return a.length === b.length && timingSafeEqual(a, b)
  }

  /** Keeps a sign-in in progress in this browser. */
  beginLogin(c: Context, tx: Omit<LoginTx, 'exp'>): void {
    this.write(
      c,
      this.cookies.login,
      LOGIN_AAD,
      { ...tx, exp: this.o.now() + this.o.loginTtlS * 1000 },
      this.o.loginTtlS,
    )
  }

  /** The sign-in this browser started, once: the cookie is cleared whatever it held. */
  takeLogin(c: Context): LoginTx | undefined {
    const tx = this.open<LoginTx>(c, this.cookies.login, LOGIN_AAD)
    if (getCookie(c, this.cookies.login.name) !== undefined) this.clear(c, this.cookies.login)
    return tx &&
      typeof tx.state === 'string' &&
      typeof tx.verifier === 'string' &&
      typeof tx.nonce === 'string'
      ? tx
      : undefined
  }

  private open<T extends { exp: number }>(
    c: Context,
    spec: CookieSpec,
    aad: string,
  ): T | undefined {
    const raw = getCookie(c, spec.name)
    // RFC 6265 §6.1: browsers keep cookies up to 4096 bytes; a longer one is not ours.
    if (raw === undefined || raw.length > 4096) return undefined
    let value: T
    try {
      value = JSON.parse(this.o.sealer.open(raw, aad)) as T
    } catch {
      // Forged, sealed under a removed key, or for another purpose: as if absent.
      return undefined
    }
    return typeof value?.exp === 'number' && value.exp > this.o.now() ? value : undefined
  }

  private write(c: Context, spec: CookieSpec, aad: string, value: object, maxAgeS: number): void {
    setCookie(c, spec.name, this.o.sealer.seal(JSON.stringify(value), aad), {
      path: spec.path,
      httpOnly: true,
      secure: spec.secure,
      sameSite: 'Lax',
      maxAge: maxAgeS,
    })
  }

  private clear(c: Context, spec: CookieSpec): void {
    deleteCookie(c, spec.name, {
      path: spec.path,
      secure: spec.secure,
      httpOnly: true,
      sameSite: 'Lax',
    })
  }
}

function endedKey(sid: string): string {
  return `account:ended:${sid}`
}

function random(): string {
  return randomBytes(32).toString('base64url')
}
