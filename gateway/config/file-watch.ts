import { lstatSync, readlinkSync, realpathSync, statSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname, resolve, sep } from 'node:path'

/**
 * Symbolic links followed from one file at most, as the kernel's own bound (Linux
 * MAXSYMLINKS): a loop of links ends the walk there, and loading the file fails with ELOOP.
 */
export const MAX_LINK_HOPS = 40

/** A watch on a file or folder and on every folder its files' links lead through. */
export interface FileWatch {
  /** Finds the links' folders again now (a link may have been pointed elsewhere). */
  follow(): void
  close(): void
}

/**
 * Watches `path` (a folder, or a single file through its folder: editors replace files by
 * rename, which would leave a watch on the old inode blind) and calls `onChange` after
 * `debounceMs` of quiet following the last event (editors write in bursts). A file of
 * `files()` that is a symlink changes where its links lead, unseen by that watch: each folder
 * on its chain of links (x -> mid/y -> real/z: `mid` and `real`) is watched too, for the names
 * the chain passes there, found again before each `onChange` and at `follow()`. Folders inside
 * the watched one (Kubernetes' `..<timestamp>`) need none: their swap is `..data` changing.
 */
export function watchFiles(
  path: string,
  files: () => readonly string[],
  debounceMs: number,
  onChange: () => void,
): FileWatch {
  let timer: NodeJS.Timeout | undefined
  let closed = false
  const fire = () => {
    follow()
    onChange()
  }
  const schedule = () => {
    clearTimeout(timer)
    timer = setTimeout(fire, debounceMs)
  }
  let isDir = false
  try {
    isDir = statSync(path).isDirectory()
  } catch {} // missing, or a loop of links: a file, watched through its folder
  const folder = isDir ? path : dirname(path)
  const name = isDir ? undefined : basename(path)
  let watcher: FSWatcher | undefined = watch(folder, { persistent: false }, (_event, file) => {
    // Kubernetes mounts a ConfigMap as symlinks into `..data`, and updates it by swapping that
    // link: the file names never change, so `..*` entries count as changes too.
    if (name !== undefined && file !== null && file !== name && !file.startsWith('..')) return
    schedule()
  })
  watcher.on('error', () => {
    watcher?.close()
    watcher = undefined
  })
  const home = realpathSync(folder)
  // Each outside folder (by its real path), with the names the links pass in it: its other
  // files' events are not ours (a link into a busy folder such as /tmp).
  const targets = new Map<string, { watcher: FSWatcher; names: Set<string> }>()
  function follow(): void {
    // A follow after close (a late SIGHUP) opens no watcher nothing would close.
    if (closed) return
    const wanted = new Map<string, Set<string>>()
    // Files that cannot be listed (a loop of links, a file gone) leave the watched file itself:
    // the folders of its chain stay watched, so the edit that repairs it is seen.
    let list: readonly string[] = isDir ? [] : [path]
    try {
      list = files()
    } catch {}
    for (const file of list) {
      for (const hop of linkChain(file)) {
        let dir: string
        try {
          dir = realpathSync(dirname(hop))
        } catch {
          continue
        }
        if (dir === home || dir.startsWith(`${home}${sep}`)) continue
        const names = wanted.get(dir) ?? new Set<string>()
        wanted.set(dir, names.add(basename(hop)))
      }
    }
    for (const [dir, t] of targets) {
      if (wanted.has(dir)) continue
      t.watcher.close()
      targets.delete(dir)
    }
    for (const [dir, names] of wanted) {
      const held = targets.get(dir)
      if (held) {
        held.names = names
        continue
      }
      try {
        const w = watch(dir, { persistent: false }, (_event, file) => {
          if (file === null || targets.get(dir)?.names.has(file)) schedule()
        })
        w.on('error', () => {
          w.close()
          targets.delete(dir)
        })
        targets.set(dir, { watcher: w, names })
      } catch {}
    }
  }
  follow()
  return {
    follow,
    close() {
      closed = true
      clearTimeout(timer)
      watcher?.close()
      for (const t of targets.values()) t.watcher.close()
      targets.clear()
    },
  }
}

/**
 * The paths a chain of links passes after `file` itself: each link's target, up to the first
 * that is no link (or missing), at most {@link MAX_LINK_HOPS} (a loop of links ends there).
 */
function linkChain(file: string): string[] {
  const hops: string[] = []
  let at = file
  for (let i = 0; i < MAX_LINK_HOPS; i++) {
    let target: string
    try {
      if (!lstatSync(at).isSymbolicLink()) break
      target = readlinkSync(at)
    } catch {
      break
    }
    // A relative target is relative to the link's own folder.
    at = resolve(dirname(at), target)
    hops.push(at)
  }
  return hops
}
