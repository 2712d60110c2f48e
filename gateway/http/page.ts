import { createHash } from 'node:crypto'

/**
 * The one stylesheet of every page the gateway shows a person (the broker's consent and error
 * pages, the account page): a card on a grey page, readable on a phone, no script anywhere.
 */
const CSS = `
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1d2126;overflow-wrap:anywhere}
main{max-width:34rem;margin:0 auto;padding:1.5rem 1rem}
.card{background:#fff;border:1px solid #d8dce2;border-radius:10px;padding:1.25rem 1.25rem 1rem}
h1{font-size:1.3rem;margin:0 0 .75rem}
h2{font-size:1.1rem;margin:1.25rem 0 .25rem}
.host{font-size:1.4rem;font-weight:600;word-break:break-all;margin:.25rem 0 .75rem}
.muted{color:#5b636e;font-size:.9rem}
.warn{background:#fff4e5;border:1px solid #f0b35a;border-radius:8px;padding:.6rem .75rem;margin:.75rem 0}
.note{background:#eaf3ea;border:1px solid #8cc49a;border-radius:8px;padding:.6rem .75rem;margin:.75rem 0}
ul{padding-left:1.2rem;margin:.25rem 0 .75rem}
ul.plain{list-style:none;padding:0}
code{font-size:.95em;background:#eef0f3;padding:0 .25em;border-radius:4px;overflow-wrap:anywhere}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1rem}
button,.button{font:inherit;padding:.65rem 1.2rem;border-radius:8px;border:1px solid #9aa3ad;background:#fff;color:#1d2126;cursor:pointer;flex:1 1 8rem;text-align:center;text-decoration:none;display:inline-block;box-sizing:border-box}
button.primary,.button.primary{background:#1f5fd1;border-color:#1f5fd1;color:#fff}
.cred{border:1px solid #d8dce2;border-radius:8px;padding:.6rem .75rem;margin:.5rem 0}
.cred.needed{background:#fff4e5;border-color:#f0b35a}
label{display:block;font-size:.9rem;margin:.5rem 0 .25rem}
input[type=password]{font:inherit;width:100%;box-sizing:border-box;padding:.55rem .6rem;border:1px solid #9aa3ad;border-radius:8px}
.row{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center;margin-top:.5rem}
.row form{margin:0}
`.trim()

/** The `style-src` hash of the one stylesheet (CSP: no inline scripts or styles but this one). */
const CSS_HASH = `'sha256-${createHash('sha256').update(CSS).digest('base64')}'`

/**
 * Response headers of every page shown to a person: no framing (clickjacking), no script at
 * all, no caching, no referrer leaking the query to other sites. `csp` adds directives (the
 * account page: `form-action 'self'`; not the broker's, whose forms end in redirects to
 * clients). `referrer`: `same-origin` for a page whose own forms must carry their Origin
 * (Chromium sends `Origin: null` from a `no-referrer` page); nothing leaves the origin either way.
 */
export function pageHeaders(
  o: { csp?: string; referrer?: 'no-referrer' | 'same-origin' } = {},
): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': `default-src 'none'; style-src ${CSS_HASH}; frame-ancestors 'none'; base-uri 'none'${o.csp ? `; ${o.csp}` : ''}`,
    'x-frame-options': 'DENY',
    'cache-control': 'no-store',
    'referrer-policy': o.referrer ?? 'no-referrer',
    'x-content-type-options': 'nosniff',
  }
}

/** The headers of the broker's pages. */
export const PAGE_HEADERS: Record<string, string> = pageHeaders()

/** A whole page: `body` (HTML, already escaped) in the card. */
export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title><style>${CSS}</style></head><body><main><div class="card">${body}</div></main></body></html>`
}

/** HTML-escapes text for element content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** A page that ends a sign-in with a reason and nothing to click but "close". */
export function messagePage(title: string, text: string, code?: string): string {
  const line =
    code === undefined ? esc(text) : `<code>${esc(code)}</code>${text ? `: ${esc(text)}` : ''}`
  return page(
    title,
    `<h1>${esc(title)}</h1><p>${line}</p><p class="muted">Close this page and start again from your application.</p>`,
  )
}
