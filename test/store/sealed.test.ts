// Sealing at rest: what opens, what is refused and with which code, and what never leaks.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { ConfigError } from '../../gateway/config/errors.js'
import { readSecret } from '../../gateway/config/secrets.js'
import { StoreError, type StoreErrorCode } from '../../gateway/store/errors.js'
import { createSealer, sealerFromConfig } from '../../gateway/store/sealed.js'

const k1 = randomBytes(32)
const k2 = randomBytes(32)
const PLAINTEXT = 'gho_upstream-refresh-token-SECRET'
const AAD = 'broker:upstream:grant-1'

/** Asserts a StoreError with this code whose message holds no plaintext, key or aad. */
function refused(fn: () => unknown, code: StoreErrorCode, name: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof StoreError, name)
    assert.equal(err.code, code, name)
    for (const secret of [PLAINTEXT, AAD, k1.toString('base64url'), k2.toString('base64url')]) {
      assert.ok(!err.message.includes(secret), `${name}: message leaks nothing`)
    }
    return true
  })
}

/** The sealed value with part `i` replaced by `f(part)`. */
const withPart = (sealed: string, i: number, f: (part: string) => string) =>
  sealed
    .split('.')
    .map((p, j) => (j === i ? f(p) : p))
    .join('.')
/** One bit of a base64url part flipped, re-encoded canonically. */
const flip = (part: string) => {
  const bytes = Buffer.from(part, 'base64url')
  bytes[0] = bytes[0]! ^ 1
  return bytes.toString('base64url')
}

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
/** The 16-byte tag's last character carries 4 unused bits: setting one decodes to the same bytes. */
const spareBit = (part: string) => `${part.slice(0, -1)}${B64U[B64U.indexOf(part.at(-1)!) ^ 1]}`

