// The conformance suite's tools that answer on their own or through session-era round trips:
// content types, logging, progress, errors, list changes, long calls, custom headers.
import { setTimeout as delay } from 'node:timers/promises'
import type { Tool } from '@modelcontextprotocol/server'
import { elicit, sample, textOf, type FormSchema } from './ask.js'
import { JSON_SCHEMA_2020_12, RED_PIXEL_PNG, SILENT_WAV } from './media.js'
import type { Call } from './peer.js'
import { touchWatched, unlistWatched } from './resources.js'
import { attempt, entry, failed, str, text, type ToolEntry } from './result.js'

/** Emits one progress step when the request carried a progressToken. */
const progress = (call: Call, value: number, total: number) => {
  if (call.progressToken !== undefined)
    call.peer.notify('notifications/progress', {
      progressToken: call.progressToken,
      progress: value,
      total,
    })
}

const SEP1034_SCHEMA: FormSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', default: 'John Doe' },
    age: { type: 'integer', default: 30 },
    score: { type: 'number', default: 95.5 },
    status: { type: 'string', enum: ['active', 'inactive', 'pending'], default: 'active' },
    verified: { type: 'boolean', default: true },
  },
}

const SEP1330_SCHEMA: FormSchema = {
  type: 'object',
  properties: {
    untitledSingle: { type: 'string', enum: ['option1', 'option2', 'option3'] },
    titledSingle: {
      type: 'string',
      oneOf: [
        { const: 'value1', title: 'First Option' },
        { const: 'value2', title: 'Second Option' },
        { const: 'value3', title: 'Third Option' },
      ],
    },
    legacyEnum: {
      type: 'string',
      enum: ['opt1', 'opt2', 'opt3'],
      enumNames: ['Option One', 'Option Two', 'Option Three'],
    },
    untitledMulti: {
      type: 'array',
      items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
    },
    titledMulti: {
      type: 'array',
      items: {
        anyOf: [
          { const: 'value1', title: 'First Choice' },
          { const: 'value2', title: 'Second Choice' },
          { const: 'value3', title: 'Third Choice' },
        ],
      },
    },
  },
}

