// Resource URIs: only the canonical form (the one a server reads) is decided; every other
// spelling of a URI is refused, so a rule on one spelling cannot be passed by another.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { nonCanonicalUri } from '../../gateway/policy/resource-uri.js'

describe('nonCanonicalUri', () => {
  const accepted = [
    'fixture://hello',
    'test://static/resource/1',
    'file:///tmp/notes.txt',
    'file:///tmp/a%20b',
    'file:///tmp/caf%C3%A9',
    'https://example.com/x',
    'db://warehouse/table?limit=10',
    'urn:example:thing',
    'fixture://hello/%2F',
  ]
  for (const uri of accepted)
    test(`accepts ${JSON.stringify(uri)}`, () => assert.equal(nonCanonicalUri(uri), undefined))

  // Each of these names fixture://hello (or a neighbour) to some server while a rule reads another string.
  const refused: [string, RegExp][] = [
    ['fixture://hello ', /canonical/],
    [' fixture://hello', /canonical/],
    ['fixture://hello\t', /canonical/],
    ['fixture://hel\tlo', /canonical/],
    ['fixture://hel\nlo', /canonical/],
    ['fixture://hello\n', /canonical/],
    ['fixture://hello\r', /canonical/],
    ['fixture://hello\r\n', /canonical/],
    ['fixture://hello\u0000', /canonical/],
    ['\u0000fixture://hello', /canonical/],
    ['fixture://hello\u001f', /canonical/],
    ['\u000bfixture://hello', /canonical/],
    ['\ffixture://hello', /canonical/],
    ['FIXTURE://hello', /canonical/],
    ['Fixture://hello', /canonical/],
    ['fixture://HELLO', /upper-case letters in its host/],
    ['fixture://Hello', /upper-case letters in its host/],
    ['fixture://hello/../hello', /canonical/],
    ['fixture://hello/./x', /canonical/],
    ['fixture://hello/%2e%2e/x', /canonical/],
    ['fixture://hello/%2E%2E/x', /canonical/],
    ['fixture://hel%6co', /need no encoding/],
    ['fixture://hello/%41', /need no encoding/],
    ['fixture://hello/%7e', /need no encoding/],
    ['fixture://hello/%5f', /need no encoding/],
    ['fixture://hello/%2d', /need no encoding/],
    ['fixture://hello/%2f', /lower-case percent/],
    ['fixture://hello/%c3%a9', /lower-case percent/],
    ['fixture://hello/é', /canonical/],
    ['fixture://hello/\u200b', /canonical/],
    ['fixture://hello/a b', /canonical/],
    ['http://example.com', /canonical.*"http:\/\/example\.com\/"/],
    ['HTTP://example.com/x', /canonical/],
    ['http://EXAMPLE.com/x', /canonical/],
    ['http://example.com:80/x', /canonical/],
    ['http://example.com/a\\b', /canonical/],
    ['fixture://hello#frag', /fragment/],
    ['fixture://hello#', /fragment/],
    ['', /empty/],
    ['hello', /not an absolute URI/],
    ['/fixture/hello', /not an absolute URI/],
    ['://hello', /not an absolute URI/],
  ]
  for (const [uri, why] of refused)
    test(`refuses ${JSON.stringify(uri)}`, () =>
      assert.match(nonCanonicalUri(uri) ?? 'accepted', why))

  const templates: [string, RegExp | undefined][] = [
    ['file:///private/{k}', undefined],
    ['fixture://notes/{+path}{?q}', undefined],
    ['file:///private/{k} ', /canonical/],
    ['FILE:///private/{k}', /canonical/],
    ['file:///private/{k}\t', /canonical/],
    ['file:///priv%61te/{k}', /need no encoding/],
  ]
  for (const [t, why] of templates) {
    test(`template ${JSON.stringify(t)} ${why ? 'refused' : 'accepted'}`, () => {
      if (why === undefined) assert.equal(nonCanonicalUri(t, true), undefined)
      else assert.match(nonCanonicalUri(t, true) ?? 'accepted', why)
    })
  }
})
