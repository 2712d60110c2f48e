import { Client } from '@modelcontextprotocol/client'
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio'
import { ECHO_TEXT, WrongReply } from './mcp-http.js'
import { track, untrack } from './procs.js'
import type { BenchSession, Target } from './target.js'

/**
 * The floor: the SDK client spawning the echo server itself. Each session is a process;
 * concurrency is 16 calls in flight on one client.
 */
export function stdioTarget(echoJs: string, name: string): Target {
  return {
    name,
    pid: undefined,
    sharedSession: true,
    open: () => openStdio(echoJs),
    problems: () => [],
    recentLog: () => [],
    stop: async () => {},
  }
}

async function openStdio(echoJs: string): Promise<BenchSession> {
  const start = performance.now()
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [echoJs],
    stderr: 'inherit',
  })
  const client = new Client({ name: 'mcp-edge-bench', version: '1.0.0' })
  try {
    await client.connect(transport)
  } finally {
    if (transport.pid !== null) track(transport.pid)
  }
  const ms = performance.now() - start
  const pid = transport.pid!
  return {
    ms,
    pid,
    async call() {
      const result = await client.callTool({ name: 'echo', arguments: { text: ECHO_TEXT } })
      const first = result.content[0]
      if (first?.type !== 'text' || first.text !== ECHO_TEXT) {
        throw new WrongReply(`tools/call: unexpected result ${JSON.stringify(result)}`)
      }
    },
    async close() {
      await client.close()
      untrack(pid)
    },
  }
}
