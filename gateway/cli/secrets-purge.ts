// `mcp-edge secrets purge`: an operator deletes every secret of one user (someone who left),
// in the gateway's own shared store, with its own config and sealing keys.
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { loadConfigFile } from '../config/load.js'
import type { GatewayConfig } from '../config/schema.js'
import { readSecret } from '../config/secrets.js'
import { openPurgeAudit, type PurgeAudit, type PurgeRecord } from './purge-audit.js'
import { shown } from './shown.js'

/** Usage of `secrets purge`, printed on any usage error. */
export const PURGE_USAGE = `\
usage: mcp-edge secrets purge --subject SUB [--issuer ISS] --config FILE

  --subject  the user's subject (the sub claim), exactly: no case, space or Unicode folding
  --issuer   their issuer (default: the broker's publicUrl with auth.broker, else auth.issuer)
  --config   the gateway's own config: its store (redis) and secrets.keys
  Deletes every secret the user set, and with the broker the account and upstream tokens it
  keeps for them and signs them out everywhere; prints how many, never a value. Writes one
  audit line where the gateway writes its own (log.audit), done or not; with
  log.auditOnFailure refuse, one more before it deletes.

exit: 0 done (nothing held included), 1 not done (store not reached, other keys, a memory
store, an audit file that cannot be written with log.auditOnFailure refuse), 2 usage or
configuration error`

class UsageError extends Error {}

/** A configuration the purge cannot work with (exit 2, no usage). */
class ConfigProblem extends Error {}

/** A purge refused before it deleted anything (exit 1). */
class Refusal extends Error {}

/**
 * Runs `mcp-edge secrets purge <args>` and resolves with the exit code. Never throws: usage and
 * configuration errors go to stderr with exit code 2, anything that stopped the purge with 1.
 * Once the config is read, every run leaves one audit line where the gateway writes its own
 * (purge-audit.ts): done, refused or failed.
 */
export async function purgeCommand(args: string[]): Promise<number> {
  let config: GatewayConfig
  let values: { subject?: string; issuer?: string }
  try {
    const parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        subject: { type: 'string' },
        issuer: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
    values = parsed.values
    if (parsed.values.help) {
      process.stdout.write(`${PURGE_USAGE}\n`)
      return 0
    }
    if (parsed.positionals.length > 0)
      throw new UsageError('purge takes no NAME: it deletes them all')
    if (parsed.values.config === undefined)
      throw new UsageError("--config is required: the gateway's own (its store and secrets.keys)")
    config = loadConfigFile(parsed.values.config)
  } catch (err) {
    return refused(err, 2)
  }
  let audit: PurgeAudit
  try {
    audit = openPurgeAudit(config)
  } catch (err) {
    return refused(err, 1)
  }
  const iss =
    values.issuer ?? (config.auth.broker !== undefined ? config.publicUrl : config.auth.issuer)
  const record: PurgeRecord = {
    owner: { iss: iss ?? '', sub: values.subject ?? '' },
    names: [],
    signedOut: false,
    began: false,
    outcome: '',
  }
  let code: number
  let failure: unknown
  try {
    code = await purge(config, record, audit)
  } catch (err) {
    failure = err
    code = err instanceof UsageError || err instanceof ConfigProblem ? 2 : 1
    const message = err instanceof Error ? err.message : String(err)
    record.outcome = `${record.began ? 'error' : 'refused'}: ${message}`
  }
  const unwritten = await audit.write(record)
  if (failure !== undefined) refused(failure, code)
  if (unwritten !== undefined)
    process.stderr.write(
      `mcp-edge secrets purge: the audit line could not be written (${unwritten}): this run is not in the audit log ${shown(config.log.audit)}\n`,
    )
  return code
}

/**
 * The purge itself: fills `record` as it goes (what was deleted, whether the user was signed
 * out) and prints the result. @throws UsageError, ConfigProblem, Refusal, or what stopped it
 */
