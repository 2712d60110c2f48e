import { readFile, unlink } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { writeFileAtomic } from './state-dir.js'

/** One CLI client of a running dev IdP: acts as user `sub` (secret included: mode 0600). */
export interface DevIdpCliUser {
  sub: string
  roles: string[]
  clientId: string
  clientSecret: string
}

/** What a running dev IdP publishes for `mcp-edge token`. */
export interface DevIdpState {
  issuer: string
  /** One per configured user; the first is the default. */
  users: DevIdpCliUser[]
  resources: string[]
  scopes: string[]
  pid: number
}

/** State file path: env `MCP_EDGE_DEV_IDP_STATE`, else `<tmpdir>/mcp-edge-dev-idp.json`. */
export function devIdpStatePath(): string {
  return process.env.MCP_EDGE_DEV_IDP_STATE || path.join(os.tmpdir(), 'mcp-edge-dev-idp.json')
}

/**
 * The folder next to a state file where keys and registrations persist: the file's path
 * without `.json` (`<tmpdir>/mcp-edge-dev-idp/` by default), else with `.d` appended.
 */
export function devIdpStateDir(stateFile: string): string {
  return stateFile.endsWith('.json') ? stateFile.slice(0, -'.json'.length) : `${stateFile}.d`
}

/** Writes the state file atomically, readable by the owner only. */
export async function writeDevIdpState(file: string, state: DevIdpState): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(state, null, 2)}\n`)
}

/** Reads the state file; throws a user-facing Error when no dev IdP is running. */
export async function readDevIdpState(file: string): Promise<DevIdpState> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('no dev IdP is running (start the gateway with `npm start`)')
    }
    throw new Error(`cannot read dev IdP state ${file}: ${(err as Error).message}`)
  }
  let state: Partial<DevIdpState>
  try {
    state = JSON.parse(text) as Partial<DevIdpState>
  } catch {
    throw new Error(`dev IdP state ${file} is not valid JSON; restart the gateway`)
  }
  const ok =
    typeof state.issuer === 'string' &&
    Array.isArray(state.users) &&
    state.users.length > 0 &&
    state.users.every(isCliUser) &&
    Array.isArray(state.resources) &&
    Array.isArray(state.scopes)
  if (!ok) throw new Error(`dev IdP state ${file} is incomplete; restart the gateway`)
  return state as DevIdpState
}

function isCliUser(u: unknown): boolean {
  const x = u as Partial<DevIdpCliUser> | null
  return (
    typeof x?.sub === 'string' &&
    typeof x.clientId === 'string' &&
    typeof x.clientSecret === 'string' &&
    Array.isArray(x.roles)
  )
}

/** Deletes the state file if it still describes `issuer` (a newer instance may own it). */
export async function removeDevIdpState(file: string, issuer: string): Promise<void> {
  try {
    const state = await readDevIdpState(file)
    if (state.issuer !== issuer) return
    await unlink(file)
  } catch {
    // Already gone or unreadable: nothing of ours to clean up.
  }
}
