import { createHash, timingSafeEqual } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import * as querystring from 'node:querystring'
import type { KoaContextWithOIDC } from 'oidc-provider'
import type Provider from 'oidc-provider'
import { BROKER_ROUTES, corsAllowed } from './provider.js'

/**
 * What oidc-provider's /token exposes to a browser (lib/helpers/initialize_app.js, with DPoP and
 * client attestation off, as provider.ts configures it).
 */
export const TOKEN_EXPOSED_HEADERS = 'WWW-Authenticate'

/** oidc-provider's own bound on a form body (lib/shared/selective_body.js); ours is the same. */
const MAX_TOKEN_FORM_BYTES = 56 * 1024

/**
 * Refuses a code exchange whose resource oidc-provider would refuse, before the code is spent. A
 * token is for one resource the code was granted (RFC 8707 lets a request name several;
 * oidc-provider issues one), and oidc-provider finds a wrong one only after it has consumed the
 * code: the client's retry was then a replay, refused, and the grant revoked. Several `resource`
 * parameters, none (or an empty one, which oidc-provider reads as none) with a code granted for
 * several, or one the code was not granted get `invalid_target` here with the code intact. (A
 * refresh token is guarded the same way in provider.ts rotateRefreshToken.) The body read here
 * goes on to oidc-provider as read.
 */
export function oneResourcePerCode(provider: Provider) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<unknown>): Promise<void> => {
    if (
      ctx.method !== 'POST' ||
      ctx.path !== BROKER_ROUTES.token ||
      !ctx.is('application/x-www-form-urlencoded') ||
      !ctx.req.readable ||
      (ctx.request.length ?? 0) > MAX_TOKEN_FORM_BYTES
    ) {
      await next()
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of ctx.req.iterator({
      destroyOnReturn: false,
    }) as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > MAX_TOKEN_FORM_BYTES) {
        // A chunked body past the bound: oidc-provider's own answer to it.
        await refuse(provider, ctx, 'invalid_request', 'failed to parse the request body')
        return
      }
      chunks.push(chunk)
    }
    const raw = decode(Buffer.concat(chunks), ctx.request.charset)
    if (raw === undefined) {
      await refuse(provider, ctx, 'invalid_request', 'failed to parse the request body')
      return
    }
    // oidc-provider reads a body already read from here (selective_body.js, req.body).
    ;(ctx.req as { body?: unknown }).body = raw
    const form = querystring.parse(raw)
    const refused =
      form.grant_type === 'authorization_code' ? await target(provider, form) : undefined
    if (refused) {
      await refuse(
        provider,
        ctx,
        'invalid_target',
        refused.why,
        refused.clientId ?? clientIdOf(ctx, form),
      )
      return
    }
    await next()
  }
}

/**
 * The body as text, decoded as oidc-provider decodes it (selective_body.js): by the charset its
 * Content-Type names (WHATWG encoding labels: `iso-8859-1`, `utf-16le`…), else UTF-8; undefined
 * for a charset no decoder knows, which oidc-provider refuses as a body it failed to parse.
 */
function decode(body: Buffer, charset: string): string | undefined {
  if (!charset) return body.toString()
  try {
    return new TextDecoder(charset).decode(body)
  } catch {
    return undefined
  }
}

/** The client a token request names: `client_id` in the form, else its Basic credentials' id. */
function clientIdOf(ctx: KoaContextWithOIDC, form: querystring.ParsedUrlQuery): string | undefined {
  if (typeof form.client_id === 'string') return form.client_id
  const basic = /^basic (.+)$/i.exec(ctx.get('authorization'))?.[1]
  if (basic === undefined) return undefined
  const id = Buffer.from(basic, 'base64').toString().split(':')[0]
  try {
    // RFC 6749 §2.3.1: the id is form-urlencoded before it is joined with the secret.
    return id ? decodeURIComponent(id.replace(/\+/g, ' ')) : undefined
  } catch {
    return undefined
  }
}

/**
 * Why oidc-provider would refuse the exchange's resource after spending the code, and the
 * code's client when the code was read; or undefined.
 */
