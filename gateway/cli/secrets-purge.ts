// `mcp-edge secrets purge`: an operator deletes every secret of one user (someone who left),
// in the gateway's own shared store, with its own config and sealing keys.
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { loadConfigFile } from '../config/load.js'
import type { GatewayConfig } from '../config/schema.js'
import { readSecret } from '../config/secrets.js'
import { shown } from './shown.js'

/** Usage of `secrets purge`, printed on any usage error. */
export const PURGE_USAGE = `\
usage: mcp-edge secrets purge --subject SUB [--issuer ISS] --config FILE

  --subject  the user's subject (the sub claim), exactly: no case, space or Unicode folding
  --issuer   their issuer (default: the broker's publicUrl with auth.broker, else auth.issuer)
  --config   the gateway's own config: its store (redis) and secrets.keys
  Deletes every secret the user set, and with the broker the account and upstream tokens it
  keeps for them and signs them out everywhere; prints how many, never a value.

exit: 0 done (nothing held included), 1 not done (store not reached, other keys, a memory
store), 2 usage or configuration error`

class UsageError extends Error {}

/**
 * Runs `mcp-edge secrets purge <args>` and resolves with the exit code. Never throws: usage and
 * configuration errors go to stderr with exit code 2, anything that stopped the purge with 1.
 */
export async function purgeCommand(args: string[]): Promise<number> {
  let config: GatewayConfig
  let owner: { iss: string; sub: string }
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        subject: { type: 'string' },
        issuer: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
    if (values.help) {
      process.stdout.write(`${PURGE_USAGE}\n`)
      return 0
    }
    if (positionals.length > 0) throw new UsageError('purge takes no NAME: it deletes them all')
    const sub = values.subject
    if (sub === undefined || sub === '') throw new UsageError('--subject is required')
    // A control character is no one's subject: a pasted escape sequence, not a user.
    if (/\p{Cc}/u.test(sub)) throw new UsageError('--subject holds a control character')
    if (values.config === undefined)
      throw new UsageError("--config is required: the gateway's own (its store and secrets.keys)")
    config = loadConfigFile(values.config)
    const iss =
      values.issuer ?? (config.auth.broker !== undefined ? config.publicUrl : config.auth.issuer)
    if (iss === undefined || iss === '')
      throw new UsageError(
        '--issuer is required: the config names no issuer (auth.issuer, publicUrl)',
      )
    owner = { iss, sub }
  } catch (err) {
    return refused(err, 2)
  }
  if (config.store.kind === 'memory') {
    process.stderr.write(
      "mcp-edge secrets purge: store.kind is memory: users' secrets live in the running gateway's memory (gone when it stops); a purge reaches a shared store (redis) only\n",
    )
    return 1
  }
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
    return refused(err, 2)
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
    const names = await secrets.purge(owner)
    // The broker's records of its own users: keyed by the subject itself (README).
    let account = false
    let signedOut = false
    const broker = config.auth.broker
    if (broker !== undefined && owner.iss === config.publicUrl) {
      const keys = accountKeys(owner.sub)
      account = (await store.getMany(keys)).some((v) => v !== undefined)
      await store.del(keys)
      // Signed out everywhere, as the IdP's refusal does: the broker access tokens already
      // issued are refused on every replica (told now; one starting loads it from the store).
      await listEntry(store, subjectEntry(owner.sub, Date.now()), revocationTtlMs(config, broker))
      signedOut = true
    }
    // Names as the store has them: a store writer's could redraw the terminal (shown.ts).
    const who = `subject ${shown(owner.sub)} of ${shown(owner.iss)}`
    process.stdout.write(
      `${names.length === 0 ? `no secrets held for ${who}` : `purged ${names.length} secret${names.length === 1 ? '' : 's'} of ${who}: ${names.map(shown).join(', ')}`}` +
        `${account ? '; and the account and upstream tokens the broker kept for them' : ''}` +
        `${signedOut ? '; signed out everywhere' : ''}\n`,
    )
    return 0
  } catch (err) {
    return refused(err, 1)
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
