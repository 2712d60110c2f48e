import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { EndpointConfig, GatewayConfig } from '../config/schema.js'
import { decideAccess } from '../policy/evaluate.js'
import { noticeOf, type Notice } from '../policy/notice.js'
import type { PolicyStore } from '../policy/store.js'
import { blotted } from './child.js'
import type { CredentialGate } from './credential-gate.js'
import { initialCredentials } from './initial-credentials.js'
import { BridgeError } from './errors.js'
import { decodeCursor, encodeCursor } from './endpoint-cursor.js'
import { buildNameTable, type NameTable } from './endpoint-names.js'
import { EndpointTables } from './endpoint-tables.js'
import { buildUriTable, type UriTable } from './endpoint-uris.js'
import { isObject, rpcErrorObject, type RpcErrorObject } from './jsonrpc.js'
import { taskless, withoutTaskSupport } from './tasks.js'
import type { LaneEvent } from './lane.js'
import { presenterScope } from './lane-catalog.js'
import type { LanePool } from './lanes.js'
import { ownerKey, type ResultFilter } from './session.js'
import type { StartFailures } from './start-failures.js'

/** The version an endpoint reports in its serverInfo. */
export const ENDPOINT_VERSION = '1.0.0'

/** The lists an endpoint merges: the result's array, and the field that names an item. */
export const LISTS = {
  'tools/list': { key: 'tools', field: 'name' },
  'prompts/list': { key: 'prompts', field: 'name' },
  'resources/list': { key: 'resources', field: 'uri' },
  'resources/templates/list': { key: 'resourceTemplates', field: 'uriTemplate' },
} as const
export type ListMethod = keyof typeof LISTS

/** Who is asking, and what their request carries that a backend process needs. */
export interface AggregateCaller {
  principal: Principal
  bearer: string | undefined
  log: Logger
  /** When the HTTP request arrived (a request accepted before shutdown is still served). */
  accepted: number
  signal?: AbortSignal
}

/** A request routed to one backend: the server, and the params with its own names. */
export type Routed = { server: string; params: Record<string, unknown> } | { error: RpcErrorObject }

type Item = Record<string, unknown>

/**
 * One endpoint's view of its backends: which of them a caller may use (policy, on each
 * backend's own server), their lists merged under public names (prefix, stable short forms,
 * namespaced URIs where they collide), a client's public name routed back to its backend and
 * own name, and a backend's result rewritten to public names. Backends' whole lists are cached
 * (per server, or per user when a server's processes differ per user) until the server says
 * its list changed, so listing an endpoint starts no process the cache can spare. A backend
 * that fails to list is left out of the list, not the cause of its failure.
 */
export class Aggregate {
  readonly name: string
  readonly servers: readonly string[]
  /** The endpoint's configuration (its streams' resumability and polling among it). */
  readonly endpoint: EndpointConfig
  private readonly cache = new Map<string, Item[]>()
  /**
   * `server \n owner` of session-mode servers whose processes for that owner announced a list
   * change: their state is that user's own from then on, so their lists are cached per user,
   * and never fill (or are served from) the entry other users share.
   */
  private readonly diverged = new Set<string>()
  /**
   * The identity (identityEnv: client and scopes) a user's entry of `cache` was read under: a
   * process of another of their identities may list otherwise, so that one reads its own (one
   * entry per user still, never one per identity a user's tokens can name).
   */
  private readonly identities = new Map<string, string>()
  /** Name and URI tables built from `cache`'s lists, each once per set of lists (endpoint-tables.ts). */
  private readonly tables: EndpointTables
  private readonly unsubscribe: () => void

