import type Provider from 'oidc-provider'
import type { InteractionResults } from 'oidc-provider'
import type { Logger } from 'pino'

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>
type KoaMiddleware = Parameters<Provider['use']>[0]

/** Path prefix of the interaction URL configured as `interactions.url`. */
export const INTERACTION_PATH = '/interaction/'

/**
 * Koa middleware that completes every login and consent interaction for the fixed dev user,
 * without any form: login resolves to `accountId`, consent grants everything requested.
 */
export function autoInteractions(
  provider: Provider,
  accountId: string,
  logger?: Logger,
): KoaMiddleware {
  return async (ctx, next) => {
    if (ctx.method !== 'GET' || !ctx.path.startsWith(INTERACTION_PATH)) return next()
    try {
      const interaction = await provider.interactionDetails(ctx.req, ctx.res)
      const result = await resultFor(provider, interaction, accountId)
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, result)
      logger?.debug({ prompt: interaction.prompt.name, client: interaction.params.client_id },
        'dev IdP interaction completed')
      ctx.redirect(returnTo)
      ctx.status = 303
    } catch (err) {
      // oidc-provider errors carry the useful text in error_description.
      const { error_description: description, message } = err as Error & {
        error_description?: string }
      logger?.warn({ reason: description ?? message }, 'dev IdP interaction failed')
      ctx.status = 400
      ctx.type = 'text'
      ctx.body = `interaction failed: ${description ?? message}; restart the authorization flow`
    }
  }
}

async function resultFor(
  provider: Provider,
  interaction: Interaction,
  accountId: string,
): Promise<InteractionResults> {
  switch (interaction.prompt.name) {
    case 'login':
      return { login: { accountId } }
    case 'consent':
      return { consent: { grantId: await grantEverything(provider, interaction, accountId) } }
    default:
      return { error: 'access_denied', error_description: 'unsupported interaction prompt' }
  }
}

/** Consent: add the missing OIDC scopes/claims and resource scopes the provider reports. */
async function grantEverything(
  provider: Provider,
  interaction: Interaction,
  accountId: string,
): Promise<string> {
  const { details } = interaction.prompt
  const clientId = String(interaction.params.client_id)
  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined
  const grant = existing ?? new provider.Grant({ accountId, clientId })
  const scopes = details.missingOIDCScope as string[] | undefined
  const claims = details.missingOIDCClaims as string[] | undefined
  const resources = details.missingResourceScopes as Record<string, string[]> | undefined
  if (scopes) grant.addOIDCScope(scopes.join(' '))
  if (claims) grant.addOIDCClaims(claims)
  for (const [indicator, scope] of Object.entries(resources ?? {})) {
    grant.addResourceScope(indicator, scope.join(' '))
  }
  return grant.save()
}
