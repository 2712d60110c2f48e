import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { statSync } from 'node:fs'
import { ConfigError, formatProblem } from '../config/errors.js'
import { loadPolicy } from './load.js'
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
 * `debounceMs` of quiet after the last file event (editors write in bursts).
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
  let watcher: FSWatcher | undefined = watch(folder, { persistent: false }, (_event, file) => {
    // Kubernetes mounts a ConfigMap as symlinks into `..data`, and updates it by swapping that
    // link: the yaml names never change, so `..*` entries count as changes too.
    if (name !== undefined && file !== null && file !== name && !file.startsWith('..')) return
    clearTimeout(timer)
    timer = setTimeout(reload, debounceMs)
  })
  watcher.on('error', () => {
    watcher?.close()
    watcher = undefined
  })
  return {
    reload,
    get lastError() {
      return lastError
    },
    close() {
      clearTimeout(timer)
      watcher?.close()
    },
  }
}
