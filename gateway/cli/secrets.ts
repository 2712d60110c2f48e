// `mcp-edge secrets`: a user's own secrets at a running gateway, through its account API.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { loopbackUrl } from '../config/loopback.js'

/** Usage of the `secrets` command, printed on any usage error. */
export const SECRETS_USAGE = `\
usage: mcp-edge secrets set NAME    [--url URL] [--token-file FILE]   value from standard input
       mcp-edge secrets list        [--url URL] [--token-file FILE] [--json]
       mcp-edge secrets delete NAME [--url URL] [--token-file FILE]
       mcp-edge secrets purge --subject SUB [--issuer ISS] --config FILE   (an operator: purge --help)

  --url         the gateway (default ${'http://127.0.0.1:8080'}; with its path, if it has one)
  --token-file  a file holding your access token (default: the MCP_EDGE_TOKEN variable);
                a token for any server or endpoint of the gateway
  set reads the value from standard input: typed without echo on a terminal, or piped
  whole (one final line break is dropped). Never from the command line.

exit: 0 done, 1 refused by the gateway or not reached, 2 usage error`

// `mcp-edge secrets` runs on a user's machine and reads no gateway.yaml: its bounds are the
// client's own, not gateway settings.
/** The gateway asked when --url is not given. */
export const DEFAULT_GATEWAY_URL = 'http://127.0.0.1:8080'
/** One request to the gateway at most this long, in ms. */
export const DEFAULT_CLI_TIMEOUT_MS = 30_000
/** Standard input read for a value at most, in bytes (the gateway takes far less). */
export const DEFAULT_CLI_STDIN_MAX_BYTES = 256 * 1024

class UsageError extends Error {}

/** A refusal or failure to report (exit 1). */
class Failure extends Error {}

/**
 * Runs `mcp-edge secrets <args>` and resolves with the exit code. Never throws: usage errors
 * go to stderr with exit code 2, refusals with the gateway's code and exit code 1.
 */
export async function secretsCommand(args: string[]): Promise<number> {
  // The operator's command: the gateway's own config, not a user's token (its own file).
  if (args[0] === 'purge') return (await import('./secrets-purge.js')).purgeCommand(args.slice(1))
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        'token-file': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    })
    if (values.help) {
      process.stdout.write(`${SECRETS_USAGE}\n`)
      return 0
    }
    const [sub, name, ...extra] = positionals
    const api = `${(values.url ?? DEFAULT_GATEWAY_URL).replace(/\/+$/, '')}/account/api`
    if (!/^https?:\/\//.test(api)) throw new UsageError('--url must be an http(s) URL')
    checkUrl(api)
    switch (sub) {
      case 'list':
        if (name !== undefined) throw new UsageError('list takes no name')
        return await list(api, token(values['token-file']), values.json === true)
      case 'set':
      case 'delete': {
        if (name === undefined) throw new UsageError(`${sub} needs a secret NAME`)
        // A value on the command line would sit in the shell history and the process list.
        if (extra.length > 0)
          throw new UsageError(
            sub === 'set'
              ? 'the value is read from standard input, never from the command line'
              : 'delete takes one NAME',
          )
        const bearer = token(values['token-file'])
        return sub === 'set' ? await set(api, bearer, name) : await remove(api, bearer, name)
      }
      case undefined:
        throw new UsageError('missing subcommand')
      default:
        throw new UsageError(`unknown subcommand ${sub}`)
    }
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      process.stderr.write(`mcp-edge secrets: ${(err as Error).message}\n${SECRETS_USAGE}\n`)
      return 2
    }
    process.stderr.write(`mcp-edge secrets: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
}

/**
 * Refuses a gateway URL the token and the value would leak at: plain http off this machine
 * (OAuth 2.1 §1.5: http for loopback only), or a user name and password (not echoed: fetch
 * would quote them in its error).
 */
function checkUrl(api: string): void {
  const u = URL.parse(api)
  if (u === null) throw new UsageError('--url must be an http(s) URL')
  if (u.username !== '' || u.password !== '')
    throw new UsageError('--url must have no user name or password')
  if (u.protocol === 'http:' && !loopbackUrl(api))
    throw new UsageError(
      '--url must be https (http only for loopback): the token and the value would cross the network in clear',
    )
}

/** The bearer token: from --token-file, else MCP_EDGE_TOKEN. */
function token(file: string | undefined): string {
  let value: string | undefined
  if (file !== undefined) {
    try {
      value = readFileSync(file, 'utf8').trim()
    } catch (err) {
      throw new UsageError(
        `cannot read --token-file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      )
    }
  } else {
    value = process.env.MCP_EDGE_TOKEN?.trim()
  }
  if (!value) throw new UsageError('no access token: set MCP_EDGE_TOKEN or pass --token-file')
  if (/\s/.test(value)) throw new UsageError('the access token holds whitespace')
  return value
}

