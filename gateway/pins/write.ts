import { randomBytes } from 'node:crypto'
import { realpathSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { Document, parseDocument } from 'yaml'
import { ConfigError } from '../config/errors.js'
import { parsePins, PIN_FILE_VERSION, readPinText, type PinFile } from './file.js'

/** What a new pin file starts with, so an operator who opens it knows what it is. */
const HEADER = ` mcp-edge tool pins (README "Tool pinning"): per server, the approved hash of each tool
 (tools) and definitions waiting for an operator (pending). Approve with
 "mcp-edge tools approve <server> <tool>", or move a pending hash under tools by hand.`

/** Times a write is retried when the file changed between its read and its rename. */
const ATTEMPTS = 5

/**
 * Read-modify-write of the pin file: the file as it is now (an operator's edit included) is
 * read and parsed, `edit` changes the YAML document (comments and order kept) and says whether
 * it changed anything, and the result is written to a temporary file beside it and renamed
 * over it (atomic on one file system: readers see the old file or the new one, never half).
 * Just before the rename the file is read again; if it changed meanwhile the edit starts over,
 * so a concurrent edit (the CLI, an operator) is not lost. Returns the new pins, or undefined
 * when `edit` changed nothing.
 * @throws ConfigError when the file does not parse (nothing is written over an operator's
 * broken edit), would exceed `maxBytes`, or cannot be written
 */
export function editPins(
  path: string,
  maxBytes: number,
  edit: (doc: Document) => boolean,
): PinFile | undefined {
  const file = written(path)
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const before = readPinText(file, maxBytes)
    // Checked whole before any change: a file that does not load is never rewritten.
    if (before !== undefined) parsePins(file, before)
    const doc =
      before === undefined || before.trim() === ''
        ? fresh()
        : parseDocument(before, { uniqueKeys: true })
    if (!edit(doc)) return undefined
    const text = doc.toString({ lineWidth: 0 })
    const next = parsePins(file, text)
    if (Buffer.byteLength(text) > maxBytes)
      throw new ConfigError([
        {
          file,
          message: `the pins would exceed toolPins.maxFileBytes (${maxBytes} bytes); not written`,
        },
      ])
    const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
    try {
      writeFileSync(temp, text, { mode: modeOf(file), flag: 'wx' })
      if (readPinText(file, maxBytes) !== before) {
        unlinkSync(temp)
        continue
      }
      renameSync(temp, file)
    } catch (err) {
      try {
        unlinkSync(temp)
      } catch {}
      throw new ConfigError([
        { file, message: `cannot write: ${(err as NodeJS.ErrnoException).code ?? String(err)}` },
      ])
    }
    return next
  }
  throw new ConfigError([{ file, message: 'changed under every write attempt; not written' }])
}

/**
 * Where a write goes: a pin file reached through links (a mounted or shared file) is rewritten
 * where it really lives, so the rename replaces the file, not the link beside it (which would
 * leave the target stale and the link gone). A path that does not exist yet is written as given.
 */
function written(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return path
  }
}

function fresh(): Document {
  const doc = new Document({ version: PIN_FILE_VERSION, servers: {} })
  doc.commentBefore = HEADER
  return doc
}

/** The file's permission bits, kept across the rename; new files are readable by all, like a config. */
function modeOf(file: string): number {
  try {
    return statSync(file).mode & 0o777
  } catch {
    return 0o644
  }
}
