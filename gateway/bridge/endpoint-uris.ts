/**
 * The resource URIs and URI templates an aggregated endpoint shows its clients, and the way back
 * from a URI a client reads to the backend that serves it. Pure, built once per list.
 *
 * Rules:
 * 1. A URI (or template) keeps its own form when exactly one backend lists it. One that several
 *    backends list is namespaced for each of them as `mcp-edge://<server>/<original verbatim>`.
 * 2. The `mcp-edge:` scheme is the gateway's own: a backend's URI or template that already uses
 *    it is always namespaced, so a plain form can never pass for another backend's namespaced one.
 * 3. A listed URI that another backend's (plain) template could also produce is namespaced too:
 *    read plainly, it would be claimed by two backends. (A backend with a catch-all template such
 *    as `{+uri}` therefore namespaces every other backend's listed URIs.)
 * 4. Reading a URI (`resolveUri`) tries, in order: a URI the table published; then, for
 *    `mcp-edge://<server>/<rest>`, that server when it lists `rest` or one of its templates
 *    matches `rest`; then, for any other URI, the one backend whose plain templates match it
 *    (RFC 6570, see uri-template.ts). A plain URI that templates of two backends match is
 *    ambiguous and resolves to nothing: the caller refuses it, and the client can use the
 *    namespaced form (`publicUri` gives it for exactly these URIs). Templates are compared as
 *    strings, so `file:///{path}` on one backend and `file:///{+path}` on another both stay
 *    plain, and only the URIs both could produce are refused.
 * 5. URIs and templates that are empty or not strings are left out; duplicates count once.
 *
 * Whatever `publicUri(server, uri)` gives, `resolveUri` takes back to that same server and URI.
 */
import { leadingLiteral, matchesTemplate, parseTemplate, type Template } from './uri-template.js'

/** One backend's resources: the URIs its `resources/list` gave and its `resources/templates/list` templates. */
export interface BackendResources {
  server: string
  uris: readonly string[]
  templates: readonly string[]
}

/** Public resource URIs and templates of one endpoint, both ways. */
export interface UriTable {
  /**
   * The URI clients see for one a backend listed or one its templates produce (a `resources/read`
   * result, a `notifications/resources/updated`); undefined when the backend has neither.
   */
  publicUri(server: string, uri: string): string | undefined
  /** The template clients see for one a backend listed; undefined when it did not list it. */
  publicTemplate(server: string, template: string): string | undefined
  /** The backend and its own URI for a URI a client sent; undefined when unknown or ambiguous. */
  resolveUri(publicUri: string): { server: string; uri: string } | undefined
}

/** The gateway's own scheme for namespaced URIs and templates. */
export const NAMESPACE_SCHEME = 'mcp-edge'
const OWN_SCHEME = /^mcp-edge:/i
const NAMESPACED = /^mcp-edge:\/\/([^/]*)\//
/** Server names must be URI-safe and hold no `/`: `mcp-edge://<server>/` ends at the first `/`. */
const SERVER = /^[A-Za-z0-9._~-]+$/

interface Backend {
  server: string
  uris: Set<string>
  templates: Map<string, Template | undefined>
}

/**
 * The templates clients see unchanged (the only ones a plain URI is matched against), filed by
 * the literal text they start with: a URI is tried only on templates it begins like, so checking
 * 10,000 listed URIs against 60 templates costs a few map lookups each, not 60 matches.
 */
class PlainTemplates {
  private readonly byLead = new Map<number, Map<string, { server: string; template: Template }[]>>()

  add(server: string, template: Template): void {
    const lead = leadingLiteral(template)
    let byText = this.byLead.get(lead.length)
    if (byText === undefined) this.byLead.set(lead.length, (byText = new Map()))
    const list = byText.get(lead)
    if (list === undefined) byText.set(lead, [{ server, template }])
    else list.push({ server, template })
  }

  /** Servers other than `except` with a template matching `uri`: none, one, or the first two. */
  servers(uri: string, except?: string): string[] {
    const found: string[] = []
    for (const [size, byText] of this.byLead) {
      for (const { server, template } of byText.get(uri.slice(0, size)) ?? []) {
        if (server === except || found.includes(server) || !matchesTemplate(template, uri)) continue
        if (found.push(server) === 2) return found
      }
    }
    return found
  }
}

