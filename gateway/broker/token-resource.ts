import type { EventEmitter } from 'node:events'
import * as querystring from 'node:querystring'
import type { KoaContextWithOIDC } from 'oidc-provider'
import type Provider from 'oidc-provider'
import { BROKER_ROUTES } from './provider.js'

/** oidc-provider's own bound on a form body (lib/shared/selective_body.js); ours is the same. */
const MAX_TOKEN_FORM_BYTES = 56 * 1024

/**
 * Refuses a code exchange that resolves to several resources before the code is spent. A token
 * is for one resource (RFC 8707 lets a request name several; oidc-provider issues one), and
 * oidc-provider finds that out only after it has consumed the code: the client's retry with one
 * resource was then a replay, refused, and the grant revoked. Several `resource` parameters, or
 * none with a code granted for several, get the same `invalid_target` here with the code intact.
 * (A refresh token is guarded the same way in provider.ts rotateRefreshToken.) The body read
 * here goes on to oidc-provider as read.
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
        refuse(provider, ctx, 'invalid_request', 'failed to parse the request body')
        return
      }
      chunks.push(chunk)
    }
    const raw = Buffer.concat(chunks).toString()
    // oidc-provider reads a body already read from here (selective_body.js, req.body).
    ;(ctx.req as { body?: unknown }).body = raw
    const form = querystring.parse(raw)
    if (form.grant_type === 'authorization_code' && (await several(provider, form))) {
      refuse(
        provider,
        ctx,
        'invalid_target',
        'one resource per token request: name one of the resources granted (RFC 8707)',
      )
      return
    }
    await next()
  }
}

/** Whether the exchange would resolve to more than one resource. */
async function several(provider: Provider, form: querystring.ParsedUrlQuery): Promise<boolean> {
  // Counted as sent: oidc-provider takes any list, the same URL twice too, as several.
  const asked = [form.resource ?? []].flat()
  if (asked.length > 0) return asked.length > 1
  if (typeof form.code !== 'string') return false
  // No resource: oidc-provider takes the code's (useGrantedResource), several if it has several.
  const code = await provider.AuthorizationCode.find(form.code).catch(() => undefined)
  const granted = (code as { resource?: string | string[] } | undefined)?.resource
  return Array.isArray(granted) && new Set(granted).size > 1
}

/** oidc-provider's answer to a refused token request, and its event (the audit line). */
function refuse(
  provider: Provider,
  ctx: KoaContextWithOIDC,
  error: string,
  description: string,
): void {
  ctx.status = 400
  ctx.set('cache-control', 'no-store')
  ctx.body = { error, error_description: description }
  ;(provider as unknown as EventEmitter).emit('grant.error', ctx, {
    error,
    error_description: description,
  })
}
