import { esc, page } from '../http/page.js'
import type { AccountNeeds, CredentialNeed, ServerNeeds } from './needs.js'

/** What the account page shows a signed-in user. */
export interface AccountView {
  /** The path the page is under (the public URL's path), for links and form actions. */
  base: string
  /** Who is signed in, as they know themselves. */
  user: string
  needs: AccountNeeds
  csrf: string
  /** The credential a link asked for (`?server=&secret=`), when it is one this user sets. */
  wanted?: { server: string; secret: string }
  /** A link asked for a credential this user cannot set here. */
  unmatched?: boolean
  /** A line confirming what was just done. */
  notice?: string
  /** Longest secret value accepted (`credentials.secretMaxLength`), the form's maxlength. */
  maxLength: number
}

/**
 * The account page: who is signed in, the servers they may use and what each needs from them
 * (secrets they set, with a form to set or replace and one to delete each; credentials the
 * gateway supplies), and what the gateway holds for them: names and dates, never a value.
 * Server-rendered, no script, readable on a phone.
 */
export function accountPage(v: AccountView): string {
  const wanted =
    v.wanted &&
    v.needs.servers
      .find((s) => s.name === v.wanted!.server)
      ?.credentials.find((c) => c.kind === 'secret' && c.secret === v.wanted!.secret)
  const banner =
    wanted?.kind === 'secret'
      ? `<div class="warn"><strong>${esc(v.wanted!.server)}</strong> needs ${esc(wanted.describe ?? `the secret ${wanted.secret}`)}; set it, then return to your application.</div>`
      : v.unmatched
        ? '<div class="warn">The link you followed asks for a credential that no server you may use takes.</div>'
        : ''
  const servers =
    v.needs.servers.length > 0
      ? v.needs.servers.map((s) => serverSection(v, s)).join('')
      : '<p>No server of this gateway is open to you: your roles grant none.</p>'
  return page(
    'Your credentials',
    `
<h1>Your credentials</h1>
<div class="row"><span class="muted">Signed in as <strong>${esc(v.user)}</strong></span>
<form method="post" action="${esc(v.base)}/account/logout">${csrf(v.csrf)}<button type="submit">Sign out</button></form></div>
${v.notice ? `<div class="note">${esc(v.notice)}</div>` : ''}
${banner}
${servers}
${heldSection(v)}`,
  )
}

function serverSection(v: AccountView, s: ServerNeeds): string {
  const head = `<h2>${esc(s.name)}</h2>${s.description ? `<p class="muted">${esc(s.description)}</p>` : ''}`
  if (s.credentials.length === 0)
    return `<section>${head}<p class="muted">Needs nothing from you.</p></section>`
  return `<section>${head}<ul class="plain">${s.credentials.map((c) => credential(v, s.name, c)).join('')}</ul></section>`
}

function credential(v: AccountView, server: string, c: CredentialNeed): string {
  if (c.kind === 'exchange') {
    const target = c.audience ?? c.resource ?? ''
    return `<li class="cred"><strong>Supplied automatically</strong> <code>${esc(c.env)}</code><div class="muted">Exchanged at your identity provider for <code>${esc(target)}</code> whenever it is needed.</div></li>`
  }
  if (c.kind === 'upstreamToken') {
    const at = c.upstream ? ` at <strong>${esc(c.upstream)}</strong>` : ''
    const held =
      c.held === true
        ? ' The gateway holds one for you.'
        : c.held === false
          ? ' The gateway holds none now: sign in again from your application.'
          : ''
    return `<li class="cred"><strong>Supplied automatically</strong> <code>${esc(c.env)}</code><div class="muted">From your sign-in${at}.${held}</div></li>`
  }
  const isWanted = v.wanted?.server === server && v.wanted.secret === c.secret
  const id = `value-${server}-${c.secret}`
  const fields = `${csrf(v.csrf)}<input type="hidden" name="name" value="${esc(c.secret)}"><input type="hidden" name="server" value="${esc(server)}">`
  const status =
    c.setAt === undefined
      ? '<div class="muted">Not set</div>'
      : `<div class="muted">Set on ${date(c.setAt)}; ${expires(c.expiresAt ?? null)}</div>`
  const remove =
    c.setAt === undefined
      ? ''
      : `<form method="post" action="${esc(v.base)}/account/secrets/delete">${fields}<div class="row"><button type="submit">Delete</button></div></form>`
  return `<li class="cred${isWanted ? ' needed' : ''}" id="${esc(`secret-${server}-${c.secret}`)}">
<strong>${esc(c.describe ?? c.secret)}</strong>${c.describe ? ` <code>${esc(c.secret)}</code>` : ''}
${status}
<form method="post" action="${esc(v.base)}/account/secrets">${fields}
<label for="${esc(id)}">${c.setAt === undefined ? 'Value' : 'A new value'}</label>
<input type="password" id="${esc(id)}" name="value" autocomplete="off" required maxlength="${v.maxLength}">
<div class="row"><button class="primary" type="submit">${c.setAt === undefined ? 'Set' : 'Replace'}</button></div></form>
${remove}</li>`
}