/**
 * Builds the table for one endpoint (see the module comment for the rules). Throws a TypeError
 * for a server name that is not URI-safe (configuration allows only `[a-z0-9_-]`).
 */
export function buildUriTable(backends: readonly BackendResources[]): UriTable {
  const byServer = new Map<string, Backend>()
  const uriOwners = new Map<string, Set<string>>()
  const templateOwners = new Map<string, Set<string>>()
  for (const { server, uris, templates } of backends) {
    if (!SERVER.test(server))
      throw new TypeError(`server name ${JSON.stringify(server)} cannot be put in a URI`)
    let b = byServer.get(server)
    if (b === undefined)
      byServer.set(server, (b = { server, uris: new Set(), templates: new Map() }))
    for (const uri of uris) {
      if (!usable(uri) || b.uris.has(uri)) continue
      b.uris.add(uri)
      own(uriOwners, uri, server)
    }
    for (const t of templates) {
      if (!usable(t) || b.templates.has(t)) continue
      b.templates.set(t, parseTemplate(t)) // a malformed template is still shown, but matches nothing
      own(templateOwners, t, server)
    }
  }

  const templatePublic = new Map<string, Map<string, string>>()
  const plainTemplates = new PlainTemplates()
  for (const b of byServer.values()) {
    const forms = new Map<string, string>()
    for (const [text, parsed] of b.templates) {
      const plain = templateOwners.get(text)!.size === 1 && !OWN_SCHEME.test(text)
      forms.set(text, plain ? text : namespaced(b.server, text))
      if (plain && parsed !== undefined) plainTemplates.add(b.server, parsed)
    }
    templatePublic.set(b.server, forms)
  }

  const listed = new Map<string, { server: string; uri: string }>()
  const uriPublic = new Map<string, Map<string, string>>()
  for (const b of byServer.values()) {
    const forms = new Map<string, string>()
    for (const uri of b.uris) {
      const plain =
        uriOwners.get(uri)!.size === 1 &&
        !OWN_SCHEME.test(uri) &&
        plainTemplates.servers(uri, b.server).length === 0
      const form = plain ? uri : namespaced(b.server, uri)
      forms.set(uri, form)
      listed.set(form, Object.freeze({ server: b.server, uri }))
    }
    uriPublic.set(b.server, forms)
  }

  function resolveUri(publicUri: string): { server: string; uri: string } | undefined {
    // 1. A URI the table published.
    const hit = listed.get(publicUri)
    if (hit !== undefined) return hit
    // 2. The gateway's own scheme names its server; nothing else may claim it.
    if (OWN_SCHEME.test(publicUri)) {
      const m = NAMESPACED.exec(publicUri)
      const b = m === null ? undefined : byServer.get(m[1]!)
      if (m === null || b === undefined) return undefined
      const uri = publicUri.slice(m[0].length)
      for (const t of b.templates.values())
        if (t !== undefined && matchesTemplate(t, uri)) return { server: b.server, uri }
      return b.uris.has(uri) ? { server: b.server, uri } : undefined
    }
    // 3. A plain URI: the one backend whose templates could produce it, or nothing.
    const servers = plainTemplates.servers(publicUri)
    return servers.length === 1 ? { server: servers[0]!, uri: publicUri } : undefined
  }

  return {
    publicUri(server, uri) {
      const form = uriPublic.get(server)?.get(uri)
      if (form !== undefined) return form
      const b = byServer.get(server)
      if (
        b === undefined ||
        ![...b.templates.values()].some((t) => t !== undefined && matchesTemplate(t, uri))
      )
        return undefined
      const plain = resolveUri(uri)
      return plain?.server === server && plain.uri === uri ? uri : namespaced(server, uri)
    },
    publicTemplate: (server, template) => templatePublic.get(server)?.get(template),
    resolveUri,
  }
}

function namespaced(server: string, original: string): string {
  return `${NAMESPACE_SCHEME}://${server}/${original}`
}

function usable(value: unknown): value is string {
  return typeof value === 'string' && value !== ''
}

function own(owners: Map<string, Set<string>>, key: string, server: string): void {
  const set = owners.get(key)
  if (set === undefined) owners.set(key, new Set([server]))
  else set.add(server)
}
