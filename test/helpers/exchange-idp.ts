import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose'
import Provider, { type ClientMetadata, type Configuration } from 'oidc-provider'
import {
  exchangeGrant,
  EXCHANGE_PARAMS,
  GATEWAY_AUDIENCE,
  type GrantState,
} from './exchange-grant.js'
import { TOKEN_EXCHANGE_GRANT } from '../../gateway/credentials/exchange.js'

export { GATEWAY_AUDIENCE } from './exchange-grant.js'

/** The exchanging clients, one per client authentication method (ids and secrets with `:`, `+`, `%`, space). */
export const EXCHANGE_CLIENTS = {
  basic: {
    clientId: 'gateway:basic+1',
    clientSecret: 'se:cr+et% /=?&1',
    clientAuth: 'client_secret_basic',
  },
  post: {
    clientId: 'gateway-post',
    clientSecret: 'post+secret:2 %',
    clientAuth: 'client_secret_post',
  },
  none: { clientId: 'gateway-public', clientAuth: 'none' },
} as const

/** How the token endpoint misbehaves instead of answering (stays until reset). */
export type Misbehaviour =
  | {
      kind: 'answer'
      status: number
      body: string | Buffer
      contentType?: string
      headers?: Record<string, string>
    }
  | { kind: 'stall' } // reads the request, never answers
  | { kind: 'stall-body' } // 200 and half a JSON body, then nothing
  | { kind: 'huge'; declared: boolean } // Content-Length far beyond any limit, or an endless chunked body

/** One token request as it arrived: its Authorization header and form. */
export interface Received {
  authorization: string | undefined
  contentType: string | undefined
  form: URLSearchParams
}

export interface ExchangeIdpOptions {
  tls: { cert: string; key: string }
  /** Which targets (audiences or resources) each user may get a token for; its keys are the users. */
  allow: Record<string, string[]>
  /** The targets the IdP knows, with the scopes each has. */
  targets: Record<string, string[]>
  /** Which targets a client may exchange for (unset: every target). */
  clientTargets?: Record<string, string[]>
}

/** A running IdP that does RFC 8693 token exchange, with knobs to make it misbehave. */
export interface ExchangeIdp {
  issuer: string
  tokenEndpoint: string
  /** Token requests seen, in order. */
  received: Received[]
  knobs: {
    expiresIn?: number
    fail?: Misbehaviour
    tamper?: (body: Record<string, unknown>) => unknown
  }
  /** 'request' on each token request; 'abandoned' when a held answer's connection is closed by the client. */
  events: EventEmitter
  /** A real access token of `sub`, issued by this IdP to the user's app, for the gateway's audience. */
  subjectToken(sub: string, o?: { audience?: string }): Promise<string>
  /** A JWT with these claims, signed with this IdP's key (or, `foreign`, another key under the same kid). */
  forge(claims: Record<string, unknown>, o?: { foreign?: boolean }): Promise<string>
  /** Clears knobs and what was received. */
  reset(): void
  close(): Promise<void>
}

/**
 * Starts oidc-provider on https://127.0.0.1:0 with the token-exchange grant registered (see
 * exchange-grant.ts for what it checks) and three exchanging clients (EXCHANGE_CLIENTS) plus
 * `user-app`, the app users' tokens were issued to. Knobs make the token endpoint fail before
 * oidc-provider sees the request (`fail`), or rewrite a real answer (`tamper`).
 */
