import { createHash } from 'node:crypto'

/** A configured dev IdP user: the `sub` of its tokens and the roles they carry. */
export interface DevUser {
  sub: string
  roles: string[]
}

const STYLE = `body{font:1rem/1.5 system-ui,sans-serif;margin:0;padding:1rem;color:#1a1a1a;
background:#f6f6f6}main{max-width:28rem;margin:2rem auto}h1{font-size:1.4rem}
code{overflow-wrap:anywhere}
button{display:block;width:100%;margin:.75rem 0;padding:1rem;font:inherit;text-align:left;
border:1px solid #888;border-radius:.5rem;background:#fff;cursor:pointer}
button:hover,button:focus{border-color:#0b57d0;outline:2px solid #0b57d0}
.sub{display:block;font-weight:600}.roles{display:block;color:#555;font-size:.9rem}
.note{color:#555;font-size:.9rem}`

/**
 * Response headers of the sign-in page: no framing (clickjacking would pick a user for you),
 * no scripts at all, the one stylesheet by hash, never cached, no referrer.
 */
export const SIGN_IN_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': `default-src 'none'; style-src 'sha256-${createHash('sha256')
    .update(STYLE)
    .digest('base64')}'; frame-ancestors 'none'; base-uri 'none'`,
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
}

/**
 * The "Sign in as" page: one POST form, a button per user showing its roles, and the
 * per-interaction `csrf` token as a hidden field. Works without JavaScript.
 */
export function signInPage(o: {
  action: string
  csrf: string
  users: readonly DevUser[]
  client: string
  scope: string
}): string {
  const buttons = o.users.map(
    (u) =>
      `<button type="submit" name="sub" value="${esc(u.sub)}">` +
      `<span class="sub">${esc(u.sub)}</span>` +
      `<span class="roles">${u.roles.length ? esc(u.roles.join(', ')) : 'no roles'}</span>` +
      '</button>',
  )
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in as - mcp-edge dev IdP</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>Sign in as</h1>
<p><b>${esc(o.client)}</b> asks for <code>${esc(o.scope || '(no scope)')}</code>.
It gets the scopes the chosen user's roles grant in the gateway's policy.</p>
<form method="post" action="${esc(o.action)}">
<input type="hidden" name="csrf" value="${esc(o.csrf)}">
${buttons.join('\n')}
</form>
<p class="note">mcp-edge development IdP: no passwords, for your own machine only.</p>
</main>
</body>
</html>
`
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
