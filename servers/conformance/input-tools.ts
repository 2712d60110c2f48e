// Tools the 2026-07-28 scenarios expect to answer with `input_required`, written the session-era
// way: during the call the server sends elicitation/sampling/roots requests and waits. The
// gateway turns each outstanding request into an `inputRequests` entry keyed by its JSON-RPC
// id, so each id here is the key the scenario looks for (e.g. "user_name").
import { elicit, field, listRoots, sample, textOf, type FormSchema } from './ask.js'
import { ClientError, CODE, RpcError } from './peer.js'
import { attempt, entry, failed, text, type ToolEntry } from './result.js'

/** A form asking for one string (or boolean) field, required. */
export const ask = (name: string, type: 'string' | 'boolean' = 'string'): FormSchema => ({
  type: 'object',
  properties: { [name]: { type } },
  required: [name],
})

/** Settles every promise (all requests are sent before any is awaited), then fails with the first refusal. */
async function all<T extends unknown[]>(...ps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(ps)
  const refused = settled.find((s) => s.status === 'rejected')
  if (refused) throw refused.reason
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as T
}

export const INPUT_TOOLS: ToolEntry[] = [
  entry(
    'test_input_required_result_elicitation',
    'Asks for the user name (input key user_name), then greets',
    (call) =>
      attempt(async () => {
        const r = await elicit(call, 'user_name', 'What is your name?', ask('name'))
        return text(
          r.action === 'accept'
            ? `Hello, ${field(r, 'name')}!`
            : `No name given (action=${r.action})`,
        )
      }),
  ),
  entry(
    'test_input_required_result_sampling',
    'Asks the model a question (input key capital_question)',
    (call) =>
      attempt(async () =>
        text(
          `The model answered: ${textOf(await sample(call, 'capital_question', 'What is the capital of France?'))}`,
        ),
      ),
  ),
  entry(
    'test_input_required_result_list_roots',
    "Reads the client's roots (input key client_roots)",
    (call) =>
      attempt(async () =>
        text(
          `Roots: ${(await listRoots(call, 'client_roots')).roots.map((r) => r.uri).join(', ')}`,
        ),
      ),
  ),
  // The gateway keeps and checks requestState; the word state-ok tells the scenario the round
  // trip resumed the same call.
  entry(
    'test_input_required_result_request_state',
    'Asks for a confirmation (input key confirm); its answer says state-ok',
    (call) =>
      attempt(async () =>
        text(
          `state-ok: confirmed=${field(await elicit(call, 'confirm', 'Please confirm', ask('ok', 'boolean')), 'ok')}`,
        ),
      ),
  ),
  entry(
    'test_input_required_result_multiple_inputs',
    'Asks for a name, a greeting and the roots at once (user_name, greeting, client_roots)',
    (call) =>
      attempt(async () => {
        const [name, greeting, roots] = await all(
          elicit(call, 'user_name', 'What is your name?', ask('name')),
          sample(call, 'greeting', 'Generate a greeting', 50),
          listRoots(call, 'client_roots'),
        )
        return text(
          `${textOf(greeting)} ${field(name, 'name')}; roots: ${roots.roots.map((r) => r.uri).join(', ')}`,
        )
      }),
  ),
  entry(
    'test_input_required_result_multi_round',
    'Asks for a name (step1), then a colour (step2)',
    (call) =>
      attempt(async () => {
        const name = field(
          await elicit(call, 'step1', 'Step 1: What is your name?', ask('name')),
          'name',
        )
        const color = field(
          await elicit(call, 'step2', 'Step 2: What is your favorite color?', ask('color')),
          'color',
        )
        return text(`${name} likes ${color}`)
      }),
  ),
  // Rejecting a tampered requestState is the gateway's job: this tool only asks once.
  entry(
    'test_input_required_result_tampered_state',
    'Asks for a confirmation (input key tamper_check)',
    (call) =>
      attempt(async () =>
        text(
          `confirmed=${field(await elicit(call, 'tamper_check', 'Please confirm', ask('ok', 'boolean')), 'ok')}`,
        ),
      ),
  ),
  // Sends both; a request for a capability the client did not declare comes back as an error
  // (the gateway refuses it), and the tool completes with what was answered.
  entry(
    'test_input_required_result_capabilities',
    'Asks for sampling and elicitation at once; uses whichever the client supports',
    async (call) => {
      const [sampled, elicited] = await Promise.allSettled([
        sample(call, 'capability_sampling', 'Say something'),
        elicit(call, 'capability_elicitation', 'Say something', ask('text')),
      ])
      for (const s of [sampled, elicited])
        if (s.status === 'rejected' && !(s.reason instanceof ClientError)) throw s.reason
      const parts = [
        sampled.status === 'fulfilled'
          ? `sampling: ${textOf(sampled.value)}`
          : 'sampling: unavailable',
        elicited.status === 'fulfilled'
          ? `elicitation: ${field(elicited.value, 'text')}`
          : 'elicitation: unavailable',
      ]
      return sampled.status === 'rejected' && elicited.status === 'rejected'
        ? failed(parts.join('; '))
        : text(parts.join('; '))
    },
  ),
  entry(
    'test_streaming_elicitation',
    'Asks for a confirmation mid-call (input key streaming_confirm)',
    (call) =>
      attempt(async () =>
        text(
          `confirmed=${field(await elicit(call, 'streaming_confirm', 'Continue?', ask('ok', 'boolean')), 'ok')}`,
        ),
      ),
  ),
  // SEP-2575: a request that needs a capability the client did not declare fails with
  // MissingRequiredClientCapabilityError. A session-era server learns that from the refused
  // sampling request; any refusal counts, whatever code the client or gateway used.
  entry('test_missing_capability', 'Needs sampling; without it fails with -32021', async (call) => {
    try {
      return text(`sampled: ${textOf(await sample(call, 'missing_capability_probe', 'Say hello'))}`)
    } catch (err) {
      if (!(err instanceof ClientError)) throw err
      throw new RpcError(CODE.missingCapability, 'Missing required client capability: sampling', {
        requiredCapabilities: { sampling: {} },
      })
    }
  }),
]