export async function startExchangeIdp(o: ExchangeIdpOptions): Promise<ExchangeIdp> {
  const server = https.createServer(o.tls)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  const kid = `xidp-${randomBytes(4).toString('hex')}`
  const signing = await generateKeyPair('RS256', { extractable: true })
  const publicJwk: JWK = { ...(await exportJWK(signing.publicKey)), kid, alg: 'RS256', use: 'sig' }
  const events = new EventEmitter()
  const idp = {
    issuer,
    tokenEndpoint: `${issuer}/token`,
    received: [] as Received[],
    knobs: {} as ExchangeIdp['knobs'],
    events,
  } as ExchangeIdp

  const exchanging: ClientMetadata[] = [
    {
      client_id: EXCHANGE_CLIENTS.basic.clientId,
      client_secret: EXCHANGE_CLIENTS.basic.clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: EXCHANGE_CLIENTS.post.clientId,
      client_secret: EXCHANGE_CLIENTS.post.clientSecret,
      token_endpoint_auth_method: 'client_secret_post',
    },
    { client_id: EXCHANGE_CLIENTS.none.clientId, token_endpoint_auth_method: 'none' },
  ]
  const clients: ClientMetadata[] = [
    ...exchanging.map((c) => ({
      ...c,
      grant_types: [TOKEN_EXCHANGE_GRANT],
      response_types: [],
      redirect_uris: [],
    })),
    {
      client_id: 'user-app',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1:9/cb'],
    },
  ]
  const provider = new Provider(issuer, {
    clients,
    jwks: {
      keys: [{ ...(await exportJWK(signing.privateKey)), kid, alg: 'RS256', use: 'sig' }],
    } as Configuration['jwks'],
    findAccount: (_ctx, id) =>
      id in o.allow ? { accountId: id, claims: () => ({ sub: id }) } : undefined,
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: { devInteractions: { enabled: false } },
    // RFC 8693 §4.1: an exchanged token names the party acting for the user.
    extraTokenClaims: (_ctx, token) =>
      (token as { gty?: string }).gty === 'token-exchange'
        ? { act: { sub: token.clientId } }
        : undefined,
    ttl: { AccessToken: 600 },
  })
  const state: GrantState = {
    provider,
    issuer,
    publicJwk,
    allow: o.allow,
    targets: o.targets,
    clientTargets: o.clientTargets,
    expiresIn: () => idp.knobs.expiresIn ?? 300,
  }
  provider.registerGrantType(
    TOKEN_EXCHANGE_GRANT,
    (ctx) => exchangeGrant(ctx, state),
    EXCHANGE_PARAMS,
  )
  provider.use(async (ctx, next) => {
    await next()
    const tamper = idp.knobs.tamper
    if (ctx.path === '/token' && ctx.status === 200 && tamper) {
      const body = JSON.stringify(tamper(ctx.body as Record<string, unknown>))
      ctx.body = body
      ctx.type = 'application/json'
    }
  })

  idp.subjectToken = async (sub, s = {}) => {
    const client = await provider.Client.find('user-app')
    const audience = s.audience ?? GATEWAY_AUDIENCE
    const resourceServer = new (
      provider as unknown as { ResourceServer: new (id: string, d: object) => unknown }
    ).ResourceServer(audience, { audience, scope: 'mcp:read', accessTokenFormat: 'jwt' })
    return new provider.AccessToken({
      accountId: sub,
      client,
      scope: 'mcp:read',
      resourceServer,
    } as never).save()
  }
  idp.forge = async (claims, f = {}) => {
    const key = f.foreign ? (await generateKeyPair('RS256')).privateKey : signing.privateKey
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'at+jwt' }).sign(key)
  }
  idp.reset = () => {
    idp.knobs = {}
    idp.received = []
  }
  idp.close = async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  const handle = provider.callback()
  server.on(
    'request',
    (req: http.IncomingMessage & { body?: string }, res: http.ServerResponse) => {
      if (req.method !== 'POST' || req.url !== '/token') return void handle(req, res)
      void (async () => {
        const chunks: Buffer[] = []
        for await (const chunk of req) chunks.push(chunk as Buffer)
        // oidc-provider reads an already-read body from req.body (its documented fallback).
        req.body = Buffer.concat(chunks).toString('utf8')
        idp.received.push({
          authorization: req.headers.authorization,
          contentType: req.headers['content-type'],
          form: new URLSearchParams(req.body),
        })
        events.emit('request')
        if (idp.knobs.fail) return misbehave(idp.knobs.fail, res)
        handle(req, res)
      })().catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(err))
      })
    },
  )

  function misbehave(fail: Misbehaviour, res: http.ServerResponse): void {
    res.on('close', () => {
      if (!res.writableFinished) events.emit('abandoned')
    })
    switch (fail.kind) {
      case 'answer':
        res.writeHead(fail.status, {
          ...(fail.contentType === undefined ? {} : { 'content-type': fail.contentType }),
          ...fail.headers,
        })
        return void res.end(fail.body)
      case 'stall':
        return
      case 'stall-body':
        res.writeHead(200, { 'content-type': 'application/json' })
        return void res.write('{"access_token":"')
      case 'huge': {
        if (fail.declared) {
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': String(1 << 30),
          })
          return void res.write('{"access_token":"')
        }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{"access_token":"')
        const chunk = 'a'.repeat(16 * 1024)
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
        }
        res.on('drain', pump)
        return pump()
      }
    }
  }

  return idp
}
