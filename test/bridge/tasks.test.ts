// Task bookkeeping: which tool each task of a session runs, bounded; where tasks are not
// offered, what the gateway removes from capabilities, tool lists and requests.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  asksForTask,
  createdTaskId,
  TaskBook,
  toolsWithoutTasks,
  withoutTask,
  withoutTasksCapability,
} from '../../gateway/bridge/tasks.js'
import { taskIdProblem } from '../../gateway/policy/target.js'

const created = (taskId: unknown) => ({ task: { taskId, status: 'working' } })

describe('TaskBook', () => {
  test('remembers the tool of a task the session saw created, until it ends', () => {
    const book = new TaskBook()
    book.created(created('t1'), 'bulk')
    assert.equal(book.toolOf('t1'), 'bulk')
    book.ended('t1')
    assert.equal(book.toolOf('t1'), undefined)
  })
  for (const [what, result] of [
    ['a plain tool result (the server ran it without a task)', { content: [] }],
    ['a non-string task id', created(42)],
    ['no task object', { task: 'x' }],
    ['not an object', 'x'],
  ] as const)
    test(`records nothing for ${what}`, () => {
      const book = new TaskBook()
      book.created(result, 'bulk')
      assert.equal(book.size, 0)
    })
  test('unknown, non-string and prototype ids are unknown', () => {
    const book = new TaskBook()
    for (const id of ['t9', 42, undefined, '__proto__', 'constructor'])
      assert.equal(book.toolOf(id), undefined)
  })
  test('bounded: past its size the oldest is forgotten (its result then gets the strictest cap)', () => {
    const book = new TaskBook(2)
    for (const id of ['a', 'b', 'c']) book.created(created(id), `tool-${id}`)
    assert.equal(book.size, 2)
    assert.equal(book.toolOf('a'), undefined)
    assert.equal(book.toolOf('c'), 'tool-c')
  })
  test('a task id a server reuses takes the newer tool', () => {
    const book = new TaskBook(2)
    book.created(created('a'), 'one')
    book.created(created('b'), 'two')
    book.created(created('a'), 'three')
    book.created(created('c'), 'four')
    assert.equal(book.toolOf('a'), 'three', 'refreshed, so b was the oldest')
    assert.equal(book.toolOf('b'), undefined)
  })
})

describe('where tasks are not offered', () => {
  test('params.task is dropped, the rest kept', () => {
    const params = { name: 'x', arguments: { a: 1 }, task: { ttl: 5 } }
    assert.equal(asksForTask(params), true)
    assert.deepEqual(withoutTask(params), { name: 'x', arguments: { a: 1 } })
    assert.equal(asksForTask({ name: 'x' }), false)
    assert.equal(asksForTask(undefined), false)
  })
  test('the tasks capability is removed, others kept', () => {
    assert.deepEqual(withoutTasksCapability({ tools: {}, tasks: { list: {} } }), { tools: {} })
    const none = { tools: {} }
    assert.equal(withoutTasksCapability(none), none)
  })
  test('tools lose taskSupport, keep the rest of execution', () => {
    const list = {
      tools: [
        { name: 'a', execution: { taskSupport: 'required', other: 1 } },
        { name: 'b' },
        'hostile',
      ],
    }
    assert.deepEqual(toolsWithoutTasks(list), {
      tools: [{ name: 'a', execution: { other: 1 } }, { name: 'b' }, 'hostile'],
    })
    const plain = { tools: [{ name: 'b' }] }
    assert.equal(toolsWithoutTasks(plain), plain, 'untouched when no tool has task support')
  })
  test('createdTaskId reads only a string id', () => {
    assert.equal(createdTaskId(created('t')), 't')
    assert.equal(createdTaskId(created({})), undefined)
  })
})

describe('taskIdProblem', () => {
  for (const [taskId, problem] of [
    ['0f'.repeat(16), undefined],
    ['x'.repeat(1024), undefined],
    ['x'.repeat(1025), /longer than 1024/],
    ['', /non-empty string/],
    [42, /non-empty string/],
    [null, /non-empty string/],
    [['a'], /non-empty string/],
    ['a\u0000b', /control characters/],
    ['a\r\nb', /control characters/],
    ['a\u0085b', /control characters/],
    ['a\u2028b', /control characters/],
  ] as const)
    test(`tasks/result ${JSON.stringify(taskId)?.slice(0, 20)}`, () => {
      const got = taskIdProblem('tasks/result', { taskId })
      if (problem === undefined) assert.equal(got, undefined)
      else assert.match(got ?? '', problem)
    })
  test('only the methods that name a task are checked', () => {
    assert.match(taskIdProblem('tasks/cancel', {}) ?? '', /non-empty string/)
    assert.match(taskIdProblem('tasks/get', undefined) ?? '', /non-empty string/)
    assert.equal(taskIdProblem('tasks/list', {}), undefined)
    assert.equal(taskIdProblem('tools/call', { taskId: 42 }), undefined)
  })
})
