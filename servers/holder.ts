#!/usr/bin/env node
// holder: a stdio MCP server that exits while a descendant of its own keeps its stdout open, as
// a server that started a helper or daemon does (tests only). Tools: `echo` (answers `echo
// <pid>`), `hang` (never answers), `exit` (starts the descendant, answers first when `answer`
// is true, then exits with code 6), `stall` (starts the descendant, answers, then reads nothing
// more, its event loop held, until it is killed: a server stuck in a loop, its stdin pipe
// filling). SIGUSR2 does what `exit` does, unanswered: for a process
// no client holds (a warm one). Each descendant's pid is appended to HOLDER_PIDS_FILE (the test
// ends them: its stdout closes then); it lives ten minutes at most. With HOLDER_START_HELPER set,
// it also starts a helper at once that holds none of its pipes (`stubborn`: one that ignores
// SIGTERM), its pid appended to the same file before anything is read: a server that started a
// language server or a browser. Written without the SDK.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { appendFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

const send = (message: unknown) => process.stdout.write(`${JSON.stringify(message)}\n`)

/** Starts the descendant holding stdout (stdin and stderr not). */
function holdStdout(): void {
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], {
    stdio: ['ignore', 'inherit', 'ignore'],
  })
  if (process.env.HOLDER_PIDS_FILE) appendFileSync(process.env.HOLDER_PIDS_FILE, `${holder.pid}\n`)
}

/** Starts the descendant holding stdout, then exits. */
function exitHolding(last?: unknown): never {
  holdStdout()
  // A pipe's writes are synchronous on Linux: the answer is in the pipe before the exit.
  if (last !== undefined) send(last)
  process.exit(6)
}

process.on('SIGUSR2', () => exitHolding())

const helperKind = process.env.HOLDER_START_HELPER
if (helperKind) {
  // Named, and anything read, only once the helper is what it claims: a stubborn one ignores
  // SIGTERM from then on. Named at spawn, a stop ladder starting at once could end it before
  // its handler was set (a busy machine), and a test saw it gone. Its own pipe tells when; the
  // pipe is closed after, so it holds none of the gateway's nor ours.
  const code =
    helperKind === 'stubborn'
      ? "process.on('SIGTERM', () => {}); process.stdout.write('ready'); setTimeout(() => {}, 600000)"
      : "process.stdout.write('ready'); setTimeout(() => {}, 600000)"
  const helper = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'ignore'] })
  await once(helper.stdout!, 'data')
  helper.stdout!.destroy()
  if (process.env.HOLDER_PIDS_FILE) appendFileSync(process.env.HOLDER_PIDS_FILE, `${helper.pid}\n`)
}

const TOOLS = ['echo', 'hang', 'exit', 'stall'].map((name) => ({
  name,
  inputSchema: { type: 'object', properties: {} },
}))

createInterface({ input: process.stdin }).on('line', (line) => {
  let m: {
    id?: string | number
    method?: string
    params?: { protocolVersion?: string; name?: string; arguments?: { answer?: boolean } }
  }
  try {
    m = JSON.parse(line)
  } catch {
    return
  }
  if (m.id === undefined || typeof m.method !== 'string') return
  const result = (r: unknown) => ({ jsonrpc: '2.0', id: m.id, result: r })
  switch (m.method) {
    case 'initialize':
      return send(
        result({
          protocolVersion: m.params?.protocolVersion ?? '2025-11-25',
          capabilities: { tools: {} },
          serverInfo: { name: 'holder', version: '1.0.0' },
        }),
      )
    case 'tools/list':
      return send(result({ tools: TOOLS }))
    case 'tools/call': {
      const name = m.params?.name
      if (name === 'hang') return
      if (name === 'stall') {
        holdStdout()
        send(result({ content: [{ type: 'text', text: 'stalled' }] }))
        // Held for ten minutes at most, reading nothing: its stdin pipe fills.
        return void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600_000)
      }
      if (name === 'exit')
        return exitHolding(
          m.params?.arguments?.answer
            ? result({ content: [{ type: 'text', text: 'last words' }] })
            : undefined,
        )
      return send(result({ content: [{ type: 'text', text: `echo ${process.pid}` }] }))
    }
    default:
      return send(result({}))
  }
})
