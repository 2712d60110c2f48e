import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, afterEach, before, describe, it } from 'node:test'
import type {
  Upstream,
  UpstreamConfig,
  UpstreamOptions,
  UpstreamTx,
} from '../../gateway/broker/upstream.js'
import { DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES } from '../../gateway/config/schema.js'
import { connect, leaksNone, rejectsUpstream, toCallback } from '../helpers/upstream-client.js'
import { startEntraLike, startPlainOAuth, type UpstreamIdp } from '../helpers/upstream-idp.js'
import { waitFor } from '../helpers/wait-for.js'

/** One refusal: what to break, then the code finish must fail with and whether the code was exchanged. */
interface Case {
  name: string
  idp?: 'entra' | 'github'
  over?: Partial<UpstreamConfig>
  options?: Partial<UpstreamOptions>
  /** Set knobs before the sign-in's browser leg. */
  arrange?(idp: UpstreamIdp): void
  /** Finish, after editing the callback or the transaction; default: finish as is. */
  act?(up: Upstream, callback: URL, tx: UpstreamTx, idp: UpstreamIdp): Promise<unknown>
  code: string
  /** What the message must say, where one code has several causes. */
  reason?: RegExp
  /** Token endpoint requests expected: 0 = refused before any exchange. */
  exchanged: number
  /** Userinfo requests expected (default 0: refused before the identity is read). */
  userinfo?: number
}

const resign =
  (idp: UpstreamIdp, edit?: (c: Record<string, unknown>) => void, o?: { foreign?: boolean }) =>
  async (body: Record<string, unknown>) => ({
    ...body,
    id_token: await idp.forgeIdToken(String(body.id_token), edit, o),
  })

