import { DEFAULT_TASKS_PER_SESSION } from '../config/schema.js'
import { isObject } from './jsonrpc.js'

/**
 * Tasks (MCP 2025-11-25, experimental): a `tools/call` with `params.task` is answered with a
 * CreateTaskResult, and the tool's result comes later from `tasks/result`. Where one process
 * serves one session, the gateway relays tasks and remembers which tool each task of the session
 * runs, so `tasks/result` is held to that tool's output cap. Where a process serves several
 * sessions (shared mode, endpoints) task ids are the process's, not a session's: the gateway
 * does not offer tasks there (the capability and the tools' `taskSupport` are not advertised,
 * `params.task` is dropped so the call runs as a plain one, `tasks/*` are unknown methods).
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

/** The task id a CreateTaskResult names, if it is one. */
export function createdTaskId(result: unknown): string | undefined {
  if (!isObject(result) || !isObject(result.task)) return undefined
  const id = result.task.taskId
  return typeof id === 'string' ? id : undefined
}

/**
 * One session's tasks: which tool each task the session saw created runs. Bounded: past
 * `max`, the oldest is forgotten (its result is then held to the server's strictest cap, never
 * to none). An entry ends when its `tasks/result` or `tasks/cancel` has been answered; the book
 * ends with its session.
 */
export class TaskBook {
  private readonly tools = new Map<string, string>()

  constructor(private readonly max = DEFAULT_TASKS_PER_SESSION) {}

  /** Remembers the task a `tools/call` of `tool` created, when its result is a CreateTaskResult. */
  created(result: unknown, tool: string): void {
    const id = createdTaskId(result)
    if (id === undefined) return
    this.tools.delete(id)
    this.tools.set(id, tool)
    if (this.tools.size > this.max) this.tools.delete(this.tools.keys().next().value!)
  }

  /** The tool a task runs; undefined for a task this session did not see created. */
  toolOf(taskId: unknown): string | undefined {
    return typeof taskId === 'string' ? this.tools.get(taskId) : undefined
  }

  /** Forgets a task whose result was delivered or which was cancelled. */
  ended(taskId: unknown): void {
    if (typeof taskId === 'string') this.tools.delete(taskId)
  }

  /** Tasks remembered. */
  get size(): number {
    return this.tools.size
  }
}
