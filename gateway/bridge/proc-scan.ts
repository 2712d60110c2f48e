import { readdir, readFile } from 'node:fs/promises'

/**
 * The pids of the processes whose /proc/<pid>/`file` (Linux) `match` holds for, read one by one
 * (one that ended meanwhile is skipped); only the first with `first`. Undefined when /proc
 * cannot be read.
 */
export async function procFind(
  file: 'stat' | 'status',
  match: (text: string) => boolean,
  first = false,
): Promise<number[] | undefined> {
  let entries: string[]
  try {
    entries = await readdir('/proc')
  } catch {
    return undefined
  }
  const found: number[] = []
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    let text: string
    try {
      text = await readFile(`/proc/${entry}/${file}`, 'latin1')
    } catch {
      continue
    }
    if (!match(text)) continue
    found.push(Number(entry))
    if (first) break
  }
  return found
}
