import { z } from 'zod'

/**
 * Conditions on the caller: claim path → accepted values (any one). `sub`, `client_id`
 * (azp or client_id) and `roles` name the principal's own fields; other keys are dotted
 * claim paths. A list-valued claim matches when it shares a value with the list.
 */
export const whenSchema = z.record(
  z.string().min(1),
  z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
)
