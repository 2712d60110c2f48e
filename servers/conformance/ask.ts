// Server→client round trips (elicitation, sampling, roots) whose answers are checked before
// use: the client is a stranger, and a gateway translating inputResponses may pass on junk.
import type {
  CreateMessageResult,
  ElicitResult,
  ListRootsResult,
} from '@modelcontextprotocol/server'
import { CODE, RpcError, type Call, type RequestId } from './peer.js'

/** A flat object schema for a form elicitation. */
export type FormSchema = {
  type: 'object'
  properties: Record<string, unknown>
  required?: string[]
}

/**
 * Asks the user through `elicitation/create` (form mode: message and requestedSchema).
 * @throws RpcError the client's refusal, or `invalidParams` when the answer is not an ElicitResult
 */
export async function elicit(
  call: Call,
  id: RequestId,
  message: string,
  requestedSchema: FormSchema,
): Promise<ElicitResult> {
  const r = await call.peer.request(
    id,
    'elicitation/create',
    { message, requestedSchema },
    call.signal,
  )
  const action = (r as { action?: unknown } | null)?.action
  const content = (r as { content?: unknown } | null)?.content
  if (action !== 'accept' && action !== 'decline' && action !== 'cancel') {
    throw invalid(id, 'elicitation/create', 'action must be accept, decline or cancel')
  }
  if (content !== undefined && !isObject(content))
    throw invalid(id, 'elicitation/create', 'content must be an object')
  return r as ElicitResult
}

/**
 * Asks the client's model through `sampling/createMessage` for one user message.
 * @throws RpcError the client's refusal, or `invalidParams` when the answer is not a CreateMessageResult
 */
export async function sample(
  call: Call,
  id: RequestId,
  text: string,
  maxTokens = 100,
): Promise<CreateMessageResult> {
  const r = await call.peer.request(
    id,
    'sampling/createMessage',
    { messages: [{ role: 'user', content: { type: 'text', text } }], maxTokens },
    call.signal,
  )
  const m = r as { role?: unknown; content?: unknown; model?: unknown } | null
  if (
    typeof m?.model !== 'string' ||
    (m.role !== 'assistant' && m.role !== 'user') ||
    typeof m.content !== 'object' ||
    m.content === null
  ) {
    throw invalid(id, 'sampling/createMessage', 'expected role, content and model')
  }
  return r as CreateMessageResult
}

/**
 * The client's roots through `roots/list`.
 * @throws RpcError the client's refusal, or `invalidParams` when the answer is not a ListRootsResult
 */
export async function listRoots(call: Call, id: RequestId): Promise<ListRootsResult> {
  const r = await call.peer.request(id, 'roots/list', {}, call.signal)
  const roots = (r as { roots?: unknown } | null)?.roots
  if (!Array.isArray(roots) || !roots.every((x) => isObject(x) && typeof x.uri === 'string')) {
    throw invalid(id, 'roots/list', 'expected roots, each with a uri')
  }
  return r as ListRootsResult
}

/** The text of a sampling answer (its text blocks joined). */
export function textOf(r: CreateMessageResult): string {
  const blocks = Array.isArray(r.content) ? r.content : [r.content]
  return blocks.map((b) => (b.type === 'text' ? b.text : '')).join('')
}

/** A field of an accepted elicitation's content, as a string ('' when absent). */
export function field(r: ElicitResult, name: string): string {
  const v = r.content?.[name]
  return v === undefined ? '' : String(v)
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

function invalid(id: RequestId, method: string, why: string): RpcError {
  return new RpcError(
    CODE.invalidParams,
    `invalid answer to ${method} (id ${JSON.stringify(id)}): ${why}`,
  )
}
