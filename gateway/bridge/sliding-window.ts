/**
 * The one sweep of a sliding window, for the budgets that count events per subject in one
 * (process-starts.ts, shared-crashes.ts): a list of events, oldest first, loses those that left
 * the window. An event exactly `window` ms old has left it.
 */
export function leaveWindow<T>(
  list: T[],
  now: number,
  window: number,
  at: (event: T) => number,
): void {
  let n = 0
  while (n < list.length && at(list[n]!) <= now - window) n++
  if (n > 0) list.splice(0, n)
}
