import { randomBytes } from 'node:crypto'
import type { MissingSecret } from './resolve.js'

/** A URL-mode elicitation (MCP 2025-11-25 §Elicitation): the user is sent to a page, out of band. */
export interface UrlElicitation {
  mode: 'url'
  elicitationId: string
  url: string
  message: string
}

/** MCP's URLElicitationRequiredError (2025-11-25 and later): the request can run once these are done. */
export const URL_ELICITATION_REQUIRED = -32042

/**
 * The account page, pointed at the first secret `server` is missing. Below the public URL's
 * path (`https://host/base/account`), where the page is served: `new URL('/account', …)` would
 * drop the path and send the user to whatever else answers `/account` on that host.
 */
export function accountUrl(
  publicUrl: string,
  server: string,
  missing: readonly MissingSecret[],
): string {
  const url = new URL(publicUrl)
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/account`
  url.search = ''
  url.hash = ''
  url.searchParams.set('server', server)
  if (missing[0] !== undefined) url.searchParams.set('secret', missing[0].secret)
  return url.href
}

/** What the user is asked for, in one sentence: each missing secret by its description. */
export function missingMessage(server: string, missing: readonly MissingSecret[]): string {
  const what = missing
    .map((m) => (m.describe ? `${m.describe} (${m.secret})` : `the secret ${m.secret}`))
    .join(' and ')
  return `${server} needs ${what}, which you have not set`
}

/**
 * The URL elicitation asking the user to set what `server` is missing. `waits`: an
 * `elicitation/create` while the request waits for it; `retry`: in URLElicitationRequiredError
 * (-32042), after which the request is over and the client sends it again.
 */
export function urlElicitation(
  publicUrl: string,
  server: string,
  missing: readonly MissingSecret[],
  then: 'waits' | 'retry' = 'waits',
): UrlElicitation {
  return {
    mode: 'url',
    elicitationId: randomBytes(12).toString('base64url'),
    url: accountUrl(publicUrl, server, missing),
    message: `${missingMessage(server, missing)}. Set it on your account page; ${then === 'waits' ? 'the request continues once it is set' : 'then try again'}.`,
  }
}

/** The text of a tool error for clients that cannot be sent to a page: it names the page. */
export function missingToolText(
  publicUrl: string,
  server: string,
  missing: readonly MissingSecret[],
): string {
  return `${missingMessage(server, missing)}. Set it at ${accountUrl(publicUrl, server, missing)} and try again.`
}
