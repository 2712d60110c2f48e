// The audit line of an operator's `mcp-edge secrets purge`: written where the gateway writes its
// own (`log.audit`), so the trail shows who deleted a user's secrets and signed them out, and
// which; a purge refused or failed says so too. Never a value: names, as the command prints them.
import { closeSync, constants as fsConstants, openSync, readFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import type { GatewayConfig } from '../config/schema.js'
import { createAuditLog, cut } from '../observability/audit.js'
import { writeAll } from '../observability/exit-write.js'
import { createLogger } from '../observability/logger.js'
import { shown } from './shown.js'

/** What one purge did, for its audit line. */
export interface PurgeRecord {
  owner: { iss: string; sub: string }
  /** The secret names deleted, as the command prints them (shown.ts). */
  names: string[]
  signedOut: boolean
  /** Whether deleting began: a refusal before it deleted nothing. */
  began: boolean
  /** `purged N secrets…`, `no secrets held…`, `refused: …` or `error: …`. */
  outcome: string
}

/** The purge's audit log, opened as the gateway's config says. */
export interface PurgeAudit {
  /**
   * With `log.auditOnFailure: refuse` and an audit file, writes a line before deleting (outcome
   * `deleting`) and waits until it is out. @throws Error as {@link openPurgeAudit}'s, if it is not
   */
  ahead(r: PurgeRecord): Promise<void>
  /** Writes the one line and waits until it is out; resolves why it was not written, if it was not. */
  write(r: PurgeRecord): Promise<string | undefined>
}

/** How the purge opens an audit file: appended, never made, never waited on. */
const FILE_FLAGS =
  fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY

/** Between attempts to write to a reader that takes nothing now (a full pipe). */
const WRITE_POLL_MS = 10

/**
 * Opens the audit destination of `config`. An audit file is the gateway's: the purge appends to
 * the one there and never makes it nor its folder (run as root, one it made would be root's,
 * and the gateway, not root, could not open it again: with `refuse` it would refuse every
 * request). It opens it non-blocking (a FIFO no one reads fails at once, ENXIO) and gives up a
 * line its reader takes nothing of for `log.exitWait`, as the gateway does its last lines at
 * exit: the gateway's own sink accepts what it does today (a FIFO to a log shipper, a device).
 * With `log.auditOnFailure: refuse` the file is opened first and takes a line before deleting
 * ({@link PurgeAudit.ahead}): what cannot be audited is not done, as the gateway refuses what it
 * cannot audit, so a purge refuses before it deletes anything.
 * @throws Error naming the file and the error code, when refused
 */
export function openPurgeAudit(config: GatewayConfig): PurgeAudit {
  const target = config.log.audit
  const file = !['off', 'stdout', 'stderr'].includes(target)
  const refuse = config.log.auditOnFailure === 'refuse' && file
  const unwritable = (code: string) =>
    new Error(
      `the audit log ${shown(target)} cannot be written (${code}) and log.auditOnFailure is refuse: nothing was deleted`,
    )
  let fd: number | undefined
  let problem: string | undefined
  if (file) {
    try {
      fd = openSync(target, FILE_FLAGS)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error'
      problem =
        code === 'ENOENT'
          ? 'ENOENT: there is no such file, and the purge never makes it: the gateway does'
          : code === 'ENXIO'
            ? 'ENXIO: a FIFO no one reads'
            : code
    }
    if (refuse && problem !== undefined) throw unwritable(problem)
  }
  // JSON whatever log.format says: the line is for the audit trail, not a terminal. A file's
  // line is made as the gateway makes it, and written here (writeWithin).
  const main = createLogger({ ...config.log, level: 'silent', format: 'json' })
  let made = ''
  const audit = createAuditLog(
    target,
    main,
    file ? { write: (l: string) => void (made = l) } : undefined,
    undefined,
    config.log.auditFieldMax,
  )
  const fieldMax = config.log.auditFieldMax
  const most = config.credentials.secretsPerUser
  const line = async (r: PurgeRecord): Promise<string | undefined> => {
    made = ''
    audit.record({
      sub: r.owner.sub,
      iss: r.owner.iss,
      clientId: undefined,
      server: '',
      method: 'secrets/purge',
      decision: r.began ? 'allow' : 'deny',
      rule: 'operator command',
      outcome: r.outcome,
      names: cutNames(r.names, most, fieldMax),
      signedOut: r.signedOut,
      operator: operator(),
    })
    if (!file) {
      await audit.flush()
      return audit.failing?.()?.code
    }
    if (fd === undefined) return problem
    // An event that could not be made into a line (audit.ts's neverThrows) is not in the trail.
    if (made === '') return 'no line made'
    return writeWithin(fd, made, config.log.exitWait)
  }
  return {
    // A file that opens may still take no line (a full disk, a quota, /dev/full): only a line
    // written says the purge is in the trail, so refuse writes one before it deletes.
    async ahead(r) {
      const failed = refuse ? await line({ ...r, outcome: 'deleting' }) : undefined
      if (failed !== undefined) throw unwritable(failed)
    },
    async write(r) {
      const failed = await line(r)
      audit.close?.()
      if (fd !== undefined) closeSync(fd)
      fd = undefined
      return failed
    },
  }
}

/**
 * A purge's names as its audit line holds them: a store writer may plant any number, each as
 * long as the store takes, so each is cut at `log.auditFieldMax` as the gateway cuts its own
 * fields, and the list after as many as a user may hold (`secretsPerUser`), the rest counted.
 */
export function cutNames(names: string[], most: number, fieldMax: number): string[] {
  const kept = names.slice(0, most).map((n) => cut(n, fieldMax))
  if (names.length > most) kept.push(`…[${names.length - most} more names]`)
  return kept
}

/**
 * Writes `text` to the non-blocking `fd`, waiting while its reader takes nothing (EAGAIN) for
 * at most `wait` ms in a row, as the gateway writes its last lines at exit; resolves why it was
 * not all written, if not.
 */
function writeWithin(fd: number, text: string, wait: number): string | undefined {
  try {
    writeAll(fd, [text], wait, WRITE_POLL_MS)
    return undefined
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    return code === 'EAGAIN' ? `EAGAIN: its reader took nothing for log.exitWait ${wait} ms` : code
  }
}

/**
 * Who runs the command: the OS user of the process (its uid's name, not `$USER`, which anyone
 * sets); the uid the session logged in as, when another (Linux's audit login uid, which only
 * root can change: `sudo` and `su` keep it); and sudo's `SUDO_USER`. That one is the
 * environment's word, which anyone sets: it is said to be sudo's only when its `SUDO_UID` is the
 * login uid, which is then named too (root could name anyone: so could root's shell).
 */
export function operator(
  o: { env?: NodeJS.ProcessEnv; loginUid?: number } = {
    env: process.env,
    loginUid: loginUid(),
  },
): string {
  let who: string
  let uid: number | undefined
  try {
    const u = userInfo()
    uid = u.uid
    who = `${shown(u.username)} (uid ${u.uid})`
  } catch {
    uid = process.getuid?.()
    who = `uid ${uid ?? 'unknown'}`
  }
  const login = o.loginUid
  const sudo = o.env?.SUDO_USER
  // The login uid is the record; the name beside it is sudo's word for it.
  if (sudo && login !== undefined && o.env?.SUDO_UID === String(login))
    return `${who}, through sudo by ${shown(sudo)} (login uid ${login})`
  if (login !== undefined && login !== uid) who += `, logged in as uid ${login}`
  return sudo ? `${who}, SUDO_USER ${shown(sudo)} (not verified: not the login's)` : who
}

/** The audit login uid of this process (Linux), unless unset or unknown. */
function loginUid(): number | undefined {
  try {
    const id = Number(readFileSync('/proc/self/loginuid', 'utf8').trim())
    // (uid_t)-1: no login recorded (a service, a container).
    return Number.isSafeInteger(id) && id !== 4294967295 ? id : undefined
  } catch {
    return undefined
  }
}