const cases: Case[] = [
  {
    name: 'wrong state',
    code: 'upstream_state_mismatch',
    exchanged: 0,
    act: (up, cb, tx) => (cb.searchParams.set('state', 'attacker-state'), up.finish(cb, tx)),
  },
  {
    name: 'no state',
    code: 'upstream_state_mismatch',
    exchanged: 0,
    act: (up, cb, tx) => (cb.searchParams.delete('state'), up.finish(cb, tx)),
  },
  {
    name: 'state twice',
    code: 'upstream_invalid_response',
    reason: /repeats the state/,
    exchanged: 0,
    act: (up, cb, tx) => (cb.searchParams.append('state', tx.state), up.finish(cb, tx)),
  },
  {
    name: 'a transaction of another sign-in',
    code: 'upstream_state_mismatch',
    exchanged: 0,
    act: async (up, cb) => up.finish(cb, (await up.begin()).tx),
  },
  {
    name: 'replayed callback (second finish of one transaction)',
    code: 'upstream_replayed',
    exchanged: 1,
    userinfo: 1,
    act: async (up, cb, tx) => {
      await up.finish(cb, tx)
      return up.finish(cb, tx)
    },
  },
  {
    name: 'wrong iss (mix-up)',
    code: 'upstream_issuer_mismatch',
    exchanged: 0,
    arrange: (idp) => void (idp.knobs.wrongIss = 'https://login.attacker.example/v2.0'),
  },
  {
    name: 'no iss although the upstream advertises it (RFC 9207)',
    code: 'upstream_issuer_mismatch',
    exchanged: 0,
    act: (up, cb, tx) => (cb.searchParams.delete('iss'), up.finish(cb, tx)),
  },
  {
    name: 'the user declines (error=access_denied)',
    code: 'upstream_denied',
    exchanged: 0,
    arrange: (idp) => void (idp.knobs.deny = true),
  },
  {
    name: 'a callback with neither code nor error',
    code: 'upstream_invalid_response',
    reason: /neither a code nor an error/,
    exchanged: 0,
    act: (up, cb, tx) => (cb.searchParams.delete('code'), up.finish(cb, tx)),
  },
  {
    name: 'an expired transaction',
    code: 'upstream_expired',
    exchanged: 0,
    act: (up, cb, tx) => up.finish(cb, { ...tx, expiresAt: Math.floor(Date.now() / 1000) - 1 }),
  },
  {
    name: 'ID token without nonce',
    code: 'upstream_invalid_response',
    reason: /nonce/,
    exchanged: 1,
    arrange: (idp) => void (idp.knobs.tamperToken = resign(idp, (c) => delete c.nonce)),
  },
  {
    name: 'ID token with another nonce',
    code: 'upstream_invalid_response',
    reason: /nonce/,
    exchanged: 1,
    arrange: (idp) =>
      void (idp.knobs.tamperToken = resign(idp, (c) => (c.nonce = 'nonce-of-another-login'))),
  },
  {
    name: 'ID token signed by another key (same kid)',
    code: 'upstream_invalid_response',
    reason: /signature/,
    exchanged: 1,
    arrange: (idp) => void (idp.knobs.tamperToken = resign(idp, undefined, { foreign: true })),
  },
  {
    name: 'ID token for another audience',
    code: 'upstream_invalid_response',
    reason: /aud/,
    exchanged: 1,
    arrange: (idp) =>
      void (idp.knobs.tamperToken = resign(idp, (c) => (c.aud = 'some-other-client'))),
  },
  {
    name: 'no ID token from an OIDC upstream',
    code: 'upstream_invalid_response',
    reason: /id_token/,
    exchanged: 1,
    arrange: (idp) => void (idp.knobs.tamperToken = ({ id_token: _drop, ...body }) => body),
  },
  {
    name: "userinfo names another sub than the ID token's",
    code: 'upstream_invalid_response',
    reason: /sub/,
    exchanged: 1,
    userinfo: 1,
    arrange: (idp) => void (idp.knobs.tamperUserinfo = (body) => ({ ...body, sub: 'mallory' })),
  },
  {
    name: 'the token endpoint redirects (307 to itself): not followed',
    code: 'upstream_invalid_response',
    reason: /redirect, which is not followed/,
    exchanged: 1,
    arrange: (idp) => void (idp.knobs.tokenRedirect = idp.endpoints.token),
  },
  {
    name: 'an oversize token response (Content-Length)',
    code: 'upstream_invalid_response',
    reason: /exceeds 262144 bytes/,
    exchanged: 1,
    arrange: (idp) =>
      void (idp.knobs.tokenOversize = { bytes: DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES + 1 }),
  },
  {
    name: 'an oversize token response (chunked)',
    code: 'upstream_invalid_response',
    reason: /exceeds 262144 bytes/,
    exchanged: 1,
    arrange: (idp) =>
      void (idp.knobs.tokenOversize = {
        bytes: DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES + 1,
        chunked: true,
      }),
  },
  {
    name: 'a token response above a configured cap',
    code: 'upstream_invalid_response',
    reason: /exceeds 8192 bytes/,
    exchanged: 1,
    options: { maxResponseBytes: 8192 },
    arrange: (idp) => void (idp.knobs.tokenOversize = { bytes: 8193 }),
  },
  {
    name: 'a token endpoint slower than the timeout',
    code: 'upstream_unavailable',
    exchanged: 1,
    // The timeout bounds set-up's discovery too, and is not what is asserted (a token endpoint
    // that never answers is cut, whenever): generous, so a busy machine's discovery makes it.
    over: { timeout: 2_000 },
    arrange: (idp) => void (idp.knobs.tokenDelayMs = 60_000),
  },
  {
    name: 'GitHub-like: a userinfo that refuses the new token',
    idp: 'github',
    code: 'upstream_refused',
    exchanged: 1,
    userinfo: 1,
    over: { subjectClaim: 'id' },
    arrange: (idp) =>
      void (idp.knobs.tamperToken = (body) => ({ ...body, access_token: 'gho_not-a-token' })),
  },
  {
    name: 'GitHub-like: a userinfo without the subject claim',
    idp: 'github',
    code: 'no_subject',
    exchanged: 1,
    userinfo: 1,
    over: { subjectClaim: 'id' },
    arrange: (idp) => void (idp.knobs.tamperUserinfo = ({ id: _drop, ...body }) => body),
  },
  {
    name: 'GitHub-like: a subject that is not a string or an integer',
    idp: 'github',
    code: 'no_subject',
    exchanged: 1,
    userinfo: 1,
    over: { subjectClaim: 'id' },
    arrange: (idp) => void (idp.knobs.tamperUserinfo = (body) => ({ ...body, id: { nested: 1 } })),
  },
]

