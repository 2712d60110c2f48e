// The checklist files' one way to open a session-era session: initialize, then initialized.
import assert from 'node:assert/strict'
import { postMcp } from '../helpers/post-mcp.js'
import type { Stack } from '../helpers/stack.js'

/** An initialize request at `protocolVersion` declaring `capabilities`. */
export const initBody = (
  capabilities: Record<string, unknown> = {},
  protocolVersion = '2025-11-25',
) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion, capabilities, clientInfo: { name: 't', version: '0' } },
})

/** A session of `server` opened with `token`, its `initialized` sent: its id. */
export async function openSession(
  stack: Stack,
  server: string,
  token: string,
  capabilities: Record<string, unknown> = {},
): Promise<string> {
  const auth = { authorization: `Bearer ${token}` }
  const res = await postMcp(stack.local(server), initBody(capabilities), auth)
  assert.equal(res.status, 200, res.text)
  const sid = res.headers['mcp-session-id'] as string
  const done = await postMcp(
    stack.local(server),
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { ...auth, 'mcp-session-id': sid },
  )
  assert.equal(done.status, 202)
  return sid
}
