// Client metadata the broker accepts, from a registration (DCR) or a metadata document (CIMD),
// seen as oidc-provider's validator sees it: defaults already filled in.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ClientPolicyError } from '../../gateway/broker/client-errors.js'
import {
  CLIENT_POLICY_PROPERTY,
  clientPolicy,
  type ClientSource,
} from '../../gateway/broker/client-policy.js'
import {
  DEFAULT_BROKER_MAX_REDIRECT_URIS,
  DEFAULT_BROKER_REDIRECT_URIS,
  DEFAULT_CLIENT_NAME_MAX_LENGTH,
} from '../../gateway/config/schema.js'

const OWN_CALLBACK = 'https://gw.example.com/broker/callback'
const policy = clientPolicy(
  {
    maxRedirectUris: DEFAULT_BROKER_MAX_REDIRECT_URIS,
    maxClientNameLength: DEFAULT_CLIENT_NAME_MAX_LENGTH,
    redirectUris: [...DEFAULT_BROKER_REDIRECT_URIS, 'https://gw.example.com/*'],
  },
  { ownCallbacks: [OWN_CALLBACK] },
)
const CIMD_ID = 'https://client.example.org/oauth/client.json'

/** Metadata as oidc-provider hands it to the validator: oidc-provider's defaults, then the client's. */
function metadata(
  source: ClientSource,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    application_type: 'web',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    post_logout_redirect_uris: [],
    client_id: source === 'cimd' ? CIMD_ID : 'dcr-0001',
    redirect_uris: ['http://127.0.0.1/callback'],
    ...(source === 'cimd' ? { token_endpoint_auth_method: 'none' } : {}),
    ...over,
  }
}

describe('clientPolicy.check: accepted', () => {
  const cases: [
    string,
    ClientSource,
    Record<string, unknown>,
    { native: boolean; localhostRedirects?: string[] },
  ][] = [
    [
      'MCP Inspector (DCR)',
      'dcr',
      {
        client_name: 'MCP Inspector',
        redirect_uris: [
          'http://localhost:6274/oauth/callback',
          'http://localhost:6274/oauth/callback/debug',
        ],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
      },
      {
        native: true,
        localhostRedirects: [
          'http://localhost:6274/oauth/callback',
          'http://localhost:6274/oauth/callback/debug',
        ],
      },
    ],
    [
      'Claude (DCR, client_secret_post)',
      'dcr',
      {
        client_name: 'Claude',
        redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
        token_endpoint_auth_method: 'client_secret_post',
      },
      { native: false },
    ],
    [
      'Cursor (DCR)',
      'dcr',
      {
        client_name: 'Cursor',
        redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback'],
        token_endpoint_auth_method: 'none',
      },
      { native: true },
    ],
    [
      'VS Code (DCR, loopback and https)',
      'dcr',
      {
        redirect_uris: ['http://127.0.0.1:33418/', 'https://vscode.dev/redirect'],
        token_endpoint_auth_method: 'none',
      },
      { native: false },
    ],
    ['defaults only (client_secret_basic)', 'dcr', {}, { native: true }],
    [
      'exactly the maximum of redirect URIs',
      'dcr',
      {
        redirect_uris: Array.from(
          { length: DEFAULT_BROKER_MAX_REDIRECT_URIS },
          (_, i) => `http://127.0.0.1/cb${i}`,
        ),
      },
      { native: true },
    ],
    ['a 256-character name', 'dcr', { client_name: 'n'.repeat(256) }, { native: true }],
    ['a name in another script', 'dcr', { client_name: 'クロード 🤖' }, { native: true }],
    [
      'another path on the gateway host (not its callback)',
      'dcr',
      { redirect_uris: ['https://gw.example.com/other'] },
      { native: false },
    ],
    [
      'CIMD, public client',
      'cimd',
      { client_name: 'Doc client', redirect_uris: ['https://client.example.org/cb'] },
      { native: false },
    ],
    [
      'CIMD, a redirect outside the DCR allow-list',
      'cimd',
      { redirect_uris: ['https://elsewhere.example.net/cb'] },
      { native: false },
    ],
    [
      'CIMD, private_key_jwt with jwks_uri',
      'cimd',
      {
        token_endpoint_auth_method: 'private_key_jwt',
        jwks_uri: 'https://client.example.org/jwks',
      },
      { native: true },
    ],
    [
      'CIMD, reverse-domain scheme',
      'cimd',
      { redirect_uris: ['com.example.app:/oauth2redirect/x'] },
      { native: true },
    ],
  ]
  for (const [name, source, over, expected] of cases) {
    test(name, () => {
      const verdict = policy.check(metadata(source, over), source)
      assert.equal(verdict.native, expected.native)
      assert.deepEqual(verdict.localhostRedirects, expected.localhostRedirects ?? [])
    })
  }
})

