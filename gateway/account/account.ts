import { Hono } from 'hono'
import type { Vars } from '../http/request-id.js'
import { accountApi } from './api.js'
import type { AccountDeps } from './deps.js'
import { accountPages } from './routes.js'

/**
 * The account page and its API as one set of routes under `/account`, for the gateway's app to
 * mount (behind its Host check, request ids and request log, like every route).
 */
export function createAccount(d: AccountDeps): Hono<Vars> {
  const app = new Hono<Vars>()
  accountApi(app, d)
  accountPages(app, d)
  return app
}
