// The OAuth flow an MCP client (MCP Inspector, Claude, the SDK) runs against the gateway: 401 →
// protected resource metadata → authorization server metadata → dynamic registration →
// authorize with PKCE (the dev IdP's user consents by itself) → token → tools. Real SDK client.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client'
import { followToRedirectUri } from '../helpers/oauth-flow.js'
import { memoryProvider, REDIRECT } from '../helpers/oauth-provider.js'
import { startStack, type Stack } from '../helpers/stack.js'

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

describe('an MCP client completes the OAuth flow against the gateway alone', () => {
  it('discovers, registers, authorizes with PKCE, gets a token for the resource, lists tools', async () => {
    const url = new URL(stack.endpoint('echo'))
    const { provider, saved } = memoryProvider()
    const client = new Client({ name: 'inspector-like', version: '0' })
    await assert.rejects(
      client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider })),
      UnauthorizedError,
    )

    const authorize = provider.authorizationUrl!
    assert.equal(authorize.origin, stack.idp.issuer, 'the AS came from the gateway metadata')
    assert.equal(
      authorize.searchParams.get('resource'),
      stack.endpoint('echo'),
      'RFC 8707 resource = the endpoint',
    )
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256')
    assert.match(
      authorize.searchParams.get('scope') ?? '',
      /mcp:read/,
      'scope from the challenge / metadata',
    )

    const callback = await followToRedirectUri(authorize.href, REDIRECT)
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
    await transport.finishAuth(callback.searchParams)
    const token = (saved.tokens as { access_token: string }).access_token
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
    assert.equal(claims.aud, stack.endpoint('echo'))
    assert.equal(claims.sub, 'dev-user')

    await client.connect(transport)
    try {
      const { tools } = await client.listTools()
      assert.deepEqual(
        tools.map((t) => t.name),
        ['echo'],
      )
    } finally {
      await client.close()
    }
  })
})

describe('the resource is the URL the client used', () => {
  it('http://localhost:<port>/mcp/echo completes the flow as well as 127.0.0.1 (RFC 9728 §3.3 holds)', async () => {
    const url = new URL(stack.endpoint('echo').replace('127.0.0.1', 'localhost'))
    const { provider, saved } = memoryProvider('localhost client')
    const client = new Client({ name: 'localhost', version: '0' })
    await assert.rejects(
      client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider })),
      UnauthorizedError,
    )
    assert.equal(provider.authorizationUrl!.searchParams.get('resource'), url.href)
    const callback = await followToRedirectUri(provider.authorizationUrl!.href, REDIRECT)
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
    await transport.finishAuth(callback.searchParams)
    const claims = JSON.parse(
      Buffer.from(
        (saved.tokens as { access_token: string }).access_token.split('.')[1]!,
        'base64url',
      ).toString(),
    )
    assert.equal(claims.aud, url.href)
    await client.connect(transport)
    try {
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['echo'],
      )
    } finally {
      await client.close()
    }
  })

  it('SDK v1 SSEClientTransport with OAuth discovers metadata for /sse/<server> itself and completes the flow', async () => {
    const { Client: V1Client } = await import('@modelcontextprotocol/sdk/client/index.js')
    const { SSEClientTransport } = await import('@modelcontextprotocol/sdk/client/sse.js')
    const { UnauthorizedError: V1Unauthorized } = await import(
      '@modelcontextprotocol/sdk/client/auth.js'
    )
    const url = new URL(`${stack.url}/sse/echo`)
    const { provider, saved } = memoryProvider('legacy client')
    await assert.rejects(
      new V1Client({ name: 'legacy-oauth', version: '0' }).connect(
        new SSEClientTransport(url, { authProvider: provider as never }),
      ),
      V1Unauthorized,
    )
    const client = new V1Client({ name: 'legacy-oauth', version: '0' })
    assert.equal(
      provider.authorizationUrl!.searchParams.get('resource'),
      url.href,
      'the resource the legacy metadata names',
    )
    const callback = await followToRedirectUri(provider.authorizationUrl!.href, REDIRECT)
    const transport = new SSEClientTransport(url, { authProvider: provider as never })
    await transport.finishAuth(callback.searchParams.get('code')!)
    const claims = JSON.parse(
      Buffer.from(
        (saved.tokens as { access_token: string }).access_token.split('.')[1]!,
        'base64url',
      ).toString(),
    )
    assert.equal(claims.aud, url.href)
    await client.connect(transport)
    try {
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['echo'],
      )
    } finally {
      await client.close()
    }
  })
})