async function list(api: string, bearer: string, json: boolean): Promise<number> {
  const body = (await call('GET', api, bearer)) as ApiList
  if (json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`)
    return 0
  }
  const lines: string[] = []
  for (const s of body.servers) {
    lines.push(`${s.name}${s.description ? `: ${s.description}` : ''}`)
    if (s.credentials.length === 0) lines.push('  nothing to set')
    for (const c of s.credentials) {
      if (c.kind === 'secret')
        lines.push(
          `  ${c.secret}  ${c.setAt ? `set ${when(c.setAt)}${expires(c.expiresAt)}` : 'not set'}${c.describe ? `  (${c.describe})` : ''}`,
        )
      else if (c.kind === 'exchange')
        lines.push(
          `  ${c.env}  supplied: exchanged at your identity provider for ${c.audience ?? c.resource}`,
        )
      else
        lines.push(
          `  ${c.env}  supplied: from your sign-in${c.upstream ? ` at ${c.upstream}` : ''}${c.held === true ? ' (held)' : c.held === false ? ' (none held: sign in again)' : ''}`,
        )
    }
  }
  if (body.servers.length === 0) lines.push('no server of this gateway is open to you')
  lines.push(
    body.secrets.length === 0
      ? 'held for you: nothing'
      : `held for you: ${body.secrets.map((s) => `${s.name} (set ${when(s.setAt)}${expires(s.expiresAt)})`).join(', ')}`,
  )
  process.stdout.write(`${lines.join('\n')}\n`)
  return 0
}

async function set(api: string, bearer: string, name: string): Promise<number> {
  const value = await readValue(name)
  if (value === '') throw new Failure('no value was given (standard input was empty)')
  const body = (await call('PUT', `${api}/secrets/${encodeURIComponent(name)}`, bearer, {
    value,
  })) as { name: string; setAt: string; expiresAt?: string | null; replaced: boolean }
  process.stdout.write(
    `${body.name} ${body.replaced ? 'replaced' : 'set'} ${when(body.setAt)}${expires(body.expiresAt)}\n`,
  )
  return 0
}

async function remove(api: string, bearer: string, name: string): Promise<number> {
  await call('DELETE', `${api}/secrets/${encodeURIComponent(name)}`, bearer)
  process.stdout.write(`${name} deleted\n`)
  return 0
}

/** One API call; resolves the JSON body, or throws a Failure naming the gateway's code. */
async function call(method: string, url: string, bearer: string, json?: unknown): Promise<unknown> {
  let res: Response
  try {
    res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        accept: 'application/json',
        ...(json === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      redirect: 'error',
      signal: AbortSignal.timeout(DEFAULT_CLI_TIMEOUT_MS),
    })
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    throw new Failure(
      `cannot reach ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
    )
  }
  const text = await res.text()
  let body: unknown
  try {
    body = text === '' ? undefined : JSON.parse(text)
  } catch {
    body = undefined
  }
  if (!res.ok) {
    const e = body as { error?: unknown; message?: unknown } | undefined
    const what = typeof e?.message === 'string' ? e.message : `HTTP ${res.status}`
    const code = typeof e?.error === 'string' ? `${e.error}, ` : ''
    throw new Failure(`${what} (${code}HTTP ${res.status})`)
  }
  return body
}

/**
 * The value: typed on a terminal without echo (ends at Enter), or the whole of a pipe with one
 * final line break dropped (what `echo` adds).
 */
async function readValue(name: string): Promise<string> {
  const stdin = process.stdin
  if (stdin.isTTY) return readHidden(`Value for ${name} (not shown): `)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stdin) {
    size += (chunk as Buffer).length
    if (size > DEFAULT_CLI_STDIN_MAX_BYTES)
      throw new Failure(`standard input holds more than ${DEFAULT_CLI_STDIN_MAX_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '')
}

/** Reads one line from the terminal in raw mode, echoing nothing. */
function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin
  process.stderr.write(prompt)
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  return new Promise((resolve, reject) => {
    let value = ''
    const done = (err?: Error) => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
      if (err) reject(err)
      else resolve(value)
    }
    const onData = (data: string) => {
      for (const ch of data) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done()
        if (ch === '\u0003') return done(new Failure('cancelled'))
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
        else value += ch
      }
    }
    stdin.on('data', onData)
  })
}

/**
 * `, expires … unless used` (or `, never expires`): when a secret goes unless used or set again.
 * Nothing from a gateway that does not say (an older version).
 */
function expires(iso: string | null | undefined): string {
  if (iso === undefined) return ''
  return iso === null ? ', never expires' : `, expires ${when(iso)} unless used`
}

/** An ISO instant as a person reads it: UTC, to the minute. */
function when(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`
}

interface ApiList {
  iss: string
  sub: string
  servers: {
    name: string
    description?: string
    credentials: (
      | {
          env: string
          kind: 'secret'
          secret: string
          describe?: string
          set: boolean
          setAt: string | null
          expiresAt?: string | null
        }
      | { env: string; kind: 'exchange'; audience?: string; resource?: string }
      | { env: string; kind: 'upstreamToken'; upstream?: string; held: boolean | null }
    )[]
  }[]
  secrets: { name: string; setAt: string; expiresAt?: string | null }[]
}