const completed = (r: { action: string; content?: unknown }) =>
  text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`)

/**
 * In list order. The first one is what http-header-validation calls with empty arguments,
 * so it must succeed with none.
 */
export const TOOLS: ToolEntry[] = [
  entry('test_simple_text', 'Returns a simple text response', () =>
    text('This is a simple text response for testing.'),
  ),
  entry('test_image_content', 'Returns a 1x1 red PNG image', () => ({
    content: [{ type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' }],
  })),
  entry('test_audio_content', 'Returns a short silent WAV clip', () => ({
    content: [{ type: 'audio', data: SILENT_WAV, mimeType: 'audio/wav' }],
  })),
  entry('test_embedded_resource', 'Returns an embedded text resource', () => ({
    content: [
      {
        type: 'resource',
        resource: {
          uri: 'test://embedded-resource',
          mimeType: 'text/plain',
          text: 'This is an embedded resource content.',
        },
      },
    ],
  })),
  entry('test_multiple_content_types', 'Returns text, image and resource content', () => ({
    content: [
      { type: 'text', text: 'Multiple content types test:' },
      { type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' },
      {
        type: 'resource',
        resource: {
          uri: 'test://mixed-content-resource',
          mimeType: 'application/json',
          text: '{"test":"data","value":123}',
        },
      },
    ],
  })),
  entry(
    'test_tool_with_logging',
    'Sends three info log notifications ~50 ms apart',
    async (call) => {
      call.peer.log('info', 'Tool execution started')
      await delay(50)
      call.peer.log('info', 'Tool processing data')
      await delay(50)
      call.peer.log('info', 'Tool execution completed')
      return text('Logging test completed')
    },
  ),
  entry('test_logging_tool', 'Sends log notifications at debug and info level', (call) => {
    call.peer.log('debug', 'test_logging_tool: debug detail')
    call.peer.log('info', 'test_logging_tool: done')
    return text('Logged')
  }),
  entry(
    'test_tool_with_progress',
    'Reports progress 0, 50, 100 of 100 for its progressToken',
    async (call) => {
      progress(call, 0, 100)
      await delay(50)
      progress(call, 50, 100)
      await delay(50)
      progress(call, 100, 100)
      return text('Progress test completed')
    },
  ),
  entry('test_error_handling', 'Always fails with a tool error (isError)', () =>
    failed('This tool intentionally returns an error for testing'),
  ),
  entry(
    'test_reconnection',
    'Answers after ms milliseconds (default 2000), long enough for a gateway to close the SSE stream mid-call (SEP-1699)',
    async (call, args) => {
      const ms = typeof args.ms === 'number' && args.ms >= 0 && args.ms <= 60_000 ? args.ms : 2000
      await delay(ms, undefined, { signal: call.signal }).catch(() => {})
      return text('Reconnection test completed')
    },
    { type: 'object', properties: { ms: { type: 'integer', minimum: 0, maximum: 60000 } } },
  ),
  // The lists are static: the notification is what the scenarios observe.
  entry('test_trigger_tool_change', 'Emits notifications/tools/list_changed', (call) => {
    call.peer.notify('notifications/tools/list_changed', {})
    return text('tools/list_changed sent')
  }),
  entry('test_trigger_prompt_change', 'Emits notifications/prompts/list_changed', (call) => {
    call.peer.notify('notifications/prompts/list_changed', {})
    return text('prompts/list_changed sent')
  }),
  entry(
    'test_update_watched_resource',
    'Changes test://watched-resource, notifying subscribers',
    (call) => text(`revision ${touchWatched(call.peer)}`),
  ),
  entry(
    'test_custom_headers',
    'Echoes its arguments; region and priority are mirrored into Mcp-Param-* headers (SEP-2243)',
    (_call, args) =>
      text(
        `region=${String(args.region)}, priority=${String(args.priority)}, query=${String(args.query)}`,
      ),
    {
      type: 'object',
      properties: {
        region: {
          type: 'string',
          description: 'Plain ASCII string value',
          'x-mcp-header': 'Region',
        },
        priority: {
          type: 'integer',
          description: 'Integer numeric value',
          'x-mcp-header': 'Priority',
        },
        query: { type: 'string', description: 'Not mirrored into a header' },
      },
      required: ['region', 'priority', 'query'],
    },
  ),
  entry(
    'json_schema_2020_12_tool',
    'Tool with JSON Schema 2020-12 features',
    (_call, args) => text(`received ${JSON.stringify(args)}`),
    JSON_SCHEMA_2020_12 as unknown as Tool['inputSchema'],
  ),
  entry(
    'test_sampling',
    'Asks the client to sample an LLM with the prompt',
    (call, args) => {
      const prompt = str(args, 'prompt')
      if (prompt === undefined) return failed('prompt (string) is required')
      return attempt(async () =>
        text(`LLM response: ${textOf(await sample(call, 'sampling', prompt))}`),
      )
    },
    {
      type: 'object',
      properties: { prompt: { type: 'string', description: 'The prompt to send to the LLM' } },
      required: ['prompt'],
    },
  ),
  entry(
    'test_elicitation',
    'Asks the user for a username and email',
    (call, args) => {
      const message = str(args, 'message')
      if (message === undefined) return failed('message (string) is required')
      const schema: FormSchema = {
        type: 'object',
        properties: {
          username: { type: 'string', description: "User's response" },
          email: { type: 'string', description: "User's email address" },
        },
        required: ['username', 'email'],
      }
      return attempt(async () => {
        const r = await elicit(call, 'elicitation', message, schema)
        return text(`User response: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`)
      })
    },
    {
      type: 'object',
      properties: { message: { type: 'string', description: 'The message to show the user' } },
      required: ['message'],
    },
  ),
  entry(
    'test_elicitation_sep1034_defaults',
    'Elicits with a default for every primitive type (SEP-1034)',
    (call) =>
      attempt(async () =>
        completed(
          await elicit(
            call,
            'sep1034_defaults',
            'Please review and update the form fields with defaults',
            SEP1034_SCHEMA,
          ),
        ),
      ),
  ),
  entry(
    'test_elicitation_sep1330_enums',
    'Elicits with all five enum schema variants (SEP-1330)',
    (call) =>
      attempt(async () =>
        completed(
          await elicit(
            call,
            'sep1330_enums',
            'Please select options from the enum fields',
            SEP1330_SCHEMA,
          ),
        ),
      ),
  ),
]

// CONFORMANCE_UNLIST=1: a tool that takes the watched resource out of the resource list (as a
// server whose resources come and go), notifying resources/list_changed.
if (process.env.CONFORMANCE_UNLIST === '1')
  TOOLS.push(
    entry('test_unlist_watched', 'Takes test://watched-resource out of resources/list', (call) =>
      text(`unlisted: ${unlistWatched(call.peer)}`),
    ),
  )
