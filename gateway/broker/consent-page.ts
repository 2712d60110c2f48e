import { createHash } from 'node:crypto'

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

const CSS = `
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1d2126}
main{max-width:34rem;margin:0 auto;padding:1.5rem 1rem}
.card{background:#fff;border:1px solid #d8dce2;border-radius:10px;padding:1.25rem 1.25rem 1rem}
h1{font-size:1.3rem;margin:0 0 .75rem}
.host{font-size:1.4rem;font-weight:600;word-break:break-all;margin:.25rem 0 .75rem}
.muted{color:#5b636e;font-size:.9rem}
.warn{background:#fff4e5;border:1px solid #f0b35a;border-radius:8px;padding:.6rem .75rem;margin:.75rem 0}
ul{padding-left:1.2rem;margin:.25rem 0 .75rem}
code{font-size:.95em;background:#eef0f3;padding:0 .25em;border-radius:4px;overflow-wrap:anywhere}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1rem}
button{font:inherit;padding:.65rem 1.2rem;border-radius:8px;border:1px solid #9aa3ad;background:#fff;cursor:pointer;flex:1 1 8rem}
button.primary{background:#1f5fd1;border-color:#1f5fd1;color:#fff}
`.trim()

/** The `style-src` hash of the one stylesheet (CSP: no inline scripts or styles but this one). */
const CSS_HASH = `'sha256-${createHash('sha256').update(CSS).digest('base64')}'`

/**
 * Response headers of every page the broker shows a person: no framing (clickjacking), no
 * script at all, no caching, no referrer leaking the query to other sites.
 */
export const PAGE_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': `default-src 'none'; style-src ${CSS_HASH}; frame-ancestors 'none'; base-uri 'none'`,
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
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
  const servers = v.servers.map((s) => `<li><strong>${esc(s.name)}</strong>${s.description ? ` — ${esc(s.description)}` : ''}</li>`).join('')
  const scopes = v.scopes.length > 0 ? v.scopes.map((s) => `<li><code>${esc(s)}</code></li>`).join('') : '<li>basic access</li>'
  const user = v.user ? `<p class="muted">Signed in as <strong>${esc(v.user)}</strong>.</p>` : `<p class="muted">You will sign in with your organization's account next.</p>`
  return page(`Allow ${name}?`, `
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
</div>`)
}

/** The page that says a user's roles do not grant part (or all) of what the client asked. */
export function missingRolePage(v: MissingRoleView): string {
  const rows = [...v.missing].map(([scope, roles]) =>
    `<li><code>${esc(scope)}</code>: ${roles.length > 0 ? `needs the role ${roles.map((r) => `<code>${esc(r)}</code>`).join(' or ')}` : 'no role grants it'}</li>`).join('')
  const go = v.granted.length > 0
    ? `<form method="post" action="${esc(v.action)}"><input type="hidden" name="csrf" value="${esc(v.csrf)}"><input type="hidden" name="t" value="${esc(v.token)}"><input type="hidden" name="choice" value="continue"><button class="primary" type="submit">Continue with ${v.granted.map(esc).join(', ')}</button></form>`
    : ''
  return page('A role is missing', `
<h1>Your account lacks a role for this</h1>
<p><strong>${esc(v.user)}</strong> may not give <strong>${esc(v.clientName)}</strong>:</p>
<ul>${rows}</ul>
<p class="muted">Ask your administrator for the role at your organization's identity provider, then sign in again.</p>
<div class="actions">
<form method="post" action="${esc(v.action)}"><input type="hidden" name="csrf" value="${esc(v.csrf)}"><input type="hidden" name="t" value="${esc(v.token)}"><input type="hidden" name="choice" value="cancel"><button type="submit">Cancel</button></form>
${go}
</div>`)
}

/** A page that ends a sign-in with a reason and nothing to click but "close". */
export function messagePage(title: string, text: string, code?: string): string {
  const line = code === undefined ? esc(text) : `<code>${esc(code)}</code>${text ? `: ${esc(text)}` : ''}`
  return page(title, `<h1>${esc(title)}</h1><p>${line}</p><p class="muted">Close this page and start again from your application.</p>`)
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title><style>${CSS}</style></head><body><main><div class="card">${body}</div></main></body></html>`
}

/** HTML-escapes text for element content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`)
}
