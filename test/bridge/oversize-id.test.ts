// Which request a line too large to hold answered, from its kept ends only: the SDKs' shapes
// give their id; anything that is not plainly a response (a request, a notification, an id
// inside the result, in a string, cut, or two different ids) gives none.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { oversizeReplyId } from '../../gateway/bridge/oversize-id.js'
import { OVERSIZE_EDGE_BYTES } from '../../gateway/bridge/stdio-frames.js'

const PAD = 'x'.repeat(3 * OVERSIZE_EDGE_BYTES)

/** The two ends the reader keeps of `line`. */
function ends(line: string): [Buffer, Buffer] {
  const b = Buffer.from(line)
  return [b.subarray(0, OVERSIZE_EDGE_BYTES), b.subarray(-OVERSIZE_EDGE_BYTES)]
}
const idOf = (line: string) => oversizeReplyId(...ends(line))

describe('oversizeReplyId', () => {
  const cases: { name: string; line: string; want: string | number | undefined }[] = [
    {
      name: 'TS SDK result: id last',
      line: `{"result":{"content":[{"type":"text","text":"${PAD}"}]},"jsonrpc":"2.0","id":7}`,
      want: 7,
    },
    {
      name: 'TS SDK result, a rewritten string id',
      line: `{"result":{"t":"${PAD}"},"jsonrpc":"2.0","id":"s1f"}`,
      want: 's1f',
    },
    {
      name: 'Python SDK result: id first',
      line: `{"jsonrpc":"2.0","id":12,"result":{"t":"${PAD}"}}`,
      want: 12,
    },
    {
      name: 'an error reply, id first',
      line: `{"jsonrpc":"2.0","id":"a\\"b","error":{"code":-1,"message":"${PAD}"}}`,
      want: 'a"b',
    },
    {
      name: 'whitespace and CRLF',
      line: `{ "result" : "${PAD}" ,\t"jsonrpc" : "2.0" , "id" : 3 }\r`,
      want: 3,
    },
    {
      name: 'the same id at both ends',
      line: `{"jsonrpc":"2.0","id":4,"result":"${PAD}","id":4}`,
      want: 4,
    },
    {
      name: 'two different ids',
      line: `{"jsonrpc":"2.0","id":4,"result":"${PAD}","id":5}`,
      want: undefined,
    },
    {
      name: 'a server request, TS order (method first, id last)',
      line: `{"method":"sampling/createMessage","params":{"t":"${PAD}"},"jsonrpc":"2.0","id":0}`,
      want: undefined,
    },
    {
      name: 'a server request, Python order',
      line: `{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{"t":"${PAD}"}}`,
      want: undefined,
    },
    {
      name: 'a notification',
      line: `{"method":"notifications/message","params":{"data":"${PAD}"},"jsonrpc":"2.0"}`,
      want: undefined,
    },
    {
      name: 'an id inside the result, at the end',
      line: `{"jsonrpc":"2.0","result":{"t":"${PAD}","x":{"jsonrpc":"2.0","id":5}}}`,
      want: undefined,
    },
    {
      name: 'an id inside the result, at the start',
      line: `{"result":{"jsonrpc":"2.0","id":5,"t":"${PAD}"},"jsonrpc":"2.0"}`,
      want: undefined,
    },
    {
      name: 'an id in a string (a file that holds JSON) at the line end',
      line: `{"jsonrpc":"2.0","result":"${PAD},\\"jsonrpc\\":\\"2.0\\",\\"id\\":5}"}`,
      want: undefined,
    },
    {
      name: 'an id in a string, and the real id after it',
      line: `{"result":{"t":"${PAD}\\",\\"id\\":5}"},"jsonrpc":"2.0","id":6}`,
      want: 6,
    },
    {
      name: 'a key that ends in an escaped "id',
      line: `{"jsonrpc":"2.0","result":"${PAD}","x\\"id":5}`,
      want: undefined,
    },
    {
      name: 'a key after an even run of backslashes is a key',
      line: `{"result":"${PAD}\\\\","jsonrpc":"2.0","id":8}`,
      want: 8,
    },
    {
      name: 'no jsonrpc member',
      line: `{"result":"${PAD}","id":5}`,
      want: undefined,
    },
    {
      name: 'jsonrpc 1.0',
      line: `{"result":"${PAD}","jsonrpc":"1.0","id":5}`,
      want: undefined,
    },
    { name: 'a null id', line: `{"result":"${PAD}","jsonrpc":"2.0","id":null}`, want: undefined },
    { name: 'an object id', line: `{"result":"${PAD}","jsonrpc":"2.0","id":{}}`, want: undefined },
    {
      name: 'an id too large for a number',
      line: `{"result":"${PAD}","jsonrpc":"2.0","id":1e999}`,
      want: undefined,
    },
    {
      name: 'not a number',
      line: `{"result":"${PAD}","jsonrpc":"2.0","id":0x10}`,
      want: undefined,
    },
    {
      name: 'no closing brace',
      line: `{"result":"${PAD}","jsonrpc":"2.0","id":5`,
      want: undefined,
    },
    { name: 'junk', line: `${PAD}"id":5}`, want: undefined },
    { name: 'an array', line: `[{"jsonrpc":"2.0","id":5,"result":"${PAD}"}]`, want: undefined },
  ]
  for (const c of cases) it(c.name, () => assert.equal(idOf(c.line), c.want))

  it('an id cut by the kept ends is not read', () => {
    // The head ends inside the id's number: 12 is not 1.
    const head = Buffer.from('{"jsonrpc":"2.0","id":1')
    assert.equal(oversizeReplyId(head, Buffer.from('"}')), undefined)
    // The tail starts inside it: 123 is not 23.
    assert.equal(oversizeReplyId(Buffer.from('{"result":"'), Buffer.from('23}')), undefined)
    assert.equal(
      oversizeReplyId(Buffer.from('{"result":"'), Buffer.from('x","jsonrpc":"2.0","id":"ab"}')),
      'ab',
    )
    // The tail starts inside an id string: its opening quote is not there.
    assert.equal(
      oversizeReplyId(Buffer.from('{"jsonrpc":"2.0","result":"'), Buffer.from('bc"}')),
      undefined,
    )
    // The tail starts inside a run of backslashes: whether the quote after it ends a string is unknown.
    assert.equal(
      oversizeReplyId(Buffer.from('{"result":"'), Buffer.from('\\\\"x","jsonrpc":"2.0","id":"y"}')),
      'y',
    )
  })
})
