// An MCP SDK v2 client holding a session with its listening (GET) stream open, so the gateway
// never takes the session for idle; `end` DELETEs the session and closes the client.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'

/** A session at `url` with `token`, once the gateway has answered its GET stream. */
export async function listeningClient(
  url: string,
  token: string,
  name: string,
): Promise<{ c: Client; end: () => Promise<void> }> {
  const c = new Client({ name, version: '0' }, { capabilities: {} })
  let listening!: () => void
  const listens = new Promise<void>((resolve) => (listening = resolve))
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
    // The gateway has the stream once it answered the GET.
    fetch: async (u, init) => {
      const res = await fetch(u, init)
      if (init?.method === 'GET' && res.status === 200) listening()
      return res
    },
  })
  await c.connect(transport)
  await listens
  const end = async () => {
    await transport.terminateSession()
    await c.close()
  }
  return { c, end }
}
