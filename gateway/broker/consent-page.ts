import { esc, page } from '../http/page.js'

export { esc, messagePage, PAGE_HEADERS } from '../http/page.js'

/** What the consent page shows about one authorization request. */
export interface ConsentView {
  /** The client's name as it gave it (DCR: unverified) and its id. */
  clientName: string | undefined
  clientId: string
  /** For a Client ID Metadata Document client: the host that published it (verified by HTTPS). */
  documentHost: string | undefined
  /** Where the browser goes back: its host (shown large), and whether it is this device. */
  redirectHost: string
  redirectLocal: boolean
  /** The MCP servers asked for: their names and descriptions. */
  servers: { name: string; description: string | undefined }[]
  /** The scopes asked for. */
  scopes: string[]
  /** The signed-in user, when there is one already (a step-up). */
  user: string | undefined
  csrf: string
  action: { approve: string; deny: string }
}

/** A page that says which roles a user lacks for what the client asked. */
export interface MissingRoleView {
  user: string
  clientName: string
  /** Granted anyway (the rest is left out of the token). */
  granted: string[]
  /** Scope → roles of the policy that would grant it. */
  missing: Map<string, string[]>
  csrf: string
  action: string
  token: string
}

/**
 * The consent page (MCP security best practices for proxies: name the client, show the
 * redirect URI's host, the scopes, CSRF-protected, no framing). Server-rendered, works without
 * JavaScript, readable on a phone.
 */
export function consentPage(v: ConsentView): string {
  const name = v.clientName ? esc(v.clientName) : 'An application'
  const who = v.documentHost
    ? `<p class="muted">Published by <strong>${esc(v.documentHost)}</strong> (verified by its address).</p>`
    : `<p class="muted">The name is what the application says of itself; the gateway cannot verify it.</p>`
  const local = v.redirectLocal
    ? `<div class="warn"><strong>An application on this device</strong> will receive access. Continue only if you just started the sign-in from an application you trust: any program on this device can claim this name.</div>`
    : ''
  const servers = v.servers
    .map(
      (s) =>
        `<li><strong>${esc(s.name)}</strong>${s.description ? ` — ${esc(s.description)}` : ''}</li>`,
    )
    .join('')
  const scopes =
    v.scopes.length > 0
      ? v.scopes.map((s) => `<li><code>${esc(s)}</code></li>`).join('')
      : '<li>basic access</li>'
  const user = v.user
    ? `<p class="muted">Signed in as <strong>${esc(v.user)}</strong>.</p>`
    : `<p class="muted">You will sign in with your organization's account next.</p>`
  // page() escapes the title itself: the name goes in as it is, or the tab reads `&#60;`.
  return page(
    `Allow ${v.clientName || 'An application'}?`,
    `
<h1>Allow <span>${name}</span> to use these tools for you?</h1>
${who}
<p class="muted">Client id <code>${esc(v.clientId)}</code></p>
<p>After you decide, you go back to:</p>
<div class="host">${esc(v.redirectHost)}</div>
${local}
<p>It asks for:</p>
<ul>${servers}</ul>
<p>with the permissions:</p>
<ul>${scopes}</ul>
<p class="muted">You get at most what your roles allow, whatever is asked.</p>
${user}
<div class="actions">
<form method="post" action="${esc(v.action.deny)}"><input type="hidden" name="csrf" value="${esc(v.csrf)}"><button type="submit">Deny</button></form>
<form method="post" action="${esc(v.action.approve)}"><input type="hidden" name="csrf" value="${esc(v.csrf)}"><button class="primary" type="submit">Allow</button></form>
</div>`,
  )
}

/** The page that says a user's roles do not grant part (or all) of what the client asked. */
export function missingRolePage(v: MissingRoleView): string {
  const rows = [...v.missing]
    .map(
      ([scope, roles]) =>
        `<li><code>${esc(scope)}</code>: ${roles.length > 0 ? `needs the role ${roles.map((r) => `<code>${esc(r)}</code>`).join(' or ')}` : 'no role grants it'}</li>`,
    )
    .join('')
  const go =
    v.granted.length > 0
      ? `<form method="post" action="${esc(v.action)}"><input type="hidden" name="csrf" value="${esc(v.csrf)}"><input type="hidden" name="t" value="${esc(v.token)}"><input type="hidden" name="choice" value="continue"><button class="primary" type="submit">Continue with ${v.granted.map(esc).join(', ')}</button></form>`
      : ''
  return page(
    'A role is missing',
    `
<h1>Your account lacks a role for this</h1>
<p><strong>${esc(v.user)}</strong> may not give <strong>${esc(v.clientName)}</strong>:</p>
<ul>${rows}</ul>
<p class="muted">Ask your administrator for the role at your organization's identity provider, then sign in again.</p>
<div class="actions">
<form method="post" action="${esc(v.action)}"><input type="hidden" name="csrf" value="${esc(v.csrf)}"><input type="hidden" name="t" value="${esc(v.token)}"><input type="hidden" name="choice" value="cancel"><button type="submit">Cancel</button></form>
${go}
</div>`,
  )
}
