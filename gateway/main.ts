#!/usr/bin/env node
// The mcp-edge command line: serve | token | validate | policy | secrets | tools.
// The commands other than `serve` (and the broker's checks) are imported when run: a serving
// gateway never loads code it does not use (issue 14's idle memory target). `serve` imports the
// gateway itself when run, so the other commands start without loading it.
import { parseArgs } from 'node:util'
import { ConfigError } from './config/errors.js'
import { defaultConfig } from './config/defaults.js'
import { loadConfigFile } from './config/load.js'
import { thisHost } from './config/run-as.js'
import type { GatewayConfig } from './config/schema.js'
import type { Gateway } from './gateway.js'
import { telemetrySettings } from './observability/telemetry-env.js'
import { createLogger } from './observability/logger.js'
import { loadPolicy } from './policy/load.js'
import { loadPins } from './pins/file.js'

const USAGE = `usage: mcp-edge <command> [options]

commands:
  serve     [--config FILE] [--dev-idp] [--insecure-no-auth]   run the gateway
  token     [--scope "a b"] [--resource URL]... [--user SUB]    print an access token from the running dev IdP
  validate  [--config FILE] [--skip-secrets]                    check config, policies and secrets, then exit
  policy    check --policy P --claims F|- --server S --tool T    explain a policy decision (policy --help)
  secrets   set NAME | list | delete NAME [--url U]              your own secrets at a gateway (secrets --help)
  secrets   purge --subject SUB --config FILE                    an operator deletes a user's secrets (secrets purge --help)
  tools     pins | approve SERVER TOOL | approve --all           tool pins: list, approve changes (tools --help)

Without --config the embedded default runs: demo servers, example policies, dev IdP on 127.0.0.1.`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve':
      return serve(rest)
    case 'token':
      return token(rest)
    case 'validate':
      return validate(rest)
    case 'policy':
      return (await import('./cli/policy-check.js')).policyCommand(rest)
    case 'secrets':
      return (await import('./cli/secrets.js')).secretsCommand(rest)
    case 'tools':
      return (await import('./cli/tools.js')).toolsCommand(rest)
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`)
      return command === undefined ? 2 : 0
    default:
      process.stderr.write(`mcp-edge: unknown command ${command}\n${USAGE}\n`)
      return 2
  }
}

/** The `--help` (`-h`) option of serve, token and validate. */
const HELP = { help: { type: 'boolean', short: 'h' } } as const

/** `--help`: the usage on stdout, exit 0. */
function usage(): number {
  process.stdout.write(`${USAGE}\n`)
  return 0
}

/** The config `serve` runs (and `validate` checks): with what this process may do for `runAs`. */
function readConfig(file: string | undefined): GatewayConfig {
  return file === undefined ? defaultConfig() : loadConfigFile(file, process.env, thisHost())
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      'insecure-no-auth': { type: 'boolean' },
      'dev-idp': { type: 'boolean' },
      ...HELP,
    },
  })
  if (values.help) return usage()
  const config = readConfig(values.config)
  // The gateway is loaded once its config is known good: a bad file or option is reported
  // without loading it first (about 0.3 s of CPU here).
  const [{ startGateway }, { startIdleGc }, { wasmLiftoffOnly }] = await Promise.all([
    import('./gateway.js'),
    import('./idle-gc.js'),
    import('./wasm-liftoff.js'),
  ])
  // Before any outbound request compiles undici's parser: glibc's malloc thresholds stay low.
  wasmLiftoffOnly()
  const log = createLogger(config.log)
  // The log is flushed before exit, and the deadline's exit too: a line left buffered for the
  // exit handler's sync write is dropped if the reader went away (logger.ts). A reader that
  // stopped reading never takes the flush: the process ends a flush interval later anyway, its
  // sync write waiting `log.exitWait` at most for the reader to take something.
  const exit = (code: number) => {
    process.exitCode = code
    setTimeout(() => process.exit(code), config.log.flushInterval).unref()
    log.flush(() => process.exit(code))
  }
  // The signals are ours from the start: a stop asked for during start-up (the dev IdP, Redis,
  // processes already up) abandons the step under way (a Redis or an upstream IdP that does not
  // answer is not waited for), then stops what started, under the same deadline as any shutdown.
  const starting = new AbortController()
  let gateway: Gateway | undefined
  let idleGc: { stop(): void } | undefined
  let stopping = false
  const shutDown = (running: Gateway, done: string) => {
    idleGc?.stop()
    running.close().then(
      () => {
        log.info(done)
        exit(0)
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        exit(1)
      },
    )
  }
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    setTimeout(() => exit(1), config.limits.shutdownDeadline).unref()
    if (gateway === undefined) {
      log.info({ signal }, 'signal during start-up: stopping once what has started can be')
      starting.abort(new Error(`${signal} during start-up`))
      return
    }
    log.info({ signal }, 'shutting down')
    shutDown(gateway, 'stopped')
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  process.on('SIGHUP', () => {
    if (gateway === undefined) return void log.info('SIGHUP during start-up: policies load now')
    log.info('SIGHUP: reloading policies')
    if (gateway.reloadPolicy() === undefined) log.warn('no policies configured; nothing to reload')
  })
  let started: Gateway
  try {
    started = await startGateway(config, {
      log,
      insecureNoAuth: values['insecure-no-auth'] === true,
      // The embedded default is the development setup; a config file asks for it explicitly.
      allowDevIdp: values.config === undefined || values['dev-idp'] === true,
      signal: starting.signal,
    })
  } catch (err) {
    if (!stopping) throw err
    // Start-up stops what it started when it fails (gateway.ts); asked to stop, that is a stop.
    log.info({ err: String(err) }, 'start-up interrupted: stopped')
    exit(0)
    return new Promise<number>(() => {})
  }
  if (stopping) {
    shutDown(started, 'start-up interrupted: stopped')
    return new Promise<number>(() => {})
  }
  gateway = started
  idleGc = startIdleGc(config.limits.idleGcAfter, log, started)
  return new Promise<number>(() => {})
}

async function token(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      scope: { type: 'string' },
      // Repeatable (RFC 8707 allows several): all go to the IdP, none is dropped silently.
      resource: { type: 'string', multiple: true },
      user: { type: 'string' },
      ...HELP,
    },
  })
  if (values.help) return usage()
  const { requestDevToken } = await import('./devidp/token-client.js')
  const t = await requestDevToken({
    scope: values.scope,
    resource: values.resource,
    user: values.user,
  })
  process.stdout.write(`${t.access_token}\n`)
  return 0
}

async function validate(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string' }, 'skip-secrets': { type: 'boolean' }, ...HELP },
  })
  if (values.help) return usage()
  const config = readConfig(values.config)
  if (config.policies) loadPolicy(config.policies)
  // The OTEL_* variables serve would read (pure: the SDK is not loaded to check them).
  telemetrySettings(process.env)
  // The pin file too, when a server pins its tools (no file yet: nothing pinned).
  if (Object.values(config.servers).some((s) => s.pinTools))
    loadPins(config.toolPins.file, config.toolPins.maxFileBytes)
  // Secrets are read too, unless they are only mounted where the gateway runs (a config repo's CI).
  if (!values['skip-secrets'])
    await (await import('./broker/validate.js')).validateBroker(
      config,
      config.publicUrl ?? `http://${config.listen.host}:${config.listen.port}`,
    )
  const servers = Object.keys(config.servers).join(', ')
  const broker = config.auth.broker
    ? `; broker: upstream ${config.auth.broker.upstream.issuer ?? config.auth.broker.upstream.endpoints?.authorization}`
    : ''
  process.stdout.write(
    `ok: ${values.config ?? 'embedded default config'} (servers: ${servers}; policies: ${config.policies ?? 'none'}${broker})\n`,
  )
  return 0
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`mcp-edge: ${err.message}\n`)
    else if (
      err instanceof Error &&
      (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS_') === true
    ) {
      // A usage error (unknown option, missing value, operand): exit 2, as every command's.
      process.stderr.write(`mcp-edge: ${err.message}\n${USAGE}\n`)
      process.exit(2)
    } else process.stderr.write(`mcp-edge: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  },
)