describe('sealer', () => {
  const sealer = createSealer({ k1 }, 'k1')

  const roundTrips = [
    { name: 'a token', plaintext: PLAINTEXT, aad: AAD },
    { name: 'empty text under an empty aad', plaintext: '', aad: '' },
    { name: 'unicode text and aad', plaintext: 'ключ 🙂 e\u0301 \u0000', aad: 'secrets:ünï:🙂' },
    {
      name: 'JSON',
      plaintext: JSON.stringify({ access_token: 'a', refresh_token: 'r', exp: 1 }),
      aad: AAD,
    },
    { name: '1 MB', plaintext: 'x🙂'.repeat(200_000), aad: AAD },
  ]
  for (const c of roundTrips) {
    it(`opens what it sealed: ${c.name}`, () => {
      const sealed = sealer.seal(c.plaintext, c.aad)
      assert.equal(sealer.open(sealed, c.aad), c.plaintext)
      assert.ok(!sealed.includes(c.plaintext) || c.plaintext === '', 'the plaintext is not visible')
    })
  }

  it('writes s1.<kid>.<nonce>.<ciphertext>.<tag>, a fresh 96-bit nonce each time', () => {
    const a = sealer.seal(PLAINTEXT, AAD).split('.')
    const b = sealer.seal(PLAINTEXT, AAD).split('.')
    assert.equal(a.length, 5)
    assert.deepEqual(a.slice(0, 2), ['s1', 'k1'])
    assert.equal(Buffer.from(a[2]!, 'base64url').length, 12)
    assert.equal(Buffer.from(a[4]!, 'base64url').length, 16)
    assert.notEqual(a[2], b[2], 'nonces differ')
    assert.notEqual(a[3], b[3], 'so do ciphertexts')
  })

  it('rotation: old values still open, new ones name the new active key', () => {
    const old = sealer.seal(PLAINTEXT, AAD)
    const rotated = createSealer({ k1, k2 }, 'k2')
    assert.equal(rotated.open(old, AAD), PLAINTEXT)
    const fresh = rotated.seal(PLAINTEXT, AAD)
    assert.equal(fresh.split('.')[1], 'k2')
    assert.equal(rotated.open(fresh, AAD), PLAINTEXT)
    refused(() => sealer.open(fresh, AAD), 'seal_unknown_key', 'a replica without k2')
  })

  const sealed = createSealer({ k1, k2 }, 'k1').seal(PLAINTEXT, AAD)
  const ring = createSealer({ k1, k2 }, 'k1')
  const tampered: { name: string; value: string; aad?: string; code: StoreErrorCode }[] = [
    { name: 'nonce bit flipped', value: withPart(sealed, 2, flip), code: 'seal_forged' },
    { name: 'ciphertext bit flipped', value: withPart(sealed, 3, flip), code: 'seal_forged' },
    { name: 'tag bit flipped', value: withPart(sealed, 4, flip), code: 'seal_forged' },
    {
      name: 'kid changed to another configured key',
      value: withPart(sealed, 1, () => 'k2'),
      code: 'seal_forged',
    },
    {
      name: 'kid changed to an unknown key',
      value: withPart(sealed, 1, () => 'k9'),
      code: 'seal_unknown_key',
    },
    {
      name: 'ciphertext truncated',
      value: withPart(sealed, 3, (p) =>
        Buffer.from(p, 'base64url').subarray(1).toString('base64url'),
      ),
      code: 'seal_forged',
    },
    {
      name: "opened under another record's key (wrong aad)",
      value: sealed,
      aad: 'broker:upstream:grant-2',
      code: 'seal_forged',
    },
    { name: 'aad differing by case', value: sealed, aad: AAD.toUpperCase(), code: 'seal_forged' },
    { name: 'version changed', value: withPart(sealed, 0, () => 's2'), code: 'seal_malformed' },
    {
      name: 'kid with a character outside the alphabet',
      value: withPart(sealed, 1, () => 'k/1'),
      code: 'seal_malformed',
    },
    {
      name: 'tag shortened to 12 bytes (GCM would accept it by default)',
      value: withPart(sealed, 4, (p) =>
        Buffer.from(p, 'base64url').subarray(0, 12).toString('base64url'),
      ),
      code: 'seal_malformed',
    },
    {
      name: 'nonce of 11 bytes',
      value: withPart(sealed, 2, (p) =>
        Buffer.from(p, 'base64url').subarray(0, 11).toString('base64url'),
      ),
      code: 'seal_malformed',
    },
    {
      name: 'standard base64 in a part',
      value: withPart(sealed, 3, (p) => `${p}+/`),
      code: 'seal_malformed',
    },
    {
      name: 'padding in a part',
      value: withPart(sealed, 2, (p) => `${p}=`),
      code: 'seal_malformed',
    },
    {
      name: 'a part that is not canonical base64url (a spare bit set)',
      value: withPart(sealed, 4, spareBit),
      code: 'seal_malformed',
    },
    { name: 'a sixth part', value: `${sealed}.x`, code: 'seal_malformed' },
    { name: 'four parts', value: sealed.split('.').slice(0, 4).join('.'), code: 'seal_malformed' },
    { name: 'plain text', value: PLAINTEXT, code: 'seal_malformed' },
    { name: 'empty', value: '', code: 'seal_malformed' },
  ]
  for (const c of tampered) {
    it(`refuses: ${c.name}`, () => {
      refused(() => ring.open(c.value, c.aad ?? AAD), c.code, c.name)
    })
  }

  const badRings: { name: string; keys: Record<string, Uint8Array>; active: string }[] = [
    { name: 'a 31-byte key', keys: { k1: k1.subarray(1) }, active: 'k1' },
    { name: 'a 33-byte key', keys: { k1: Buffer.concat([k1, k2.subarray(0, 1)]) }, active: 'k1' },
    { name: 'the active key missing', keys: { k1 }, active: 'k2' },
    { name: 'no keys', keys: {}, active: 'k1' },
    { name: 'a key id with a dot', keys: { 'k.1': k1 }, active: 'k.1' },
  ]
  for (const c of badRings) {
    it(`createSealer refuses ${c.name}`, () => {
      refused(() => createSealer(c.keys, c.active), 'invalid_argument', c.name)
    })
  }
})

