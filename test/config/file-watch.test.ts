// The watch policies and tool pins share: a file, and every folder its chain of links leads
// through (a link re-pointed anywhere on the chain, or its last target edited, is a change).
import assert from 'node:assert/strict'
import {
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  readFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { watchFiles } from '../../gateway/config/file-watch.js'
import { waitFor } from '../helpers/wait-for.js'

const dirs: string[] = []
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
function root(): string {
  const d = mkdtempSync(join(tmpdir(), 'mcp-edge-watch-'))
  dirs.push(d)
  for (const sub of ['etc', 'mid', 'real', 'real2', 'busy']) mkdirSync(join(d, sub))
  return d
}
/** Points `link` at `target` atomically (a new link renamed over the old one). */
function repoint(link: string, target: string): void {
  symlinkSync(target, `${link}.new`)
  renameSync(`${link}.new`, link)
}

describe('watchFiles: a chain of links (etc/x -> mid/y -> real/z)', () => {
  for (const relative of [false, true]) {
    it(`${relative ? 'relative' : 'absolute'} links: the last target's edit and a re-pointed middle link are changes`, async () => {
      const d = root()
      const x = join(d, 'etc', 'x.yaml')
      writeFileSync(join(d, 'real', 'z.yaml'), 'one')
      writeFileSync(join(d, 'real2', 'w.yaml'), 'two')
      symlinkSync(relative ? '../real/z.yaml' : join(d, 'real', 'z.yaml'), join(d, 'mid', 'y.yaml'))
      symlinkSync(relative ? '../mid/y.yaml' : join(d, 'mid', 'y.yaml'), x)
      // What the watcher's owner reads at each change: the file through its links.
      const seen: string[] = []
      const watch = watchFiles(
        x,
        () => [x],
        20,
        () => seen.push(readFileSync(x, 'utf8')),
      )
      try {
        writeFileSync(join(d, 'real', 'z.yaml'), 'one edited')
        await waitFor(
          () => seen.at(-1) === 'one edited',
          () => `the edit of real/z: ${seen}`,
        )
        // The middle link is pointed elsewhere: nothing changes in etc/ or real/.
        repoint(join(d, 'mid', 'y.yaml'), relative ? '../real2/w.yaml' : join(d, 'real2', 'w.yaml'))
        await waitFor(
          () => seen.at(-1) === 'two',
          () => `the re-pointed mid/y: ${seen}`,
        )
        // The new last target counts now.
        writeFileSync(join(d, 'real2', 'w.yaml'), 'two edited')
        await waitFor(
          () => seen.at(-1) === 'two edited',
          () => `the edit of real2/w: ${seen}`,
        )
      } finally {
        watch.close()
      }
    })
  }

  it('a loop of links neither hangs nor recurses; the watch still works once it is undone', async () => {
    const d = root()
    const x = join(d, 'etc', 'x.yaml')
    // etc/x -> mid/y -> real/z -> mid/y: a loop (loading it fails with ELOOP).
    symlinkSync(join(d, 'real', 'z.yaml'), join(d, 'mid', 'y.yaml'))
    symlinkSync(join(d, 'mid', 'y.yaml'), join(d, 'real', 'z.yaml'))
    symlinkSync(join(d, 'mid', 'y.yaml'), x)
    const seen: string[] = []
    const read = () => {
      try {
        return readFileSync(x, 'utf8')
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'error'
      }
    }
    const watch = watchFiles(
      x,
      () => [x],
      20,
      () => seen.push(read()),
    )
    try {
      assert.equal(read(), 'ELOOP')
      // The loop is broken by making the middle link a file's link: a change, and it is seen.
      writeFileSync(join(d, 'real2', 'w.yaml'), 'out of the loop')
      repoint(join(d, 'real', 'z.yaml'), join(d, 'real2', 'w.yaml'))
      await waitFor(
        () => seen.at(-1) === 'out of the loop',
        () => `the loop undone: ${seen}`,
      )
      writeFileSync(join(d, 'real2', 'w.yaml'), 'edited')
      await waitFor(
        () => seen.at(-1) === 'edited',
        () => `the edit past the former loop: ${seen}`,
      )
      // A loop made at run time (the middle's target pointed back at the middle): seen, once
      // per change, and undone again.
      repoint(join(d, 'real', 'z.yaml'), join(d, 'mid', 'y.yaml'))
      await waitFor(
        () => seen.at(-1) === 'ELOOP',
        () => `the loop made again: ${seen}`,
      )
      writeFileSync(join(d, 'real2', 'w.yaml'), 'back')
      repoint(join(d, 'real', 'z.yaml'), join(d, 'real2', 'w.yaml'))
      await waitFor(
        () => seen.at(-1) === 'back',
        () => `the loop undone again: ${seen}`,
      )
    } finally {
      watch.close()
    }
  })
})
