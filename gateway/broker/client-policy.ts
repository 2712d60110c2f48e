import type { AuthConfig } from '../config/schema.js'
import { ClientPolicyError } from './client-errors.js'
import {
  compileRedirectPatterns,
  isLocalhostByName,
  isNativeClient,
  patternSchemes,
  redirectKind,
  redirectProblem,
} from './redirects.js'

/**
 * What the broker accepts from a client, whether it registered (RFC 7591 DCR) or is known by
 * its Client ID Metadata Document (CIMD): bounded redirect URIs of safe kinds (DCR: inside
 * the operator's allow-list), a short printable name, the code flow only, and authentication
 * without shared secrets for CIMD clients. Refuses with RFC 7591 error codes.
 */

/**
 * The extra client property whose validator runs the policy: oidc-provider calls
 * `extraClientMetadata.validator` only when some extra property is declared, once per
 * property. No client may set it; the validator removes whatever was sent.
 */
export const CLIENT_POLICY_PROPERTY = 'mcp_edge_client_policy'

/** Where a client's metadata came from: a registration, or a fetched metadata document. */
export type ClientSource = 'dcr' | 'cimd'

/** What the broker learns from an accepted client. */
export interface ClientVerdict {
  /** Every redirect URI is loopback or a private-use scheme: register it `application_type: native`. */
  native: boolean
  /** Loopback redirect URIs naming `localhost` (any local process can answer): the consent page warns. */
  localhostRedirects: string[]
}

/** The checks, and the same checks as oidc-provider's `extraClientMetadata.validator`. */
export interface ClientPolicy {
  /**
   * Checks a client's metadata (as oidc-provider sees it: defaults such as
   * `token_endpoint_auth_method: client_secret_basic` already filled in).
   * @throws ClientPolicyError `invalid_redirect_uri` or `invalid_client_metadata`
   */
  check(metadata: Readonly<Record<string, unknown>>, source: ClientSource): ClientVerdict
  /**
   * `extraClientMetadata.validator(ctx, key, value, metadata)`: runs {@link check} for
   * {@link CLIENT_POLICY_PROPERTY} (a client whose `client_id` is an https URL is a CIMD
   * client, any other was registered), removes that property and marks native clients.
   * @throws ClientPolicyError, for the caller to map to oidc-provider's errors
   */
  validator(ctx: unknown, key: string, value: unknown, metadata: Record<string, unknown>): void
}

type RegistrationConfig = Pick<
  NonNullable<AuthConfig['broker']>['registration'],
  'maxRedirectUris' | 'redirectUris' | 'maxClientNameLength'
>

const GRANT_TYPES: ReadonlySet<string> = new Set(['authorization_code', 'refresh_token'])
const AUTH_METHODS: Record<ClientSource, ReadonlySet<string>> = {
  dcr: new Set(['none', 'client_secret_basic', 'client_secret_post']),
  // CIMD draft §4.1: a document is public, so it can never carry a shared secret.
  cimd: new Set(['none', 'private_key_jwt']),
}
/** Metadata the server would fetch or redirect to on the client's word, beyond redirect_uris. */
const REFUSED_URIS = [
  'sector_identifier_uri',
  'request_uris',
  'post_logout_redirect_uris',
  'backchannel_logout_uri',
  'initiate_login_uri',
]
/**
 * Characters that disguise a name on the consent page: controls (C0, DEL, C1), format characters
 * (bidirectional overrides and marks, zero-width spaces and joiners, soft hyphen, BOM, tags,
 * interlinear annotations: invisible, so `Cla\u200bude` reads as another client's name), the
 * other default-ignorable code points (variation selectors, Hangul fillers, the combining
 * grapheme joiner, Mongolian and Khmer ones: as invisible), lone surrogates, and line or
 * paragraph separators.
 */
const DISGUISING = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}]/u
/** Scripts whose letters the zero-width (non-)joiner visibly changes (RFC 5892 A.1, A.2). */
const JOINING =
  '[\\p{sc=Arab}\\p{sc=Syrc}\\p{sc=Nkoo}\\p{sc=Mong}\\p{sc=Deva}\\p{sc=Beng}\\p{sc=Guru}\\p{sc=Gujr}\\p{sc=Orya}\\p{sc=Taml}\\p{sc=Telu}\\p{sc=Knda}\\p{sc=Mlym}\\p{sc=Sinh}]'
/**
 * Those of them that show, in the places people write them: an emoji's presentation selector
 * after it and the joiner between emoji of a sequence (UTS #51 §1.4), a keycap's selector, and
 * the joiners between letters of a joining script (Persian's non-joiner, Indic conjuncts).
 */
const SHOWN = new RegExp(
  [
    '(?<=\\p{Extended_Pictographic})[\\ufe0e\\ufe0f]',
    '(?<=\\p{Extended_Pictographic}\\ufe0f?\\p{Emoji_Modifier}?)\\u200d(?=\\p{Extended_Pictographic})',
    '(?<=[0-9#*])\\ufe0f(?=\\u20e3)',
    `(?<=${JOINING}\\p{M}*)[\\u200c\\u200d](?=${JOINING})`,
  ].join('|'),
  'gu',
)
/** Something to see: a letter, digit, symbol or punctuation (not a blank Braille cell). */
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u

