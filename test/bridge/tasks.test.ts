// Task bookkeeping: which tool each task of a session runs, bounded; where tasks are not
// offered, what the gateway removes from capabilities, tool lists and requests.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DEFAULT_MAX_TASK_STATUS_LENGTH } from '../../gateway/config/schema.js'
import {
  asksForTask,
  capTaskStatus,
  createdTaskId,
  TaskBook,
  toolsWithoutTasks,
  withoutTask,
  withoutTasksCapability,
} from '../../gateway/bridge/tasks.js'
import { taskIdProblem } from '../../gateway/policy/target.js'

const created = (taskId: unknown) => ({ task: { taskId, status: 'working' } })

describe('TaskBook', () => {
  test('remembers the tool of a task the session saw created, after it ended too', () => {
    const book = new TaskBook()
    book.created(created('t1'), 'bulk')
    assert.equal(book.toolOf('t1'), 'bulk')
    // A client asks for a result again after losing the answer: still that tool's.
    book.ended('t1')
    assert.equal(book.toolOf('t1'), 'bulk')
  })
  test('past its cap, ended tasks are forgotten first, then the oldest live one', () => {
    const book = new TaskBook(3)
    for (const id of ['a', 'b', 'c']) book.created(created(id), `tool-${id}`)
    book.ended('b')
    book.created(created('d'), 'tool-d')
    assert.equal(book.toolOf('b'), undefined, 'the ended one went first')
    assert.deepEqual(['a', 'c', 'd'].map(book.toolOf), ['tool-a', 'tool-c', 'tool-d'])
    book.created(created('e'), 'tool-e')
    assert.equal(book.toolOf('a'), undefined, 'then the oldest live one')
    assert.equal(book.size, 3)
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

describe('capTaskStatus: a status message no longer than the limit', () => {
  const long = 'x'.repeat(DEFAULT_MAX_TASK_STATUS_LENGTH * 50)
  const task = (statusMessage: unknown) => ({ taskId: 't', status: 'working', statusMessage })
  const msg = (v: unknown) => (v as { statusMessage: string }).statusMessage
  for (const [method, wrap, unwrap] of [
    ['tasks/get', (t: object) => t, (r: unknown) => r],
    ['tasks/cancel', (t: object) => t, (r: unknown) => r],
    ['notifications/tasks/status', (t: object) => t, (r: unknown) => r],
    [
      'tasks/list',
      (t: object) => ({ tasks: [t] }),
      (r: unknown) => (r as { tasks: unknown[] }).tasks[0],
    ],
    ['tools/call', (t: object) => ({ task: t }), (r: unknown) => (r as { task: unknown }).task],
  ] as const)
    test(`${method}: cut to the limit, marked; a short one is the same object`, () => {
      const cut = msg(unwrap(capTaskStatus(method, wrap(task(long)))))
      assert.equal(cut.length, DEFAULT_MAX_TASK_STATUS_LENGTH)
      assert.ok(cut.endsWith('…'))
      const short = wrap(task('fine'))
      assert.equal(capTaskStatus(method, short), short)
    })
  test('a cut never splits a surrogate pair; other methods and shapes pass untouched', () => {
    const emoji = '😀'.repeat(DEFAULT_MAX_TASK_STATUS_LENGTH)
    const cut = msg(capTaskStatus('tasks/get', task(emoji)))
    assert.ok(cut.length <= DEFAULT_MAX_TASK_STATUS_LENGTH)
    assert.equal(Buffer.from(cut, 'utf8').toString('utf8'), cut)
    assert.ok(!/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(cut))
    for (const v of [task(42), 'x', null, { tasks: 'x' }])
      assert.equal(capTaskStatus('tasks/list', v), v)
    const big = task(long)
    assert.equal(capTaskStatus('resources/read', big), big)
  })
})
