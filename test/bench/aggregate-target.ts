// The aggregate row of `npm run bench`: an endpoint at /mcp over several echo servers, the
// gateway being the MCP server there and running each call on the user's own process of the
// backend (a lane). Also the config pieces the 20-backend section shares with it.
import { startGateway, type GatewayOptions } from './gateway-target.js'
import type { RowShape } from './http-targets.js'
import { httpTarget, type Target } from './target.js'

/** The endpoint's path: the one claude.ai's connectors expect. */
export const ENDPOINT_PATH = '/mcp'

/** `echo01` … : backend names, in the endpoint's order. */
export function backendNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `echo${String(i + 1).padStart(2, '0')}`)
}

/** The role of a user whom the policy allows only some of the backends (`endpointOptions`). */
export const PARTIAL_ROLE = 'mcp-partial'

/**
 * A gateway config with `n` echo servers (each process tagged with its server's name as its
 * last argument, which echo ignores) and one endpoint over all of them at /mcp, prefix
 * `{server}_`. The policy gives `mcp-user` the echo tool of each, as the demo policy does for
 * the one echo server of the `edge` row, and `PARTIAL_ROLE` the echo tool of the first
 * `partial` backends only (their scope `mcp:some`, which `mcp-user` holds too).
 */
export function endpointOptions(
  o: { root: string; echoJs: string },
  n: number,
  partial = 0,
): GatewayOptions & { tools: string[] } {
  const names = backendNames(n)
  const servers = Object.fromEntries(
    names.map((name) => [
      name,
      {
        command: process.execPath,
        args: [o.echoJs, name],
      },
    ]),
  )
  const policyYaml = [
    'roles:',
    '  mcp-user: ["mcp:read", "mcp:some"]',
    `  ${PARTIAL_ROLE}: ["mcp:some"]`,
    'servers:',
    ...names.flatMap((name, i) => {
      const scope = i < partial ? 'mcp:some' : 'mcp:read'
      return [`  ${name}:`, `    access: ["${scope}"]`, '    tools:', `      echo: ["${scope}"]`]
    }),
    '',
  ].join('\n')
  return {
    ...o,
    servers,
    endpoints: { all: { path: ENDPOINT_PATH, servers: names, prefix: '{server}_' } },
    policyYaml,
    path: ENDPOINT_PATH,
    tools: names.map((name) => `${name}_echo`),
  }
}

/**
 * The `aggregate` rows: session era, like the `edge` rows, on an endpoint over `backends` echo
 * servers. Each session lists the tools on opening. As 16 sessions, session k calls the echo
 * tool of backend k mod `backends`; on one session, the w-th call in flight calls backend
 * w mod `backends`. Either way the 16 calls in flight (all one user's) keep 4 in flight per
 * backend, which is exactly the lanes a user may run per server (DEFAULT_LANES_PER_SUBJECT):
 * the row measures the relay, not waits for a lane.
 */
export async function aggregateTarget(
  o: { root: string; echoJs: string },
  shape: RowShape,
  backends = 4,
): Promise<Target> {
  const { tools, ...options } = endpointOptions(o, backends)
  const gw = await startGateway(options)
  return httpTarget({
    ...shape,
    origin: gw.origin,
    path: gw.path,
    child: gw.child,
    headers: () => gw.headers,
    problems: gw.problems,
    recentLog: gw.recentLog,
    stop: gw.stop, // httpTarget stops the tree first; stopping it again is a no-op
    tools,
  })
}
