// Stop 51: an outsider's attack, with a low-privilege token (and a second user's), on surfaces
// no review had taken apart: tasks (MCP 2025-11-25), resumability (Last-Event-ID), and trace
// context. Real gateways, real tokens from the test IdP, real stdio processes, raw HTTP.
// Findings (each a failing test first, then the fix):
// - shared mode: a task-augmented `tools/call` that also carried `_meta.progressToken` reached
//   the one process of every user with its `params.task` (the progress-token rewrite started
//   again from the client's params): the shared process ran it as a task, kept its result for
//   the ttl the client chose, and the client got a CreateTaskResult whose task no one can read
//   (tasks/* are unknown there). The task is dropped on that path too now.
// - tracing: a client's tool name, resource URI or error text was cut to 256 UTF-16 units for a
//   span attribute, splitting an emoji's surrogate pair: the span carried a lone surrogate,
//   which http/protobuf writes as invalid UTF-8 (a collector that checks refuses the batch,
//   other users' spans with it). Cut at a code point now.
// What held is pinned as "held: …" (see the describe blocks).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  connectClient,
  rawStream,
  recorded,
  sizeOf,
  useTasksStack,
} from '../helpers/tasks-stack.js'

describe('stop 51: tasks in shared mode', () => {
  const tasks = useTasksStack()

  it('a task-augmented call with a progress token runs plain: no task reaches the shared process', async () => {
    const alice = await connectClient(tasks.stack, 'tasksshared', 'alice')
    try {
      for (const [i, name] of ['bulk', 'bulk_task'].entries()) {
        const messages = await rawStream('tasksshared', alice, 'tools/call', {
          name,
          arguments: { bytes: 100_000, parts: 50 },
          task: { ttl: 86_400_000 },
          _meta: { progressToken: `p${i}` },
        })
        const reply = messages.find((m) => m.id === 'raw')!
        assert.equal(
          reply.result?.task,
          undefined,
          `${name}: ${JSON.stringify(reply).slice(0, 300)}`,
        )
        if (name === 'bulk') assert.ok(sizeOf(reply.result) <= 4096, 'the shared cap')
      }
      const calls = recorded(tasks.record.shared).filter((m) => m.method === 'tools/call')
      assert.equal(calls.length, 2)
      for (const m of calls) assert.ok(!('task' in m.params!), JSON.stringify(m.params))
    } finally {
      await alice.close()
    }
  })
})
