import { randomBytes } from 'node:crypto'
import { link, lstat, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { DevIdpError } from './errors.js'

/**
 * Makes sure `dir` is a private folder of ours, creating it (mode 0700) if missing. Refuses a
 * symlink or non-folder, a folder owned by another user, and one writable by group or others:
 * whoever can write there could plant signing keys or clients.
 * @throws DevIdpError state_unsafe
 */
export async function openStateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') return // checked below
    throw unsafe(dir, `cannot be created (${err.code ?? err.message})`, err)
  })
  const st = await lstat(dir)
  if (!st.isDirectory()) throw unsafe(dir, 'is not a folder (a symlink or a file)')
  const uid = process.getuid?.()
  if (uid !== undefined && st.uid !== uid) {
    throw unsafe(dir, `is owned by uid ${st.uid}, not by this user (uid ${uid})`)
  }
  if ((st.mode & 0o022) !== 0) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0')
    throw unsafe(dir, `is writable by group or others (mode ${mode}); chmod 700 it`)
  }
}

function unsafe(dir: string, why: string, cause?: unknown): DevIdpError {
  return new DevIdpError(
    'state_unsafe',
    `dev IdP state folder ${dir} ${why}; fix it, remove it, ` +
      'or point MCP_EDGE_DEV_IDP_STATE at a file in a private folder',
    cause,
  )
}

/**
 * Writes `text` to `file`, mode 0600, atomically: a temp file, then rename, so readers never
 * see half a file and a symlink planted at `file` is replaced, never followed. `exclusive`:
 * only if `file` does not exist yet (a hard link fails instead of replacing); returns false
 * when it did.
 */
export async function writeFileAtomic(
  file: string,
  text: string,
  o: { exclusive?: boolean } = {},
): Promise<boolean> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  await writeFile(tmp, text, { mode: 0o600, flag: 'wx' })
  try {
    if (o.exclusive) await link(tmp, file)
    else await rename(tmp, file)
    return true
  } catch (err) {
    if (o.exclusive && (err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    await unlink(tmp).catch(() => {}) // gone after a rename; a link leaves it
  }
}

/** What {@link readStateFile} found. */
export type StateRead<T> =
  | { kind: 'absent' }
  | { kind: 'ok'; value: T }
  /** Unparseable or invalid: moved to `aside` (kept to look at); the caller starts fresh. */
  | { kind: 'corrupt'; reason: string; aside: string }

/**
 * Reads a JSON state file and checks it with `validate` (which throws an Error saying what
 * is wrong). A corrupt file is moved to `<file>.corrupt` rather than deleted or reused.
 */
export async function readStateFile<T>(
  file: string,
  validate: (value: unknown) => T,
): Promise<StateRead<T>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' }
    throw err
  }
  let reason: string
  try {
    return { kind: 'ok', value: validate(JSON.parse(text)) }
  } catch (err) {
    reason = err instanceof SyntaxError ? `not JSON (${err.message})` : (err as Error).message
  }
  const aside = `${file}.corrupt`
  await rename(file, aside)
  return { kind: 'corrupt', reason, aside }
}
