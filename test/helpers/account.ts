// The account page's test fixtures: servers that take credentials of each kind, a policy that
// opens some of them to the upstream fixtures' users, sealing keys the test knows (so it can
// read what the store holds, as a process would get it), and a raw-HTTP browser that signs in
// to the page through the broker.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readSecret } from '../../gateway/config/secrets.js'
import { UserSecrets } from '../../gateway/credentials/secrets.js'
import { sealerFromConfig } from '../../gateway/store/sealed.js'
import type { Store } from '../../gateway/store/store.js'
import { send, type Answer } from './broker-raw.js'
import { startBrokerStack, type BrokerStack } from './broker-stack.js'
import type { CookieJar } from './oauth-flow.js'
import { SERVERS_DIR } from './stack.js'

/**
 * Roles of the Entra-like fixture (alice: MCP.Developer; bob: none) and of the dev IdP's test
 * clients (alice, bob: mcp-user; dora: mcp-developer; ada: mcp-admin), and servers: `github`
 * (a secret, read access), `jira` (a secret, an exchange and the upstream token; write access),
 * `vault` (a secret; admin only), `echo` (nothing to set).
 */
export const ACCOUNT_POLICY = `
roles:
  MCP.Developer: ["mcp:read", "mcp:write"]
  MCP.Admin: ["*"]
  mcp-admin: ["*"]
  mcp-developer: ["mcp:read", "mcp:write"]
  mcp-user: ["mcp:read"]
servers:
  echo:
    access: ["mcp:read"]
    tools: { echo: ["mcp:read"] }
  github:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
  jira:
    access: ["mcp:write"]
    tools: { "*": ["mcp:write"] }
  vault:
    access: ["mcp:admin"]
    tools: { "*": ["mcp:admin"] }
`

/** The servers of {@link ACCOUNT_POLICY}: echo.js each, with their credentials. */
export function accountServers(
  o: { upstreamToken?: boolean } = {},
): Record<string, Record<string, unknown>> {
  const echo = { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] }
  return {
    echo: { ...echo, description: 'Echoes text back' },
    github: {
      ...echo,
      description: 'GitHub tools',
      credentials: {
        GITHUB_TOKEN: { secret: 'github-token', describe: 'a GitHub personal access token' },
      },
    },
    jira: {
      ...echo,
      credentials: {
        JIRA_TOKEN: { secret: 'jira-token' },
        CONFLUENCE: { exchange: { audience: 'https://confluence.example' } },
        ...(o.upstreamToken === false ? {} : { UPSTREAM: { upstreamToken: 'access_token' } }),
      },
    },
    vault: { ...echo, credentials: { VAULT_TOKEN: { secret: 'vault-token' } } },
  }
}

/**
 * The token exchange the `jira` server's exchange credential names (the config requires one);
 * these tests list that credential on the page and never run an exchange.
 */
export const ACCOUNT_EXCHANGE = {
  tokenExchange: {
    tokenEndpoint: 'http://127.0.0.1:9/token',
    clientId: 'account-tests',
    clientAuth: 'none',
  },
}

/**
 * A broker stack (Entra-like upstream) serving the account page: the servers and policy above,
 * sealing with the test's keys; `o` adds to it (its `config` to the account's).
 */
export function startAccountStack(
  o: Parameters<typeof startBrokerStack>[0] = {},
): Promise<BrokerStack> {
  return startBrokerStack({
    policy: ACCOUNT_POLICY,
    auth: ACCOUNT_EXCHANGE,
    ...o,
    config: { servers: accountServers(), secrets: SEALING, ...o.config },
  })
}

/** The environment variable holding the test's sealing keys. */
export const SEALING_ENV = 'MCP_EDGE_TEST_ACCOUNT_SEALING_KEYS'
process.env[SEALING_ENV] ??= JSON.stringify({ k1: randomBytes(32).toString('base64url') })

/** The `secrets` section sealing with the test's keys. */
export const SEALING = { keys: { env: SEALING_ENV }, active: 'k1' }

/** Reads users' secrets from `store` as the gateway's processes would get them. */
export function secretsIn(store: Store): UserSecrets {
  return new UserSecrets({ store, sealer: sealerFromConfig(SEALING, readSecret)! })
}

