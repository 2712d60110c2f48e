// A scripted browser for the broker's login: follows redirects with one cookie jar (cookies of
// 127.0.0.1 are shared across ports, as in a real browser), answers the consent page and the
// missing-role page as told, and lets the upstream fixture sign its chosen user in.
import { type CookieJar, request } from './oauth-flow.js'

/** What the person does on each page. */
export interface Choices {
  consent?: 'allow' | 'deny'
  missingRole?: 'continue' | 'cancel'
}

/** Every page the browser saw on the way, in order (status and HTML). */
export interface Visit {
  url: string
  status: number
  html: string
}

/** A form on a page: where it posts and its hidden fields. */
export function forms(
  html: string,
): { action: string; fields: Record<string, string>; label: string }[] {
  const out: { action: string; fields: Record<string, string>; label: string }[] = []
  for (const m of html.matchAll(/<form method="post" action="([^"]+)">(.*?)<\/form>/gs)) {
    const fields: Record<string, string> = {}
    for (const f of m[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
      fields[f[1]!] = unescape(f[2]!)
    const label = /<button[^>]*>(.*?)<\/button>/s.exec(m[2]!)?.[1] ?? ''
    out.push({ action: unescape(m[1]!), fields, label })
  }
  return out
}

function unescape(s: string): string {
  return s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
}

/**
 * Runs a login from the client's authorization URL until the browser is sent to
 * `redirectUri`; returns that URL (with code, state and iss, or an error) and the pages seen.
 * Throws when a page needs a choice it was not given, or the trip goes on too long.
 */
export async function brokerLogin(
  start: string,
  o: { redirectUri: string; choices?: Choices; jar?: CookieJar },
): Promise<{ callback: URL; visits: Visit[] }> {
  const jar = o.jar ?? new Map<string, string>()
  const choices = o.choices ?? { consent: 'allow' }
  const visits: Visit[] = []
  let url = start
  let form: Record<string, string> | undefined
  for (let hop = 0; hop < 30; hop++) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await request(
      url,
      form
        ? {
            method: 'POST',
            body: new URLSearchParams(form).toString(),
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              ...(cookie ? { cookie } : {}),
            },
          }
        : { headers: cookie ? { cookie } : {} },
    )
    form = undefined
    for (const line of [res.headers['set-cookie'] ?? []].flat()) {
      const [pair] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line) || value === '') jar.delete(name)
      else jar.set(name, value)
    }
    const html = await res.body.text()
    visits.push({ url, status: res.statusCode, html })
    const location = res.headers.location
    if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
      const next = new URL(location, url)
      if (next.href.startsWith(o.redirectUri)) return { callback: next, visits }
      url = next.href
      continue
    }
    const page = forms(html)
    if (
      res.statusCode === 200 &&
      page.length === 2 &&
      page.some((f) => f.action.endsWith('/approve'))
    ) {
      if (!choices.consent) throw new Error('the consent page was shown but no choice was given')
      const chosen = page.find((f) =>
        f.action.endsWith(choices.consent === 'allow' ? '/approve' : '/deny'),
      )!
      url = new URL(chosen.action, url).href
      form = chosen.fields
      continue
    }
    if (page.some((f) => f.fields.choice !== undefined)) {
      if (!choices.missingRole)
        throw new Error('the missing-role page was shown but no choice was given')
      const chosen = page.find((f) => f.fields.choice === choices.missingRole)
      if (!chosen) throw new Error(`the missing-role page offers no ${choices.missingRole}`)
      url = new URL(chosen.action, url).href
      form = chosen.fields
      continue
    }
    throw Object.assign(new Error(`the login stopped at ${url}: ${res.statusCode}`), { visits })
  }
  throw Object.assign(new Error('the login did not end'), { visits })
}