describe('sealerFromConfig', () => {
  const b64 = (b: Buffer) => b.toString('base64url')
  const REF = { env: 'MCP_EDGE_TEST_SEAL_KEYS' }
  /** readSecret as the gateway calls it, over an environment holding `text`. */
  const reading =
    (text: string): typeof readSecret =>
    (ref, path) =>
      readSecret(ref, path, { [REF.env]: text })

  it('is undefined when the secrets section is absent', () => {
    assert.equal(sealerFromConfig(undefined, reading('')), undefined)
  })

  it('reads the keys from env (or file) and seals with the active one', () => {
    const text = JSON.stringify({ old: b64(k1), new: `${b64(k2)}=` })
    const sealer = sealerFromConfig({ keys: REF, active: 'new' }, reading(text))!
    const sealed = sealer.seal(PLAINTEXT, AAD)
    assert.equal(sealed.split('.')[1], 'new')
    assert.equal(sealer.open(createSealer({ old: k1 }, 'old').seal(PLAINTEXT, AAD), AAD), PLAINTEXT)
  })

  const bad: { name: string; text: string; active?: string; problems: [string, RegExp][] }[] = [
    { name: 'not JSON', text: `{ "k1": "${b64(k1)}", }`, problems: [['secrets.keys', /not JSON/]] },
    {
      name: 'a JSON array',
      text: JSON.stringify([b64(k1)]),
      problems: [['secrets.keys', /JSON object/]],
    },
    {
      name: 'a JSON string',
      text: JSON.stringify(b64(k1)),
      problems: [['secrets.keys', /JSON object/]],
    },
    { name: 'null', text: 'null', problems: [['secrets.keys', /JSON object/]] },
    {
      name: 'no keys',
      text: '{}',
      problems: [
        ['secrets.keys', /no keys/],
        ['secrets.active', /"k1" is not a key id/],
      ],
    },
    {
      name: '16 bytes',
      text: JSON.stringify({ k1: b64(k1.subarray(0, 16)) }),
      problems: [['secrets.keys', /key "k1" is 16 bytes; AES-256 needs exactly 32/]],
    },
    {
      name: '33 bytes',
      text: JSON.stringify({ k1: b64(Buffer.concat([k1, k2.subarray(0, 1)])) }),
      problems: [['secrets.keys', /is 33 bytes/]],
    },
    {
      name: 'standard base64 (+ and /)',
      text: JSON.stringify({ k1: k1.toString('base64').replace(/[A-Za-z]/, '+') }),
      problems: [['secrets.keys', /key "k1" is not a base64url string/]],
    },
    {
      name: 'a number',
      text: JSON.stringify({ k1: 42 }),
      problems: [['secrets.keys', /key "k1" is not a base64url string/]],
    },
    {
      name: 'a key id with a dot',
      text: JSON.stringify({ 'k.1': b64(k1), k1: b64(k2) }),
      problems: [['secrets.keys', /a key id is not/]],
    },
    {
      name: 'the active key missing',
      text: JSON.stringify({ k2: b64(k2) }),
      problems: [['secrets.active', /"k1" is not a key id in secrets.keys/]],
    },
    {
      name: 'several problems at once',
      text: JSON.stringify({ k2: b64(k2.subarray(0, 8)), k3: 'not base64!' }),
      problems: [
        ['secrets.keys', /"k2" is 8 bytes/],
        ['secrets.keys', /"k3" is not/],
        ['secrets.active', /"k1"/],
      ],
    },
  ]
  for (const c of bad) {
    it(`refuses ${c.name}, naming the problem but never the key material`, () => {
      assert.throws(
        () => sealerFromConfig({ keys: REF, active: c.active ?? 'k1' }, reading(c.text)),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError)
          assert.equal(err.code, 'config_invalid')
          assert.deepEqual(
            err.problems.map((p) => p.path),
            c.problems.map(([path]) => path),
          )
          for (const [i, [, message]] of c.problems.entries())
            assert.match(err.problems[i]!.message, message)
          for (const secret of [
            b64(k1),
            b64(k2),
            b64(k1.subarray(0, 16)),
            b64(k2.subarray(0, 8)),
            c.text,
          ]) {
            assert.ok(!err.message.includes(secret), 'no key material in the message')
          }
          return true
        },
      )
    })
  }

  it('a missing secret is the readSecret error, naming the variable', () => {
    assert.throws(
      () =>
        sealerFromConfig({ keys: { env: 'MCP_EDGE_TEST_UNSET' }, active: 'k1' }, (ref, path) =>
          readSecret(ref, path, {}),
        ),
      (err: unknown) =>
        err instanceof ConfigError && /MCP_EDGE_TEST_UNSET is not set/.test(err.message),
    )
  })
})

describe('sealer: store names (macs)', () => {
  it('one keyed hash per key, the active key’s first; stable for a key, different across keys, never the key', () => {
    const one = createSealer({ k1 }, 'k1').macs('who')
    const both = createSealer({ k1, k2 }, 'k2').macs('who')
    assert.equal(one.length, 1)
    assert.deepEqual(createSealer({ k1 }, 'k1').macs('who'), one, 'stable')
    assert.equal(both.length, 2)
    assert.equal(both[1], one[0], "the former key's name, after the active one's")
    assert.notEqual(both[0], one[0])
    assert.notEqual(createSealer({ k1 }, 'k1').macs('whom')[0], one[0])
    for (const m of [...one, ...both]) {
      assert.match(m, /^[A-Za-z0-9_-]{43}$/)
      assert.ok(!m.includes(Buffer.from(k1).toString('base64url').slice(0, 8)))
    }
  })
})
