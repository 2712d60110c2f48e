import { RELATED_TASK_META_KEY } from '@modelcontextprotocol/server'
import type { Envelope } from './jsonrpc.js'

/** The members a JSON-RPC request may have (http/classify.ts and modern-shape.ts read it too). */
export const REQUEST_KEYS: ReadonlySet<string> = new Set(['jsonrpc', 'id', 'method', 'params'])
const NOTIFICATION_KEYS = new Set(['jsonrpc', 'method', 'params'])
const RESULT_KEYS = new Set(['jsonrpc', 'id', 'result'])
const ERROR_KEYS = new Set(['jsonrpc', 'id', 'error'])

/**
 * Whether a client message already classified by its envelope (jsonrpc.ts) has the shape the
 * MCP schema gives JSON-RPC messages, as the SDK transport's schema check had it: no members
 * beyond its kind's, an integer id when a number, params (and their `_meta`) an object, a
 * progress token a string or an integer, a result an object, an error an integer code and a
 * string message, never both a result and an error. The envelope was read once already; this
 * reads only the members it did not.
 */
export function validMessage(value: unknown, env: Envelope | undefined): boolean {
  if (env === undefined || env.kind === 'invalid') return false
  const m = value as Record<string, unknown>
  const id = m.id
  if (typeof id === 'number' && !Number.isInteger(id)) return false
  switch (env.kind) {
    case 'request':
    case 'notification':
      return (
        onlyKeys(m, env.kind === 'request' ? REQUEST_KEYS : NOTIFICATION_KEYS) &&
        validParams(m.params)
      )
    case 'response':
      if (m.error !== undefined) return onlyKeys(m, ERROR_KEYS) && validError(m.error)
      return (
        onlyKeys(m, RESULT_KEYS) &&
        isPlainObject(m.result) &&
        (m.result._meta === undefined || isPlainObject(m.result._meta))
      )
  }
}

function onlyKeys(m: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in m) if (!allowed.has(key)) return false
  return true
}

function validParams(params: unknown): boolean {
  if (params === undefined) return true
  if (!isPlainObject(params)) return false
  const meta = params._meta
  if (meta === undefined) return true
  if (!isPlainObject(meta)) return false
  const token = meta.progressToken
  const task = meta[RELATED_TASK_META_KEY]
  return (
    (token === undefined ||
      typeof token === 'string' ||
      (typeof token === 'number' && Number.isInteger(token))) &&
    (task === undefined || (isPlainObject(task) && typeof task.taskId === 'string'))
  )
}

function validError(error: unknown): boolean {
  if (!isPlainObject(error)) return false
  return (
    typeof error.code === 'number' &&
    Number.isInteger(error.code) &&
    typeof error.message === 'string'
  )
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