describe('clientPolicy.check: refused', () => {
  const cases: [
    string,
    ClientSource,
    Record<string, unknown>,
    'invalid_redirect_uri' | 'invalid_client_metadata',
    RegExp,
  ][] = [
    // redirect URIs
    ['no redirect_uris', 'dcr', { redirect_uris: [] }, 'invalid_redirect_uri', /non-empty array/],
    [
      'redirect_uris not an array',
      'dcr',
      { redirect_uris: 'http://127.0.0.1/cb' },
      'invalid_redirect_uri',
      /non-empty array/,
    ],
    [
      'redirect_uris absent',
      'dcr',
      { redirect_uris: undefined },
      'invalid_redirect_uri',
      /non-empty array/,
    ],
    [
      'one redirect URI too many',
      'dcr',
      {
        redirect_uris: Array.from(
          { length: DEFAULT_BROKER_MAX_REDIRECT_URIS + 1 },
          (_, i) => `http://127.0.0.1/cb${i}`,
        ),
      },
      'invalid_redirect_uri',
      /at most 10 URIs/,
    ],
    [
      'a redirect URI that is not a string',
      'dcr',
      { redirect_uris: ['http://127.0.0.1/cb', 7] },
      'invalid_redirect_uri',
      /redirect_uris\[1\]: a redirect URI must be a string/,
    ],
    [
      'a redirect URI outside the allow-list',
      'dcr',
      { redirect_uris: ['https://evil.example/cb'] },
      'invalid_redirect_uri',
      /redirect_uris\[0\]: not allowed/,
    ],
    [
      'host confusion',
      'dcr',
      { redirect_uris: ['https://claude.ai.evil.com/api/mcp/auth_callback'] },
      'invalid_redirect_uri',
      /not allowed/,
    ],
    [
      'userinfo',
      'dcr',
      { redirect_uris: ['https://claude.ai@evil.com/api/mcp/auth_callback'] },
      'invalid_redirect_uri',
      /userinfo/,
    ],
    [
      'a fragment',
      'dcr',
      { redirect_uris: ['http://127.0.0.1/cb#x'] },
      'invalid_redirect_uri',
      /fragment/,
    ],
    [
      'javascript:',
      'dcr',
      { redirect_uris: ['javascript:alert(1)'] },
      'invalid_redirect_uri',
      /redirect_uris\[0\]: not loopback/,
    ],
    [
      'http to a public host',
      'dcr',
      { redirect_uris: ['http://claude.ai/api/mcp/auth_callback'] },
      'invalid_redirect_uri',
      /not loopback/,
    ],
    [
      'the second URI bad',
      'dcr',
      { redirect_uris: ['http://127.0.0.1/cb', 'data:,x'] },
      'invalid_redirect_uri',
      /redirect_uris\[1\]/,
    ],
    [
      "the broker's own callback",
      'dcr',
      { redirect_uris: [OWN_CALLBACK] },
      'invalid_redirect_uri',
      /own callback/,
    ],
    [
      "the broker's own callback with a query",
      'dcr',
      { redirect_uris: [`${OWN_CALLBACK}?x=1`] },
      'invalid_redirect_uri',
      /own callback/,
    ],
    [
      "CIMD: the broker's own callback",
      'cimd',
      { redirect_uris: [OWN_CALLBACK] },
      'invalid_redirect_uri',
      /own callback/,
    ],
    [
      'CIMD: javascript:',
      'cimd',
      { redirect_uris: ['javascript:alert(1)'] },
      'invalid_redirect_uri',
      /not loopback/,
    ],
    [
      'CIMD: data:',
      'cimd',
      { redirect_uris: ['data:text/html,x'] },
      'invalid_redirect_uri',
      /not loopback/,
    ],
    [
      'CIMD: file:',
      'cimd',
      { redirect_uris: ['file:///etc/passwd'] },
      'invalid_redirect_uri',
      /not loopback/,
    ],
    [
      'CIMD: http to a public host',
      'cimd',
      { redirect_uris: ['http://client.example.org/cb'] },
      'invalid_redirect_uri',
      /not loopback/,
    ],
    [
      'CIMD: userinfo',
      'cimd',
      { redirect_uris: ['https://client.example.org@evil.com/cb'] },
      'invalid_redirect_uri',
      /userinfo/,
    ],
    [
      'CIMD: a non-canonical URI',
      'cimd',
      { redirect_uris: ['HTTPS://client.example.org/cb'] },
      'invalid_redirect_uri',
      /canonical/,
    ],
    [
      'CIMD: too many redirect URIs',
      'cimd',
      { redirect_uris: Array.from({ length: 11 }, (_, i) => `https://client.example.org/cb${i}`) },
      'invalid_redirect_uri',
      /at most/,
    ],
    // client_name
    ['an empty name', 'dcr', { client_name: '' }, 'invalid_client_metadata', /client_name/],
    [
      'a 257-character name',
      'dcr',
      { client_name: 'n'.repeat(257) },
      'invalid_client_metadata',
      /client_name/,
    ],
    [
      'a name that is not a string',
      'dcr',
      { client_name: ['Claude'] },
      'invalid_client_metadata',
      /client_name/,
    ],
    [
      'a name with a newline',
      'dcr',
      { client_name: 'Claude\nApproved by your admin' },
      'invalid_client_metadata',
      /control/,
    ],
    [
      'a name with NUL',
      'dcr',
      { client_name: 'Claude\u0000' },
      'invalid_client_metadata',
      /control/,
    ],
    [
      'a name with DEL',
      'dcr',
      { client_name: 'Claude\u007f' },
      'invalid_client_metadata',
      /control/,
    ],
    [
      'a name with a C1 control',
      'dcr',
      { client_name: 'Claude\u0085' },
      'invalid_client_metadata',
      /control/,
    ],
    [
      'a name with a right-to-left override',
      'dcr',
      { client_name: 'Claude\u202eedualC' },
      'invalid_client_metadata',
      /bidirectional/,
    ],
    [
      'a name with a bidi isolate',
      'dcr',
      { client_name: '\u2067Claude' },
      'invalid_client_metadata',
      /bidirectional/,
    ],
    [
      'CIMD: a name with an escape sequence',
      'cimd',
      { client_name: 'Doc\u001b[31m' },
      'invalid_client_metadata',
      /control/,
    ],
    // authentication
    [
      'DCR: private_key_jwt',
      'dcr',
      { token_endpoint_auth_method: 'private_key_jwt' },
      'invalid_client_metadata',
      /token_endpoint_auth_method must be one of none, client_secret_basic, client_secret_post/,
    ],
    [
      'DCR: client_secret_jwt',
      'dcr',
      { token_endpoint_auth_method: 'client_secret_jwt' },
      'invalid_client_metadata',
      /token_endpoint_auth_method/,
    ],
    [
      'DCR: tls_client_auth',
      'dcr',
      { token_endpoint_auth_method: 'tls_client_auth' },
      'invalid_client_metadata',
      /token_endpoint_auth_method/,
    ],
    [
      'DCR: a method that is not a string',
      'dcr',
      { token_endpoint_auth_method: ['none'] },
      'invalid_client_metadata',
      /token_endpoint_auth_method/,
    ],
    [
      'CIMD: client_secret_basic (also the default when absent)',
      'cimd',
      { token_endpoint_auth_method: 'client_secret_basic' },
      'invalid_client_metadata',
      /none, private_key_jwt \(a metadata document holds no shared secret\)/,
    ],
    [
      'CIMD: client_secret_post',
      'cimd',
      { token_endpoint_auth_method: 'client_secret_post' },
      'invalid_client_metadata',
      /no shared secret/,
    ],
    [
      'CIMD: client_secret_jwt',
      'cimd',
      { token_endpoint_auth_method: 'client_secret_jwt' },
      'invalid_client_metadata',
      /no shared secret/,
    ],
    [
      'DCR: jwks_uri',
      'dcr',
      { jwks_uri: 'https://client.example.org/jwks' },
      'invalid_client_metadata',
      /jwks_uri and jwks/,
    ],
    ['DCR: jwks', 'dcr', { jwks: { keys: [] } }, 'invalid_client_metadata', /jwks_uri and jwks/],
    // grants and response types
    [
      'client_credentials',
      'dcr',
      { grant_types: ['client_credentials'] },
      'invalid_client_metadata',
      /grant_types/,
    ],
    [
      'implicit',
      'dcr',
      { grant_types: ['authorization_code', 'implicit'] },
      'invalid_client_metadata',
      /grant_types/,
    ],
    [
      'device code',
      'dcr',
      { grant_types: ['urn:ietf:params:oauth:grant-type:device_code'] },
      'invalid_client_metadata',
      /grant_types/,
    ],
    [
      'token exchange',
      'cimd',
      { grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'] },
      'invalid_client_metadata',
      /grant_types/,
    ],
    [
      'grant_types not an array',
      'dcr',
      { grant_types: 'authorization_code' },
      'invalid_client_metadata',
      /grant_types/,
    ],
    [
      'response type token',
      'dcr',
      { response_types: ['token'] },
      'invalid_client_metadata',
      /response_types/,
    ],
    [
      'response type code id_token',
      'dcr',
      { response_types: ['code id_token'] },
      'invalid_client_metadata',
      /response_types/,
    ],
    [
      'two response types',
      'dcr',
      { response_types: ['code', 'none'] },
      'invalid_client_metadata',
      /response_types/,
    ],
    [
      'no response types',
      'dcr',
      { response_types: [] },
      'invalid_client_metadata',
      /response_types/,
    ],
    // URIs the server would fetch or redirect to
    [
      'sector_identifier_uri',
      'dcr',
      { sector_identifier_uri: 'https://169.254.169.254/latest' },
      'invalid_client_metadata',
      /sector_identifier_uri/,
    ],
    [
      'CIMD: sector_identifier_uri',
      'cimd',
      { sector_identifier_uri: 'https://client.example.org/s' },
      'invalid_client_metadata',
      /sector_identifier_uri/,
    ],
    [
      'request_uris',
      'dcr',
      { request_uris: ['https://evil.example/req'] },
      'invalid_client_metadata',
      /request_uris/,
    ],
    [
      'post_logout_redirect_uris',
      'dcr',
      { post_logout_redirect_uris: ['https://evil.example/'] },
      'invalid_client_metadata',
      /post_logout_redirect_uris/,
    ],
    [
      'backchannel_logout_uri',
      'dcr',
      { backchannel_logout_uri: 'https://10.0.0.1/logout' },
      'invalid_client_metadata',
      /backchannel_logout_uri/,
    ],
    [
      'initiate_login_uri',
      'cimd',
      { initiate_login_uri: 'https://client.example.org/login' },
      'invalid_client_metadata',
      /initiate_login_uri/,
    ],
  ]
  for (const [name, source, over, code, why] of cases) {
    test(name, () => {
      assert.throws(
        () => policy.check(metadata(source, over), source),
        (err) => {
          assert.ok(err instanceof ClientPolicyError, String(err))
          assert.equal(err.code, code)
          assert.equal(err.status, 400)
          assert.equal(err.expose, true)
          assert.match(err.message, why)
          // oidc-provider's InvalidClientMetadata says invalid_redirect_uri for these messages only.
          assert.equal(err.message.startsWith('redirect_uris'), code === 'invalid_redirect_uri')
          return true
        },
      )
    })
  }

  test('a refusal does not echo the hostile value', () => {
    const uri = `https://evil.example/${'<script>'.repeat(10)}`
    assert.throws(
      () => policy.check(metadata('dcr', { redirect_uris: [uri] }), 'dcr'),
      (err) => {
        assert.ok(err instanceof ClientPolicyError)
        assert.doesNotMatch(err.message, /script/)
        return true
      },
    )
  })
})

describe('clientPolicy: configuration', () => {
  test('a lower maxRedirectUris applies', () => {
    const one = clientPolicy(
      {
        maxRedirectUris: 1,
        maxClientNameLength: DEFAULT_CLIENT_NAME_MAX_LENGTH,
        redirectUris: DEFAULT_BROKER_REDIRECT_URIS,
      },
      { ownCallbacks: [] },
    )
    assert.throws(
      () =>
        one.check(
          metadata('dcr', { redirect_uris: ['http://127.0.0.1/a', 'http://127.0.0.1/b'] }),
          'dcr',
        ),
      /redirect_uris may hold at most 1 URIs/,
    )
  })
  test('a narrower allow-list refuses what the default allows', () => {
    const https = clientPolicy(
      {
        maxRedirectUris: 10,
        maxClientNameLength: DEFAULT_CLIENT_NAME_MAX_LENGTH,
        redirectUris: ['https://claude.ai/api/mcp/auth_callback'],
      },
      { ownCallbacks: [] },
    )
    assert.throws(
      () => https.check(metadata('dcr'), 'dcr'),
      (err) => err instanceof ClientPolicyError && err.code === 'invalid_redirect_uri',
    )
  })
  test("the operator's app scheme makes a client native", () => {
    const own = clientPolicy(
      {
        maxRedirectUris: 10,
        maxClientNameLength: DEFAULT_CLIENT_NAME_MAX_LENGTH,
        redirectUris: ['myapp://callback'],
      },
      { ownCallbacks: [] },
    )
    assert.equal(
      own.check(metadata('dcr', { redirect_uris: ['myapp://callback'] }), 'dcr').native,
      true,
    )
  })
  test('bad patterns fail when the policy is built', () => {
    assert.throws(
      () =>
        clientPolicy(
          {
            maxRedirectUris: 10,
            maxClientNameLength: DEFAULT_CLIENT_NAME_MAX_LENGTH,
            redirectUris: ['http://example.com/*'],
          },
          { ownCallbacks: [] },
        ),
      (err) => err instanceof ClientPolicyError && err.code === 'bad_redirect_pattern',
    )
  })
})

describe('clientPolicy.validator (extraClientMetadata semantics)', () => {
  test('marks a loopback-only registration native and removes the policy property', () => {
    const m = metadata('dcr', { [CLIENT_POLICY_PROPERTY]: 'sent by the client' })
    policy.validator(undefined, CLIENT_POLICY_PROPERTY, m[CLIENT_POLICY_PROPERTY], m)
    assert.equal(m.application_type, 'native')
    assert.equal(CLIENT_POLICY_PROPERTY in m, false)
  })
  test('leaves a web client web', () => {
    const m = metadata('dcr', { redirect_uris: ['https://claude.ai/api/mcp/auth_callback'] })
    policy.validator(undefined, CLIENT_POLICY_PROPERTY, undefined, m)
    assert.equal(m.application_type, 'web')
  })
  test('an https client_id is judged as CIMD (no shared secrets, no allow-list)', () => {
    const m = metadata('cimd', { redirect_uris: ['https://elsewhere.example.net/cb'] })
    assert.doesNotThrow(() => policy.validator(undefined, CLIENT_POLICY_PROPERTY, undefined, m))
    const secret = metadata('cimd', { token_endpoint_auth_method: 'client_secret_basic' })
    assert.throws(
      () => policy.validator(undefined, CLIENT_POLICY_PROPERTY, undefined, secret),
      /no shared secret/,
    )
  })
  test('any other client_id is judged as a registration', () => {
    const m = metadata('dcr', {
      client_id: 'http://client.example.org/doc.json',
      redirect_uris: ['https://elsewhere.example.net/cb'],
    })
    assert.throws(
      () => policy.validator(undefined, CLIENT_POLICY_PROPERTY, undefined, m),
      /not allowed/,
    )
  })
  test('other extra properties are not its business', () => {
    const m = metadata('dcr', { redirect_uris: ['javascript:alert(1)'] })
    assert.doesNotThrow(() => policy.validator(undefined, 'some_other_property', undefined, m))
  })
})
