import { realpathSync, statSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname, sep } from 'node:path'
import { ConfigError, formatProblem } from '../config/errors.js'
import { loadPolicy, policyFiles } from './load.js'
import type { PolicyStore } from './store.js'

/** The outcome of one reload attempt. */
export type ReloadResult =
  | { ok: true; files: readonly string[] }
  | { ok: false; problems: string[] }

/** Reloads the policy on file changes or on demand; a bad edit never replaces a good policy. */
export interface PolicyReloader {
  /** Loads the files now; swaps the policy only if every file validates. */
  reload(): ReloadResult
  /** The problems of the last failed reload, until a reload succeeds. */
  readonly lastError: string[] | undefined
  close(): void
}

/**
 * Watches the policy file or folder. A change that validates is swapped in atomically: every
 * message decided afterwards sees all of the new policy, none of the old. A change that does
 * not is reported through `onResult` and the last good policy stays. A reload waits for
 * `debounceMs` of quiet after the last file event (editors write in bursts). A policy file
 * that is a symlink into another folder is watched there too.
 */
export function watchPolicy(
  path: string,
  store: PolicyStore,
  debounceMs: number,
  onResult: (r: ReloadResult) => void,
): PolicyReloader {
  let lastError: string[] | undefined
  let timer: NodeJS.Timeout | undefined
  const reload = (): ReloadResult => {
    follow()
    let result: ReloadResult
    try {
      const next = loadPolicy(path)
      store.replace(next)
      lastError = undefined
      result = { ok: true, files: next.files }
    } catch (err) {
      const problems =
        err instanceof ConfigError
          ? err.problems.map(formatProblem)
          : [String((err as Error).message)]
      lastError = problems
      result = { ok: false, problems }
    }
    onResult(result)
    return result
  }
  // A single file is watched through its folder: editors replace files by rename, which
  // would leave a watch on the old inode blind.
  const isDir = statSync(path).isDirectory()
  const folder = isDir ? path : dirname(path)
  const name = isDir ? undefined : basename(path)
  const schedule = () => {
    clearTimeout(timer)
    timer = setTimeout(reload, debounceMs)
  }
  let watcher: FSWatcher | undefined = watch(folder, { persistent: false }, (_event, file) => {
    // Kubernetes mounts a ConfigMap as symlinks into `..data`, and updates it by swapping that
    // link: the yaml names never change, so `..*` entries count as changes too.
    if (name !== undefined && file !== null && file !== name && !file.startsWith('..')) return
    schedule()
  })
  watcher.on('error', () => {
    watcher?.close()
    watcher = undefined
  })
  // A policy file that is a symlink into another folder changes there, unseen by the watch
  // above: an edit (a tool denied) was never applied, and nothing said so. Each such folder is
  // watched too, found again at every reload (a link may be pointed elsewhere). Folders inside
  // the watched one (Kubernetes' `..<timestamp>`) need none: their swap is `..data` changing.
  const home = realpathSync(folder)
  const targets = new Map<string, { watcher: FSWatcher; names: Set<string> }>()
  let closed = false
  function follow(): void {
    // A reload after close (a late SIGHUP) opens no watcher nothing would close.
    if (closed) return
    // Each outside folder, with the names of the policy files in it (its other files' events
    // are not ours).
    const wanted = new Map<string, Set<string>>()
    let files: string[] = []
    try {
      files = policyFiles(path)
    } catch {}
    for (const file of files) {
      let real: string
      try {
        real = realpathSync(file)
      } catch {
        continue
      }
      const dir = dirname(real)
      if (dir === home || dir.startsWith(`${home}${sep}`)) continue
      const names = wanted.get(dir) ?? new Set<string>()
      wanted.set(dir, names.add(basename(real)))
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
        const watcher = watch(dir, { persistent: false }, (_event, file) => {
          if (file === null || targets.get(dir)?.names.has(file)) schedule()
        })
        watcher.on('error', () => {
          watcher.close()
          targets.delete(dir)
        })
        targets.set(dir, { watcher, names })
      } catch {}
    }
  }
  follow()
  return {
    reload,
    get lastError() {
      return lastError
    },
    close() {
      closed = true
      clearTimeout(timer)
      watcher?.close()
      for (const t of targets.values()) t.watcher.close()
      targets.clear()
    },
  }
}
