#!/usr/bin/env node
// fixture: a stdio MCP server whose tools exercise every path the gateway must carry (tests only).
import { createHash } from 'node:crypto'
import { appendFileSync } from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'
import { McpServer } from '@modelcontextprotocol/server'
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio'
import type { CallToolResult, RegisteredTool } from '@modelcontextprotocol/server'
import * as z from 'zod/v4'

const server = new McpServer(
  { name: 'fixture', version: '1.0.0' },
  {
    capabilities: { logging: {} },
    // Strict: server→client requests fail fast when the client did not declare the capability.
    enforceStrictCapabilities: true,
    // Under identityEnv, what the server tells its client depends on whom it acts for; with
    // FIXTURE_SIGNED_IN=VAR, on whose credential it holds (as a server saying whom its token
    // signs it in as).
    ...(process.env.MCP_EDGE_SUBJECT
      ? { instructions: `acting for ${process.env.MCP_EDGE_SUBJECT}` }
      : process.env.FIXTURE_SIGNED_IN
        ? {
            instructions: `signed in with ${process.env[process.env.FIXTURE_SIGNED_IN] ?? 'nothing'}`,
          }
        : {}),
  },
)

const text = (t: string, isError = false): CallToolResult => ({
  content: [{ type: 'text', text: t }],
  ...(isError ? { isError } : {}),
})
const json = (value: unknown): CallToolResult => text(JSON.stringify(value))
/** Runs a server→client round trip; a refusal or missing capability becomes an isError result. */
const attempt = async (fn: () => Promise<CallToolResult>): Promise<CallToolResult> => {
  try {
    return await fn()
  } catch (err) {
    return text(err instanceof Error ? err.message : String(err), true)
  }
}

server.registerTool('env', { description: 'process.env, pid, argv and cwd as JSON' }, () =>
  json({ env: process.env, pid: process.pid, argv: process.argv, cwd: process.cwd() }),
)

server.registerTool('pid', { description: 'The process id' }, () => text(String(process.pid)))

server.registerTool(
  'notify',
  {
    description: 'Send count log notifications (and progress, if a progressToken was given)',
    inputSchema: z.object({ count: z.number().int().min(0).max(1000).optional() }),
  },
  async ({ count = 2 }, ctx) => {
    const progressToken = ctx.mcpReq._meta?.progressToken
    for (let i = 1; i <= count; i++) {
      await ctx.mcpReq.log('info', `notification ${i} of ${count}`, 'fixture')
      if (progressToken !== undefined) {
        await ctx.mcpReq.notify({
          method: 'notifications/progress',
          params: { progressToken, progress: i, total: count, message: `step ${i}` },
        })
      }
    }
    return text(`notified ${count}`)
  },
)

server.registerTool(
  'flood',
  {
    description:
      'Send count log notifications of size characters each (progress notifications if a progressToken was given; with changes, tools/list_changed notifications), then pings server→client pings without waiting for their answers, then answer',
    inputSchema: z.object({
      count: z.number().int().min(0).max(1_000_000),
      size: z
        .number()
        .int()
        .min(0)
        .max(1024 * 1024)
        .optional(),
      pings: z.number().int().min(0).max(100_000).optional(),
      changes: z.boolean().optional(),
    }),
  },
  async ({ count, size = 1000, pings = 0, changes }, ctx) => {
    const pad = 'x'.repeat(size)
    const progressToken = ctx.mcpReq._meta?.progressToken
    // Each send waits for stdout to drain: the gateway, not this process, holds what is unread.
    for (let i = 1; i <= count; i++) {
      if (changes) await server.server.sendToolListChanged()
      else if (progressToken !== undefined)
        await ctx.mcpReq.notify({
          method: 'notifications/progress',
          params: { progressToken, progress: i, total: count, message: pad },
        })
      else await ctx.mcpReq.log('info', `${i} ${pad}`, 'fixture')
    }
    for (let i = 0; i < pings; i++) void ctx.mcpReq.send({ method: 'ping' }).catch(() => {})
    return text(`flooded ${count}`)
  },
)

server.registerTool(
  'sample',
  { description: 'Ask the client to sample an LLM', inputSchema: z.object({ prompt: z.string() }) },
  ({ prompt }, ctx) =>
    attempt(async () => {
      const reply = await ctx.mcpReq.requestSampling({
        messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
        maxTokens: 100,
      })
      const blocks = Array.isArray(reply.content) ? reply.content : [reply.content]
      return text(blocks.map((b) => (b.type === 'text' ? b.text : '')).join(''))
    }),
)