function heldSection(v: AccountView): string {
  const rows = v.needs.held
    .map((s) => {
      // A secret no server of theirs takes any more can still be deleted here.
      const orphan = !v.needs.settable.has(s.name)
      const remove = orphan
        ? `<form method="post" action="${esc(v.base)}/account/secrets/delete">${csrf(v.csrf)}<input type="hidden" name="name" value="${esc(s.name)}"><div class="row"><span class="muted">No server you may use takes it.</span><button type="submit">Delete</button></div></form>`
        : ''
      return `<li class="cred"><code>${esc(s.name)}</code> <span class="muted">set on ${date(s.setAt)}; ${expires(s.expiresAt)}</span>${remove}</li>`
    })
    .join('')
  return `<h2>What the gateway holds for you</h2>
${rows ? `<ul class="plain">${rows}</ul>` : '<p>No secrets.</p>'}
<p class="muted">Values are never shown again: they go only to the processes of your servers, sealed at rest.</p>`
}

/** The page before signing in (or after signing out, or once the session ended). */
export function signInPage(
  base: string,
  o: { query: string; signedOut?: boolean; ended?: boolean },
): string {
  return page(
    'Sign in',
    `
<h1>Your credentials</h1>
${o.signedOut ? '<div class="note">You are signed out of this page.</div>' : ''}
${o.ended ? '<div class="warn">Your session on this page has ended; sign in again.</div>' : ''}
<p>Some servers of this gateway need a credential of yours, such as an API token, that only you can set. Sign in to see which, and to set them.</p>
<div class="actions"><a class="button primary" href="${esc(base)}/account/login${o.query ? `?${esc(o.query)}` : ''}">Sign in</a></div>
<p class="muted">You sign in with your organization's account, as in your applications.</p>`,
  )
}

/** Without the broker, the page cannot sign anyone in: how to use the API and the command line instead. */
export function apiOnlyPage(publicUrl: string): string {
  return page(
    'Your credentials',
    `
<h1>Your credentials</h1>
<p>This gateway does not sign people in itself: your applications get their tokens from your identity provider. Set the credentials your servers need from the command line or the API, with an access token of yours for any server of this gateway:</p>
<ul>
<li><code>MCP_EDGE_TOKEN=… mcp-edge secrets list --url ${esc(publicUrl)}</code></li>
<li><code>mcp-edge secrets set NAME --url ${esc(publicUrl)}</code> (reads the value from standard input)</li>
<li><code>curl -H "Authorization: Bearer $TOKEN" ${esc(publicUrl)}/account/api</code></li>
</ul>`,
  )
}

/** The confirmation after a secret was set (the POST's redirect target). */
export function savedPage(
  base: string,
  o: { name: string; setAt: number; expiresAt: number | null },
): string {
  return page(
    'Saved',
    `
<h1>Saved</h1>
<div class="note"><code>${esc(o.name)}</code> is set (on ${date(o.setAt)}; ${expires(o.expiresAt)}).</div>
<p>You can go back to your application now: it uses the new value from its next request.</p>
<div class="actions"><a class="button" href="${esc(base)}/account">Back to your credentials</a></div>`,
  )
}

/** A refusal: what happened, its code, and the way back (to the page, or to signing in). */
export function refusalPage(
  base: string,
  title: string,
  text: string,
  o: { signIn?: boolean; code?: string } = {},
): string {
  const back = o.signIn
    ? `<a class="button primary" href="${esc(base)}/account">Sign in again</a>`
    : `<a class="button" href="${esc(base)}/account">Back to your credentials</a>`
  const code = o.code ? `<p class="muted">Code <code>${esc(o.code)}</code></p>` : ''
  return page(
    title,
    `<h1>${esc(title)}</h1><p>${esc(text)}</p>${code}<div class="actions">${back}</div>`,
  )
}

function csrf(token: string): string {
  return `<input type="hidden" name="csrf" value="${esc(token)}">`
}

/**
 * When a secret expires unless used or set again (the store's time to live of its value), or
 * that it never does (`credentials.secretUnusedTtl` 0).
 */
function expires(ms: number | null): string {
  return ms === null ? 'never expires' : `expires on ${date(ms)} unless used`
}

/** A date a person reads (UTC, to the minute), with the exact instant in `datetime`. */
function date(ms: number): string {
  const iso = new Date(ms).toISOString()
  return `<time datetime="${iso}">${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC</time>`
}
