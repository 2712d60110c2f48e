// Stacks and sessions the bounds and crash-accounting tests share: a server whose ended
// sessions hold their group (a helper ignoring SIGTERM), and an endpoint on a shared process
// that exits on resources/unsubscribe.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { postMcp } from './post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from './stack.js'

/**
 * A holder server whose every process starts a helper ignoring SIGTERM (its pid appended to
 * `pidsFile`): an ended session's group outlives it until the test kills the helper.
 */
export function stubbornServer(pidsFile: string) {
  return {
    command: process.execPath,
    args: [join(SERVERS_DIR, 'holder.js')],
    stopGrace: 60_000,
    pool: { min: 0 },
    env: { HOLDER_PIDS_FILE: pidsFile, HOLDER_START_HELPER: 'stubborn' },
  }
}

/** Opens a 2025-11-25 session of `server` with `auth`, then DELETEs it. */
export async function openAndDelete(
  stack: Stack,
  server: string,
  auth: Record<string, string>,
): Promise<void> {
  const res = await postMcp(stack.local(server), initBody({}, '2025-11-25'), auth)
  assert.equal(res.status, 200, res.text)
  const del = await request(stack.local(server), {
    method: 'DELETE',
    headers: {
      ...auth,
      'mcp-session-id': res.headers['mcp-session-id'] as string,
      'mcp-protocol-version': '2025-11-25',
    },
  })
  await del.body.dump()
}

/**
 * An endpoint `shsub` on a shared conformance process `shconf` that exits on
 * resources/unsubscribe; one exit charged to a subject is their allowance
 * (limits.sharedCrashesPerSubject 1): their next request is refused.
 */
export function unsubscribeExitStack(): Promise<Stack> {
  return startStack({
    servers: {
      shconf: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'conformance.js'), 'shconf'],
        mode: 'shared',
        respawnBackoff: 10,
        env: { CONFORMANCE_EXIT_ON_UNSUBSCRIBE: '1' },
      },
    },
    policy: `${TEST_POLICY}  shconf:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": allow }\n`,
    config: {
      limits: { sharedCrashesPerSubject: 1 },
      endpoints: { shsub: { servers: ['shconf'] } },
    },
  })
}