server.registerTool(
  'elicit',
  { description: 'Ask the user for an answer', inputSchema: z.object({ message: z.string() }) },
  ({ message }, ctx) =>
    attempt(async () => {
      const { action, content } = await ctx.mcpReq.elicitInput({
        mode: 'form',
        message,
        requestedSchema: {
          type: 'object',
          properties: { answer: { type: 'string', title: 'Answer' } },
          required: ['answer'],
        },
      })
      return json({ action, content })
    }),
)

server.registerTool('roots', { description: "The client's roots/list result" }, (ctx) =>
  attempt(async () => json(await ctx.mcpReq.send({ method: 'roots/list' }))),
)

server.registerTool(
  'slow',
  {
    description:
      'Wait ms milliseconds (stops early when cancelled); with a progressToken and every, a progress notification every `every` ms',
    inputSchema: z.object({
      ms: z.number().int().min(0).max(60_000),
      every: z.number().int().min(10).max(60_000).optional(),
    }),
  },
  async ({ ms, every }, ctx) => {
    const signal = ctx.mcpReq.signal
    const progressToken = ctx.mcpReq._meta?.progressToken
    const step = every !== undefined && progressToken !== undefined ? every : Math.max(ms, 1)
    try {
      for (let waited = 0, i = 1; waited < ms; i++) {
        const wait = Math.min(step, ms - waited)
        await delay(wait, undefined, { signal })
        waited += wait
        if (waited < ms && progressToken !== undefined && every !== undefined) {
          await ctx.mcpReq.notify({
            method: 'notifications/progress',
            params: { progressToken, progress: i, total: Math.ceil(ms / every) },
          })
        }
      }
    } catch {
      // cancelled
    }
    return text(signal.aborted ? 'cancelled' : 'done')
  },
)

// Gates: a `gate` call waits until `open_gate` opens it (from a concurrent request), so a test
// decides when a request ends instead of guessing with a duration.
const gates = new Map<string, { opened: Promise<void>; open: () => void }>()
const gateOf = (name: string) => {
  let g = gates.get(name)
  if (g === undefined) {
    let open!: () => void
    const opened = new Promise<void>((resolve) => (open = resolve))
    g = { opened, open }
    gates.set(name, g)
  }
  return g
}
server.registerTool(
  'gate',
  {
    description:
      'Wait until open_gate opens the gate of this name; with a progressToken, a progress notification once waiting',
    inputSchema: z.object({ name: z.string() }),
  },
  async ({ name }, ctx) => {
    // Tells a test the request is running here (not waiting in the gateway for a process).
    const progressToken = ctx.mcpReq._meta?.progressToken
    if (progressToken !== undefined)
      await ctx.mcpReq.notify({
        method: 'notifications/progress',
        params: { progressToken, progress: 0, message: `waiting at ${name}` },
      })
    await gateOf(name).opened
    return text(`passed ${name}`)
  },
)
server.registerTool(
  'open_gate',
  {
    description:
      'Open the gate of this name; with settle, answer only after what the gate let go has written (one turn of the event loop)',
    inputSchema: z.object({ name: z.string(), settle: z.boolean().optional() }),
  },
  async ({ name, settle }) => {
    gateOf(name).open()
    if (settle) await new Promise((resolve) => setImmediate(resolve))
    return text(`opened ${name}`)
  },
)
server.registerTool(
  'linger',
  {
    description:
      'Like gate, but deaf to cancellation and telling once past it: with a progressToken, progress "after <name>"; a log line "after <name>" in any case',
    inputSchema: z.object({ name: z.string() }),
  },
  async ({ name }, ctx) => {
    const progressToken = ctx.mcpReq._meta?.progressToken
    if (progressToken !== undefined)
      await ctx.mcpReq.notify({
        method: 'notifications/progress',
        params: { progressToken, progress: 0, message: `waiting at ${name}` },
      })
    await gateOf(name).opened
    if (progressToken !== undefined)
      await ctx.mcpReq.notify({
        method: 'notifications/progress',
        params: { progressToken, progress: 1, message: `after ${name}` },
      })
    await ctx.mcpReq.log('info', `after ${name}`, 'fixture')
    return text(`passed ${name}`)
  },
)

server.registerTool(
  'crash',
  {
    description: 'Exit the process before answering',
    inputSchema: z.object({ code: z.number().int().min(0).max(255).optional() }),
  },
  ({ code }) => {
    process.stderr.write(`fixture: crashing with exit code ${code ?? 1}\n`)
    process.exit(code ?? 1)
  },
)

server.registerTool(
  'stderr',
  { description: 'Write text to stderr', inputSchema: z.object({ text: z.string() }) },
  (args) => {
    process.stderr.write(args.text.endsWith('\n') ? args.text : `${args.text}\n`)
    return text('ok')
  },
)

