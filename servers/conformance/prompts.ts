// The conformance server's prompts (simple, with arguments, embedded resource, image, and one
// that needs the user's input first) and argument completion for prompts and the template.
import type { GetPromptResult, Prompt } from '@modelcontextprotocol/server'
import { elicit, field } from './ask.js'
import { ask } from './input-tools.js'
import { RED_PIXEL_PNG } from './media.js'
import { CODE, RpcError, type Call, type Handler } from './peer.js'

type Args = Record<string, string>

interface PromptEntry {
  prompt: Prompt
  get: (call: Call, args: Args) => GetPromptResult | Promise<GetPromptResult>
}

const user = (text: string) => ({ role: 'user' as const, content: { type: 'text' as const, text } })

const PROMPTS: PromptEntry[] = [
  {
    prompt: { name: 'test_simple_prompt', description: 'A simple prompt without arguments' },
    get: () => ({ messages: [user('This is a simple prompt for testing.')] }),
  },
  {
    prompt: {
      name: 'test_prompt_with_arguments',
      description: 'A prompt with two required arguments',
      arguments: [
        { name: 'arg1', description: 'First test argument', required: true },
        { name: 'arg2', description: 'Second test argument', required: true },
      ],
    },
    get: (_call, a) => ({
      messages: [user(`Prompt with arguments: arg1='${a.arg1}', arg2='${a.arg2}'`)],
    }),
  },
  {
    prompt: {
      name: 'test_prompt_with_embedded_resource',
      description: 'A prompt embedding the resource it is given',
      arguments: [
        { name: 'resourceUri', description: 'URI of the resource to embed', required: true },
      ],
    },
    get: (_call, a) => ({
      messages: [
        {
          role: 'user',
          content: {
            type: 'resource',
            resource: {
              uri: a.resourceUri!,
              mimeType: 'text/plain',
              text: 'Embedded resource content for testing.',
            },
          },
        },
        user('Please process the embedded resource above.'),
      ],
    }),
  },
  {
    prompt: { name: 'test_prompt_with_image', description: 'A prompt with an image' },
    get: () => ({
      messages: [
        { role: 'user', content: { type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' } },
        user('Please analyze the image above.'),
      ],
    }),
  },
  {
    // 2026-07-28 clients get input_required (key user_context) from the gateway.
    prompt: {
      name: 'test_input_required_result_prompt',
      description: 'Asks the user for context (input key user_context) before answering',
    },
    get: async (call) => {
      const r = await elicit(
        call,
        'user_context',
        'What context should the prompt use?',
        ask('context'),
      )
      return {
        messages: [
          user(
            `Answer using this context: ${r.action === 'accept' ? field(r, 'context') : '(none given)'}`,
          ),
        ],
      }
    },
  },
]

/** Completion candidates by prompt argument or template variable, best first. */
const CANDIDATES: Record<string, string[]> = {
  'ref/prompt test_prompt_with_arguments arg1': ['hello', 'help', 'test', 'testValue1'],
  'ref/prompt test_prompt_with_arguments arg2': ['world', 'word', 'test', 'testValue2'],
  'ref/prompt test_prompt_with_embedded_resource resourceUri': [
    'test://static-text',
    'test://static-binary',
    'test://watched-resource',
  ],
  'ref/resource test://template/{id}/data id': ['1', '2', '3', '123'],
}

function getPrompt(call: Call): GetPromptResult | Promise<GetPromptResult> {
  const { name, arguments: raw = {} } = call.params as {
    name?: unknown
    arguments?: Record<string, unknown>
  }
  const entry = PROMPTS.find((p) => p.prompt.name === name)
  if (entry === undefined)
    throw new RpcError(CODE.invalidParams, `Prompt not found: ${String(name)}`)
  const args: Args = {}
  for (const a of entry.prompt.arguments ?? []) {
    const v = raw[a.name]
    if (typeof v === 'string') args[a.name] = v
    else if (a.required)
      throw new RpcError(CODE.invalidParams, `argument ${a.name} (string) is required`)
  }
  return entry.get(call, args)
}

function complete(call: Call) {
  const { ref, argument } = call.params as {
    ref?: { type?: string; name?: string; uri?: string }
    argument?: { name?: string; value?: string }
  }
  const key = `${ref?.type} ${ref?.type === 'ref/resource' ? ref.uri : ref?.name} ${argument?.name}`
  const prefix = argument?.value ?? ''
  const values = (CANDIDATES[key] ?? []).filter((v) => v.startsWith(prefix))
  return { completion: { values, total: values.length, hasMore: false } }
}

export const PROMPT_HANDLERS: Record<string, Handler> = {
  'prompts/list': () => ({ prompts: PROMPTS.map((p) => p.prompt) }),
  'prompts/get': getPrompt,
  'completion/complete': complete,
}
