// The conformance server's resources: static text and binary, one watched resource that can
// change, and the template test://template/{id}/data. Unknown URIs are an error, never empty.
import type {
  ReadResourceResult,
  Resource,
  ResourceTemplateType,
} from '@modelcontextprotocol/server'
import { RED_PIXEL_PNG } from './media.js'
import { CODE, RpcError, type Handler, type Peer } from './peer.js'

const WATCHED = 'test://watched-resource'
const TEMPLATE = /^test:\/\/template\/([^/]+)\/data$/

let revision = 0
const subscribed = new Set<string>()
/**
 * CONFORMANCE_TRACE=1: each subscribe and unsubscribe is told on stderr, so a test knows which
 * process got it; with CONFORMANCE_TRACE_VAR=NAME, also whether NAME was in its environment (a
 * per-user credential: with what the process acted).
 */
const traced = process.env.CONFORMANCE_TRACE_VAR
const traceTail =
  traced === undefined ? '' : ` (${traced} ${process.env[traced] ? 'set' : 'unset'})`
const trace =
  process.env.CONFORMANCE_TRACE === '1'
    ? (line: string) => void process.stderr.write(`conformance: ${line}${traceTail}\n`)
    : () => {}

/** CONFORMANCE_RESOURCES=N: N more static resources listed, `test://extra/<i>` (a server with many). */
const EXTRA = Number(process.env.CONFORMANCE_RESOURCES ?? 0)
const EXTRA_URI = /^test:\/\/extra\/(\d+)$/

/** Listed first: the caching scenario reads the first resource listed. */
const RESOURCES: Resource[] = [
  {
    uri: 'test://static-text',
    name: 'static-text',
    description: 'A static text resource',
    mimeType: 'text/plain',
  },
  {
    uri: 'test://static-binary',
    name: 'static-binary',
    description: 'A static binary resource (1x1 PNG)',
    mimeType: 'image/png',
  },
  {
    uri: WATCHED,
    name: 'watched-resource',
    description: 'Changes on test_update_watched_resource; subscribable',
    mimeType: 'text/plain',
  },
  ...Array.from({ length: EXTRA }, (_, i) => ({
    uri: `test://extra/${i}`,
    name: `extra-${i}`,
    mimeType: 'text/plain',
  })),
]

const TEMPLATES: ResourceTemplateType[] = [
  {
    uriTemplate: 'test://template/{id}/data',
    name: 'template-data',
    description: 'Data for any id',
    mimeType: 'application/json',
  },
]

/** MCP resources §Error Handling (SEP-2164): -32602 with the URI, not an empty contents array. */
const notFound = (uri: string) => new RpcError(CODE.invalidParams, 'Resource not found', { uri })

function uriOf(params: Record<string, unknown>): string {
  if (typeof params.uri !== 'string')
    throw new RpcError(CODE.invalidParams, 'uri (string) is required')
  return params.uri
}

function read(uri: string): ReadResourceResult {
  if (uri === 'test://static-text')
    return {
      contents: [
        { uri, mimeType: 'text/plain', text: 'This is the content of the static text resource.' },
      ],
    }
  if (uri === 'test://static-binary')
    return { contents: [{ uri, mimeType: 'image/png', blob: RED_PIXEL_PNG }] }
  if (uri === WATCHED)
    return {
      contents: [{ uri, mimeType: 'text/plain', text: `Watched resource, revision ${revision}` }],
    }
  const extra = EXTRA_URI.exec(uri)?.[1]
  if (extra !== undefined && Number(extra) < EXTRA)
    return { contents: [{ uri, mimeType: 'text/plain', text: `extra ${extra}` }] }
  const id = TEMPLATE.exec(uri)?.[1]
  if (id !== undefined) {
    const data = decodeURIComponent(id)
    return {
      contents: [
        {
          uri,
          mimeType: 'application/json',
          text: JSON.stringify({ id: data, templateTest: true, data: `Data for ID: ${data}` }),
        },
      ],
    }
  }
  throw notFound(uri)
}

/** Changes the watched resource; subscribers get notifications/resources/updated. Returns the new revision. */
export function touchWatched(peer: Peer): number {
  revision++
  if (subscribed.has(WATCHED)) peer.notify('notifications/resources/updated', { uri: WATCHED })
  return revision
}

/** Takes the watched resource out of the list (it can still be read); true if it was listed. */
export function unlistWatched(peer: Peer): boolean {
  const at = RESOURCES.findIndex((r) => r.uri === WATCHED)
  if (at < 0) return false
  RESOURCES.splice(at, 1)
  peer.notify('notifications/resources/list_changed', {})
  return true
}

export const RESOURCE_HANDLERS: Record<string, Handler> = {
  'resources/list': () => ({ resources: RESOURCES }),
  'resources/templates/list': () => ({ resourceTemplates: TEMPLATES }),
  'resources/read': ({ params }) => read(uriOf(params)),
  'resources/subscribe': ({ params }) => {
    const uri = uriOf(params)
    read(uri) // only what exists can be watched
    subscribed.add(uri)
    trace(`subscribed ${uri}`)
    return {}
  },
  'resources/unsubscribe': ({ params }) => {
    const uri = uriOf(params)
    // CONFORMANCE_EXIT_ON_UNSUBSCRIBE=1: exits instead of answering (a server crashing on it).
    if (process.env.CONFORMANCE_EXIT_ON_UNSUBSCRIBE === '1') process.exit(4)
    subscribed.delete(uri)
    trace(`unsubscribed ${uri}`)
    return {}
  },
}
