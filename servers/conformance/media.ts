// Fixed payloads the conformance scenarios look for: a tiny image and sound, and the JSON
// Schema 2020-12 input schema whose keywords must survive the trip unchanged.

/** A 1×1 red PNG, base64. */
export const RED_PIXEL_PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC'

/** A valid WAV file (8 kHz, 8-bit mono, 8 samples of silence), base64. */
export const SILENT_WAV = wav(8)

function wav(samples: number): string {
  const b = Buffer.alloc(44 + samples)
  b.write('RIFF', 0)
  b.writeUInt32LE(36 + samples, 4)
  b.write('WAVEfmt ', 8)
  b.writeUInt32LE(16, 16) // fmt chunk size
  b.writeUInt16LE(1, 20) // PCM
  b.writeUInt16LE(1, 22) // mono
  b.writeUInt32LE(8000, 24) // sample rate
  b.writeUInt32LE(8000, 28) // byte rate
  b.writeUInt16LE(1, 32) // block align
  b.writeUInt16LE(8, 34) // bits per sample
  b.write('data', 36)
  b.writeUInt32LE(samples, 40)
  b.fill(128, 44) // 8-bit PCM silence is the midpoint
  return b.toString('base64')
}

/**
 * The json-schema-2020-12 scenario's input schema, keyword for keyword (SEP-1613, SEP-2106):
 * `$schema`, `$defs` with an `$anchor`, `allOf`/`anyOf`, `if`/`then`/`else`,
 * `additionalProperties: false`. A gateway that parses and re-serializes it must not drop any.
 */
export const JSON_SCHEMA_2020_12 = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: {
    address: {
      $anchor: 'addressDef',
      type: 'object',
      properties: { street: { type: 'string' }, city: { type: 'string' } },
    },
  },
  properties: {
    name: { type: 'string' },
    address: { $ref: '#/$defs/address' },
    contactMethod: { type: 'string', enum: ['phone', 'email'] },
    phone: { type: 'string' },
    email: { type: 'string' },
  },
  allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
  if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
  then: { required: ['phone'] },
  else: { required: ['email'] },
  additionalProperties: false,
} as const
