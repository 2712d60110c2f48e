// The account API (GET /account/api, PUT and DELETE /account/api/secrets/:name) against a real
// gateway and its dev IdP: bearer tokens refused (none, malformed, another issuer, another
// audience, expired), accepted for any of the gateway's servers or endpoints; set, list, replace, delete;
// values never in a response, a log line or an audit line; names and bodies refused with stable
// codes; users kept apart. Then, with the broker, the page and the API see the same secrets:
// the page's sign-in and the MCP tokens name the same (iss, sub).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { JWTPayload } from 'jose'
import { request } from 'undici'
import { DEFAULT_SECRET_UNUSED_TTL_MS } from '../../gateway/config/schema.js'
import {
  ACCOUNT_EXCHANGE,
  ACCOUNT_POLICY,
  accountServers,
  formFor,
  pageSignIn,
  SEALING,
  secretsIn,
  submit,
} from '../helpers/account.js'
import { exchange, login, newClient, send } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { recordingStore, type RecordingStore } from '../helpers/recording-store.js'
import { startStack, type Stack } from '../helpers/stack.js'

const MAX_BODY = 16_384

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: Record<string, unknown>
}

/** One API request; `token` undefined sends no Authorization. */
async function api(
  url: string,
  o: {
    method?: string
    token?: string
    authorization?: string
    body?: unknown
    raw?: string
    headers?: Record<string, string>
  } = {},
): Promise<Reply> {
  const body = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body))
  const res = await request(url, {
    method: (o.method ?? 'GET') as 'GET',
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.authorization ? { authorization: o.authorization } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...o.headers,
    },
    ...(body !== undefined ? { body } : {}),
  })
  const text = await res.body.text()
  let json: Record<string, unknown> = {}
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    // empty (204) or not JSON
  }
  return { status: res.statusCode, headers: res.headers, text, json }
}

