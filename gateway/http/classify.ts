// Which era a POST body belongs to: the SDK's dual-era classifier decides, but the two common
// shapes are answered without it (it runs three zod schemas and builds their failure reports on
// every request, ~15 µs): a message of the session era, and a well-formed 2026-07-28 request
// whose envelope holds only plain values. Anything else, malformed or merely unusual, is the
// SDK's to classify.
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  classifyInboundRequest,
  type InboundLegacyRoute,
  type InboundModernRoute,
  type JSONRPCRequest,
  LOG_LEVEL_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  RELATED_TASK_META_KEY,
} from '@modelcontextprotocol/server'
import { isObject } from '../bridge/jsonrpc.js'
import { MODERN_PROTOCOL_VERSION } from '../bridge/modern-wire.js'
import { REQUEST_KEYS } from '../bridge/wire-check.js'
import { standardHeaders } from './modern-headers.js'
import { modernShapeProblem } from './modern-shape.js'

/** The classifier's answer: a route to one era, or its refusal. */
export type InboundRoute = ReturnType<typeof classifyInboundRequest>

/** The classifier's answer for a single message that cannot be of the 2026-07-28 era. */
const SESSION_ERA: InboundLegacyRoute = { kind: 'legacy', reason: 'no-claim' }

/**
 * A POST body classified by era, exactly as `classifyInboundRequest` classifies it with the
 * request's standard headers. A single message with no 2026-07-28 header and no envelope claim
 * in its `_meta` is of the session era whatever else it holds (malformed or not, the
 * classifier's answer then always sends it to the session path).
 */
export function classify(req: Request, body: unknown): InboundRoute {
  const h = standardHeaders(req.headers)
  if (!Array.isArray(body) && !mayBeModern(h.protocolVersion, body)) return SESSION_ERA
  const route =
    modernRequest(body, h.protocolVersion, h.method) ??
    classifyInboundRequest({
      httpMethod: 'POST',
      protocolVersionHeader: h.protocolVersion,
      mcpMethodHeader: h.method,
      mcpNameHeader: h.name,
      body,
    })
  // A single message that reaches the classifier claims 2026-07-28: refused as one, saying
  // which member is wrong (the classifier says only "not a valid JSON-RPC message"), never
  // taken for a session-era request without a session.
  if (route.kind !== 'reject' || route.cell !== INVALID_BODY) return route
  const problem = modernShapeProblem(body)
  return problem === undefined
    ? route
    : { ...route, message: `Bad Request: not a valid 2026-07-28 JSON-RPC request: ${problem}` }
}

/** The classifier's refusal of a single message that is no valid JSON-RPC message. */
export const INVALID_BODY = 'invalid-json-rpc-body'

/** A 2026-07-28 (or later) header, or an envelope claim (`_meta` naming a protocol version). */
export function mayBeModern(header: string | undefined, body: unknown): boolean {
  if (header !== undefined && header.trim() >= MODERN_PROTOCOL_VERSION) return true
  const params = isObject(body) ? body.params : undefined
  const meta = isObject(params) ? params._meta : undefined
  return isObject(meta) && PROTOCOL_VERSION_META_KEY in meta
}

/**
 * The classifier's route for a JSON-RPC request (its strict schema: these members only, an id
 * that is a string or an integer) that claims 2026-07-28 with a valid envelope and headers that
 * agree with it; undefined for anything else, `initialize` included (its own precedence rule).
 */