server.registerTool(
  'stderr_unended',
  {
    description: 'Write `bytes` bytes of `x` to stderr and no newline (a line that has not ended)',
    inputSchema: z.object({
      bytes: z
        .number()
        .int()
        .min(0)
        .max(256 * 1024 * 1024),
    }),
  },
  async ({ bytes }) => {
    const chunk = 'x'.repeat(64 * 1024)
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (!process.stderr.write(chunk)) await new Promise((r) => process.stderr.once('drain', r))
    }
    return text('written')
  },
)

server.registerTool(
  'echo_args',
  {
    description: 'Its arguments back, as JSON text',
    inputSchema: z.object({ session: z.number(), i: z.number() }),
  },
  (args) => text(JSON.stringify({ session: args.session, i: args.i })),
)

server.registerTool(
  'stdout_junk',
  {
    description:
      'Write junk to stdout (not JSON-RPC): `lines` short lines, or one line of `bytes` bytes',
    inputSchema: z.object({
      lines: z.number().int().min(0).max(1_000_000).optional(),
      bytes: z
        .number()
        .int()
        .min(0)
        .max(64 * 1024 * 1024)
        .optional(),
    }),
  },
  async ({ lines, bytes }) => {
    for (let i = 0; i < (lines ?? 0); i++) process.stdout.write(`this is not JSON ${i}\n`)
    if (bytes) {
      const chunk = 'x'.repeat(64 * 1024)
      for (let sent = 0; sent < bytes; sent += chunk.length) {
        if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r))
      }
      process.stdout.write('\n')
    }
    return text('junk written')
  },
)

server.registerTool(
  'big_text',
  {
    description:
      'A text result of `bytes` characters (a large file read): one reply line of that size and more',
    inputSchema: z.object({
      bytes: z
        .number()
        .int()
        .min(0)
        .max(64 * 1024 * 1024),
    }),
  },
  ({ bytes }) => text('x'.repeat(bytes)),
)

let dummy: RegisteredTool | undefined
server.registerTool(
  'list_changed',
  { description: 'Toggle a dummy tool, emitting notifications/tools/list_changed' },
  () => {
    if (dummy) {
      dummy.remove()
      dummy = undefined
    } else {
      dummy = server.registerTool('dummy', { description: 'Placeholder' }, () => text('dummy'))
    }
    return text('ok')
  },
)

// FIXTURE_SIGNED_IN=VAR also lists a tool whose description says whom the credential signs this
// process in as (as a server listing what its token lets it do).
if (process.env.FIXTURE_SIGNED_IN) {
  server.registerTool(
    'signed_in',
    { description: `signed in with ${process.env[process.env.FIXTURE_SIGNED_IN] ?? 'nothing'}` },
    () => text('signed in'),
  )
}

// FIXTURE_HEADER_TOOL=1: a tool whose input schema changes at run time, as the tools of a server
// that registers them as it goes: `regional` takes a region, and `declare_region_header` has this
// process declare it an Mcp-Param-Region header (SEP-2243) from then on (tools/list_changed).
if (process.env.FIXTURE_HEADER_TOOL === '1') {
  const regional = (header: boolean) =>
    server.registerTool(
      'regional',
      {
        description: 'Echoes its region',
        inputSchema: z.object({
          region: header ? z.string().meta({ 'x-mcp-header': 'Region' }) : z.string(),
        }),
      },
      ({ region }) => text(`region ${region}`),
    )
  let tool = regional(false)
  server.registerTool(
    'declare_region_header',
    { description: 'Re-registers `regional` with its region declared an Mcp-Param-Region header' },
    () => {
      tool.remove()
      tool = regional(true)
      return text('declared')
    },
  )
}

