import { GatewayError } from '../errors.js'

/** Why the dev IdP refused to start. */
export type DevIdpErrorCode =
  | 'bad_options' // users, clients, host or resources that cannot work
  | 'state_unsafe' // a state folder someone else could read or plant keys and clients in

/** A dev IdP start-up failure; the message says what to change. */
export class DevIdpError extends GatewayError<DevIdpErrorCode> {
  constructor(code: DevIdpErrorCode, message: string, cause?: unknown) {
    super(code, message, { cause })
  }
}
