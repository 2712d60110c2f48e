// Requests to a broker-replica stack's public URL, sent by its router to the replica named.
import { createHash, randomBytes } from 'node:crypto'
import { REPLICA_HEADER, type BrokerReplicas, type ReplicaName } from './broker-replicas.js'
import { REDIRECT } from './oauth-provider.js'
import { request } from './oauth-flow.js'

/** A form or JSON body (then a POST, else a GET), more headers, how long to wait for an answer. */
export interface CallInit {
  form?: Record<string, string>
  json?: unknown
  headers?: Record<string, string>
  wait?: number
}

/** A request to `s`'s public URL at replica `via`: status, headers, text, its JSON ({} if none). */
export async function replicaCall(
  s: BrokerReplicas,
  via: ReplicaName,
  path: string,
  o: CallInit = {},
) {
  const body = o.form
    ? new URLSearchParams(o.form).toString()
    : o.json === undefined
      ? undefined
      : JSON.stringify(o.json)
  const type = o.form ? 'application/x-www-form-urlencoded' : 'application/json'
  const res = await request(
    `${s.publicUrl}${path}`,
    {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        [REPLICA_HEADER]: via,
        ...(body === undefined ? {} : { 'content-type': type }),
        ...o.headers,
      },
      body,
    },
    o.wait,
  )
  const text = await res.body.text()
  let json: Record<string, string> = {}
  try {
    json = JSON.parse(text) as Record<string, string>
  } catch {}
  return { status: res.statusCode, headers: res.headers, text, json }
}

/** RFC 7591 registration of a native public client (loopback redirect) at `via`: its id. */
export async function registerClient(
  s: BrokerReplicas,
  via: ReplicaName,
  name: string,
  wait?: number,
): Promise<string> {
  const res = await replicaCall(s, via, '/register', {
    json: {
      client_name: name,
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
    wait,
  })
  if (res.status !== 201) throw new Error(`registration refused: ${res.status} ${res.text}`)
  return res.json.client_id!
}

/**
 * An authorization request of `clientId` for the notes server (`mcp:read`) at `s`'s public URL,
 * PKCE S256 with `verifier`, a random state: the URL and the verifier.
 */
export function authorizeUrl(
  s: BrokerReplicas,
  clientId: string,
  verifier = randomBytes(32).toString('base64url'),
): { url: string; verifier: string } {
  const url = new URL(`${s.publicUrl}/authorize`)
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: 'mcp:read',
    resource: `${s.publicUrl}/mcp/notes`,
    state: randomBytes(8).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString()
  return { url: url.href, verifier }
}
