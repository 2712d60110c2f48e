import type { Logger } from 'pino'

type OidcModule = typeof import('oidc-provider')

let oidcModule: Promise<OidcModule> | undefined

/**
 * Imports oidc-provider once, for the broker and the dev IdP alike. Its import-time
 * "Unsupported runtime" notice (it targets Node 22+; everything used here works on 20.19) is not
 * configurable: that one line goes to the logger at debug, any other warning stays a warning.
 */
export function loadOidcModule(logger: Logger): Promise<OidcModule> {
  oidcModule ??= (async () => {
    const warn = console.warn
    console.warn = (...args: unknown[]) => {
      const text = String(args[0])
      if (text.includes('oidc-provider WARNING: Unsupported runtime')) {
        logger.debug({ notice: text }, 'oidc-provider runtime notice')
      } else {
        warn.apply(console, args)
      }
    }
    try {
      return await import('oidc-provider')
    } finally {
      console.warn = warn
    }
  })()
  return oidcModule
}
