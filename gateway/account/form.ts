import { GatewayError } from '../errors.js'
import { readBody } from '../http/body.js'
import { AccountError } from './errors.js'

/** Fields a form of the account page may carry, each at most once. */
const FIELDS = ['csrf', 'name', 'value', 'server']

/**
 * Reads an account page form: `application/x-www-form-urlencoded`, within the body limits,
 * UTF-8, decoded strictly (a percent-encoding that is not UTF-8 makes the whole form unreadable:
 * URLSearchParams would put U+FFFD in its place, and a secret would be stored other than it was
 * typed), each field once.
 * @throws AccountError `unsupported_media_type`, `invalid_body`; GatewayError `body_too_large`, `body_timeout`
 */
export async function readForm(
  req: Request,
  limits: { maxBodyBytes: number; bodyTimeout: number },
): Promise<URLSearchParams> {
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(req.headers.get('content-type') ?? '')) {
    throw new AccountError('unsupported_media_type', 'The form was not sent as a form.')
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await readBody(req, limits))
  } catch (err) {
    if (err instanceof GatewayError && err.code !== 'parse_error') throw err
    throw new AccountError('invalid_body', 'The form could not be read.')
  }
  const form = new URLSearchParams()
  try {
    for (const pair of text.split('&')) {
      if (pair === '') continue
      const eq = pair.indexOf('=')
      const [k, v] = eq === -1 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)]
      form.append(
        decodeURIComponent(k.replace(/\+/g, ' ')),
        decodeURIComponent(v.replace(/\+/g, ' ')),
      )
    }
  } catch {
    throw new AccountError('invalid_body', 'The form could not be read.')
  }
  if (FIELDS.some((f) => form.getAll(f).length > 1))
    throw new AccountError('invalid_body', 'The form holds a field twice.')
  return form
}