describe('upstream sign-in refusals', () => {
  const idps: Record<'entra' | 'github', UpstreamIdp> = {} as never
  before(async () => {
    idps.entra = await startEntraLike()
    idps.github = await startPlainOAuth()
  })
  afterEach(() => {
    for (const idp of Object.values(idps)) idp.reset()
  })
  after(async () => {
    for (const idp of Object.values(idps)) await idp.close()
  })

  for (const c of cases) {
    it(`${c.name} → ${c.code}`, async (t) => {
      const idp = idps[c.idp ?? 'entra']
      const up = await connect(idp, c.idp === 'github' ? 'post' : 'basic', c.over, c.options)
      t.after(() => up.close())
      c.arrange?.(idp)
      const { callback, tx } = await toCallback(up, idp)
      const code = callback.searchParams.get('code')
      const err = await rejectsUpstream(
        (c.act ?? ((u, cb, x) => u.finish(cb, x)))(up, callback, tx, idp),
        c.code,
      )
      if (c.reason) assert.match(err.message, c.reason)
      assert.deepEqual(
        { token: idp.counts.token, userinfo: idp.counts.userinfo },
        { token: c.exchanged, userinfo: c.userinfo ?? 0 },
      )
      leaksNone(err.message, [
        code,
        idp.clients.basic?.clientSecret,
        idp.clients.post?.clientSecret,
        tx.codeVerifier,
      ])
    })
  }

  it('a callback replayed on another replica is refused when they share claimTx (the store)', async (t) => {
    const used = new Set<string>()
    const claimTx = async (state: string) => !used.has(state) && Boolean(used.add(state))
    const a = await connect(idps.entra, 'basic', {}, { claimTx })
    const b = await connect(idps.entra, 'basic', {}, { claimTx })
    t.after(() => Promise.all([a.close(), b.close()]))
    const { callback, tx } = await toCallback(a, idps.entra)
    await a.finish(callback, tx)
    await rejectsUpstream(b.finish(callback, tx), 'upstream_replayed')
    assert.equal(idps.entra.counts.token, 1)
  })

  it('closing while the token endpoint holds its answer: the request is dropped, not waited for', {
    timeout: 60_000,
  }, async () => {
    // The client would wait ten minutes: before the fix, closing it (the gateway's shutdown) did.
    const up = await connect(idps.entra, 'basic', { timeout: 600_000 })
    idps.entra.knobs.tokenDelayMs = 600_000
    const { callback, tx } = await toCallback(up, idps.entra)
    const finished = rejectsUpstream(up.finish(callback, tx), 'upstream_unavailable')
    await waitFor(() => idps.entra.counts.token > 0, 'the token request reached the IdP')
    await up.close()
    await finished
    assert.equal(idps.entra.counts.token, 1)
  })

  it('a redirect from the token endpoint is not followed to another host either', async (t) => {
    let hits = 0
    const other = http.createServer((_req, res) => {
      hits++
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end('{"access_token":"x","token_type":"Bearer"}')
    })
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => other.close(() => resolve())))
    const up = await connect(idps.entra, 'jwt')
    t.after(() => up.close())
    idps.entra.knobs.tokenRedirect = `http://127.0.0.1:${(other.address() as AddressInfo).port}/token`
    const { callback, tx } = await toCallback(up, idps.entra)
    await rejectsUpstream(up.finish(callback, tx), 'upstream_invalid_response')
    assert.equal(hits, 0)
  })
})
