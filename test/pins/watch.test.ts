// The pin file's watch: a pin file that is a symlink (into another folder, or along a chain of
// links) is reloaded when its target is edited or a link on the way is pointed elsewhere.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { ToolPins } from '../../gateway/pins/pins.js'
import { watchPins, type PinReload } from '../../gateway/pins/watch.js'
import { waitFor } from '../helpers/wait-for.js'

const A = `sha256:${'a'.repeat(64)}`
const good = (tool: string) => `servers:\n  s:\n    tools:\n      ${tool}: ${A}\n`
/** A file that does not load: what the reload says names it, so each result shows what it read. */
const bad = (marker: string) => `servers:\n  s:\n    tools:\n      ${marker}: not-a-hash\n`

const dirs: string[] = []
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

function setup(link: (d: string, pins: string) => void) {
  const d = mkdtempSync(join(tmpdir(), 'mcp-edge-pins-link-'))
  dirs.push(d)
  for (const sub of ['etc', 'mid', 'real', 'real2']) mkdirSync(join(d, sub))
  const file = join(d, 'etc', 'pins.yaml')
  link(d, file)
  const pins = new ToolPins({
    file,
    learn: false,
    maxFileBytes: 65536,
    maxPending: 10,
    now: () => 0,
    servers: new Set(['s']),
    log: pino({ level: 'silent' }),
    events: { pending: () => {}, learned: () => {} },
  })
  pins.load()
  const results: PinReload[] = []
  const watcher = watchPins(pins, file, 20, (r) => results.push(r))
  /** Waits for a reload that read `marker` (a refused file naming it). */
  const read = (marker: string) =>
    waitFor(
      () => results.some((r) => !r.ok && r.problems.join('\n').includes(marker)),
      () => `a reload that read ${marker}: ${JSON.stringify(results)}`,
    )
  return { d, watcher, results, read }
}
function repoint(link: string, target: string): void {
  symlinkSync(target, `${link}.new`)
  renameSync(`${link}.new`, link)
}

describe('watchPins: a pin file that is a symlink', () => {
  it('into another folder: an edit of the target is reloaded (also saved by rename)', async () => {
    const { d, watcher, results, read } = setup((d, file) => {
      writeFileSync(join(d, 'real', 'pins.yaml'), good('one'))
      symlinkSync(join(d, 'real', 'pins.yaml'), file)
    })
    try {
      writeFileSync(join(d, 'real', 'pins.yaml'), bad('edited_in_place'))
      await read('edited_in_place')
      writeFileSync(join(d, 'real', 'pins.yaml.tmp'), bad('saved_by_rename'))
      renameSync(join(d, 'real', 'pins.yaml.tmp'), join(d, 'real', 'pins.yaml'))
      await read('saved_by_rename')
      writeFileSync(join(d, 'real', 'pins.yaml'), good('two'))
      await waitFor(() => results.at(-1)?.ok, 'the repaired target was reloaded')
      assert.equal(watcher.lastError, undefined)
    } finally {
      watcher.close()
    }
  })

  it('along a chain (etc -> mid -> real): a re-pointed middle link, then its new target', async () => {
    const { d, watcher, read } = setup((d, file) => {
      writeFileSync(join(d, 'real', 'pins.yaml'), good('one'))
      symlinkSync(join(d, 'real', 'pins.yaml'), join(d, 'mid', 'pins.yaml'))
      symlinkSync(join(d, 'mid', 'pins.yaml'), file)
    })
    try {
      writeFileSync(join(d, 'real2', 'pins.yaml'), bad('repointed'))
      repoint(join(d, 'mid', 'pins.yaml'), join(d, 'real2', 'pins.yaml'))
      await read('repointed')
      writeFileSync(join(d, 'real2', 'pins.yaml'), bad('new_target_edited'))
      await read('new_target_edited')
      assert.match(watcher.lastError?.join('\n') ?? '', /new_target_edited/)
    } finally {
      watcher.close()
    }
  })
})
