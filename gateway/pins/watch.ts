import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
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
 * `..data` link) and reloads it after `debounceMs` of quiet. The gateway's own writes come back
 * here too and load what it already holds.
 */
export function watchPins(
  pins: ToolPins,
  file: string,
  debounceMs: number,
  onResult: (r: PinReload) => void,
): PinWatcher {
  let lastError: string[] | undefined
  let timer: NodeJS.Timeout | undefined
  const name = basename(file)
  const reload = () => {
    const r = pins.reload()
    lastError = r.ok ? undefined : r.problems
    onResult(r)
  }
  let watcher: FSWatcher | undefined = watch(dirname(file), { persistent: false }, (_e, f) => {
    if (f !== null && f !== name && !f.startsWith('..')) return
    clearTimeout(timer)
    timer = setTimeout(reload, debounceMs)
  })
  watcher.on('error', () => {
    watcher?.close()
    watcher = undefined
  })
  return {
    get lastError() {
      return lastError
    },
    close() {
      clearTimeout(timer)
      watcher?.close()
    },
  }
}
