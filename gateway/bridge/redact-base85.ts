/**
 * Base85 (Ascii85 of Adobe and Python's a85encode, RFC 1924's of Python's b85encode and git,
 * ZeroMQ's Z85): the encodings of a value's whole 4-byte groups, searched as written.
 */

const ASCII85 = Array.from({ length: 85 }, (_, i) => String.fromCharCode(33 + i)).join('')
const RFC1924 =
  '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~'
const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'

/**
 * A value's bytes as each base85 alphabet writes them, at each of the four places a 4-byte
 * group may start in it (the value anywhere in a longer encoding): its whole groups from there,
 * 5 characters each, at least one. A group is a function of its 4 bytes alone, so these
 * characters stand in any encoding holding the value there: what is left showing is at most 3
 * bytes at either end, in a group shared with the bytes around. Encoded apart from the rest
 * (searching a line as base85 would read nearly every line: every printable character is one).
 */
export function base85Forms(bytes: Buffer): string[] {
  const forms: string[] = []
  for (let skip = 0; skip < 4; skip++) {
    const groups = Math.floor((bytes.length - skip) / 4)
    if (groups < 1) continue
    for (const alphabet of [ASCII85, RFC1924, Z85]) {
      let text = ''
      for (let g = 0; g < groups; g++) {
        let v = bytes.readUInt32BE(skip + 4 * g)
        let group = ''
        for (let k = 0; k < 5; k++) {
          group = alphabet[v % 85]! + group
          v = Math.floor(v / 85)
        }
        text += group
      }
      forms.push(text)
    }
  }
  return forms
}
