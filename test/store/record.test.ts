// The one parser of records read back from the store (store/record.ts): what the gateway wrote
// comes back; anything else is absent, logged by kind, never quoted.
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { pino } from 'pino'
import { MAX_RECORD_CHARS, parseRecord, type Fields } from '../../gateway/store/record.js'

const FIELDS: Fields = { sub: 'string', roles: 'string[]', at: 'number', email: 'string?' }
const MARK = 'MARK-77'

/** Parses `text` with a recording logger: the result and the lines written. */
function parsed(text: string | undefined) {
  const lines: string[] = []
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) })
  return { value: parseRecord(text, 'account', FIELDS, log), lines }
}

it('a record as written comes back, optional fields absent or null, extra fields kept', () => {
  for (const text of [
    '{"sub":"a","roles":[],"at":1}',
    '{"sub":"a","roles":["r"],"at":1,"email":"e@x"}',
    '{"sub":"a","roles":["r"],"at":1,"email":null,"other":{"x":1}}',
  ]) {
    const { value, lines } = parsed(text)
    assert.deepEqual(value, JSON.parse(text), text)
    assert.deepEqual(lines, [], text)
  }
  assert.deepEqual(parsed(undefined), { value: undefined, lines: [] }, 'absent: nothing logged')
})

it('anything else is absent, its kind logged and its value never', () => {
  const ok = `"sub":"${MARK}","roles":["r"],"at":1`
  const cases: Record<string, string> = {
    'not JSON': `{${MARK}`,
    'half-written': `{${ok.slice(0, 20)}`,
    empty: '',
    array: `[{${ok}}]`,
    number: '5',
    null: 'null',
    true: 'true',
    string: `"${MARK}"`,
    'missing field': `{"roles":["r"],"at":1,"x":"${MARK}"}`,
    'field of another type': `{"sub":5,"roles":["r"],"at":1,"x":"${MARK}"}`,
    'array of another type': `{"sub":"${MARK}","roles":[1],"at":1}`,
    'NaN-like number': `{"sub":"${MARK}","roles":[],"at":"1"}`,
    'required null': `{"sub":null,"roles":[],"at":1,"x":"${MARK}"}`,
    'optional of another type': `{${ok},"email":["${MARK}"]}`,
    '__proto__ key': `{${ok},"__proto__":{"admin":true}}`,
    'nested __proto__ key': `{${ok},"x":[{"y":{"__proto__":{"admin":true}}}]}`,
    'escaped __proto__ key': `{${ok},"\\u005f_proto__":{"admin":true}}`,
    huge: `{${ok},"pad":"${'x'.repeat(MAX_RECORD_CHARS)}"}`,
  }
  for (const [what, text] of Object.entries(cases)) {
    const { value, lines } = parsed(text)
    assert.equal(value, undefined, what)
    assert.equal(lines.length, 1, `${what}: one line`)
    assert.match(lines[0]!, /"kind":"account"/, what)
    assert.ok(!lines[0]!.includes(MARK), `${what}: the value is not logged`)
  }
  assert.equal(({} as { admin?: boolean }).admin, undefined, 'no prototype was touched')
})

it('a boolean field (the missing-role hand-off’s signedIn) takes true or false, nothing like them', () => {
  const fields: Fields = { uid: 'string', signedIn: 'boolean?' }
  const log = pino({ level: 'silent' })
  for (const text of ['{"uid":"u"}', '{"uid":"u","signedIn":true}', '{"uid":"u","signedIn":false}'])
    assert.deepEqual(parseRecord(text, 'sign-in handoff', fields, log), JSON.parse(text), text)
  for (const v of ['"true"', '1', '0', '[]', '{}', '"yes"'])
    assert.equal(
      parseRecord(`{"uid":"u","signedIn":${v}}`, 'sign-in handoff', fields, log),
      undefined,
      v,
    )
})