async function target(
  provider: Provider,
  form: querystring.ParsedUrlQuery,
): Promise<{ why: string; clientId?: string } | undefined> {
  const asked = form.resource
  // Counted as sent (a repeated key is a list): oidc-provider takes any list, the same URL
  // twice or an empty one next to another too, as several.
  if (Array.isArray(asked)) return { why: SEVERAL }
  if (typeof form.code !== 'string' || typeof form.code_verifier !== 'string') return undefined
  const code = (await provider.AuthorizationCode.find(form.code).catch(() => undefined)) as
    | CodeRecord
    | undefined
  // Only a live code whose verifier this request holds is judged here (this runs before client
  // authentication: a code alone tells nothing). Any other goes on to oidc-provider, which
  // refuses it before spending it, and revokes the grant of a spent one (a replay).
  if (code === undefined || !code.isValid || !verifies(form.code_verifier, code)) return undefined
  const granted = new Set([code.resource ?? []].flat())
  const clientId = code.clientId
  // No resource, or an empty one (oidc-provider's params read '' as none): the code's own.
  if (!asked) return granted.size > 1 ? { why: SEVERAL, clientId } : undefined
  return granted.has(asked) ? undefined : { why: NOT_GRANTED, clientId }
}

const SEVERAL = 'one resource per token request: name one of the resources granted (RFC 8707)'
const NOT_GRANTED = 'this code was not granted that resource: name one it was granted (RFC 8707)'

/** What the guard reads of an authorization code (oidc-provider's AuthorizationCode). */
interface CodeRecord {
  isValid: boolean
  clientId?: string
  resource?: string | string[]
  codeChallenge?: string
  codeChallengeMethod?: string
}

/** Whether `verifier` is the code's PKCE verifier (S256, the only method the broker takes). */
function verifies(verifier: string, code: CodeRecord): boolean {
  if (code.codeChallengeMethod !== 'S256' || typeof code.codeChallenge !== 'string') return false
  const expected = Buffer.from(code.codeChallenge)
  const actual = Buffer.from(createHash('sha256').update(verifier).digest('base64url'))
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}

/**
 * oidc-provider's answer to a refused token request, with the CORS headers its /token answers
 * carry, and its event (the audit line). `clientId`: the client a refusal that oidc-provider
 * makes after client authentication names (invalid_target), or undefined for one it makes
 * while reading the body, before it knows the client.
 */
async function refuse(
  provider: Provider,
  ctx: KoaContextWithOIDC,
  error: string,
  description: string,
  clientId?: string,
): Promise<void> {
  await cors(provider, ctx, error === 'invalid_target', clientId)
  ctx.status = 400
  ctx.set('cache-control', 'no-store')
  ctx.body = { error, error_description: description }
  ;(provider as unknown as EventEmitter).emit('grant.error', ctx, {
    error,
    error_description: description,
  })
}

/**
 * The CORS headers of oidc-provider's /token (lib/shared/cors.js, clientBased, with DPoP and
 * client attestation off: only WWW-Authenticate exposed): `Vary: Origin`, and the origin (`*`
 * without one) allowed to read the answer. Once it knows the client it allows only an origin
 * the client may use (provider.ts clientBasedCORS), and refuses any other with no
 * Access-Control-Allow-Origin: so does this for a refusal past client authentication (`checked`).
 */
async function cors(
  provider: Provider,
  ctx: KoaContextWithOIDC,
  checked: boolean,
  clientId: string | undefined,
): Promise<void> {
  ctx.vary('Origin')
  const origin = ctx.get('Origin')
  ctx.set('Access-Control-Expose-Headers', TOKEN_EXPOSED_HEADERS)
  if (!origin) {
    ctx.set('Access-Control-Allow-Origin', '*')
    return
  }
  if (checked) {
    const client =
      clientId === undefined
        ? undefined
        : await provider.Client.find(clientId).catch(() => undefined)
    if (client === undefined || !corsAllowed(origin, client)) return
  }
  ctx.set('Access-Control-Allow-Origin', origin)
}
