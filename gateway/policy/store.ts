import type { Policy } from './policy.js'

/** Holds the live policy. Readers take `current` once per message, so a swap is atomic for them. */
export interface PolicyStore {
  readonly current: Policy
  replace(next: Policy): void
}

/** A store starting at `initial`. */
export function createPolicyStore(initial: Policy): PolicyStore {
  let current = initial
  return {
    get current() {
      return current
    },
    replace(next) {
      current = next
    },
  }
}
