// The OAuth flow an MCP client (MCP Inspector, Claude, the SDK) runs against the gateway: 401 →
// protected resource metadata → authorization server metadata → dynamic registration →
// authorize with PKCE (the dev IdP's user consents by itself) → token → tools. Real SDK client.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client'
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
    await assert.rejects(client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider })), UnauthorizedError)

    const authorize = provider.authorizationUrl!
    assert.equal(authorize.origin, stack.idp.issuer, 'the AS came from the gateway metadata')
    assert.equal(authorize.searchParams.get('resource'), stack.endpoint('echo'), 'RFC 8707 resource = the endpoint')
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256')
    assert.match(authorize.searchParams.get('scope') ?? '', /mcp:read/, 'scope from the challenge / metadata')

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
      assert.deepEqual(tools.map((t) => t.name), ['echo'])
    } finally {
      await client.close()
    }
  })
})