describe('the account API with an external issuer (the dev IdP)', () => {
  let stack: Stack
  let store: RecordingStore
  let alice: string
  let bob: string
  let dora: string
  const base = () => `${stack.url}/account/api`
  const secret = (name: string) => `${base()}/secrets/${name}`
  const owner = (sub: string) => ({ iss: stack.gateway.issuer!, sub })

  before(async () => {
    store = recordingStore()
    stack = await startStack({
      policy: ACCOUNT_POLICY,
      servers: accountServers({ upstreamToken: false }),
      store,
      auth: ACCOUNT_EXCHANGE,
      config: {
        secrets: SEALING,
        account: { maxBodyBytes: MAX_BODY },
        endpoints: { all: { path: '/mcp', servers: '*' } },
      },
    })
    alice = await stack.token('alice', { server: 'github' })
    bob = await stack.token('bob', { server: 'github' })
    dora = await stack.token('dev', { server: 'jira' })
  })
  after(async () => {
    await stack?.close()
  })

  /** Every store key holding a user's secret. */
  const secretKeys = async () =>
    (await store.keys('secrets:')).filter((k) => k.split(':').length > 2)

  describe('bearer tokens', () => {
    const now = () => Math.floor(Date.now() / 1000)
    const cases: {
      name: string
      auth: () => Promise<{ token?: string; authorization?: string }>
      status: number
      error: string
      challenge: RegExp
    }[] = [
      {
        name: 'none',
        auth: async () => ({}),
        status: 401,
        error: 'unauthorized',
        challenge: /^Bearer resource_metadata="[^"]+"$/,
      },
      {
        name: 'another scheme (Basic)',
        auth: async () => ({ authorization: 'Basic YWxpY2U6c2VjcmV0' }),
        status: 401,
        error: 'unauthorized',
        challenge: /^Bearer resource_metadata=/,
      },
      {
        name: 'two tokens',
        auth: async () => ({ authorization: 'Bearer a b' }),
        status: 400,
        error: 'invalid_request',
        challenge: /error="invalid_request"/,
      },
      {
        name: 'not a JWT',
        auth: async () => ({ token: 'not-a-jwt' }),
        status: 401,
        error: 'unauthorized',
        challenge: /error="invalid_token"/,
      },
      {
        name: 'another issuer',
        auth: async () => ({ token: await stack.forge({ iss: 'https://idp.elsewhere.example' }) }),
        status: 401,
        error: 'unauthorized',
        challenge: /error="invalid_token"/,
      },
      {
        name: 'another audience (no server of this gateway)',
        auth: async () => ({
          token: await stack.forge({ aud: 'https://other.example/mcp/github' }),
        }),
        status: 401,
        error: 'unauthorized',
        challenge: /error="invalid_token"/,
      },
      {
        name: 'another audience (a path beside the endpoint /mcp)',
        auth: async () => ({ token: await stack.forge({ aud: `${stack.url}/mcpx` }) }),
        status: 401,
        error: 'unauthorized',
        challenge: /error="invalid_token"/,
      },
      {
        name: 'expired',
        auth: async () => ({ token: await stack.forge({ iat: now() - 7200, exp: now() - 3600 }) }),
        status: 401,
        error: 'unauthorized',
        challenge: /error="invalid_token".*expired/,
      },
    ]
    for (const c of cases) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        it(`${c.name}: ${method} → ${c.status} ${c.error}, nothing stored`, async () => {
          const before = await secretKeys()
          const res = await api(method === 'GET' ? base() : secret('github-token'), {
            method,
            ...(await c.auth()),
            ...(method === 'PUT' ? { body: { value: 'refused' } } : {}),
          })
          assert.equal(res.status, c.status, res.text)
          assert.equal(res.json.error, c.error)
          assert.match(String(res.headers['www-authenticate']), c.challenge)
          assert.deepEqual(await secretKeys(), before)
        })
      }
    }

    it('a token for any server of the gateway will do (echo: nothing to set there)', async () => {
      const token = await stack.token('alice', { server: 'echo' })
      const res = await api(base(), { token })
      assert.equal(res.status, 200, res.text)
      assert.equal(res.json.sub, 'alice')
    })

    it('so will a token for an endpoint of the gateway (/mcp: what a connector there holds)', async () => {
      const token = await stack.token('alice', { resource: `${stack.url}/mcp` })
      const res = await api(base(), { token })
      assert.equal(res.status, 200, res.text)
      assert.equal(res.json.sub, 'alice')
    })
  })

  describe('set, list, replace, delete', () => {
    const value = 'ghp_0123456789abcdefVALUE'
    const replacement = 'ghp_fedcba9876543210OTHER'

    it('GET lists the servers the caller may use and what each needs (nothing set yet)', async () => {
      const res = await api(base(), { token: alice })
      assert.equal(res.status, 200, res.text)
      assert.equal(res.headers['cache-control'], 'no-store')
      assert.deepEqual(res.json, {
        iss: stack.gateway.issuer,
        sub: 'alice',
        servers: [
          { name: 'echo', description: 'Echoes text back', credentials: [] },
          {
            name: 'github',
            description: 'GitHub tools',
            credentials: [
              {
                env: 'GITHUB_TOKEN',
                kind: 'secret',
                secret: 'github-token',
                describe: 'a GitHub personal access token',
                set: false,
                setAt: null,
                expiresAt: null,
              },
            ],
          },
        ],
        secrets: [],
      })
    })

    it('a developer sees jira too: its secret and the exchange the gateway does for them', async () => {
      const res = await api(base(), { token: dora })
      const jira = (res.json.servers as { name: string; credentials: unknown[] }[]).find(
        (s) => s.name === 'jira',
      )
      assert.deepEqual(jira?.credentials, [
        {
          env: 'JIRA_TOKEN',
          kind: 'secret',
          secret: 'jira-token',
          set: false,
          setAt: null,
          expiresAt: null,
        },
        { env: 'CONFLUENCE', kind: 'exchange', audience: 'https://confluence.example' },
      ])
    })

    it('PUT sets (201), PUT again replaces (200), GET shows the date, DELETE deletes (204): never a value', async () => {
      const seen: string[] = []
      const before = Date.now()
      const set = await api(secret('github-token'), {
        method: 'PUT',
        token: alice,
        body: { value },
      })
      seen.push(set.text)
      assert.equal(set.status, 201, set.text)
      assert.equal(set.json.name, 'github-token')
      assert.equal(set.json.replaced, false)
      assert.equal(await secretsIn(store).value(owner('alice'), 'github-token'), value)

      const listed = await api(base(), { token: alice })
      seen.push(listed.text)
      const cred = (
        listed.json.servers as { name: string; credentials: Record<string, unknown>[] }[]
      ).find((s) => s.name === 'github')!.credentials[0]!
      assert.equal(cred.set, true)
      const listedAt = Date.now()
      assert.equal(cred.setAt, set.json.setAt)
      // When it goes unused: set's own, and listed from the store's time to live of the value
      // (read back, so within the time the set took, to the ms PTTL rounds to).
      const ttl = DEFAULT_SECRET_UNUSED_TTL_MS
      assert.equal(
        set.json.expiresAt,
        new Date(Date.parse(set.json.setAt as string) + ttl).toISOString(),
      )
      const expiresAt = Date.parse(cred.expiresAt as string)
      assert.ok(
        expiresAt >= before + ttl - 1 && expiresAt <= listedAt + ttl,
        `${cred.expiresAt} not within the set's time + ${ttl} ms`,
      )
      assert.deepEqual(listed.json.secrets, [
        { name: 'github-token', setAt: set.json.setAt, expiresAt: cred.expiresAt },
      ])

      const again = await api(secret('github-token'), {
        method: 'PUT',
        token: alice,
        body: { value: replacement },
      })
      seen.push(again.text)
      assert.equal(again.status, 200, again.text)
      assert.equal(again.json.replaced, true)
      assert.equal(await secretsIn(store).value(owner('alice'), 'github-token'), replacement)

      const del = await api(secret('github-token'), { method: 'DELETE', token: alice })
      seen.push(del.text)
      assert.equal(del.status, 204)
      assert.equal(del.text, '')
      assert.equal(await secretsIn(store).value(owner('alice'), 'github-token'), undefined)
      const after = await api(base(), { token: alice })
      seen.push(after.text)
      assert.deepEqual(after.json.secrets, [])

      // Nowhere: not in an answer, a log line, an audit line, or the store in the clear.
      const everywhere = [
        ...seen,
        ...stack.logLines,
        ...stack.audit().map((a) => JSON.stringify(a)),
        ...(await store.dump()).values(),
      ].join('\n')
      for (const v of [value, replacement]) assert.ok(!everywhere.includes(v), 'a value leaked')
      const audit = stack.audit().filter((a) => String(a.method).startsWith('account/'))
      assert.deepEqual(
        audit.map((a) => [a.method, a.name, a.server, a.decision, a.outcome, a.sub, a.clientId]),
        [
          ['account/secret.set', 'github-token', 'github', 'allow', 'set', 'alice', 'alice'],
          ['account/secret.set', 'github-token', 'github', 'allow', 'replaced', 'alice', 'alice'],
          ['account/secret.delete', 'github-token', 'github', 'allow', 'deleted', 'alice', 'alice'],
        ],
      )
      for (const a of audit) assert.equal(a.value, undefined)
    })

    it('users are kept apart: bob neither sees nor changes what alice set', async () => {
      assert.equal(
        (
          await api(secret('github-token'), {
            method: 'PUT',
            token: alice,
            body: { value: 'alices' },
          })
        ).status,
        201,
      )
      assert.deepEqual((await api(base(), { token: bob })).json.secrets, [])
      assert.equal(
        (await api(secret('github-token'), { method: 'PUT', token: bob, body: { value: 'bobs' } }))
          .status,
        201,
      )
      assert.equal(
        (await api(secret('github-token'), { method: 'DELETE', token: bob })).status,
        204,
      )
      assert.equal(await secretsIn(store).value(owner('alice'), 'github-token'), 'alices')
      assert.equal(await secretsIn(store).value(owner('bob'), 'github-token'), undefined)
      assert.equal(
        (await api(secret('github-token'), { method: 'DELETE', token: alice })).status,
        204,
      )
    })

    it('DELETE of a settable secret not set: 204 (nothing to do)', async () => {
      assert.equal(
        (await api(secret('github-token'), { method: 'DELETE', token: alice })).status,
        204,
      )
    })
  })

  describe('a set or delete needs a token for a server that takes the secret', () => {
    // An app the user let in for one server must not put its own account's key in place of the
    // user's for another (and read what the user then sends there), nor delete it.
    const held = 'ghp_heldBeforeTheAttempts01'
    const claimsOf = (t: string) =>
      JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
    const as = (aud: unknown) => stack.forge({ ...claimsOf(alice), aud } as JWTPayload)
    const at = (path: string) => `${stack.url}${path}`
    const local = (path: string) => `${stack.url.replace('127.0.0.1', 'localhost')}${path}`
    const cases: { name: string; aud: () => unknown; status: number; error: string }[] = [
      {
        name: 'echo, which takes no secret',
        aud: () => at('/mcp/echo'),
        status: 403,
        error: 'token_not_for_server',
      },
      {
        name: 'jira, which takes another',
        aud: () => at('/mcp/jira'),
        status: 403,
        error: 'token_not_for_server',
      },
      {
        name: "echo's legacy /sse resource",
        aud: () => at('/sse/echo'),
        status: 403,
        error: 'token_not_for_server',
      },
      {
        name: 'echo by its localhost name',
        aud: () => local('/mcp/echo'),
        status: 403,
        error: 'token_not_for_server',
      },
      {
        name: 'echo and jira',
        aud: () => [at('/mcp/echo'), at('/mcp/jira')],
        status: 403,
        error: 'token_not_for_server',
      },
      {
        name: 'echo among values of other types',
        aud: () => [{ url: at('/mcp/github') }, 7, null, at('/mcp/echo')],
        status: 403,
        error: 'token_not_for_server',
      },
      {
        name: 'github in upper case',
        aud: () => at('/MCP/GITHUB'),
        status: 401,
        error: 'unauthorized',
      },
      {
        name: 'github with a trailing slash',
        aud: () => `${at('/mcp/github')}/`,
        status: 401,
        error: 'unauthorized',
      },
      {
        name: 'github with a leading space',
        aud: () => ` ${at('/mcp/github')}`,
        status: 401,
        error: 'unauthorized',
      },
      {
        name: 'github percent-encoded',
        aud: () => at('/mcp/%67ithub'),
        status: 401,
        error: 'unauthorized',
      },
      {
        name: 'github as a query',
        aud: () => at('/mcp/echo?server=github'),
        status: 401,
        error: 'unauthorized',
      },
    ]
    before(async () => {
      const res = await api(secret('github-token'), {
        method: 'PUT',
        token: alice,
        body: { value: held },
      })
      assert.ok(res.status === 201 || res.status === 200, res.text)
    })
    after(async () => {
      await api(secret('github-token'), { method: 'DELETE', token: alice })
    })
    for (const c of cases) {
      for (const method of ['PUT', 'DELETE']) {
        it(`a token for ${c.name}: ${method} → ${c.status} ${c.error}, the held key untouched`, async () => {
          const token = await as(c.aud())
          const audits = stack.audit().length
          const res = await api(secret('github-token'), {
            method,
            token,
            ...(method === 'PUT' ? { body: { value: 'ghp_theAppsOwnAccountKey99' } } : {}),
          })
          assert.equal(res.status, c.status, res.text)
          assert.equal(res.json.error, c.error)
          assert.equal(await secretsIn(store).value(owner('alice'), 'github-token'), held)
          if (c.status === 403) {
            assert.match(String(res.json.message), /github/)
            const line = stack.audit().slice(audits).at(-1)!
            assert.equal(line.decision, 'deny')
            assert.equal(line.server, 'github')
            assert.equal(line.name, 'github-token')
            assert.match(String(line.outcome), /not for every server of the user that takes it/)
          }
        })
      }
    }
    it('that token still lists what the user has (names and dates, no value)', async () => {
      const res = await api(base(), { token: await as(at('/mcp/echo')) })
      assert.equal(res.status, 200, res.text)
      assert.deepEqual(
        (res.json.secrets as { name: string }[]).map((s) => s.name),
        ['github-token'],
      )
    })
    for (const [name, aud] of [
      ['github', () => at('/mcp/github')],
      ["github's legacy /sse resource", () => at('/sse/github')],
      ['github by its localhost name', () => local('/mcp/github')],
      ['the endpoint /mcp, which serves github', () => at('/mcp')],
      ['echo and github', () => [at('/mcp/echo'), at('/mcp/github')]],
    ] as const) {
      it(`a token for ${name} sets it`, async () => {
        const value = `ghp_setWith_${name.replace(/\W+/g, '_')}`
        const res = await api(secret('github-token'), {
          method: 'PUT',
          token: await as(aud()),
          body: { value },
        })
        assert.equal(res.status, 200, res.text)
        assert.equal(await secretsIn(store).value(owner('alice'), 'github-token'), value)
        const back = await api(secret('github-token'), {
          method: 'PUT',
          token: alice,
          body: { value: held },
        })
        assert.equal(back.status, 200, back.text)
      })
    }
  })

  describe('refusals, storing nothing', () => {
    const cases: {
      name: string
      path?: string
      method?: string
      body?: unknown
      raw?: string
      headers?: Record<string, string>
      status: number
      error: string
    }[] = [
      {
        name: 'a name no server takes',
        path: 'aws-key',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'a secret of a server the caller may not use (jira: write access)',
        path: 'jira-token',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'deleting a secret of a server the caller may not use',
        path: 'vault-token',
        method: 'DELETE',
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'no Content-Type',
        raw: '{"value":"v"}',
        headers: { 'content-type': '' },
        status: 415,
        error: 'unsupported_media_type',
      },
      {
        name: 'text/plain',
        raw: '{"value":"v"}',
        headers: { 'content-type': 'text/plain' },
        status: 415,
        error: 'unsupported_media_type',
      },
      {
        name: 'a form',
        raw: 'value=v',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        status: 415,
        error: 'unsupported_media_type',
      },
      { name: 'not JSON', raw: '{"value":', status: 400, error: 'invalid_body' },
      { name: 'an array', body: ['v'], status: 400, error: 'invalid_body' },
      { name: 'a number value', body: { value: 5 }, status: 400, error: 'invalid_body' },
      {
        name: 'an extra field',
        body: { value: 'v', name: 'vault-token' },
        status: 400,
        error: 'invalid_body',
      },
      { name: 'no value', body: {}, status: 400, error: 'invalid_body' },
      { name: 'an empty value', body: { value: '' }, status: 400, error: 'secret_refused' },
      {
        name: 'a value holding NUL',
        body: { value: 'a\u0000b' },
        status: 400,
        error: 'secret_refused',
      },
      {
        name: 'a value over 8192 characters',
        body: { value: 'x'.repeat(8193) },
        status: 400,
        error: 'secret_refused',
      },
      {
        name: 'a body over account.maxBodyBytes',
        body: { value: 'x'.repeat(MAX_BODY) },
        status: 413,
        error: 'body_too_large',
      },
      {
        name: 'a request from another site (Origin)',
        body: { value: 'v' },
        headers: { origin: 'http://evil.example' },
        status: 403,
        error: 'origin_not_allowed',
      },
      // Hostile names in the path: decoded once by the router, never twice, never a path.
      {
        name: 'the name ../vault-token (encoded slash)',
        path: '..%2Fvault-token',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'the name github-token NUL',
        path: 'github-token%00',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'the name github-token LF',
        path: 'github-token%0A',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'the name github-token with a trailing space',
        path: 'github-token%20',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'a double-encoded name',
        path: 'github%252Dtoken',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'an upper-case name',
        path: 'GITHUB-TOKEN',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'a right-to-left override',
        path: '%E2%80%AEgithub-token',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'a broken percent-encoding',
        path: '%ZZ',
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
      {
        name: 'a name of 65 characters',
        path: 'a'.repeat(65),
        body: { value: 'v' },
        status: 403,
        error: 'secret_not_allowed',
      },
    ]
    for (const c of cases) {
      it(`${c.name}: ${c.status} ${c.error}`, async () => {
        const before = await secretKeys()
        const audits = stack.audit().length
        const res = await api(secret(c.path ?? 'github-token'), {
          method: c.method ?? 'PUT',
          token: alice,
          body: c.body,
          raw: c.raw,
          headers: c.headers,
        })
        assert.equal(res.status, c.status, res.text)
        assert.equal(res.json.error, c.error)
        assert.equal(typeof res.json.message, 'string')
        assert.deepEqual(await secretKeys(), before)
        // A name or value refused for the user, or a request from another site, is one audit
        // line (deny) saying why; one refused for its media type or body shape is none.
        const lines = stack
          .audit()
          .slice(audits)
          .filter((e) => String(e.method).startsWith('account/'))
        const refused =
          c.error === 'secret_refused' ||
          c.error === 'secret_not_allowed' ||
          c.error === 'origin_not_allowed'
        assert.equal(lines.length, refused ? 1 : 0, JSON.stringify(lines))
        if (refused) {
          assert.equal(lines[0]!.decision, 'deny')
          assert.equal(
            lines[0]!.method,
            c.method === 'DELETE' ? 'account/secret.delete' : 'account/secret.set',
          )
          assert.equal(
            lines[0]!.outcome,
            c.error === 'secret_refused'
              ? `refused: ${res.json.message}`
              : c.error === 'origin_not_allowed'
                ? 'refused: origin_not_allowed'
                : 'refused: no server of the caller takes it',
          )
        }
      })
    }

    // Paths that are no secret's: the router answers them, not the API.
    for (const path of ['%2E%2E', 'a/b', '']) {
      it(`the path /account/api/secrets/${path}: 404, nothing stored`, async () => {
        const before = await secretKeys()
        const res = await api(secret(path), { method: 'PUT', token: alice, body: { value: 'v' } })
        assert.equal(res.status, 404, res.text)
        assert.deepEqual(await secretKeys(), before)
      })
    }

    it('a refused name is an audit event (deny), without the value', async () => {
      await api(secret('aws-key'), {
        method: 'PUT',
        token: alice,
        body: { value: 'never-stored-value' },
      })
      const last = stack
        .audit()
        .filter((a) => a.method === 'account/secret.set')
        .at(-1)!
      assert.deepEqual(
        [last.name, last.decision, last.outcome],
        ['aws-key', 'deny', 'refused: no server of the caller takes it'],
      )
      assert.ok(!JSON.stringify(stack.audit()).includes('never-stored-value'))
    })

    const methods = [
      { method: 'POST', path: '', allow: 'GET' },
      { method: 'DELETE', path: '', allow: 'GET' },
      { method: 'GET', path: '/secrets/github-token', allow: 'PUT, DELETE' },
      { method: 'POST', path: '/secrets/github-token', allow: 'PUT, DELETE' },
      { method: 'PATCH', path: '/secrets/github-token', allow: 'PUT, DELETE' },
      { method: 'OPTIONS', path: '/secrets/github-token', allow: 'PUT, DELETE' },
    ]
    for (const m of methods) {
      it(`${m.method} /account/api${m.path}: 405, Allow ${m.allow}, no CORS`, async () => {
        const res = await api(`${base()}${m.path}`, {
          method: m.method,
          token: alice,
          headers: { origin: stack.url },
        })
        assert.equal(res.status, 405, res.text)
        assert.equal(res.json.error, 'method_not_allowed')
        assert.equal(res.headers.allow, m.allow)
        assert.equal(res.headers['access-control-allow-origin'], undefined)
      })
    }
  })

  describe("another site's requests (Origin): refused, audited as the token's user, nothing stored", () => {
    const origins = [
      'http://evil.example',
      'HTTP://EVIL.EXAMPLE',
      'null',
      'http://127.0.0.1.evil.example',
      'https://evil.example:443',
      'http://evil.example, http://127.0.0.1',
    ]
    const requests = [
      { method: 'GET', path: '', audit: 'account/read', name: undefined },
      {
        method: 'PUT',
        path: '/secrets/github-token',
        audit: 'account/secret.set',
        name: 'github-token',
      },
      {
        method: 'DELETE',
        path: '/secrets/github-token',
        audit: 'account/secret.delete',
        name: 'github-token',
      },
    ]
    for (const origin of origins) {
      for (const r of requests) {
        it(`${r.method} from ${JSON.stringify(origin)}: 403 origin_not_allowed, one deny line`, async () => {
          const before = await secretKeys()
          const audits = stack.audit().length
          const res = await api(`${base()}${r.path}`, {
            method: r.method,
            token: alice,
            body: r.method === 'PUT' ? { value: 'from-another-site' } : undefined,
            headers: { origin },
          })
          assert.equal(res.status, 403, res.text)
          assert.equal(res.json.error, 'origin_not_allowed')
          assert.deepEqual(await secretKeys(), before)
          const lines = stack.audit().slice(audits)
          assert.deepEqual(
            lines.map((l) => [
              l.sub,
              l.iss,
              l.server,
              l.method,
              l.name,
              l.decision,
              l.rule,
              l.outcome,
            ]),
            [
              [
                'alice',
                stack.gateway.issuer,
                '',
                r.audit,
                r.name,
                'deny',
                'account api',
                'refused: origin_not_allowed',
              ],
            ],
          )
          assert.ok(!JSON.stringify(lines).includes('from-another-site'), 'no value')
        })
      }
    }

    const nobody: [string, () => Promise<Record<string, string>>][] = [
      ['no token', async () => ({})],
      ['a malformed token', async () => ({ authorization: 'Bearer not.a.jwt' })],
      [
        'an expired token',
        async () => ({
          authorization: `Bearer ${await stack.forge({ sub: 'alice', aud: stack.endpoint('github'), exp: Math.floor(Date.now() / 1000) - 3600 })}`,
        }),
      ],
      [
        'a token for another resource',
        async () => ({
          authorization: `Bearer ${await stack.forge({ sub: 'alice', aud: 'https://elsewhere.example/mcp' })}`,
        }),
      ],
    ]
    for (const [name, headers] of nobody) {
      it(`from another site with ${name}: 403, no audit line (no user known)`, async () => {
        const audits = stack.audit().length
        const res = await api(`${base()}/secrets/github-token`, {
          method: 'PUT',
          body: { value: 'v' },
          headers: { origin: 'http://evil.example', ...(await headers()) },
        })
        assert.equal(res.status, 403, res.text)
        assert.equal(res.json.error, 'origin_not_allowed')
        assert.deepEqual(stack.audit().slice(audits), [])
      })
    }

    it('control: our own origin is served', async () => {
      const res = await api(base(), { token: alice, headers: { origin: stack.url } })
      assert.equal(res.status, 200, res.text)
    })
  })

  describe('the page, without the broker', () => {
    it('GET /account explains the API and the command line (no sign-in here)', async () => {
      const res = await send(`${stack.url}/account`)
      assert.equal(res.status, 200)
      assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/)
      assert.match(res.text, /mcp-edge secrets set NAME --url/)
      assert.match(res.text, /\/account\/api/)
      assert.doesNotMatch(res.text, /account\/login/)
    })
    for (const [method, path] of [
      ['GET', '/account/login'],
      ['GET', '/account/callback?code=x&state=y'],
      ['POST', '/account/secrets'],
    ] as const) {
      it(`${method} ${path}: 404 (no sign-in without the broker)`, async () => {
        const res = await send(`${stack.url}${path}`, {
          method,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          ...(method === 'POST' ? { body: 'name=github-token&value=v' } : {}),
        })
        assert.equal(res.status, 404)
        assert.equal(res.headers['set-cookie'], undefined)
      })
    }
  })
})