/** A form of an account page: where it posts, its hidden fields, whether it takes a value, its button. */
export interface PageForm {
  action: string
  fields: Record<string, string>
  takesValue: boolean
  button: string
}

/** The forms of a page. */
export function pageForms(html: string): PageForm[] {
  const out: PageForm[] = []
  for (const m of html.matchAll(/<form method="post" action="([^"]+)">(.*?)<\/form>/gs)) {
    const fields: Record<string, string> = {}
    for (const f of m[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
      fields[f[1]!] = unescape(f[2]!)
    out.push({
      action: unescape(m[1]!),
      fields,
      takesValue: /type="password"/.test(m[2]!),
      button: /<button[^>]*>(.*?)<\/button>/s.exec(m[2]!)?.[1] ?? '',
    })
  }
  return out
}

/** The form of a page that sets `secret` (or deletes it, or signs out). */
export function formFor(
  html: string,
  what: { set: string } | { delete: string } | 'logout',
): PageForm {
  const forms = pageForms(html)
  const found =
    what === 'logout'
      ? forms.find((f) => f.action.endsWith('/account/logout'))
      : 'set' in what
        ? forms.find((f) => f.action.endsWith('/account/secrets') && f.fields.name === what.set)
        : forms.find(
            (f) => f.action.endsWith('/account/secrets/delete') && f.fields.name === what.delete,
          )
  if (!found) throw new Error(`no form for ${JSON.stringify(what)} on the page`)
  return found
}

function unescape(s: string): string {
  return s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
}

/**
 * Signs in to the account page at `url` as the upstream fixture's next user, one request at a
 * time with `jar`'s cookies: /account/login, the broker, the upstream's automatic login, back
 * to /account/callback and on to the page. Resolves the page, every URL visited and every
 * Set-Cookie line answered on the way.
 */
export async function pageSignIn(
  url: string,
  jar: CookieJar,
  query = '',
): Promise<{ page: Answer; visited: string[]; setCookies: string[] }> {
  let next = `${url}/account/login${query ? `?${query}` : ''}`
  const visited: string[] = []
  const setCookies: string[] = []
  for (let hop = 0; hop < 20; hop++) {
    visited.push(next)
    const res = await send(next, { jar })
    setCookies.push(...[res.headers['set-cookie'] ?? []].flat())
    if (res.status === 302 || res.status === 303) {
      next = new URL(res.location!, next).href
      continue
    }
    return { page: res, visited, setCookies }
  }
  throw new Error(`the sign-in did not end: ${visited.join(' → ')}`)
}

/** POSTs a page's form as `jar`'s browser, with fields added or changed (undefined: left out). */
export function submit(
  url: string,
  jar: CookieJar,
  form: PageForm,
  over: Record<string, string | undefined> = {},
  headers: Record<string, string> = {},
): Promise<Answer> {
  const body = new URLSearchParams()
  for (const [k, v] of Object.entries({ ...form.fields, ...over }))
    if (v !== undefined) body.append(k, v)
  return send(new URL(form.action, url).href, {
    method: 'POST',
    jar,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      origin: new URL(url).origin,
      ...headers,
    },
    body: body.toString(),
  })
}

/**
 * The next person at `jar`'s browser signs in to the account page at `url` as `user`, the
 * upstream's own cookies gone (the last person signed out there too, or it never knew this
 * browser): only the gateway's are left. Resolves the page, and whether the sign-in went to the
 * upstream (`idp`'s host) or the broker signed them in by its own session.
 */
export async function nextSignIn(
  url: string,
  idp: { issuer: string; nextUser(id: string): void },
  jar: CookieJar,
  user = 'bob-pairwise-sub',
): Promise<{ page: Answer; upstream: boolean; visited: string[] }> {
  for (const name of [...jar.keys()]) if (!name.startsWith('_mcp_edge_')) jar.delete(name)
  idp.nextUser(user)
  const { page, visited } = await pageSignIn(url, jar)
  const host = new URL(idp.issuer).host
  return { page, visited, upstream: visited.some((u) => new URL(u).host === host) }
}