server.registerPrompt(
  'greet',
  { description: 'Greet someone', argsSchema: z.object({ name: z.string() }) },
  ({ name }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Say hello to ${name}.` } }],
  }),
)

server.registerResource(
  'hello',
  'fixture://hello',
  { description: 'A static text resource', mimeType: 'text/plain' },
  // FIXTURE_HELLO_BYTES: a longer text (output-cap tests), else 'hello'.
  (uri) => ({
    contents: [
      {
        uri: uri.href,
        mimeType: 'text/plain',
        text: process.env.FIXTURE_HELLO_BYTES
          ? 'h'.repeat(Number(process.env.FIXTURE_HELLO_BYTES))
          : 'hello',
      },
    ],
  }),
)

server.registerTool(
  'ask_briefly',
  {
    description: 'Ask the user, but give up after ms milliseconds',
    inputSchema: z.object({ ms: z.number().int().min(1).max(60_000) }),
  },
  async ({ ms }, ctx) => {
    try {
      const { action } = await ctx.mcpReq.elicitInput(
        {
          mode: 'form',
          message: 'quick?',
          requestedSchema: { type: 'object', properties: { answer: { type: 'string' } } },
        },
        { timeout: ms },
      )
      return text(`answered: ${action}`)
    } catch {
      // Said on stderr (which the gateway logs) as well: a test waits for the giving up.
      process.stderr.write('fixture: ask_briefly gave up\n')
      return text('gave up')
    }
  },
)

// Per-user credentials: which value this process was started with, by hash (never the value),
// so a test can prove whose credential a call ran with.
server.registerTool(
  'credential',
  {
    description:
      'The SHA-256 of an environment variable this process was started with, and its pid',
    inputSchema: z.object({ name: z.string() }),
  },
  ({ name }) => {
    const value = process.env[name]
    return json({
      pid: process.pid,
      sha256: value === undefined ? null : createHash('sha256').update(value).digest('hex'),
    })
  },
)

server.registerTool(
  'print_credential',
  {
    description:
      'Writes an environment variable to stderr, raw and encoded (the gateway must redact it)',
    inputSchema: z.object({ name: z.string() }),
  },
  ({ name }) => {
    const value = process.env[name] ?? ''
    process.stderr.write(
      `config ${name}=${value} json=${JSON.stringify({ value })} url=${encodeURIComponent(value)} b64=${Buffer.from(value).toString('base64')}\n`,
    )
    return text('printed')
  },
)

// FIXTURE_ROOTS_ON_INIT=1: ask the client for its roots as soon as it is initialized, like
// servers that scope themselves to the client's roots (server-filesystem does).
if (process.env.FIXTURE_ROOTS_ON_INIT === '1') {
  server.server.oninitialized = () => {
    server.server.listRoots().then(
      () => process.stderr.write('fixture: roots answered\n'),
      (err: Error) => process.stderr.write(`fixture: roots refused: ${err.message}\n`),
    )
  }
}

const transport = new StdioServerTransport()
await server.connect(transport)

// Record every byte of stdin as it arrives, before any parsing: what a lenient server would have
// acted on, including messages the SDK's own parser would drop.
const rawFile = process.env.FIXTURE_RAW_RECORD_FILE
if (rawFile) process.stdin.on('data', (chunk: Buffer) => appendFileSync(rawFile, chunk))

// Record every received message before the SDK handles it, so tests can prove what reached us.
const recordFile = process.env.FIXTURE_RECORD_FILE
if (recordFile) {
  const handle = transport.onmessage
  transport.onmessage = (message) => {
    appendFileSync(recordFile, `${JSON.stringify(message)}\n`)
    handle?.(message)
  }
}

// FIXTURE_CRASH_ON=<method>: exit (code 4) on that request, as a server that crashes mid-list.
const crashOn = process.env.FIXTURE_CRASH_ON
if (crashOn) {
  const handle = transport.onmessage
  transport.onmessage = (message) => {
    if ((message as { method?: string }).method === crashOn) {
      process.stderr.write(`fixture: crashing on ${crashOn}\n`)
      process.exit(4)
    }
    handle?.(message)
  }
}

// FIXTURE_ANSWER_CANCELLED_THEN_EXIT=1: on a cancellation, answer the cancelled request after
// all, then exit (code 5): a server that finished the call just as the cancel came, and crashes
// handling the cancel.
if (process.env.FIXTURE_ANSWER_CANCELLED_THEN_EXIT === '1') {
  const handle = transport.onmessage
  transport.onmessage = (message) => {
    const m = message as { method?: string; params?: { requestId?: string | number } }
    if (m.method === 'notifications/cancelled' && m.params?.requestId !== undefined) {
      const answer = { jsonrpc: '2.0' as const, id: m.params.requestId, result: {} }
      void transport.send(answer).then(() => {
        process.stderr.write('fixture: answered the cancelled request, exiting\n')
        process.exit(5)
      })
      return
    }
    handle?.(message)
  }
}

// FIXTURE_STRICT_LIFECYCLE=1: behave like servers that exit on any request before initialize.
if (process.env.FIXTURE_STRICT_LIFECYCLE === '1') {
  let initialized = false
  const handle = transport.onmessage
  transport.onmessage = (message) => {
    const m = message as { method?: string; id?: unknown }
    if (!initialized && m.id !== undefined && m.method !== 'initialize') {
      process.stderr.write('fixture: request before initialize, exiting\n')
      process.exit(3)
    }
    if (m.method === 'initialize') initialized = true
    handle?.(message)
  }
}
