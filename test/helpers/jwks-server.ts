import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { freePort } from './ports.js'

/** A canned answer; `hang` never answers (for timeouts). */
export type Reply = { status?: number; body?: unknown; headers?: Record<string, string> } | 'hang'

/** A JWKS (and discovery) endpoint on 127.0.0.1 whose content a test changes at will. */
export interface JwksServer {
  /** `http://127.0.0.1:PORT`, also the issuer the default discovery document names. */
  readonly origin: string
  /** `{origin}/jwks`. */
  readonly jwksUri: string
  /** The public JWKs served at /jwks; replace to rotate. */
  keys: object[]
  /** Paths requested, in order. */
  readonly requests: string[]
  /** Per-path overrides of the default answers. */
  readonly routes: Map<string, (req: http.IncomingMessage) => Reply>
  /** How many requests `path` got. */
  hits(path: string): number
  close(): Promise<void>
}

export const JWKS_PATH = '/jwks'
export const OIDC_PATH = '/.well-known/openid-configuration'
export const OAUTH_PATH = '/.well-known/oauth-authorization-server'

/**
 * Starts the server: GET /jwks → `{ keys }`, GET /.well-known/openid-configuration →
 * `{ issuer: origin, jwks_uri }`, anything else 404, unless `routes` says otherwise.
 */
export async function startJwksServer(keys: object[] = []): Promise<JwksServer> {
  const requests: string[] = []
  const routes = new Map<string, (req: http.IncomingMessage) => Reply>()
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    requests.push(path)
    const route = routes.get(path)
    const reply: Reply = route
      ? route(req)
      : path === JWKS_PATH
        ? { body: { keys: state.keys } }
        : path === OIDC_PATH
          ? { body: { issuer: state.origin, jwks_uri: state.jwksUri } }
          : { status: 404, body: { error: 'not_found' } }
    if (reply === 'hang') return
    res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers })
    res.end(reply.body === undefined ? '' : JSON.stringify(reply.body))
  })
  const port = await listen(server)
  const origin = `http://127.0.0.1:${port}`
  const state: JwksServer = {
    origin,
    jwksUri: `${origin}${JWKS_PATH}`,
    keys,
    requests,
    routes,
    hits: (path) => requests.filter((p) => p === path).length,
    close: () => close(server),
  }
  return state
}

/** A bare TCP listener that counts connections, to prove nothing dialled it. */
export interface ProbeListener {
  readonly url: string
  readonly connections: number
  close(): Promise<void>
}

/** Starts a {@link ProbeListener} on 127.0.0.1, ephemeral port. */
export async function startProbeListener(): Promise<ProbeListener> {
  let connections = 0
  const server = net.createServer((socket) => {
    connections++
    socket.destroy()
  })
  const port = await listen(server)
  return {
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return connections
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/**
 * An http URL on 127.0.0.1 where nothing listens: a port free a moment ago, outside the
 * ephemeral range, so no port-0 listener of a test running beside this one takes it meanwhile.
 */
export async function closedPortUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}

function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}