  constructor(
    private readonly o: {
      name: string
      endpoint: EndpointConfig
      config: GatewayConfig
      lanes: LanePool
      policy: PolicyStore
      filter: ResultFilter
      gate?: CredentialGate
      /** Authenticates cursors (a per-gateway random key). */
      cursorKey: Uint8Array
      log: Logger
      /** Told when a backend is left out of a list (a metric). */
      onSkipped?: (server: string) => void
      /** Which servers failed to start lately: left out of lists at once, never waited for. */
      starts?: StartFailures
      /** Told when a name or URI table is built (a metric). */
      onTableBuilt?: () => void
    },
  ) {
    this.name = o.name
    this.endpoint = o.endpoint
    this.tables = new EndpointTables(o.endpoint.tables, o.onTableBuilt)
    this.servers =
      o.endpoint.servers === '*' ? Object.keys(o.config.servers) : [...o.endpoint.servers]
    const unlisten = o.lanes.onEvent((e) => this.changed(e))
    const unended = o.lanes.onLanesEnded((server, owner) => this.forget(server, owner))
    this.unsubscribe = () => {
      unlisten()
      unended()
    }
  }

  close(): void {
    this.unsubscribe()
  }

  /** What becomes of a message a backend's process sends on its own to `principal` (policy/notice.ts). */
  notice(
    principal: Principal,
    server: string,
    method: string,
    params: Record<string, unknown> | undefined,
  ): Notice {
    return noticeOf(this.o.policy.current, principal, server, method, params)
  }

  /**
   * Whether the policy denies `principal` every backend (a backend it lacks a scope for is not
   * denied: the client may step up and go on on the same session).
   */
  deniedAll(principal: Principal): boolean {
    return this.servers.every((s) => this.denied(principal, s))
  }

  /** Whether the policy denies `principal` the backend `server` (lacking a scope is no denial). */
  denied(principal: Principal, server: string): boolean {
    return decideAccess(this.o.policy.current, principal, server).effect === 'deny'
  }

  /** The backends `principal` may use, in the endpoint's order. */
  accessible(principal: Principal): string[] {
    return this.servers.filter(
      (s) => decideAccess(this.o.policy.current, principal, s).effect === 'allow',
    )
  }

  /**
   * One page of a merged list, filtered by policy on each backend's own names. Backends that
   * could not list are named in `skipped`.
   */
  async list(
    method: ListMethod,
    caller: AggregateCaller,
    cursor: unknown,
  ): Promise<{ result: Item; skipped: string[] } | { error: RpcErrorObject }> {
    let start = 0
    if (cursor !== undefined) {
      // Bound to this endpoint and list: a cursor of another is refused.
      const c = decodeCursor(cursor, this.o.cursorKey, `${method} ${this.name}`)
      const offset = c?.cursor === undefined ? 0 : Number(c.cursor)
      if (c === undefined || c.backend !== 0 || !Number.isSafeInteger(offset) || offset < 0)
        return {
          error: rpcErrorObject(-32602, 'Invalid params: the cursor is not one this endpoint gave'),
        }
      start = offset
    }
    const { lists, skipped } = await this.lists(method, caller)
    const publish = await this.publisher(method, lists, caller)
    const { key } = LISTS[method]
    const items: Item[] = []
    for (const [server, all] of lists) {
      const filtered = this.o.filter(server, method, { [key]: all }, caller.principal) as Record<
        string,
        unknown
      >
      for (const item of (filtered[key] as Item[] | undefined) ?? []) {
        const shown = publish(server, item)
        if (shown !== undefined) items.push(shown)
      }
    }
    const size = this.o.endpoint.pageSize
    const page = items.slice(start, start + size)
    const result: Item = { [key]: page }
    if (start + size < items.length)
      result.nextCursor = encodeCursor(
        { backend: 0, cursor: String(start + size) },
        this.o.cursorKey,
        `${method} ${this.name}`,
      )
    return { result, skipped }
  }

