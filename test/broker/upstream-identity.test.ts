import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UpstreamError } from '../../gateway/broker/errors.js'
import { identityOf, type IdentityRules } from '../../gateway/broker/upstream-identity.js'

const RULES: IdentityRules = { subjectClaim: 'sub', roleClaims: ['roles', 'groups'], roleMap: {} }

describe('identityOf: upstream claims → subject, roles, email', () => {
  const cases: {
    name: string
    id?: Record<string, unknown>
    info?: Record<string, unknown>
    previous?: Record<string, unknown>
    rules?: Partial<IdentityRules>
    want: { subject: string; roles?: string[]; email?: string } | string
  }[] = [
    { name: 'sub from the ID token', id: { sub: 'u1' }, want: { subject: 'u1' } },
    {
      name: 'the ID token wins over userinfo',
      id: { sub: 'u1', oid: 'o-id' },
      info: { sub: 'u1', oid: 'o-info' },
      rules: { subjectClaim: 'oid' },
      want: { subject: 'o-id' },
    },
    {
      name: 'userinfo fills a subject claim the ID token lacks',
      id: { sub: 'u1' },
      info: { sub: 'u1', oid: 'o1' },
      rules: { subjectClaim: 'oid' },
      want: { subject: 'o1' },
    },
    {
      name: "GitHub's numeric id becomes a string",
      info: { id: 123, login: 'octocat' },
      rules: { subjectClaim: 'id' },
      want: { subject: '123' },
    },
    {
      name: 'id 0 is a subject too',
      info: { id: 0 },
      rules: { subjectClaim: 'id' },
      want: { subject: '0' },
    },
    {
      name: 'a fractional number is refused',
      info: { id: 1.5 },
      rules: { subjectClaim: 'id' },
      want: 'no_subject',
    },
    {
      name: 'an unsafe integer is refused',
      info: { id: 2 ** 60 },
      rules: { subjectClaim: 'id' },
      want: 'no_subject',
    },
    { name: 'an empty string is refused', id: { sub: '' }, want: 'no_subject' },
    { name: 'an object is refused', id: { sub: { id: 1 } }, want: 'no_subject' },
    { name: 'a list is refused', id: { sub: ['a'] }, want: 'no_subject' },
    { name: 'a boolean is refused', id: { sub: true }, want: 'no_subject' },
    {
      name: 'a missing claim is refused',
      id: { sub: 'u1' },
      rules: { subjectClaim: 'oid' },
      want: 'no_subject',
    },
    {
      name: 'a subject longer than 255 characters is refused',
      id: { sub: 'x'.repeat(256) },
      want: 'no_subject',
    },
    {
      name: 'an inherited name is not a claim',
      id: { sub: 'u1' },
      rules: { subjectClaim: 'constructor' },
      want: 'no_subject',
    },
    {
      name: 'roles and groups from both documents, roleMap adds names, unmapped values stay',
      id: { sub: 'u1', roles: ['App.Admin'], groups: ['g-1'] },
      info: { sub: 'u1', groups: ['g-2'] },
      rules: {
        roleMap: {
          'g-1': ['mcp-developer'],
          'App.Admin': ['mcp-admin', 'mcp-user'],
          'g-9': ['nobody'],
        },
      },
      want: {
        subject: 'u1',
        roles: ['App.Admin', 'g-1', 'g-2', 'mcp-admin', 'mcp-developer', 'mcp-user'],
      },
    },
    {
      name: 'roleMap ignores inherited names',
      id: { sub: 'u1', roles: ['toString'] },
      want: { subject: 'u1', roles: ['toString'] },
    },
    {
      name: 'nested, :// and space-separated role claims (auth.roleClaims syntax)',
      id: {
        sub: 'u1',
        realm_access: { roles: ['r1'] },
        'https://example.com/roles': ['r2'],
        scp: 'r3 r4',
      },
      rules: {
        roleClaims: [
          'realm_access.roles',
          'https://example.com/roles',
          { path: 'scp', format: 'space-separated' },
        ],
      },
      want: { subject: 'u1', roles: ['r1', 'r2', 'r3', 'r4'] },
    },
    {
      name: 'a role claim that is not a string list grants nothing',
      id: { sub: 'u1', roles: 'admin', groups: [1, 'g'] },
      want: { subject: 'u1', roles: [] },
    },
    {
      name: 'an email',
      id: { sub: 'u1', email: 'a@b.example' },
      want: { subject: 'u1', email: 'a@b.example' },
    },
    {
      name: 'an email marked unverified is not given',
      id: { sub: 'u1', email: 'a@b.example', email_verified: false },
      want: { subject: 'u1' },
    },
    {
      name: 'a null email (GitHub private email) is not given',
      info: { id: 1, email: null },
      rules: { subjectClaim: 'id' },
      want: { subject: '1' },
    },
    {
      name: 'allowedDomains: the email domain, any case',
      id: { sub: 'u1', email: 'a@Example.COM' },
      rules: { allowedDomains: ['example.com'] },
      want: { subject: 'u1', email: 'a@Example.COM' },
    },
    {
      name: 'allowedDomains: hd decides over the email',
      id: { sub: 'u1', email: 'a@example.com', hd: 'other.example' },
      rules: { allowedDomains: ['example.com'] },
      want: 'domain_not_allowed',
    },
    {
      name: 'allowedDomains: hd of a listed Workspace',
      id: { sub: 'u1', email: 'a@alias.example', hd: 'example.com' },
      rules: { allowedDomains: ['example.com'] },
      want: { subject: 'u1', email: 'a@alias.example' },
    },
    {
      name: 'allowedDomains: a subdomain is another domain',
      id: { sub: 'u1', email: 'a@eu.example.com' },
      rules: { allowedDomains: ['example.com'] },
      want: 'domain_not_allowed',
    },
    {
      name: 'allowedDomains: no email, no hd',
      id: { sub: 'u1' },
      rules: { allowedDomains: ['example.com'] },
      want: 'domain_not_allowed',
    },
    {
      name: 'allowedDomains: an unverified email proves no domain',
      id: { sub: 'u1', email: 'a@example.com', email_verified: false },
      rules: { allowedDomains: ['example.com'] },
      want: 'domain_not_allowed',
    },
    {
      name: 'previous claims fill gaps (subject, email) but add no roles',
      info: { sub: 'u1', groups: ['g-new'] },
      previous: { sub: 'u1', oid: 'o1', email: 'a@b.example', groups: ['g-old'] },
      rules: { subjectClaim: 'oid' },
      want: { subject: 'o1', roles: ['g-new'], email: 'a@b.example' },
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      const run = () => identityOf(c.id, c.info, { ...RULES, ...c.rules }, c.previous)
      if (typeof c.want === 'string') {
        assert.throws(run, (err: unknown) => err instanceof UpstreamError && err.code === c.want)
        return
      }
      const who = run()
      assert.deepEqual(
        { subject: who.subject, roles: who.roles, email: who.email },
        { subject: c.want.subject, roles: c.want.roles ?? [], email: c.want.email },
      )
    })
  }

  it('leaves protocol values (nonce, token hashes) out of the claims', () => {
    const who = identityOf(
      { sub: 'u1', nonce: 'n', at_hash: 'h', c_hash: 'c', s_hash: 's', name: 'A' },
      undefined,
      RULES,
    )
    assert.deepEqual(who.claims, { sub: 'u1', name: 'A' })
  })

  it('names the rule, never the address, when a domain is refused', () => {
    assert.throws(
      () =>
        identityOf({ sub: 'u1', email: 'someone@elsewhere.example' }, undefined, {
          ...RULES,
          allowedDomains: ['example.com'],
        }),
      (err: Error) => /allowedDomains/.test(err.message) && !/elsewhere|someone/.test(err.message),
    )
  })
})
