import { DEFAULT_MAX_TASK_ID_LENGTH } from '../config/schema.js'
import type { Feature } from './policy.js'
import { nonCanonicalUri } from './resource-uri.js'

/** What a gated request names: a tool, prompt or resource, or why it names nothing usable. */
export type Target =
  | { kind: 'named'; feature: Feature; name: string }
  /** The request is malformed where policy must read it: refused as invalid params (-32602). */
  | { kind: 'invalid'; reason: string }

/** Methods decided per name: a message with one of these is a request, never a notification. */
export const GATED_METHODS: ReadonlySet<string> = new Set([
  'tools/call',
  'prompts/get',
  'resources/read',
  'resources/subscribe',
  'completion/complete',
])

/**
 * The feature and name a gated request names, or undefined for methods that are not gated per
 * name. A name that is missing, not a string, or (for resources) not in canonical form is
 * `invalid`: policy never decides on a guess at what the server will read.
 */
export function gatedTarget(
  method: string,
  params: Record<string, unknown> | undefined,
): Target | undefined {
  switch (method) {
    case 'tools/call':
      return named('tools', params?.name, 'params.name')
    case 'prompts/get':
      return named('prompts', params?.name, 'params.name')
    case 'resources/read':
    case 'resources/subscribe':
      return resource(params?.uri, 'params.uri', false)
    case 'completion/complete': {
      // Completions reveal a prompt's or resource's arguments: gated like the thing itself.
      const ref = params?.ref
      if (typeof ref !== 'object' || ref === null || Array.isArray(ref))
        return invalid('params.ref must be an object')
      const r = ref as Record<string, unknown>
      if (r.type === 'ref/prompt') return named('prompts', r.name, 'params.ref.name')
      if (r.type === 'ref/resource') return resource(r.uri, 'params.ref.uri', true)
      return invalid('params.ref.type must be ref/prompt or ref/resource')
    }
    default:
      return undefined
  }
}

/** Task methods that name one task by `params.taskId` (MCP 2025-11-25 tasks). */
const TASK_ID_METHODS: ReadonlySet<string> = new Set(['tasks/get', 'tasks/result', 'tasks/cancel'])

/**
 * Why a task request's `params.taskId` is unusable, or undefined (also for other methods). A task
 * id is the server's own string: one that is not a string, is empty, longer than
 * DEFAULT_MAX_TASK_ID_LENGTH or holds control characters was never handed out, and no process
 * is asked about it.
 */
export function taskIdProblem(
  method: string,
  params: Record<string, unknown> | undefined,
): string | undefined {
  if (!TASK_ID_METHODS.has(method)) return undefined
  const id = params?.taskId
  if (typeof id !== 'string' || id === '')
    return 'Invalid params: params.taskId must be a non-empty string'
  if (id.length > DEFAULT_MAX_TASK_ID_LENGTH)
    return `Invalid params: params.taskId is longer than ${DEFAULT_MAX_TASK_ID_LENGTH} characters`
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(id))
    return 'Invalid params: params.taskId holds control characters'
  return undefined
}

function named(feature: Feature, value: unknown, field: string): Target {
  if (typeof value !== 'string' || value === '')
    return invalid(`${field} must be a non-empty string`)
  return { kind: 'named', feature, name: value }
}

function resource(value: unknown, field: string, template: boolean): Target {
  if (typeof value !== 'string') return invalid(`${field} must be a string`)
  const why = nonCanonicalUri(value, template)
  return why === undefined
    ? { kind: 'named', feature: 'resources', name: value }
    : invalid(`${field}: ${why}`)
}

function invalid(reason: string): Target {
  return { kind: 'invalid', reason: `Invalid params: ${reason}` }
}
