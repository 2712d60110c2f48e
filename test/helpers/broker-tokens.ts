// Broker tokens as the revocation tests get, use and revoke them, by raw HTTP against one broker
// in front of the Entra-like upstream fixture: a fresh login's access and refresh tokens, a
// bearer ping's status and challenge, /revoke as a public or a confidential client (whose
// registration is broker-raw.ts's newConfidentialClient).
import assert from 'node:assert/strict'
import {
  type Answer,
  type BrokerFront,
  type ClientSecret,
  exchange,
  login,
  send,
} from './broker-raw.js'
import type { BrokerStack } from './broker-stack.js'
import { request } from './oauth-flow.js'

/** A login's two tokens. */
export interface TokenPair {
  access: string
  refresh: string
}

/** Bob of the Entra-like fixture: no app role there until given BOB_READER_CLAIMS. */
export const BOB = 'bob-pairwise-sub'
/** Bob with a role that reaches mcp:read (the upstream's reset() takes it away again). */
export const BOB_READER_CLAIMS = {
  oid: '00000000-0000-0000-0000-000000000b0b',
  name: 'Bob',
  preferred_username: 'bob@contoso.example',
  email: 'bob@contoso.example',
  roles: ['mcp-reader'],
}

/**
 * A fresh login (its own browser, so its own grant) for `client` with scope mcp:read, its code
 * exchanged: the access and refresh tokens. With `user`, the upstream signs that user in (the
 * choice sticks until its reset()); Bob is given BOB_READER_CLAIMS first.
 */
export async function loginTokens(
  stack: BrokerFront & Pick<BrokerStack, 'idp'>,
  o: { client: string; redirectUri: string; user?: string },
): Promise<TokenPair> {
  if (o.user !== undefined) stack.idp.nextUser(o.user)
  if (o.user === BOB) stack.idp.updateUser(BOB, BOB_READER_CLAIMS)
  const l = await login(stack, {
    clientId: o.client,
    redirectUri: o.redirectUri,
    scope: 'mcp:read',
  })
  const res = await exchange(stack, l, { clientId: o.client, redirectUri: o.redirectUri })
  assert.equal(res.status, 200, res.text)
  return { access: String(res.json.access_token), refresh: String(res.json.refresh_token) }
}

/**
 * The status and WWW-Authenticate of a sessionless ping to the notes server with `token`
 * (anything but 401: the token was accepted; the bridge may refuse the ping itself).
 */
export async function pingWith(
  stack: BrokerStack,
  token: string,
): Promise<{ status: number; challenge: string }> {
  const res = await request(stack.endpoint('notes'), {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  })
  await res.body.dump()
  return { status: res.statusCode, challenge: String(res.headers['www-authenticate'] ?? '') }
}

/**
 * POSTs `token` to /revoke as `client`: a public client names itself by client_id in the form; a
 * confidential one passes its Authorization header in `headers` instead. `form` adds fields
 * (token_type_hint).
 */
export function revokeAs(
  stack: BrokerStack,
  token: string,
  client: string,
  headers: Record<string, string> = {},
  form: Record<string, string> = {},
): Promise<Answer> {
  return send(`${stack.url}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({
      token,
      ...form,
      ...(headers.authorization ? {} : { client_id: client }),
    }).toString(),
  })
}

/** RFC 6749 §2.3.1 Basic credentials: id and secret form-urlencoded first. */
export function basicAuth(c: ClientSecret): { authorization: string } {
  const pair = `${encodeURIComponent(c.id)}:${encodeURIComponent(c.secret)}`
  return { authorization: `Basic ${Buffer.from(pair).toString('base64')}` }
}