async function purge(
  config: GatewayConfig,
  record: PurgeRecord,
  audit: PurgeAudit,
): Promise<number> {
  const owner = record.owner
  if (owner.sub === '') throw new UsageError('--subject is required')
  // A control character is no one's subject: a pasted escape sequence, not a user.
  if (/\p{Cc}/u.test(owner.sub)) throw new UsageError('--subject holds a control character')
  if (owner.iss === '')
    throw new UsageError(
      '--issuer is required: the config names no issuer (auth.issuer, publicUrl)',
    )
  if (config.store.kind === 'memory')
    throw new Refusal(
      "store.kind is memory: users' secrets live in the running gateway's memory (gone when it stops); a purge reaches a shared store (redis) only",
    )
  // Loaded once the command is known good, as `serve` loads the gateway.
  const [
    { sealerForStore },
    { createStore },
    { UserSecrets },
    { accountKeys },
    { checkKeys },
    { listEntry, revocationTtlMs, subjectEntry },
  ] = await Promise.all([
    import('../store/sealed.js'),
    import('../store/create.js'),
    import('../credentials/secrets.js'),
    import('../broker/accounts.js'),
    import('../store/key-check.js'),
    import('../broker/revocations.js'),
  ])
  let sealer: ReturnType<typeof sealerForStore>
  try {
    sealer = sealerForStore(config, readSecret)
  } catch (err) {
    throw new ConfigProblem((err as Error).message)
  }
  let store: Awaited<ReturnType<typeof createStore>> | undefined
  try {
    store = await createStore(config.store, { log: pino({ level: 'silent' }), readSecret })
    const secrets = new UserSecrets({ store, sealer, lockWait: config.store.lockWait })
    // Other keys name users otherwise: they would find nothing and say so.
    if ((await checkKeys(store, sealer)) === 'unknown')
      process.stderr.write(
        'mcp-edge secrets purge: note: no gateway of this version has marked its sealing keys in this store; with keys other than its own nothing is found\n',
      )
    try {
      await audit.ahead({ ...record, began: true })
    } catch (err) {
      throw new Refusal((err as Error).message)
    }
    record.began = true
    // Names as the store has them: a store writer's could redraw the terminal (shown.ts).
    const names = (await secrets.purge(owner)).map(shown)
    record.names = names
    // The broker's records of its own users: keyed by the subject itself (README).
    let account = false
    const broker = config.auth.broker
    if (broker !== undefined && owner.iss === config.publicUrl) {
      const keys = accountKeys(owner.sub)
      account = (await store.getMany(keys)).some((v) => v !== undefined)
      await store.del(keys)
      // Signed out everywhere, as the IdP's refusal does: the broker access tokens already
      // issued are refused on every replica (told now; one starting loads it from the store).
      await listEntry(store, subjectEntry(owner.sub, Date.now()), revocationTtlMs(config, broker))
      record.signedOut = true
    }
    const count =
      names.length === 0
        ? 'no secrets held'
        : `purged ${names.length} secret${names.length === 1 ? '' : 's'}`
    const rest =
      `${account ? '; and the account and upstream tokens the broker kept for them' : ''}` +
      `${record.signedOut ? '; signed out everywhere' : ''}`
    record.outcome = `${count}${rest}`
    const who = `subject ${shown(owner.sub)} of ${shown(owner.iss)}`
    process.stdout.write(
      `${names.length === 0 ? `${count} for ${who}` : `${count} of ${who}: ${names.join(', ')}`}${rest}\n`,
    )
    return 0
  } finally {
    await store?.close()
  }
}

/** Writes why to stderr; a usage error with the usage. */
function refused(err: unknown, code: number): number {
  const message = err instanceof Error ? err.message : String(err)
  if (
    err instanceof UsageError ||
    (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')
  )
    process.stderr.write(`mcp-edge secrets purge: ${message}\n${PURGE_USAGE}\n`)
  else process.stderr.write(`mcp-edge secrets purge: ${message}\n`)
  return code
}
