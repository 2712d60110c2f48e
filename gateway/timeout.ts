/**
 * `p`, or a rejection once `ms` have passed (`p` goes on; its own rejection is then ignored).
 * @throws Error `no answer within <ms> ms`
 */
export async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  p.catch(() => {})
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * `p`, or a rejection with `signal`'s reason as soon as it is aborted (at once if it already
 * is). `p` goes on: its rejection is then ignored, and what it resolves to goes to `abandon`
 * (a start-up step's result nobody will use is closed, not leaked).
 * @throws the signal's reason
 */
export function unlessAborted<T>(
  p: Promise<T>,
  signal: AbortSignal | undefined,
  abandon?: (value: T) => unknown,
): Promise<T> {
  if (signal === undefined) return p
  return new Promise<T>((resolve, reject) => {
    const aborted = () => reject(signal.reason)
    if (signal.aborted) aborted()
    else signal.addEventListener('abort', aborted, { once: true })
    p.then(
      (value) => {
        signal.removeEventListener('abort', aborted)
        if (signal.aborted && abandon) void Promise.resolve(abandon(value)).catch(() => {})
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', aborted)
        reject(err)
      },
    )
  })
}
