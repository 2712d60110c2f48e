// What an operator asks about endpoints, answered the way the running endpoint decides: `/whoami`
// with an endpoint's token, and `mcp-edge policy check --endpoint` (public names read back to a
// backend's own, hostile spellings refused), checked against real calls on the endpoint.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))
const V = '2026-07-28'
const fixture = join(SERVERS_DIR, 'fixture.js')
const POLICY = `${TEST_POLICY}  secretive:\n    access: ["mcp:admin"]\n    tools: { "*": ["mcp:admin"] }\n`
const ENDPOINTS = {
  all: { path: '/mcp', servers: ['echo', 'notes', 'fixture', 'secretive'] },
  bare: { servers: ['echo', 'echojson'], prefix: '' },
  solo: { servers: ['fixture'], prefix: '' },
}

let stack: Stack
let configFile: string
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: { secretive: { command: process.execPath, args: [fixture, 'secretive'] } },
    config: { endpoints: ENDPOINTS },
  })
  // The same servers and endpoints, as an operator's gateway.yaml for the CLI.
  configFile = join(stack.dir, 'gateway.yaml')
  const servers = ['echo', 'notes', 'fixture', 'secretive', 'echojson']
    .map((s) => `  ${s}: { command: node }`)
    .join('\n')
  writeFileSync(
    configFile,
    `auth:\n  roleClaims: [realm_access.roles]\nservers:\n${servers}\nendpoints:\n${Object.entries(
      ENDPOINTS,
    )
      .map(([n, e]) => `  ${n}: ${JSON.stringify(e)}`)
      .join('\n')}\npolicies: ./policy.yaml\n`,
  )
})
after(() => stack.close())

const url = (path: string) => `${stack.url}${path}`

function run(
  args: string[],
  stdin = '',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN, 'policy', 'check', '--config', configFile, ...args])
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('close', (code) => resolve({ code, stdout, stderr }))
    p.stdin.end(stdin)
  })
}

const claims = (roles: string[]) => ({ sub: 'someone', realm_access: { roles } })

