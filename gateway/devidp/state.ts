import { randomBytes } from 'node:crypto'
import { readFile, rename, unlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

/** What a running dev IdP publishes for `mcp-edge token` (secret included: mode 0600). */
export interface DevIdpState {
  issuer: string
  clientId: string
  clientSecret: string
  resources: string[]
  scopes: string[]
  pid: number
}

/** State file path: env `MCP_EDGE_DEV_IDP_STATE`, else `<tmpdir>/mcp-edge-dev-idp.json`. */
export function devIdpStatePath(): string {
  return process.env.MCP_EDGE_DEV_IDP_STATE || path.join(os.tmpdir(), 'mcp-edge-dev-idp.json')
}

/** Writes the state file atomically, readable by the owner only. */
export async function writeDevIdpState(file: string, state: DevIdpState): Promise<void> {
  // Temp file + rename: never follows a pre-planted symlink at `file` in a shared tmpdir,
  // and readers never see a half-written file.
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
  try {
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
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
  const ok = typeof state.issuer === 'string' && typeof state.clientId === 'string'
    && typeof state.clientSecret === 'string' && Array.isArray(state.resources)
    && Array.isArray(state.scopes)
  if (!ok) throw new Error(`dev IdP state ${file} is incomplete; restart the gateway`)
  return state as DevIdpState
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