  /**
   * The backend and its own names for a request that names a tool, prompt or resource by its
   * public name. Unknown names, and names of backends the caller may not use, are not found.
   */
  async route(
    method: string,
    params: Record<string, unknown>,
    caller: AggregateCaller,
  ): Promise<Routed> {
    const notFound = (what: string, data?: unknown) => ({
      error: rpcErrorObject(-32602, `Invalid params: ${what}`, data),
    })
    const allowed = new Set(this.accessible(caller.principal))
    /** Backends that could not list, and why: a name of theirs is not found while they cannot. */
    let leftOut: string[] = []
    const byName = async (list: 'tools/list' | 'prompts/list', name: unknown) => {
      if (typeof name !== 'string' || name === '') return undefined
      const { table, why } = await this.nameTable(list, caller)
      leftOut = why
      const hit = table.resolve(name)
      return hit !== undefined && allowed.has(hit.server) ? hit : undefined
    }
    const byUri = async (uri: unknown) => {
      if (typeof uri !== 'string' || uri === '') return undefined
      const { table, why } = await this.uriTableWhy(caller)
      leftOut = why
      const hit = table.resolveUri(uri)
      return hit !== undefined && allowed.has(hit.server) ? hit : undefined
    }
    // A backend the user is refused (their crash or start budget spent, a limit) lists
    // nothing: the answer says so, not only that the name or URI is unknown.
    const leftOutText = () =>
      leftOut.length > 0 ? `; left out, could not list: ${leftOut.join('; ')}` : ''
    switch (method) {
      case 'tools/call':
      case 'prompts/get': {
        const hit = await byName(
          method === 'tools/call' ? 'tools/list' : 'prompts/list',
          params.name,
        )
        if (hit === undefined)
          return notFound(
            `no ${method === 'tools/call' ? 'tool' : 'prompt'} named ${JSON.stringify(params.name)} on this endpoint${leftOutText()}`,
          )
        // Asked for as a task, run plain, no related task: task ids are no endpoint's (tasks.ts).
        const plain = taskless(params)
        return { server: hit.server, params: { ...plain, name: hit.name } }
      }
      case 'resources/read':
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        const hit = await byUri(params.uri)
        // SEP-2164: resource not found is -32602 with the URI asked for in its data.
        if (hit === undefined)
          return notFound(
            `no resource ${JSON.stringify(params.uri)} on this endpoint (or it matches the templates of several servers)${leftOutText()}`,
            { uri: params.uri },
          )
        return { server: hit.server, params: { ...params, uri: hit.uri } }
      }
      case 'completion/complete': {
        const ref = isObject(params.ref) ? params.ref : undefined
        if (ref?.type === 'ref/prompt') {
          const hit = await byName('prompts/list', ref.name)
          if (hit === undefined)
            return notFound(`no prompt named ${JSON.stringify(ref.name)} on this endpoint`)
          return { server: hit.server, params: { ...params, ref: { ...ref, name: hit.name } } }
        }
        if (ref?.type === 'ref/resource') {
          const hit =
            typeof ref.uri === 'string' ? await this.templateOf(ref.uri, caller) : undefined
          if (hit === undefined || !allowed.has(hit.server))
            return notFound(`no resource template ${JSON.stringify(ref.uri)} on this endpoint`)
          return { server: hit.server, params: { ...params, ref: { ...ref, uri: hit.template } } }
        }
        return notFound('completion/complete needs a ref of type ref/prompt or ref/resource')
      }
      default:
        return { error: rpcErrorObject(-32601, `Method not found: ${method}`) }
    }
  }

  /**
   * A backend's result as the endpoint's clients see it: resource URIs (read contents, links
   * and embedded resources in tool results and prompts) in their public form.
   */
  async publish(server: string, result: unknown, caller: AggregateCaller): Promise<unknown> {
    // Only resource URIs change: a result without one is answered without the URI table, so it
    // never waits for the backends' resource lists (requests, and a process when none is free).
    if (!isObject(result) || !carriesUris(result)) return result
    const table = await this.uriTable(caller)
    const map = (uri: unknown) =>
      typeof uri === 'string' ? (table.publicUri(server, uri) ?? uri) : uri
    const content = (c: unknown): unknown => {
      if (!isObject(c)) return c
      if (c.type === 'resource_link') return { ...c, uri: map(c.uri) }
      if (c.type === 'resource' && isObject(c.resource))
        return { ...c, resource: { ...c.resource, uri: map(c.resource.uri) } }
      return c
    }
    const out: Record<string, unknown> = { ...result }
    if (Array.isArray(result.contents))
      out.contents = result.contents.map((c) => (isObject(c) ? { ...c, uri: map(c.uri) } : c))
    if (Array.isArray(result.content)) out.content = result.content.map(content)
    if (Array.isArray(result.messages))
      out.messages = result.messages.map((m) =>
        isObject(m) ? { ...m, content: content(m.content) } : m,
      )
    return out
  }

  /** The backend and its own template for a template's public form. */
  private async templateOf(
    publicTemplate: string,
    caller: AggregateCaller,
  ): Promise<{ server: string; template: string } | undefined> {
    const table = await this.uriTable(caller)
    for (const [server, items] of (await this.lists('resources/templates/list', caller)).lists) {
      for (const i of items)
        if (
          typeof i.uriTemplate === 'string' &&
          table.publicTemplate(server, i.uriTemplate) === publicTemplate
        )
          return { server, template: i.uriTemplate }
    }
    return undefined
  }

  /**
   * Each accessible backend's whole list, fetched where not cached; failures left out, each
   * with what its user may be told (`why`: a refusal's own message, else "not answering").
   */
  private async lists(
    method: ListMethod,
    caller: AggregateCaller,
  ): Promise<{ lists: [string, Item[]][]; skipped: string[]; why: string[] }> {
    const servers = this.accessible(caller.principal)
    const settled = await Promise.allSettled(
      servers.map((s) => this.backendList(method, s, caller)),
    )
    const lists: [string, Item[]][] = []
    const skipped: string[] = []
    const why: string[] = []
    settled.forEach((r, i) => {
      const server = servers[i]!
      if (r.status === 'fulfilled') lists.push([server, r.value])
      else {
        skipped.push(server)
        why.push(
          `${server}: ${r.reason instanceof BridgeError ? r.reason.message : 'not answering'}`,
        )
        this.o.onSkipped?.(server)
        // A server failing to start was logged once, when it failed; a start past the user's
        // budget (or a user refused for crashing a shared process) when it was refused: not on
        // every list.
        const failing =
          r.reason instanceof BridgeError &&
          (r.reason.code === 'server_unavailable' ||
            r.reason.code === 'process_start_limit' ||
            r.reason.code === 'shared_crash_limit')
        caller.log[failing ? 'debug' : 'warn'](
          { endpoint: this.name, server, method, err: { message: (r.reason as Error).message } },
          "a backend could not list; left out of the endpoint's list",
        )
      }
    })
    return { lists, skipped, why }
  }

  /** Maps a backend's item to its public form, for the list being answered. */
  private async publisher(
    method: ListMethod,
    lists: [string, Item[]][],
    caller: AggregateCaller,
  ): Promise<(server: string, item: Item) => Item | undefined> {
    const { field } = LISTS[method]
    if (method === 'tools/list' || method === 'prompts/list') {
      const table = this.tableOf(method, lists)
      return (server, item) => {
        const name = table.publicName(server, String(item[field]))
        if (name === undefined) return undefined
        // An endpoint carries no tasks (tasks.ts): no tool says it supports them.
        return method === 'tools/list'
          ? (withoutTaskSupport({ ...item, [field]: name }) as Item)
          : { ...item, [field]: name }
      }
    }
    const table = await this.uriTable(caller)
    return (server, item) => {
      const value = String(item[field])
      const shown =
        method === 'resources/list'
          ? table.publicUri(server, value)
          : table.publicTemplate(server, value)
      return shown === undefined ? undefined : { ...item, [field]: shown }
    }
  }

  private tableOf(method: 'tools/list' | 'prompts/list', lists: [string, Item[]][]): NameTable {
    return this.tables.get(method, lists, () =>
      buildNameTable(
        lists.map(([server, items]) => ({
          server,
          names: items.map((i) => i.name).filter((n): n is string => typeof n === 'string'),
        })),
        {
          prefix: this.o.endpoint.prefix,
          maxLength: this.o.endpoint.maxNameLength,
        },
      ),
    )
  }

  /** The name table of the backends that listed, and why the others did not (see `lists`). */
  private async nameTable(
    method: 'tools/list' | 'prompts/list',
    caller: AggregateCaller,
  ): Promise<{ table: NameTable; why: string[] }> {
    const { lists, why } = await this.lists(method, caller)
    return { table: this.tableOf(method, lists), why }
  }

  /** Resources and templates of every accessible backend, in one table (URIs collide across both). */
  private async uriTable(caller: AggregateCaller): Promise<UriTable> {
    return (await this.uriTableWhy(caller)).table
  }

  /**
   * The URI table, and why backends did not list resources or templates (see `lists`; a backend
   * that could list neither is named once).
   */
  private async uriTableWhy(caller: AggregateCaller): Promise<{ table: UriTable; why: string[] }> {
    const [resources, templates] = await Promise.all([
      this.lists('resources/list', caller),
      this.lists('resources/templates/list', caller),
    ])
    const skipped = new Set(resources.skipped)
    const why = [
      ...resources.why,
      ...templates.why.filter((_, i) => !skipped.has(templates.skipped[i]!)),
    ]
    const from: [string, Item[]][] = [
      ...resources.lists.map(([s, items]): [string, Item[]] => [`resources ${s}`, items]),
      ...templates.lists.map(([s, items]): [string, Item[]] => [`templates ${s}`, items]),
    ]
    const table = this.tables.get('uris', from, () => {
      const templatesOf = new Map(templates.lists)
      const servers = [
        ...new Set([...resources.lists.map(([s]) => s), ...templates.lists.map(([s]) => s)]),
      ]
      const uris = new Map(resources.lists)
      return buildUriTable(
        servers.map((server) => ({
          server,
          uris: (uris.get(server) ?? [])
            .map((i) => i.uri)
            .filter((u): u is string => typeof u === 'string'),
          templates: (templatesOf.get(server) ?? [])
            .map((i) => i.uriTemplate)
            .filter((u): u is string => typeof u === 'string'),
        })),
      )
    })
    return { table, why }
  }

  /**
   * The endpoint's own initialize result: the caller's backends' capabilities merged once each
   * of them has answered an initialize (a process of it started, for anyone, or for this user
   * where processes differ per user), else every capability an endpoint relays, since starting
   * backends to learn theirs is what an endpoint must not do; its description and the
   * instructions of backends whose processes have started, each under its name.
   */
  initResult(principal: Principal, protocolVersion: string): Item {
    const instructions: string[] = []
    if (this.o.endpoint.description) instructions.push(this.o.endpoint.description)
    const accessible = this.accessible(principal)
    const inits = accessible.map((server) => this.o.lanes.initOf(server, principal))
    for (const [i, server] of accessible.entries()) {
      const text = inits[i]?.instructions
      if (typeof text === 'string' && text !== '') instructions.push(`${server}: ${text}`)
    }
    const known = inits.every((init) => init !== undefined) && accessible.length > 0
    return {
      protocolVersion,
      capabilities: known
        ? mergedCapabilities(inits.map((init) => init!.capabilities))
        : EVERY_CAPABILITY,
      serverInfo: { name: `mcp-edge/${this.name}`, version: ENDPOINT_VERSION },
      ...(instructions.length > 0 ? { instructions: instructions.join('\n\n') } : {}),
    }
  }

  /** A backend's whole list of `method`: cached, else read page by page from one of the caller's processes. */
  private async backendList(
    method: ListMethod,
    server: string,
    caller: AggregateCaller,
  ): Promise<Item[]> {
    const { lanes, gate } = this.o
    const key = this.cacheKey(method, server, caller.principal)
    const identity = lanes.identityOf(server, caller.principal)
    const cached = this.cache.get(key)
    if (cached !== undefined && this.identities.get(key) === identity) return cached
    // A server that does not offer the feature has nothing to list (and is not asked). Once one
    // of its processes has answered initialize, that is known without taking (or starting) one.
    const capability = method.startsWith('tools')
      ? 'tools'
      : method.startsWith('prompts')
        ? 'prompts'
        : 'resources'
    const known = lanes.initOf(server, caller.principal)?.capabilities
    if (isObject(known) && !(capability in known)) return this.remember(key, [], identity)
    const credentials = await initialCredentials(gate, server, caller.principal, caller.bearer)
    // A server failing to start (or being probed) is left out now: a list never spawns nor
    // waits for it. Its processes already running would serve, but a new one is what it lacks.
    const starter = { principal: caller.principal, fingerprint: credentials?.fingerprint }
    if (this.o.starts?.isFailing(server, starter))
      throw new BridgeError('server_unavailable', `server ${server} could not be started`)
    const lane = await lanes.acquire(
      server,
      caller.principal,
      caller.log,
      caller.accepted,
      caller.signal,
      credentials,
    )
    const items: Item[] = []
    try {
      const caps = lane.init.capabilities
      if (isObject(caps) && !(capability in caps)) return this.remember(key, items, identity)
      const { key: field } = LISTS[method]
      let cursor: string | undefined
      const { listPages, listTimeout } = this.o.endpoint
      for (let page = 0; page < listPages; page++) {
        const reply = (await lanes.request(
          lane,
          method,
          cursor === undefined ? {} : { cursor },
          listTimeout,
        )) as { result?: Record<string, unknown>; error?: { message?: unknown } } | undefined
        if (reply === undefined) throw new Error(`${server} did not answer ${method}`)
        if (reply.error !== undefined)
          // Logged: the process's own text may quote the user's credentials or what it
          // inherited (blotted out, as its stderr is).
          throw new Error(
            blotted(
              lane.child,
              `${server} refused ${method}: ${String(reply.error.message ?? '')}`,
            ),
          )
        const got = reply.result?.[field]
        if (Array.isArray(got)) for (const item of got) if (isObject(item)) items.push(item)
        cursor = typeof reply.result?.nextCursor === 'string' ? reply.result.nextCursor : undefined
        if (cursor === undefined) break
      }
    } finally {
      lanes.release(lane)
    }
    // Keyed again: the process may have announced a change of its own while it listed.
    return this.remember(this.cacheKey(method, server, caller.principal), items, identity)
  }

  private remember(key: string, items: Item[], identity: string | undefined): Item[] {
    this.cache.set(key, items)
    if (identity === undefined) this.identities.delete(key)
    else this.identities.set(key, identity)
    return items
  }

  private drop(key: string): void {
    this.cache.delete(key)
    this.identities.delete(key)
  }

  /**
   * Per server, or per user when the server's processes differ per user (identity, credentials,
   * or a session-mode process of this user that has changed its lists), and per app of the user
   * when the server trades the token the app presented (lane-catalog.ts presenterScope).
   */
  private cacheKey(method: ListMethod, server: string, principal: Principal): string {
    const c = this.o.config.servers[server]
    const owner = ownerKey(principal)
    const own =
      c !== undefined &&
      (c.identityEnv ||
        Object.keys(c.credentials).length > 0 ||
        this.diverged.has(`${server}\n${owner}`))
    return `${method}\n${server}${own ? `\n${owner}${presenterScope(this.o.config, server, principal)}` : ''}`
  }

  /** Lists kept for one user, and users whose process changed its lists (what grows with users). */
  get userLists(): number {
    let n = this.diverged.size
    for (const key of this.cache.keys()) if (key.split('\n').length > 2) n++
    return n
  }

  /**
   * A user's last process of a server is gone: their own lists of it (and that their process had
   * changed them) go too, so what is kept per user is bounded by the processes alive.
   */
  private forget(server: string, owner: string): void {
    if (!this.servers.includes(server)) return
    this.diverged.delete(`${server}\n${owner}`)
    for (const key of [...this.cache.keys()]) {
      // `method \n server \n owner`, and `\n @app` after it for a server trading the app's token.
      const [, s, o] = key.split('\n')
      if (s === server && o === owner) this.drop(key)
    }
  }

  /** A server said a list changed: its cached lists of that kind are read again when next needed. */
  private changed(e: LaneEvent): void {
    if (!this.servers.includes(e.server)) return
    // A session-mode process is its user's own: what it changed is that user's, not everyone's.
    // (A shared process's change is everyone's: the one entry is read again.)
    if (e.method.endsWith('/list_changed') && this.o.config.servers[e.server]?.mode !== 'shared')
      this.diverged.add(`${e.server}\n${e.owner}`)
    const methods: ListMethod[] =
      e.method === 'notifications/tools/list_changed'
        ? ['tools/list']
        : e.method === 'notifications/prompts/list_changed'
          ? ['prompts/list']
          : e.method === 'notifications/resources/list_changed'
            ? ['resources/list', 'resources/templates/list']
            : []
    const shared = this.o.config.servers[e.server]?.mode === 'shared'
    for (const m of methods)
      for (const key of [...this.cache.keys()]) {
        // `method \n server [\n owner [\n @app]]`
        const [method, server, owner] = key.split('\n')
        if (method !== m || server !== e.server) continue
        // Everyone's process changed; or only this user's, whose own lists go. (The entry others
        // share was read before: a list read after the change comes after this notification on
        // the process's stdout, and is kept as the user's own, backendList.)
        if (shared || owner === e.owner) this.drop(key)
      }
  }
}

