import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { UpstreamError } from '../../gateway/broker/errors.js'
import {
  createUpstream,
  type Upstream,
  type UpstreamConfig,
  type UpstreamIdentity,
  type UpstreamOptions,
  type UpstreamTx,
} from '../../gateway/broker/upstream.js'
import {
  DEFAULT_RECHECK_LOCK_MS,
  DEFAULT_UPSTREAM_CONNECTIONS,
  DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS,
  DEFAULT_UPSTREAM_KEEP_ALIVE_MS,
  DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES,
  DEFAULT_UPSTREAM_RENEW_BEFORE_MS,
} from '../../gateway/config/schema.js'
import type { SecretRef } from '../../gateway/config/secrets.js'
import { UPSTREAM_CALLBACK, type UpstreamIdp } from './upstream-idp.js'

/** The upstream section's limits as the schema fills them in (its defaults). */
export const UPSTREAM_LIMITS = {
  maxResponseBytes: DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES,
  connections: DEFAULT_UPSTREAM_CONNECTIONS,
  keepAlive: DEFAULT_UPSTREAM_KEEP_ALIVE_MS,
  discoveryRetry: DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS,
  recheckLock: DEFAULT_RECHECK_LOCK_MS,
  renewBefore: DEFAULT_UPSTREAM_RENEW_BEFORE_MS,
}

/** What the parsed schema would hold for the upstream section, for `idp` and one of its clients. */
export function configFor(
  idp: UpstreamIdp,
  client: string,
  over: Partial<UpstreamConfig> = {},
): UpstreamConfig {
  const c = idp.clients[client]
  assert.ok(c, `fixture has no client ${client}`)
  const where = idp.kind === 'oidc' ? { issuer: idp.issuer } : { endpoints: idp.endpoints }
  const credential =
    c.method === 'private_key_jwt'
      ? { privateKey: { env: 'UPSTREAM_KEY' }, privateKeyId: c.kid! }
      : { clientSecret: { env: 'UPSTREAM_SECRET' } }
  return {
    ...where,
    clientId: c.clientId,
    ...credential,
    tokenEndpointAuth: c.method,
    authorizeParams: {},
    sendResource: false,
    subjectClaim: 'sub',
    roleClaims: ['roles', 'groups'],
    roleMap: {},
    recheckInterval: 900,
    timeout: 5_000,
    ...UPSTREAM_LIMITS,
    ...over,
  }
}

/** readSecret answering the fixture client's secret or private key, as env or file would. */
export function secretsFor(idp: UpstreamIdp, client: string): (ref: SecretRef) => string {
  const c = idp.clients[client]!
  return (ref) => {
    const value =
      'env' in ref
        ? { UPSTREAM_SECRET: c.clientSecret, UPSTREAM_KEY: c.privateKeyPem }[ref.env]
        : undefined
    assert.ok(value, `no test secret for ${JSON.stringify(ref)}`)
    return value
  }
}

/** A logger whose lines a test can read (to check nothing secret was logged). */
export function captureLog() {
  const lines: string[] = []
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk))
        done()
      },
    }),
  )
  return { log, lines }
}

/** An Upstream for `idp` signing in as `client`; closed by the caller. */
export async function connect(
  idp: UpstreamIdp,
  client: string,
  over: Partial<UpstreamConfig> = {},
  o: Partial<UpstreamOptions> = {},
): Promise<Upstream> {
  return createUpstream(configFor(idp, client, over), {
    redirectUri: UPSTREAM_CALLBACK,
    readSecret: secretsFor(idp, client),
    log: pino({ level: 'silent' }),
    ...o,
  })
}

/**
 * begin, the browser through the fixture's auto-login, the callback URL (editable): no finish.
 * The transaction goes through JSON, as it does through the shared store.
 */
export async function toCallback(
  up: Upstream,
  idp: UpstreamIdp,
  o: { resource?: string } = {},
): Promise<{ callback: URL; tx: UpstreamTx; url: URL }> {
  const { url, tx } = await up.begin(o)
  return {
    callback: await idp.browse(url),
    tx: JSON.parse(JSON.stringify(tx)) as UpstreamTx,
    url: new URL(url),
  }
}

/** A whole sign-in: begin, browser, finish. */
export async function signIn(
  up: Upstream,
  idp: UpstreamIdp,
  o: { resource?: string } = {},
): Promise<UpstreamIdentity> {
  const { callback, tx } = await toCallback(up, idp, o)
  return up.finish(callback, tx)
}

/** Asserts `promise` rejects with an UpstreamError of exactly `code`; resolves that error. */
export async function rejectsUpstream(
  promise: Promise<unknown>,
  code: string,
): Promise<UpstreamError> {
  let caught: unknown
  await assert.rejects(promise, (err: unknown) => {
    caught = err
    return true
  })
  assert.ok(
    caught instanceof UpstreamError,
    `expected UpstreamError ${code}, got ${String(caught)}`,
  )
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`)
  return caught
}

/** Asserts no string in `secrets` appears in `text` (messages, logs). */
export function leaksNone(text: string, secrets: (string | undefined | null)[]): void {
  for (const s of secrets) if (s) assert.ok(!text.includes(s), `leaked a secret value: ${text}`)
}
