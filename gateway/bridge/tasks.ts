import { RELATED_TASK_META_KEY } from '@modelcontextprotocol/server'
import type { Principal } from '../auth/principal.js'
import { DEFAULT_MAX_TASK_STATUS_LENGTH, DEFAULT_TASKS_PER_SESSION } from '../config/schema.js'
import { decideAccess, decideByRules } from '../policy/evaluate.js'
import type { Policy } from '../policy/policy.js'
import { isObject } from './jsonrpc.js'

/**
 * Tasks (MCP 2025-11-25, experimental): a `tools/call` with `params.task` is answered with a
 * CreateTaskResult, and the tool's result comes later from `tasks/result`. Where one process
 * serves one session, the gateway relays tasks and remembers which tool each task of the session
 * runs, so `tasks/result` is held to that tool's output cap. Where a process serves several
 * sessions (shared mode, endpoints) task ids are the process's, not a session's: the gateway
 * does not offer tasks there (the capability and the tools' `taskSupport` are not advertised,
 * `params.task` is dropped so the call runs as a plain one, and a related task in `_meta` with
 * it, `tasks/*` are unknown methods).
 */

/** The task methods of 2025-11-25 a client sends to a server. */
export const TASK_METHODS: ReadonlySet<string> = new Set([
  'tasks/get',
  'tasks/result',
  'tasks/list',
  'tasks/cancel',
])

/** The answer where tasks are not offered: the methods do not exist there (JSON-RPC -32601). */
export function noTasks(method: string): { code: number; message: string } {
  return {
    code: -32601,
    message: `Method not found: ${method} (tasks are not available on this server's shared process or endpoint)`,
  }
}

/** Whether a request's params ask for task-augmented execution. */
export function asksForTask(params: Record<string, unknown> | undefined): boolean {
  return params !== undefined && 'task' in params
}

/**
 * The params without `task`. MCP 2025-11-25 tasks: a receiver that does not declare tasks for a
 * request type processes it normally, ignoring the task metadata; the gateway is that receiver.
 */
export function withoutTask(params: Record<string, unknown>): Record<string, unknown> {
  const { task: _, ...rest } = params
  return rest
}

/**
 * A request's params where tasks are not offered: without `task` (it runs as a plain call), and
 * without a related task in `_meta`: a process with a task message queue (the SDK's) queues
 * the answer of a request that names a task for that task's `tasks/result`, unknown here, so the
 * caller would wait for nothing and the process keep the answer for good. The same object when
 * neither is there.
 */
export function taskless(params: Record<string, unknown>): Record<string, unknown> {
  const out = asksForTask(params) ? withoutTask(params) : params
  const meta = out._meta
  if (!isObject(meta) || !Object.hasOwn(meta, RELATED_TASK_META_KEY)) return out
  const { [RELATED_TASK_META_KEY]: _, ...rest } = meta
  return { ...out, _meta: rest }
}

/** A server's capabilities without `tasks`. */
export function withoutTasksCapability(capabilities: unknown): unknown {
  if (!isObject(capabilities) || !('tasks' in capabilities)) return capabilities
  const { tasks: _, ...rest } = capabilities
  return rest
}

/** A tool definition without `execution.taskSupport`: where tasks are not carried. */
export function withoutTaskSupport(tool: unknown): unknown {
  if (!isObject(tool) || !isObject(tool.execution) || !('taskSupport' in tool.execution))
    return tool
  const { taskSupport: _, ...rest } = tool.execution
  return { ...tool, execution: rest }
}

/** A `tools/list` result without task support on any tool (the same object when none has it). */
export function toolsWithoutTasks(result: unknown): unknown {
  if (!isObject(result) || !Array.isArray(result.tools)) return result
  if (
    !result.tools.some((t) => isObject(t) && isObject(t.execution) && 'taskSupport' in t.execution)
  )
    return result
  return { ...result, tools: result.tools.map(withoutTaskSupport) }
}

/** The tool a task of the caller's session runs, by its id; undefined when not known. */
export type TaskTool = (taskId: unknown) => string | undefined

/**
 * A `tasks/list` result with only the tasks whose tool the principal may call now, under the
 * policy in force (as `tasks/get` and `tasks/result` are decided): a tool denied or a scope
 * withdrawn after the task began hides it. A task whose tool the gateway does not know (forgotten
 * past the session's cap, or never seen created) is hidden: nothing says the caller may see it.
 * No step-up marks: a task is not something to authorize, its tool is. Other fields are kept.
 */
