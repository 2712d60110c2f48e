/**
 * `text` as `\uXXXX` escapes, one per UTF-16 unit (a tag character is two): how a character a
 * terminal would act on or hide is shown to a person instead (the pretty log, the CLI's output).
 */
export function unitEscapes(text: string): string {
  let out = ''
  for (let i = 0; i < text.length; i++)
    out += `\\u${text.charCodeAt(i).toString(16).padStart(4, '0')}`
  return out
}