describe('with the broker: the page and the API are the same user', () => {
  let stack: BrokerStack
  const ALICE = '00000000-0000-0000-0000-00000000a11c'
  const REDIRECT = 'http://127.0.0.1:43190/cb'

  before(async () => {
    stack = await startBrokerStack({
      policy: ACCOUNT_POLICY,
      auth: ACCOUNT_EXCHANGE,
      config: { servers: accountServers(), secrets: SEALING },
    })
  })
  after(async () => {
    await stack?.close()
  })

  it('set on the page, seen with an MCP access token of the same user; set with it, seen on the page', async () => {
    const jar = new Map<string, string>()
    const { page } = await pageSignIn(stack.url, jar)
    assert.equal(
      (
        await submit(stack.url, jar, formFor(page.text, { set: 'github-token' }), {
          value: 'from-the-page',
        })
      ).status,
      303,
    )

    // An MCP client's login, in another browser: the broker's token for the github server.
    const clientId = await newClient(stack, [REDIRECT])
    const l = await login(stack, {
      clientId,
      redirectUri: REDIRECT,
      server: 'github',
      scope: 'mcp:read mcp:write',
    })
    const t = await exchange(stack, l, { clientId, redirectUri: REDIRECT, server: 'github' })
    assert.equal(t.status, 200, t.text)
    const token = String(t.json.access_token)

    const listed = await api(`${stack.url}/account/api`, { token })
    assert.equal(listed.status, 200, listed.text)
    assert.deepEqual([listed.json.iss, listed.json.sub], [stack.url, ALICE])
    assert.deepEqual(
      (listed.json.secrets as { name: string }[]).map((s) => s.name),
      ['github-token'],
    )
    const jira = (
      listed.json.servers as { name: string; credentials: Record<string, unknown>[] }[]
    ).find((s) => s.name === 'jira')!
    const upstream = new URL(stack.idp.issuer).host
    assert.deepEqual(
      jira.credentials.find((c) => c.kind === 'upstreamToken'),
      { env: 'UPSTREAM', kind: 'upstreamToken', token: 'access_token', upstream, held: true },
    )

    // The app's token is for github: it may not put a key in place for jira (another app's
    // server), which the page can.
    const jiraByApp = await api(`${stack.url}/account/api/secrets/jira-token`, {
      method: 'PUT',
      token,
      body: { value: 'from-the-app' },
    })
    assert.equal(jiraByApp.status, 403, jiraByApp.text)
    assert.equal(jiraByApp.json.error, 'token_not_for_server')
    assert.equal(
      await secretsIn(stack.store).value({ iss: stack.url, sub: ALICE }, 'jira-token'),
      undefined,
    )
    assert.equal(
      (
        await api(`${stack.url}/account/api/secrets/github-token`, {
          method: 'PUT',
          token,
          body: { value: 'from-the-api' },
        })
      ).status,
      200,
    )
    const again = await send(`${stack.url}/account`, { jar })
    assert.match(again.text, /id="secret-github-github-token">[\s\S]*?Set on <time/)
    assert.doesNotMatch(again.text, /id="secret-jira-jira-token">(?:(?!<\/li>)[\s\S])*Set on <time/)
    assert.equal(
      await secretsIn(stack.store).value({ iss: stack.url, sub: ALICE }, 'github-token'),
      'from-the-api',
    )
  })
})
