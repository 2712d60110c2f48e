import assert from 'node:assert/strict'
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { persistentJwks } from '../../gateway/devidp/keys.js'
import { openStateDir, readStateFile, writeFileAtomic } from '../../gateway/devidp/state-dir.js'

const root = mkdtempSync(join(tmpdir(), 'mcp-edge-statedir-'))
after(() => rmSync(root, { recursive: true, force: true }))
const silent = pino({ level: 'silent' })

describe('dev IdP state folder', () => {
  it('creates a missing folder (and parents) with mode 0700, and accepts it again', async () => {
    const dir = join(root, 'a', 'b', 'state')
    await openStateDir(dir)
    assert.equal(statSync(dir).mode & 0o777, 0o700)
    await openStateDir(dir)
  })

  it('accepts a folder of ours that others may read but not write (files inside are 0600)', async () => {
    const dir = join(root, 'readable')
    mkdirSync(dir, { mode: 0o755 })
    chmodSync(dir, 0o755)
    await openStateDir(dir)
  })

  const uid = process.getuid?.() ?? 0
  const cases: { name: string; make: (dir: string) => void; error: RegExp; skip?: string }[] = [
    {
      name: 'group-writable',
      make: (d) => {
        mkdirSync(d)
        chmodSync(d, 0o770)
      },
      error: /is writable by group or others \(mode 0770\); chmod 700 it/,
    },
    {
      name: 'world-writable',
      make: (d) => {
        mkdirSync(d)
        chmodSync(d, 0o1777)
      },
      error: /is writable by group or others \(mode 1777\)/,
    },
    {
      name: 'owned by another user',
      make: (d) => {
        mkdirSync(d, { mode: 0o700 })
        chownSync(d, uid + 1000, uid + 1000)
      },
      error: new RegExp(`is owned by uid ${uid + 1000}, not by this user \\(uid ${uid}\\)`),
      skip: uid === 0 ? undefined : 'chown to another user needs root',
    },
    {
      name: 'a symlink to a folder of ours',
      make: (d) => {
        mkdirSync(`${d}-target`, { mode: 0o700 })
        symlinkSync(`${d}-target`, d)
      },
      error: /is not a folder \(a symlink or a file\)/,
    },
    {
      name: 'a file',
      make: (d) => writeFileSync(d, 'x'),
      error: /is not a folder|cannot be created/,
    },
  ]
  for (const c of cases) {
    it(`refuses a folder that is ${c.name}, saying how to fix it`, { skip: c.skip }, async () => {
      const dir = join(root, c.name.replaceAll(' ', '-'))
      c.make(dir)
      await assert.rejects(openStateDir(dir), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'state_unsafe')
        assert.ok(err.message.startsWith(`dev IdP state folder ${dir} `), err.message)
        assert.match(err.message, c.error)
        assert.match(err.message, /MCP_EDGE_DEV_IDP_STATE/)
        return true
      })
    })
  }

  it('writeFileAtomic replaces a planted symlink instead of writing through it', async () => {
    const victim = join(root, 'victim.txt')
    writeFileSync(victim, 'untouched')
    const file = join(root, 'planted.json')
    symlinkSync(victim, file)
    await writeFileAtomic(file, 'ours')
    assert.equal(readFileSync(victim, 'utf8'), 'untouched')
    assert.equal(readFileSync(file, 'utf8'), 'ours')
    assert.equal(statSync(file).mode & 0o777, 0o600)
  })

  it('writeFileAtomic exclusive writes only if absent', async () => {
    const file = join(root, 'once.json')
    assert.equal(await writeFileAtomic(file, 'first', { exclusive: true }), true)
    assert.equal(await writeFileAtomic(file, 'second', { exclusive: true }), false)
    assert.equal(readFileSync(file, 'utf8'), 'first')
  })

  it('readStateFile: absent, ok, or corrupt and moved aside', async () => {
    const file = join(root, 'read.json')
    const validate = (v: unknown) => {
      if (typeof (v as { n?: unknown }).n !== 'number') throw new Error('n must be a number')
      return v as { n: number }
    }
    assert.deepEqual(await readStateFile(file, validate), { kind: 'absent' })
    writeFileSync(file, '{"n":1}')
    assert.deepEqual(await readStateFile(file, validate), { kind: 'ok', value: { n: 1 } })
    writeFileSync(file, '{"n":"one"}')
    assert.deepEqual(await readStateFile(file, validate), {
      kind: 'corrupt',
      reason: 'n must be a number',
      aside: `${file}.corrupt`,
    })
    assert.deepEqual(await readStateFile(file, validate), { kind: 'absent' })
  })
})

describe('dev IdP signing keys in the state folder', () => {
  it('are made once and then reused, private to the owner', async () => {
    const dir = join(root, 'keys')
    await openStateDir(dir)
    const first = await persistentJwks(dir, silent)
    const second = await persistentJwks(dir, silent)
    assert.deepEqual(second, first)
    assert.equal(statSync(join(dir, 'keys.json')).mode & 0o777, 0o600)
  })

  it('two instances starting at once end up with the same key', async () => {
    const dir = join(root, 'race2')
    await openStateDir(dir)
    const [a, b] = await Promise.all([persistentJwks(dir, silent), persistentJwks(dir, silent)])
    assert.deepEqual(a, b)
  })

  it('a corrupt keys file is set aside and replaced, with a warning', async () => {
    const cases = [
      { name: 'not JSON', text: 'nope' },
      { name: 'no keys', text: '{"keys":[]}' },
      { name: 'public key only', text: '{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}' },
      {
        name: 'broken private key',
        text: '{"keys":[{"kty":"RSA","kid":"k","d":"x","n":"x","e":"AQAB"}]}',
      },
    ]
    for (const c of cases) {
      const dir = join(root, `corrupt-${c.name.replaceAll(' ', '-')}`)
      await openStateDir(dir)
      writeFileSync(join(dir, 'keys.json'), c.text)
      const lines: string[] = []
      const jwks = await persistentJwks(dir, pino({}, { write: (l: string) => void lines.push(l) }))
      assert.equal(jwks.keys.length, 1, c.name)
      assert.equal(readFileSync(join(dir, 'keys.json.corrupt'), 'utf8'), c.text, c.name)
      assert.match(lines.join(''), /signing keys unreadable; new keys made/, c.name)
    }
  })
})
