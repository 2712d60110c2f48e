// The credentials part of the configuration: what start-up refuses, with the path and a
// message that says why, for every way a server's credentials can be wrong.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { configProblems } from '../helpers/config-problems.js'

const BROKER = {
  upstream: { issuer: 'https://login.example', clientId: 'gw', clientSecret: { env: 'X' } },
}
const EXCHANGE = { clientId: 'gw', clientSecret: { env: 'X' } }

const problems = configProblems

const server = (extra: Record<string, unknown>) => ({
  servers: { gh: { command: 'node', ...extra } },
})
const secret = { TOKEN: { secret: 'gh-token' } }

describe('config: servers.<name>.credentials', () => {
  it('accepts each source where the gateway can serve it', () => {
    assert.deepEqual(problems({ ...server({ credentials: secret }) }), [])
    assert.deepEqual(
      problems({
        auth: { broker: BROKER, tokenExchange: EXCHANGE },
        ...server({
          credentials: {
            A: { exchange: { audience: 'api' } },
            B: { upstreamToken: 'id_token' },
            C: { secret: 'c', describe: 'a key' },
          },
        }),
      }),
      [],
    )
  })

  const refused: [string, Record<string, unknown>, RegExp][] = [
    [
      'shared mode',
      server({ mode: 'shared', credentials: secret }),
      /servers\.gh\.credentials: credentials need mode: session/,
    ],
    [
      'warm processes',
      server({ pool: { min: 1 }, credentials: secret }),
      /servers\.gh\.credentials: credentials need pool\.min: 0 and no preinitialize/,
    ],
    [
      'preinitialized processes',
      server({ pool: { min: 0, preinitialize: true }, credentials: secret }),
      /credentials need pool\.min: 0 and no preinitialize/,
    ],
    [
      'an exchange without auth.tokenExchange',
      server({ credentials: { T: { exchange: { audience: 'api' } } } }),
      /servers\.gh\.credentials\.T: an exchange credential needs auth\.tokenExchange/,
    ],
    [
      'an upstream token without the broker',
      {
        auth: { issuer: 'https://idp.example' },
        ...server({ credentials: { T: { upstreamToken: 'access_token' } } }),
      },
      /servers\.gh\.credentials\.T: an upstreamToken credential needs auth\.broker/,
    ],
    [
      'an exchange naming neither audience nor resource',
      {
        auth: { tokenExchange: EXCHANGE },
        ...server({ credentials: { T: { exchange: { scope: 'read' } } } }),
      },
      /an exchange names an audience or a resource/,
    ],
    [
      'two sources at once',
      server({ credentials: { T: { secret: 'a', upstreamToken: 'access_token' } } }),
      /a credential is \{ secret: NAME \}/,
    ],
    [
      'an unknown source',
      server({ credentials: { T: { vault: 'kv/gh' } } }),
      /a credential is \{ secret: NAME \}/,
    ],
    [
      'a literal value',
      server({ credentials: { T: 'ghp_literal' } }),
      /a credential is \{ secret: NAME \}/,
    ],
    [
      'an upstream token of another kind',
      {
        auth: { broker: BROKER },
        ...server({ credentials: { T: { upstreamToken: 'refresh_token' } } }),
      },
      /a credential is/,
    ],
    [
      'a token exchange with a literal secret',
      { auth: { tokenExchange: { clientId: 'gw', clientSecret: 'literal' } }, ...server({}) },
      /never a literal value/,
    ],
    [
      'a public exchange client with a secret',
      { auth: { tokenExchange: { ...EXCHANGE, clientAuth: 'none' } }, ...server({}) },
      /clientSecret goes with clientAuth/,
    ],
    [
      'a confidential exchange client without one',
      { auth: { tokenExchange: { clientId: 'gw' } }, ...server({}) },
      /clientSecret goes with clientAuth/,
    ],
  ]
  for (const [what, input, message] of refused) {
    it(`refuses ${what}`, () => {
      const found = problems(input)
      assert.ok(
        found.some((p) => message.test(p)),
        found.join('\n') || 'no problem reported',
      )
    })
  }

  for (const name of ['', '1TOKEN', 'A-B', 'A B', 'PATH=x', 'TÖKEN', 'A\nB', 'A\u0000']) {
    it(`refuses the variable name ${JSON.stringify(name)}`, () => {
      assert.ok(
        problems(server({ credentials: { [name]: { secret: 'x' } } })).some((p) =>
          /an environment variable name/.test(p),
        ),
      )
    })
  }
  for (const name of ['', 'a/b', '../x', 'a b', 'é', 'x'.repeat(65), 'a\u0000']) {
    it(`refuses the secret name ${JSON.stringify(name)}`, () => {
      assert.ok(problems(server({ credentials: { T: { secret: name } } })).length > 0)
    })
  }
})
