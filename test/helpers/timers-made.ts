// Watching the Node timers code makes: every setTimeout while a body runs is recorded, then
// cleared (the one-timer-for-many checks count them and read whether they hold the process).

/** Every timer made by setTimeout while `body` runs, cleared after it. */
export async function timersMade(
  body: (made: NodeJS.Timeout[]) => Promise<void> | void,
): Promise<void> {
  const made: NodeJS.Timeout[] = []
  const real = globalThis.setTimeout
  globalThis.setTimeout = ((fn: () => void, ms: number) => {
    const t = real(fn, ms)
    made.push(t)
    return t
  }) as typeof setTimeout
  try {
    await body(made)
  } finally {
    globalThis.setTimeout = real
    for (const t of made) clearTimeout(t)
  }
}

/** Whether a timer was cleared (Node marks it destroyed). */
export const destroyed = (t: NodeJS.Timeout): boolean =>
  (t as unknown as { _destroyed: boolean })._destroyed
