import { watchFiles } from '../config/file-watch.js'
import type { ToolPins } from './pins.js'

/** The outcome of one pin file reload. */
export type PinReload = { ok: true } | { ok: false; problems: string[] }

/** Reloads the pin file when it changes; a file that does not load never replaces good pins. */
export interface PinWatcher {
  /** The problems of the last failed reload, until one succeeds. */
  readonly lastError: string[] | undefined
  close(): void
}

/**
 * Watches the pin file through its folder (an editor or `mcp-edge tools approve` replaces it by
 * rename, which would leave a watch on the old inode blind; a Kubernetes ConfigMap swaps its
 * `..data` link), and along its chain of links when it is a symlink (an edit of the target was
 * never seen), and reloads it after `debounceMs` of quiet ({@link watchFiles}). The gateway's
 * own writes come back here too and load what it already holds.
 */
export function watchPins(
  pins: ToolPins,
  file: string,
  debounceMs: number,
  onResult: (r: PinReload) => void,
): PinWatcher {
  let lastError: string[] | undefined
  const watch = watchFiles(
    file,
    () => [file],
    debounceMs,
    () => {
      const r = pins.reload()
      lastError = r.ok ? undefined : r.problems
      onResult(r)
    },
  )
  return {
    get lastError() {
      return lastError
    },
    close() {
      watch.close()
    },
  }
}
