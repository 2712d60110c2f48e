import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type Provider from 'oidc-provider'
import type { InteractionResults } from 'oidc-provider'
import type { Logger } from 'pino'
import { SIGN_IN_HEADERS, signInPage, type DevUser } from './sign-in-page.js'

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>
type KoaMiddleware = Parameters<Provider['use']>[0]
type KoaContext = Parameters<KoaMiddleware>[0]

/** Path prefix of the interaction URL configured as `interactions.url`. */
export const INTERACTION_PATH = '/interaction/'
/** Largest sign-in form body read, in bytes (a user name and a token). */
export const MAX_FORM_BYTES = 4096

/**
 * Koa middleware answering oidc-provider's interactions without passwords. Login: with one
 * user, that user at once (no page, so MCP Inspector needs no click); with several, GET shows
 * "Sign in as" and the POST of a button logs that user in. Consent: always given, for what
 * the provider offers (the resource scopes there are already cut to the user's roles).
 * The POST is bound to the interaction by oidc-provider's own cookie (SameSite=Lax, path
 * of this uid) and by an HMAC of the uid in the form, so another site cannot submit it.
 */
export function devInteractions(
  provider: Provider,
  users: readonly DevUser[],
  logger?: Logger,
): KoaMiddleware {
  const key = randomBytes(32)
  const csrfOf = (uid: string) => createHmac('sha256', key).update(uid).digest('base64url')
  const chooser = users.length > 1

  return async (ctx, next) => {
    if (!ctx.path.startsWith(INTERACTION_PATH)) return next()
    if (ctx.method !== 'GET' && ctx.method !== 'POST') return next()
    try {
      const interaction = await provider.interactionDetails(ctx.req, ctx.res)
      const { name } = interaction.prompt
      if (ctx.method === 'POST') {
        if (!chooser || name !== 'login') throw new Refusal('nothing to submit here')
        const sub = await chosenUser(ctx, csrfOf(interaction.uid), users)
        return await finish(ctx, provider, interaction, { login: { accountId: sub } }, logger)
      }
      if (chooser && name === 'login') {
        return await showChooser(ctx, provider, interaction, users, csrfOf)
      }
      const result: InteractionResults =
        name === 'login'
          ? { login: { accountId: users[0]!.sub } }
          : name === 'consent'
            ? { consent: { grantId: await grantOffered(provider, interaction) } }
            : { error: 'access_denied', error_description: 'unsupported interaction prompt' }
      return await finish(ctx, provider, interaction, result, logger)
    } catch (err) {
      // oidc-provider errors carry the useful text in error_description.
      const { error_description: description, message } = err as Error & {
        error_description?: string
      }
      logger?.warn({ reason: description ?? message }, 'dev IdP interaction failed')
      ctx.status = 400
      ctx.type = 'text'
      ctx.body = `interaction failed: ${description ?? message}; restart the authorization flow`
    }
  }
}

/** A sign-in submission that cannot be honoured; its message reaches the browser. */
class Refusal extends Error {}

async function showChooser(
  ctx: KoaContext,
  provider: Provider,
  interaction: Interaction,
  users: readonly DevUser[],
  csrfOf: (uid: string) => string,
): Promise<void> {
  const clientId = String(interaction.params.client_id)
  const client = await provider.Client.find(clientId)
  ctx.set(SIGN_IN_HEADERS as Record<string, string>)
  ctx.type = 'html'
  ctx.body = signInPage({
    action: `${INTERACTION_PATH}${encodeURIComponent(interaction.uid)}`,
    csrf: csrfOf(interaction.uid),
    users,
    client: client?.clientName ?? clientId,
    scope: typeof interaction.params.scope === 'string' ? interaction.params.scope : '',
  })
}

/** The configured user the form names, once its token proves it came from our page. */
async function chosenUser(
  ctx: KoaContext,
  csrf: string,
  users: readonly DevUser[],
): Promise<string> {
  if (!ctx.is('application/x-www-form-urlencoded')) throw new Refusal('expected a form post')
  const form = new URLSearchParams(await readBody(ctx, MAX_FORM_BYTES))
  const sent = Buffer.from(form.get('csrf') ?? '')
  const expected = Buffer.from(csrf)
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
    throw new Refusal('the form does not belong to this sign-in')
  }
  const sub = form.get('sub')
  if (!users.some((u) => u.sub === sub)) throw new Refusal('no such dev user')
  return sub!
}

/**
 * Records the result and sends the browser back to the authorization endpoint. Signing in
 * as someone other than the session's user starts a new session: oidc-provider would
 * otherwise ask to log the old user out first, and logout is not served here.
 */
async function finish(
  ctx: KoaContext,
  provider: Provider,
  interaction: Interaction,
  result: InteractionResults,
  logger?: Logger,
): Promise<void> {
  const previous = interaction.session
  if (result.login && previous && previous.accountId !== result.login.accountId) {
    await (await provider.Session.find(previous.cookie))?.destroy()
    delete interaction.session
  }
  // As provider.interactionResult does: merge with what the previous prompt submitted.
  interaction.result = { ...interaction.lastSubmission, ...result }
  await interaction.save(interaction.exp - Math.floor(Date.now() / 1000))
  logger?.debug(
    { prompt: interaction.prompt.name, client: interaction.params.client_id },
    'dev IdP interaction completed',
  )
  ctx.status = 303
  ctx.redirect(interaction.returnTo)
}

/** Consent: add the missing OIDC scopes/claims and resource scopes the provider reports. */
async function grantOffered(provider: Provider, interaction: Interaction): Promise<string> {
  const { details } = interaction.prompt
  const accountId = interaction.session?.accountId
  if (!accountId) throw new Refusal('consent without a signed-in user')
  const clientId = String(interaction.params.client_id)
  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined
  const grant =
    existing?.accountId === accountId ? existing : new provider.Grant({ accountId, clientId })
  // The mcp:* scopes are provider scopes too (discovery lists them), so they also show up
  // here as OIDC scopes. Granting them at that level puts nothing in an access token, which
  // takes resource scopes only; it lets a request for nothing the roles allow (a step-up to
  // mcp:admin alone) end in a token with no scope, where the roles still count, instead of
  // access_denied.
  const scopes = details.missingOIDCScope as string[] | undefined
  const claims = details.missingOIDCClaims as string[] | undefined
  // Only resource scopes the user's roles allow reach here: getResourceServerInfo offers no others.
  const resources = details.missingResourceScopes as Record<string, string[]> | undefined
  if (scopes) grant.addOIDCScope(scopes.join(' '))
  if (claims) grant.addOIDCClaims(claims)
  for (const [indicator, scope] of Object.entries(resources ?? {})) {
    grant.addResourceScope(indicator, scope.join(' '))
  }
  return grant.save()
}

async function readBody(ctx: KoaContext, limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new Refusal('form too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
