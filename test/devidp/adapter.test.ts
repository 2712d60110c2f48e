import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import type { AdapterPayload } from 'oidc-provider'
import { pino } from 'pino'
import { createModelStore, DEFAULT_CLOCK_TOLERANCE_S } from '../../gateway/devidp/adapter.js'

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-adapter-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const fresh = () => join(dir, `models-${++n}.json`)

/** A store with a hand-moved clock. */
async function store(file?: string, o: { maxEntries?: number } = {}) {
  const clock = { now: 1_000_000 }
  const s = await createModelStore({
    ...(file ? { file } : {}),
    now: () => clock.now,
    log: pino({ level: 'silent' }),
    ...o,
  })
  return { ...s, clock }
}

const payload = (extra: Partial<AdapterPayload> = {}): AdapterPayload => ({ jti: 'x', ...extra })

describe('dev IdP model store (oidc-provider adapter)', () => {
  it('finds what was upserted, a copy each time, until it expires (clock tolerance included)', async () => {
    const s = await store()
    const grants = s.adapter('Grant')
    await grants.upsert('g1', payload({ accountId: 'dev-user' }), 10)
    const found = await grants.find('g1')
    assert.equal(found?.accountId, 'dev-user')
    found!.accountId = 'changed by the caller'
    assert.equal((await grants.find('g1'))?.accountId, 'dev-user', 'callers get copies')
    assert.equal(await s.adapter('Session').find('g1'), undefined, 'models do not share ids')
    s.clock.now += (10 + DEFAULT_CLOCK_TOLERANCE_S) * 1000 - 1
    assert.ok(await grants.find('g1'), 'still there just before expiry')
    s.clock.now += 1
    assert.equal(await grants.find('g1'), undefined, 'gone at expiry')
  })

  it('without expiresIn an entry never expires (registered clients)', async () => {
    const s = await store()
    await s.adapter('Client').upsert('c1', payload({ client_id: 'c1' }))
    s.clock.now += 365 * 24 * 3600 * 1000
    assert.equal((await s.adapter('Client').find('c1'))?.client_id, 'c1')
  })

  it('consume marks the entry (refresh token reuse is detectable), destroy removes it', async () => {
    const s = await store()
    const tokens = s.adapter('RefreshToken')
    await tokens.upsert('r1', payload({ grantId: 'g1' }), 60)
    await tokens.consume('r1')
    assert.equal((await tokens.find('r1'))?.consumed, 1000)
    await tokens.consume('missing') // no throw
    await tokens.destroy('r1')
    assert.equal(await tokens.find('r1'), undefined)
  })

  it('findByUid and findByUserCode look inside one model', async () => {
    const s = await store()
    await s.adapter('Session').upsert('s1', payload({ uid: 'u1' }), 60)
    await s.adapter('Interaction').upsert('i1', payload({ uid: 'u2' }), 60)
    await s.adapter('DeviceCode').upsert('d1', payload({ userCode: 'ABCD' }), 60)
    const cases: [string, unknown, unknown][] = [
      ['session by uid', (await s.adapter('Session').findByUid('u1'))?.uid, 'u1'],
      ['other model uid not found', await s.adapter('Session').findByUid('u2'), undefined],
      ['user code', (await s.adapter('DeviceCode').findByUserCode('ABCD'))?.userCode, 'ABCD'],
      ['unknown user code', await s.adapter('DeviceCode').findByUserCode('ZZZZ'), undefined],
    ]
    for (const [name, actual, expected] of cases) assert.equal(actual, expected, name)
  })

  it("revokeByGrantId removes that grant's entries of that model only", async () => {
    const s = await store()
    await s.adapter('RefreshToken').upsert('r1', payload({ grantId: 'g1' }), 60)
    await s.adapter('RefreshToken').upsert('r2', payload({ grantId: 'g2' }), 60)
    await s.adapter('AuthorizationCode').upsert('a1', payload({ grantId: 'g1' }), 60)
    await s.adapter('RefreshToken').revokeByGrantId('g1')
    assert.equal(await s.adapter('RefreshToken').find('r1'), undefined)
    assert.ok(await s.adapter('RefreshToken').find('r2'))
    assert.ok(
      await s.adapter('AuthorizationCode').find('a1'),
      'each model is revoked by its own call',
    )
  })

  it('past maxEntries, expired entries go first, then the least recently written', async () => {
    const s = await store(undefined, { maxEntries: 3 })
    const clients = s.adapter('Client')
    await s.adapter('Session').upsert('old', payload(), 1)
    await clients.upsert('c1', payload())
    await clients.upsert('c2', payload())
    s.clock.now += 60_000
    await clients.upsert('c3', payload()) // drops the expired session, nothing else
    assert.ok(await clients.find('c1'))
    await clients.upsert('c1', payload()) // rewritten: now the newest
    await clients.upsert('c4', payload()) // drops c2, the least recently written
    assert.deepEqual(
      await Promise.all(
        ['c1', 'c2', 'c3', 'c4'].map(async (id) => Boolean(await clients.find(id))),
      ),
      [true, false, true, true],
    )
  })

  it('persists Client, Grant, RefreshToken and RegistrationAccessToken only, mode 0600', async () => {
    const file = fresh()
    const s = await store(file)
    for (const model of [
      'Client',
      'Grant',
      'RefreshToken',
      'RegistrationAccessToken',
      'Session',
      'Interaction',
      'AuthorizationCode',
      'AccessToken',
    ]) {
      await s.adapter(model).upsert('id', payload({ kind: model } as never), 600)
    }
    await s.adapter('RefreshToken').consume('id')
    await s.flushed()
    assert.equal(statSync(file).mode & 0o777, 0o600)
    const again = await store(file)
    const cases: [string, boolean][] = [
      ['Client', true],
      ['Grant', true],
      ['RefreshToken', true],
      ['RegistrationAccessToken', true],
      ['Session', false],
      ['Interaction', false],
      ['AuthorizationCode', false],
      ['AccessToken', false],
    ]
    for (const [model, kept] of cases) {
      assert.equal(Boolean(await again.adapter(model).find('id')), kept, model)
    }
    assert.equal((await again.adapter('RefreshToken').find('id'))?.consumed, 1000, 'consumed kept')
  })

  it('forgets on disk what was destroyed, revoked or expired', async () => {
    const file = fresh()
    const s = await store(file)
    await s.adapter('Client').upsert('gone', payload())
    await s.adapter('Client').upsert('kept', payload())
    await s.adapter('RefreshToken').upsert('revoked', payload({ grantId: 'g' }), 600)
    await s.adapter('Grant').upsert('expired', payload(), 1)
    await s.adapter('Client').destroy('gone')
    await s.adapter('RefreshToken').revokeByGrantId('g')
    s.clock.now += 60_000
    await s.adapter('Client').upsert('written', payload()) // the next write drops the expired grant
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, unknown> }
    assert.deepEqual(Object.keys(saved.entries).sort(), ['Client:kept', 'Client:written'])
  })

  it('concurrent writes all land, and each call returns once its change is on disk', async () => {
    const file = fresh()
    const s = await store(file)
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        s
          .adapter('Client')
          .upsert(`c${i}`, payload())
          .then(() => {
            const saved = JSON.parse(readFileSync(file, 'utf8')) as { entries: object }
            assert.ok(`Client:c${i}` in saved.entries, `c${i} on disk when its upsert resolved`)
          }),
      ),
    )
    const again = await store(file)
    for (let i = 0; i < 20; i++) assert.ok(await again.adapter('Client').find(`c${i}`))
  })

  it('a corrupt file is set aside (kept for a look) and the store starts empty', async () => {
    const cases = [
      { name: 'not JSON', text: '{"version":1,"entries":{' },
      { name: 'wrong version', text: '{"version":2,"entries":{}}' },
      {
        name: 'a model that is never persisted',
        text: '{"version":1,"entries":{"Session:x":{"payload":{}}}}',
      },
      {
        name: 'entry without payload',
        text: '{"version":1,"entries":{"Client:x":{"expiresAt":1}}}',
      },
    ]
    for (const c of cases) {
      const file = fresh()
      writeFileSync(file, c.text)
      const lines: string[] = []
      const s = await createModelStore({
        file,
        log: pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) }),
      })
      assert.equal(await s.adapter('Client').find('x'), undefined, c.name)
      assert.equal(readFileSync(`${file}.corrupt`, 'utf8'), c.text, `${c.name}: kept aside`)
      const warning = JSON.parse(lines[0]!) as Record<string, string>
      assert.match(warning.msg!, /registrations unreadable; starting without them/, c.name)
      assert.equal(warning.file, file, c.name)
      assert.ok(warning.reason, c.name)
    }
  })
})