export function filterTaskList(
  policy: Policy,
  server: string,
  result: unknown,
  principal: Principal,
  toolOf: TaskTool,
): unknown {
  if (!isObject(result) || !Array.isArray(result.tasks)) return result
  if (decideAccess(policy, principal, server).effect !== 'allow') return { ...result, tasks: [] }
  const allowed = new Map<string, boolean>()
  const tasks = result.tasks.filter((task) => {
    const tool = isObject(task) ? toolOf(task.taskId) : undefined
    if (tool === undefined) return false
    let ok = allowed.get(tool)
    if (ok === undefined) {
      ok = decideByRules(policy, principal, server, 'tools', tool).effect === 'allow'
      allowed.set(tool, ok)
    }
    return ok
  })
  return tasks.length === result.tasks.length ? result : { ...result, tasks }
}

/** A task with its `statusMessage` cut to `max` characters (`…` ending it); the same object when within. */
function capStatus(task: unknown, max: number): unknown {
  if (!isObject(task) || typeof task.statusMessage !== 'string') return task
  if (task.statusMessage.length <= max) return task
  // Cut at a code point: half a surrogate pair would not be valid UTF-8 on the wire.
  const kept = Array.from(task.statusMessage.slice(0, max)).slice(0, -1).join('')
  return { ...task, statusMessage: `${kept}…` }
}

/**
 * Holds every task status message a server sends to `max` characters: in `tasks/get` and
 * `tasks/cancel` results (a Task), `tasks/list` (each task), a CreateTaskResult (`task`), and a
 * `notifications/tasks/status` (its params are a Task). A process cannot hand a client (or the
 * model reading it) megabytes through a field no output cap looks at. The same object when
 * nothing is cut.
 */
export function capTaskStatus(
  method: string,
  payload: unknown,
  max = DEFAULT_MAX_TASK_STATUS_LENGTH,
): unknown {
  if (!isObject(payload)) return payload
  if (
    method === 'tasks/get' ||
    method === 'tasks/cancel' ||
    method === 'notifications/tasks/status'
  )
    return capStatus(payload, max)
  if (method === 'tasks/list' && Array.isArray(payload.tasks)) {
    const tasks = payload.tasks.map((t) => capStatus(t, max))
    return tasks.every((t, i) => t === (payload.tasks as unknown[])[i])
      ? payload
      : { ...payload, tasks }
  }
  if (method === 'tools/call' && isObject(payload.task)) {
    const task = capStatus(payload.task, max)
    return task === payload.task ? payload : { ...payload, task }
  }
  return payload
}

/** The task id a CreateTaskResult names, if it is one. */
export function createdTaskId(result: unknown): string | undefined {
  if (!isObject(result) || !isObject(result.task)) return undefined
  const id = result.task.taskId
  return typeof id === 'string' ? id : undefined
}

/**
 * One session's tasks: which tool each task the session saw created runs. Bounded: past `max`
 * the longest-ended task is forgotten first, then the oldest live one. A task the book does not
 * know (forgotten, or never created in this session) is refused its status and result
 * (decide.ts) and hidden from `tasks/list`: no rule can allow a tool nobody knows. A task that
 * ended (its result delivered, or cancelled) keeps its tool, so a client asking for its result
 * again after losing the answer is decided and capped by that tool, not refused. The book ends
 * with its session.
 */
export class TaskBook {
  private readonly live = new Map<string, string>()
  private readonly done = new Map<string, string>()

  constructor(private readonly max = DEFAULT_TASKS_PER_SESSION) {}

  /** {@link TaskTool} over this book. */
  readonly toolOf: TaskTool = (taskId) =>
    typeof taskId === 'string' ? (this.live.get(taskId) ?? this.done.get(taskId)) : undefined

  /** Remembers the task a `tools/call` of `tool` created, when its result is a CreateTaskResult. */
  created(result: unknown, tool: string): void {
    const id = createdTaskId(result)
    if (id === undefined) return
    this.done.delete(id)
    this.live.delete(id)
    this.live.set(id, tool)
    if (this.size > this.max) {
      const from = this.done.size > 0 ? this.done : this.live
      from.delete(from.keys().next().value!)
    }
  }

  /** A task whose result was delivered or which was cancelled: the first to be forgotten. */
  ended(taskId: unknown): void {
    if (typeof taskId !== 'string') return
    const tool = this.live.get(taskId)
    if (tool === undefined) return
    this.live.delete(taskId)
    this.done.set(taskId, tool)
  }

  /** Tasks remembered, ended ones included. */
  get size(): number {
    return this.live.size + this.done.size
  }
}