/**
 * Compiles the registration settings into a {@link ClientPolicy}. `ownCallbacks` are the
 * broker's own upstream callback URLs: no client may register them (with any query) as its
 * redirect URI, or it could receive the upstream IdP's code meant for the broker.
 * @throws ClientPolicyError `bad_redirect_pattern` when a pattern cannot work (start-up)
 */
export function clientPolicy(
  registration: RegistrationConfig,
  o: { ownCallbacks: readonly string[] },
): ClientPolicy {
  const allowed = compileRedirectPatterns(registration.redirectUris)
  const appSchemes = patternSchemes(registration.redirectUris)
  const own = new Set(o.ownCallbacks.map((u) => withoutQuery(new URL(u))))
  const max = registration.maxRedirectUris

  function checkRedirects(uris: unknown, source: ClientSource): string[] {
    if (!Array.isArray(uris) || uris.length === 0) {
      throw redirectError('redirect_uris must be a non-empty array')
    }
    if (uris.length > max) throw redirectError(`redirect_uris may hold at most ${max} URIs`)
    uris.forEach((uri, i) => {
      // Every source: a redirect URI of no acceptable kind is refused with its reason.
      if (redirectKind(uri, appSchemes) === 'invalid') {
        const why =
          redirectProblem(uri) ?? 'not loopback http, https or a private-use app scheme (RFC 8252)'
        throw redirectError(`redirect_uris[${i}]: ${why}`)
      }
      // The broker's own callback receives upstream codes: nobody else may.
      if (own.has(withoutQuery(new URL(uri as string)))) {
        throw redirectError(`redirect_uris[${i}]: is the broker's own callback`)
      }
      // Registered clients: only where the operator allows. (CIMD: the document's host vouches.)
      if (source === 'dcr' && !allowed(uri as string)) {
        throw redirectError(`redirect_uris[${i}]: not allowed by this server's redirect URI policy`)
      }
    })
    return uris as string[]
  }

  function check(metadata: Readonly<Record<string, unknown>>, source: ClientSource): ClientVerdict {
    const uris = checkRedirects(metadata.redirect_uris, source)
    const name = metadata.client_name
    const longest = registration.maxClientNameLength
    if (
      name !== undefined &&
      (typeof name !== 'string' || name.length === 0 || name.length > longest)
    ) {
      throw metadataError(`client_name must be a string of 1 to ${longest} characters`)
    }
    if (typeof name === 'string' && DISGUISING.test(name.replace(SHOWN, ''))) {
      throw metadataError(
        'client_name must not contain control, formatting (bidirectional, zero-width), other invisible (variation selectors, fillers) or line separator characters',
      )
    }
    // A blank name shows no one on the consent page ("Allow  to use these tools"); so do
    // combining marks with nothing to sit on.
    if (typeof name === 'string' && !VISIBLE.test(name.replaceAll('\u2800', ''))) {
      throw metadataError('client_name must not be blank')
    }
    const method = metadata.token_endpoint_auth_method
    if (typeof method !== 'string' || !AUTH_METHODS[source].has(method)) {
      const methods = [...AUTH_METHODS[source]].join(', ')
      const why = source === 'cimd' ? ' (a metadata document holds no shared secret)' : ''
      throw metadataError(`token_endpoint_auth_method must be one of ${methods}${why}`)
    }
    const grants = metadata.grant_types
    if (!Array.isArray(grants) || !grants.every((g) => GRANT_TYPES.has(g as string))) {
      throw metadataError('grant_types may only contain authorization_code and refresh_token')
    }
    const responses = metadata.response_types
    if (!Array.isArray(responses) || responses.length !== 1 || responses[0] !== 'code') {
      throw metadataError('response_types must be ["code"]')
    }
    // A registrant's keys would be fetched and trusted on its word: DCR clients use secrets or nothing.
    if (source === 'dcr' && (metadata.jwks_uri !== undefined || metadata.jwks !== undefined)) {
      throw metadataError('jwks_uri and jwks are not accepted at registration')
    }
    for (const field of REFUSED_URIS) {
      const value = metadata[field]
      const empty = Array.isArray(value) && value.length === 0
      if (value !== undefined && !empty) throw metadataError(`${field} is not accepted`)
    }
    return {
      native: isNativeClient(uris, appSchemes),
      localhostRedirects: uris.filter(isLocalhostByName),
    }
  }

  function validator(
    _ctx: unknown,
    key: string,
    _value: unknown,
    metadata: Record<string, unknown>,
  ): void {
    if (key !== CLIENT_POLICY_PROPERTY) return
    delete metadata[CLIENT_POLICY_PROPERTY]
    const id = metadata.client_id
    const source: ClientSource =
      typeof id === 'string' && id.startsWith('https://') ? 'cimd' : 'dcr'
    if (check(metadata, source).native) metadata.application_type = 'native'
  }

  return { check, validator }
}

/** Origin and path: a redirect URI compared without its query. */
function withoutQuery(u: URL): string {
  return `${u.origin}${u.pathname}`
}

// oidc-provider's InvalidClientMetadata answers `invalid_redirect_uri` when its description
// starts with "redirect_uris": every redirect refusal here does.
const redirectError = (message: string) => new ClientPolicyError('invalid_redirect_uri', message)
const metadataError = (message: string) => new ClientPolicyError('invalid_client_metadata', message)