describe('/whoami on an endpoint', () => {
  it("takes an endpoint's token and says which backends the caller reaches through each endpoint", async () => {
    const token = await stack.token('alice', { resource: url('/mcp') })
    const res = await request(url('/whoami'), { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.statusCode, 200)
    const me = (await res.body.json()) as {
      sub: string
      endpoints: Record<
        string,
        { resource: string; prefix: string; servers: string[]; challenged: string[] }
      >
    }
    assert.equal(me.sub, 'alice')
    assert.deepEqual(me.endpoints.all, {
      resource: url('/mcp'),
      prefix: '{server}_',
      servers: ['echo', 'notes', 'fixture'],
      challenged: ['secretive'],
    })
    assert.deepEqual(me.endpoints.bare, {
      resource: url('/mcp/bare'),
      prefix: '',
      servers: ['echo', 'echojson'],
      challenged: [],
    })
  })

  it('an admin reaches every backend', async () => {
    const token = await stack.token('admin', { resource: url('/mcp/bare') })
    const me = (await (
      await request(url('/whoami'), { headers: { authorization: `Bearer ${token}` } })
    ).body.json()) as { endpoints: Record<string, { servers: string[]; challenged: string[] }> }
    assert.deepEqual(me.endpoints.all!.servers, ['echo', 'notes', 'fixture', 'secretive'])
    assert.deepEqual(me.endpoints.all!.challenged, [])
  })

  it('a token for no resource of the gateway is refused', async () => {
    const token = await stack.forge({ aud: 'http://127.0.0.1:1/mcp' })
    const res = await request(url('/whoami'), { headers: { authorization: `Bearer ${token}` } })
    await res.body.dump()
    assert.equal(res.statusCode, 401)
  })
})

describe('policy check --endpoint', () => {
  it("reads a public name back to the backend, says how clients see it, and decides on the backend's own names", async () => {
    writeFileSync(join(stack.dir, 'alice.json'), JSON.stringify(claims(['mcp-user'])))
    const r = await run([
      '--claims',
      join(stack.dir, 'alice.json'),
      '--endpoint',
      'all',
      '--tool',
      'notes_read_note',
    ])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^allow: tool read_note on server notes$/m)
    assert.match(r.stdout, /^ {2}endpoint +all, where clients see it as notes_read_note$/m)
    const c = await run(
      ['--claims', '-', '--endpoint', 'all', '--tool', 'notes_write_note', '--json'],
      JSON.stringify(claims(['mcp-user'])),
    )
    assert.equal(c.code, 1)
    const j = JSON.parse(c.stdout) as Record<string, unknown>
    assert.equal(j.decision, 'challenge')
    assert.equal(j.server, 'notes')
    assert.equal(j.name, 'write_note')
    assert.equal(j.endpoint, 'all')
    assert.equal(j.publicName, 'notes_write_note')
    // With --server, the name is the backend's own; the public name is reported.
    const s = await run(
      ['--claims', '-', '--endpoint', 'all', '--server', 'fixture', '--tool', 'crash', '--json'],
      JSON.stringify(claims(['mcp-user'])),
    )
    assert.equal(s.code, 1)
    assert.equal(
      (JSON.parse(s.stdout) as { decision: string; publicName: string }).publicName,
      'fixture_crash',
    )
    // A backend the caller may not access: the endpoint does not open it for them.
    const h = await run(
      ['--claims', '-', '--endpoint', 'all', '--tool', 'secretive_pid'],
      JSON.stringify(claims(['mcp-user'])),
    )
    assert.equal(h.code, 1)
    assert.match(
      h.stdout,
      /^ {2}gateway +200, JSON-RPC error -32602, not found \(endpoint all does not open server secretive for this caller\)$/m,
    )
    // A resource: a plain URI on a one-backend endpoint, and the namespaced form on any.
    const one = await run(
      ['--claims', '-', '--endpoint', 'solo', '--resource', 'fixture://hello', '--json'],
      JSON.stringify(claims(['mcp-user'])),
    )
    assert.equal(one.code, 0, one.stderr)
    assert.equal((JSON.parse(one.stdout) as { server: string }).server, 'fixture')
    const ns = await run(
      [
        '--claims',
        '-',
        '--endpoint',
        'all',
        '--resource',
        'mcp-edge://fixture/fixture://hello',
        '--json',
      ],
      JSON.stringify(claims(['mcp-user'])),
    )
    assert.equal(ns.code, 0, ns.stderr)
    assert.deepEqual(
      [
        (JSON.parse(ns.stdout) as { server: string; name: string }).server,
        (JSON.parse(ns.stdout) as { name: string }).name,
      ],
      ['fixture', 'fixture://hello'],
    )
  })

  const refusals: { name: string; args: string[]; err: RegExp }[] = [
    {
      name: 'an unknown endpoint',
      args: ['--endpoint', 'nope', '--tool', 'echo_echo'],
      err: /endpoint nope is not in the config \(endpoints: all, bare, solo\)/,
    },
    {
      name: 'an inherited property as endpoint name',
      args: ['--endpoint', 'constructor', '--tool', 'echo_echo'],
      err: /endpoint constructor is not in the config/,
    },
    {
      name: "a backend's own name without its prefix",
      args: ['--endpoint', 'all', '--tool', 'read_note'],
      err: /no backend's name on endpoint all by its prefix "\{server\}_".*give --server/,
    },
    {
      name: 'the prefix alone',
      args: ['--endpoint', 'all', '--tool', 'notes_'],
      err: /no backend's name/,
    },
    {
      name: 'a prefix in another case',
      args: ['--endpoint', 'all', '--tool', 'NOTES_read_note'],
      err: /no backend's name/,
    },
    {
      name: 'a name with a space',
      args: ['--endpoint', 'all', '--tool', 'notes_read note'],
      err: /no backend's name/,
    },
    {
      name: 'a name with a control character',
      args: ['--endpoint', 'all', '--tool', 'notes_read\u0001note'],
      err: /no backend's name/,
    },
    {
      name: 'an empty prefix and a name on two backends',
      args: ['--endpoint', 'bare', '--tool', 'echo'],
      err: /could be echo on echo or echo on echojson.*give --server/,
    },
    {
      name: 'a server that is not a backend of the endpoint',
      args: ['--endpoint', 'bare', '--server', 'notes', '--tool', 'read_note'],
      err: /server notes is not a backend of endpoint bare \(its servers: echo, echojson\)/,
    },
    {
      name: 'a plain URI on several backends',
      args: ['--endpoint', 'all', '--resource', 'fixture://hello'],
      err: /known only from their lists: give --server/,
    },
    {
      name: 'a namespaced URI naming a server outside the endpoint',
      args: ['--endpoint', 'bare', '--resource', 'mcp-edge://notes/x'],
      err: /names no backend of endpoint bare/,
    },
    {
      name: 'a namespaced URI with no server',
      args: ['--endpoint', 'all', '--resource', 'mcp-edge:///x'],
      err: /names no backend/,
    },
  ]
  for (const r of refusals) {
    it(`refuses ${r.name} as a usage error (exit 2), deciding nothing`, async () => {
      const out = await run(['--claims', '-', ...r.args], JSON.stringify(claims(['mcp-admin'])))
      assert.equal(out.code, 2)
      assert.equal(out.stdout, '')
      assert.match(out.stderr, r.err)
    })
  }

  it('--endpoint without --config is a usage error', async () => {
    const p = spawn(process.execPath, [
      MAIN,
      'policy',
      'check',
      '--policy',
      join(stack.dir, 'policy.yaml'),
      '--claims',
      '-',
      '--endpoint',
      'all',
      '--tool',
      'echo_echo',
    ])
    let stderr = ''
    p.stderr.on('data', (d) => (stderr += d))
    p.stdin.end(JSON.stringify(claims(['mcp-user'])))
    const code = await new Promise((resolve) => p.on('close', resolve))
    assert.equal(code, 2)
    assert.match(stderr, /--endpoint needs --config/)
  })

  it('agrees with the running endpoint on every name, for every role (batch against real calls)', async () => {
    const names = [
      'echo_echo',
      'notes_list_notes',
      'notes_read_note',
      'notes_write_note',
      'notes_delete_note',
      'fixture_crash',
      'fixture_pid',
      'secretive_pid',
    ]
    const users = [
      ['alice', 'mcp-user'],
      ['dev', 'mcp-developer'],
      ['admin', 'mcp-admin'],
    ] as const
    const lines = users.flatMap(([client, role]) =>
      names.map((tool) =>
        JSON.stringify({
          id: `${client} ${tool}`,
          claims: { sub: client, realm_access: { roles: [role] } },
          endpoint: 'all',
          tool,
        }),
      ),
    )
    const out = await run(['--batch', '-'], `${lines.join('\n')}\n`)
    assert.equal(out.code, 0, out.stderr)
    // A backend the caller may not access is never opened for them: its names are not found.
    const cli = new Map(
      out.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string; decision: string; hidden: boolean })
        .map((a) => [a.id, a.hidden ? 'not found' : a.decision]),
    )
    assert.equal(cli.size, users.length * names.length)
    assert.deepEqual(
      new Set(cli.values()),
      new Set(['allow', 'deny', 'challenge', 'not found']),
      'every outcome is exercised',
    )
    for (const [client] of users) {
      const token = await stack.token(client, { resource: url('/mcp') })
      for (const tool of names) {
        const body = {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: {
            name: tool,
            arguments: {},
            _meta: {
              'io.modelcontextprotocol/protocolVersion': V,
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          },
        }
        const res = await request(url('/mcp'), {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-protocol-version': V,
            'mcp-method': 'tools/call',
            'mcp-name': tool,
          },
          body: JSON.stringify(body),
        })
        const text = await res.body.text()
        const gateway =
          res.statusCode === 403
            ? 'challenge'
            : /"code":-32010/.test(text)
              ? 'deny'
              : /"code":-32602,"message":"Invalid params: no tool named/.test(text)
                ? 'not found'
                : res.statusCode === 200
                  ? 'allow'
                  : `status ${res.statusCode}`
        assert.equal(
          gateway,
          cli.get(`${client} ${tool}`),
          `${client} ${tool}: gateway ${gateway} (${text.slice(0, 200)}), policy check ${cli.get(`${client} ${tool}`)}`,
        )
      }
    }
  })
})
