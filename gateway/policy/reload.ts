import { ConfigError, formatProblem } from '../config/errors.js'
import { watchFiles } from '../config/file-watch.js'
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
 * that is a symlink is watched along its whole chain of links too ({@link watchFiles}).
 */
export function watchPolicy(
  path: string,
  store: PolicyStore,
  debounceMs: number,
  onResult: (r: ReloadResult) => void,
): PolicyReloader {
  let lastError: string[] | undefined
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
  const files = watchFiles(path, () => policyFiles(path), debounceMs, reload)
  return {
    reload() {
      // A reload on demand (SIGHUP) finds the links again too: one may point elsewhere now.
      files.follow()
      return reload()
    },
    get lastError() {
      return lastError
    },
    close() {
      files.close()
    },
  }
}
