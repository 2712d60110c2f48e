import type { Principal } from '../auth/principal.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import type { CredentialGate } from './credential-gate.js'

// Its own file, importing only types: a gateway whose servers take no credentials never loads
// credential-gate.ts and the credentials modules it brings (test/cli/loaded-modules).
/**
 * The credentials a new process of `server` starts with for `principal` (what is set now,
 * {@link CredentialGate.initial}), or undefined for a server that takes none (or no gate).
 */
export async function initialCredentials(
  gate: CredentialGate | undefined,
  server: string,
  principal: Principal,
  bearer: string | undefined,
): Promise<ResolvedCredentials | undefined> {
  return gate?.needs(server) ? await gate.initial(server, principal, bearer) : undefined
}
