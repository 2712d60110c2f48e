import * as oidc from 'openid-client'
import type { Logger } from 'pino'
import { UpstreamError } from './errors.js'
import type { UpstreamClient } from './upstream-client.js'
import { statusFailure, upstreamFailure } from './upstream-failure.js'

/**
 * Reads the userinfo endpoint with an access token; undefined when the upstream has none.
 * OIDC (OIDC Core §5.3.2): its `sub` must be the ID token's (`expectedSub`); a signed (JWT)
 * answer is verified by openid-client. Plain OAuth 2.0 (GitHub's `/user`): any JSON object,
 * read through openid-client's protected-resource call.
 * `proven`: an ID token already proved who the user is, so a 401/403 here (Entra's userinfo
 * refuses access tokens meant for another API) only costs the extra claims, and is logged.
 * Otherwise userinfo decides: 401 is upstream_revoked at a re-check (RFC 6750 §3.1), and
 * upstream_refused at sign-in (the token was issued a moment ago).
 * @throws UpstreamError
 */
export async function readUserinfo(
  client: UpstreamClient,
  accessToken: string,
  o: { expectedSub: string | undefined; proven: boolean; signIn: boolean; log: Logger },
): Promise<Record<string, unknown> | undefined> {
  if (client.userinfo === undefined) return undefined
  try {
    if (client.issuer !== undefined) {
      const expected = o.expectedSub ?? oidc.skipSubjectCheck
      const claims = await oidc.fetchUserInfo(client.config, accessToken, expected)
      return { ...claims }
    }
    const res = await oidc.fetchProtectedResource(
      client.config,
      accessToken,
      client.userinfo,
      'GET',
      undefined,
      new Headers({ accept: 'application/json' }),
    )
    if (res.status !== 200) throw statusFailure(res.status, 'userinfo', undefined)
    let body: unknown
    try {
      body = await res.json()
    } catch {
      throw new UpstreamError('upstream_invalid_response', "the upstream's userinfo is not JSON")
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new UpstreamError(
        'upstream_invalid_response',
        "the upstream's userinfo is not a JSON object",
      )
    }
    return body as Record<string, unknown>
  } catch (err) {
    const e = upstreamFailure(err, 'userinfo')
    const refused = e.code === 'upstream_revoked' || e.code === 'upstream_refused'
    if (refused && o.proven) {
      o.log.warn(
        { code: e.code, reason: e.message },
        'upstream userinfo refused; using the ID token alone',
      )
      return undefined
    }
    if (e.code === 'upstream_revoked' && o.signIn) {
      throw new UpstreamError(
        'upstream_refused',
        "the upstream's userinfo refused the access token it just issued",
        { cause: e },
      )
    }
    throw e
  }
}