export function modernRequest(
  body: unknown,
  versionHeader: string | undefined,
  methodHeader: string | undefined,
): InboundModernRoute | undefined {
  if (!isObject(body) || body.jsonrpc !== '2.0') return undefined
  for (const key in body) if (!REQUEST_KEYS.has(key)) return undefined
  const { id, method, params } = body
  if (typeof id !== 'string' && !Number.isSafeInteger(id)) return undefined
  if (typeof method !== 'string' || method === 'initialize') return undefined
  if (!isObject(params) || !isObject(params._meta)) return undefined
  const meta = params._meta
  const version = meta[PROTOCOL_VERSION_META_KEY]
  if (version !== MODERN_PROTOCOL_VERSION || !plainEnvelope(meta)) return undefined
  // A disagreeing header is the classifier's to refuse, with its own cell and wording.
  if (versionHeader !== undefined && versionHeader !== version) return undefined
  if (methodHeader !== undefined && methodHeader !== method) return undefined
  return {
    kind: 'modern',
    messageKind: 'request',
    message: body as unknown as JSONRPCRequest,
    classification: { era: 'modern', revision: version },
  }
}

const LOG_LEVELS = new Set([
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
])
const CLIENT_INFO_KEYS = new Set(['name', 'title', 'version', 'websiteUrl', 'description'])

/**
 * An envelope the SDK's schemas certainly accept: capabilities of the common forms, client info
 * of strings only, a known log level, a string or integer progress token. Other members of
 * `_meta` are not the envelope's (its schema passes them through), except the related-task one
 * the request schema checks.
 */
function plainEnvelope(meta: Record<string, unknown>): boolean {
  const token = meta.progressToken
  if (token !== undefined && typeof token !== 'string' && !Number.isSafeInteger(token)) return false
  if (RELATED_TASK_META_KEY in meta) return false
  const level = meta[LOG_LEVEL_META_KEY]
  if (level !== undefined && !(typeof level === 'string' && LOG_LEVELS.has(level))) return false
  const info = meta[CLIENT_INFO_META_KEY]
  if (info !== undefined && !plainClientInfo(info)) return false
  return plainCapabilities(meta[CLIENT_CAPABILITIES_META_KEY])
}

function plainClientInfo(info: unknown): boolean {
  if (!isObject(info)) return false
  for (const key in info) {
    if (!CLIENT_INFO_KEYS.has(key) || typeof info[key] !== 'string') return false
  }
  return typeof info.name === 'string' && typeof info.version === 'string'
}

/**
 * `sampling`, `elicitation` and `roots` in the forms clients send: members that are empty
 * objects, or the booleans the schema names (`roots.listChanged`, `form.applyDefaults`).
 */
function plainCapabilities(caps: unknown): boolean {
  if (!isObject(caps)) return false
  for (const key in caps) {
    const value = caps[key]
    const ok =
      key === 'sampling'
        ? emptyMembers(value, SAMPLING_KEYS)
        : key === 'elicitation'
          ? plainElicitation(value)
          : key === 'roots'
            ? booleansOnly(value, ROOTS_KEYS)
            : false
    if (!ok) return false
  }
  return true
}

const SAMPLING_KEYS = new Set(['context', 'tools'])
const ROOTS_KEYS = new Set(['listChanged'])
const FORM_KEYS = new Set(['applyDefaults'])

/** `{}`, or `form` (with `applyDefaults`) and `url` (empty). */
function plainElicitation(value: unknown): boolean {
  if (!isObject(value)) return false
  for (const key in value) {
    const ok =
      key === 'form'
        ? booleansOnly(value[key], FORM_KEYS)
        : key === 'url'
          ? emptyObject(value[key])
          : false
    if (!ok) return false
  }
  return true
}

/** An object whose members are empty objects named in `keys`. */
function emptyMembers(value: unknown, keys: ReadonlySet<string>): boolean {
  if (!isObject(value)) return false
  for (const key in value) if (!keys.has(key) || !emptyObject(value[key])) return false
  return true
}

function emptyObject(value: unknown): boolean {
  if (!isObject(value)) return false
  for (const _ in value) return false
  return true
}

/** An object whose members are booleans named in `keys`. */
function booleansOnly(value: unknown, keys: ReadonlySet<string>): boolean {
  if (!isObject(value)) return false
  for (const key in value) if (!keys.has(key) || typeof value[key] !== 'boolean') return false
  return true
}
