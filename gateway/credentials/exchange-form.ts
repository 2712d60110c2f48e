/** RFC 8693 §2.1: the grant type of a token exchange. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
/** RFC 8693 §3: an OAuth 2.0 access token, the only kind the gateway asks for and accepts. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

/** What the exchanged token is for (a server's `credentials.<VAR>.exchange`). */
export interface ExchangeSpec {
  audience?: string
  resource?: string
  scope?: string
}

/** The user's token traded in, and its RFC 8693 §3 type URI. */
export interface SubjectToken {
  token: string
  type: string
}

/** How the gateway authenticates at the token endpoint (`auth.tokenExchange.clientAuth`). */
export interface ExchangeClient {
  clientId: string
  clientSecret?: string | undefined
  clientAuth: 'client_secret_basic' | 'client_secret_post' | 'none'
}

/**
 * The request body and headers of one exchange (RFC 8693 §2.1), with the client's credentials
 * placed per its method (RFC 6749 §2.3.1): Basic carries the id and secret each
 * form-urlencoded first, so a `:` or `+` in either survives; post puts both in the body; none
 * sends the id alone. The body is application/x-www-form-urlencoded, UTF-8 (RFC 6749 App. B).
 */
export function exchangeRequest(
  client: ExchangeClient,
  spec: ExchangeSpec,
  subject: SubjectToken,
): {
  body: string
  headers: Record<string, string>
} {
  const form = new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: subject.token,
    subject_token_type: subject.type,
    requested_token_type: ACCESS_TOKEN_TYPE,
  })
  if (spec.audience !== undefined) form.set('audience', spec.audience)
  if (spec.resource !== undefined) form.set('resource', spec.resource)
  if (spec.scope !== undefined) form.set('scope', spec.scope)
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded;charset=UTF-8',
    accept: 'application/json',
  }
  if (client.clientAuth === 'client_secret_basic') {
    const pair = `${formEncode(client.clientId)}:${formEncode(client.clientSecret ?? '')}`
    headers.authorization = `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`
  } else {
    form.set('client_id', client.clientId)
    if (client.clientAuth === 'client_secret_post')
      form.set('client_secret', client.clientSecret ?? '')
  }
  return { body: form.toString(), headers }
}

/** application/x-www-form-urlencoded serialisation of one value (URLSearchParams' own). */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2)
}