/** Whether a result holds a resource URI `publish` would rewrite: read contents, links, embedded resources. */
function carriesUris(result: Record<string, unknown>): boolean {
  const uriIn = (c: unknown) =>
    isObject(c) && (c.type === 'resource_link' || (c.type === 'resource' && isObject(c.resource)))
  if (Array.isArray(result.contents) && result.contents.length > 0) return true
  if (Array.isArray(result.content) && result.content.some(uriIn)) return true
  return (
    Array.isArray(result.messages) && result.messages.some((m) => isObject(m) && uriIn(m.content))
  )
}

/** What an endpoint offers while some backend it may use has not started yet: every feature it relays. */
const EVERY_CAPABILITY = Object.freeze({
  tools: { listChanged: true },
  prompts: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  logging: {},
  completions: {},
})

/**
 * The features the backends offer, as the endpoint offers them: a list feature when any backend
 * has it (always with listChanged: the endpoint announces any backend's change), resource
 * subscriptions and completions when any backend has them, and logging. Nothing else is relayed
 * (experimental features, extensions), so nothing else is offered.
 */
export function mergedCapabilities(all: readonly unknown[]): Item {
  const has = (key: string) => all.some((c) => isObject(c) && key in c)
  const caps: Item = {}
  if (has('tools')) caps.tools = { listChanged: true }
  if (has('prompts')) caps.prompts = { listChanged: true }
  if (has('resources')) {
    const subscribe = all.some(
      (c) => isObject(c) && isObject(c.resources) && c.resources.subscribe === true,
    )
    caps.resources = { ...(subscribe ? { subscribe: true } : {}), listChanged: true }
  }
  // Always: the endpoint itself tells session-era clients which backends a list left out.
  caps.logging = {}
  if (has('completions')) caps.completions = {}
  return caps
}
