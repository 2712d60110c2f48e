/**
 * MCP's own method names (2024-11-05 to 2026-07-28, both directions), and the one question the
 * gateway asks of any other name: is it one of them in disguise? Policy decides on exact names
 * (`tools/call`, `tasks/get`, `tools/list`…); a server that lower-cases, trims or normalises the
 * method it reads would run `TOOLS/CALL`, `tools/call ` or `ｔools/call` (fullwidth) as
 * `tools/call` with no per-tool decision, and answer `Tools/List` unfiltered. So a name that is
 * not exactly MCP's but folds to one of MCP's is refused in both directions; a custom method
 * that folds to nothing known passes (servers may have their own).
 */
export const MCP_METHODS: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'completion/complete',
  'logging/setLevel',
  'tasks/get',
  'tasks/result',
  'tasks/list',
  'tasks/cancel',
  'server/discover',
  'subscriptions/listen',
  'sampling/createMessage',
  'elicitation/create',
  'roots/list',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/message',
  'notifications/roots/list_changed',
  'notifications/resources/updated',
  'notifications/resources/list_changed',
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/tasks/status',
  'notifications/elicitation/complete',
  'notifications/subscriptions/acknowledged',
])

/** What the fold removes: white space, separators, controls, format and default-ignorable characters. */
const IGNORED = /[\p{White_Space}\p{Z}\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}]/gu

/**
 * The longest name, once {@link IGNORED} is removed, that NFKC is asked to fold: 6 times MCP's
 * longest name (40), as every character of a disguise becomes at least one of MCP's and takes at
 * most 3 UTF-16 units (`𝐈` and a combining dot fold to `i`). A longer name folds to no MCP name
 * and is only compared as it is: ICU's NFKC sorts a run of combining marks in quadratic time (1 MB
 * of alternating U+0301 U+0316 in a method name took 80 s of the event loop).
 */
const FOLD_MAX = 240

/**
 * What a name is taken for when compared to MCP's: Unicode NFKC (fullwidth and compatibility
 * forms become ASCII: `ｔ` → `t`, `ſ` → `s`, `／` → `/`), then every white space, separator,
 * control, format and default-ignorable character removed (spaces and tabs anywhere, NUL,
 * zero-width space and joiners, BOM, soft hyphen, bidi marks, variation selectors), then case
 * folded as upper-then-lower case, so `ı` and `K` (Kelvin) meet `i` and `k` as well, and `İ`
 * (whose lower case is `i` and a combining dot, or `i` alone in Go's strings.ToLower, Java's
 * Character.toLowerCase and C's towlower) meets `i`. A name still longer than {@link FOLD_MAX}
 * once the ignored characters are removed is returned with them removed and no more.
 */
export function foldMethod(method: string): string {
  const bare = method.replace(IGNORED, '')
  if (bare.length > FOLD_MAX) return bare
  return bare
    .normalize('NFKC')
    .replace(IGNORED, '')
    .toUpperCase()
    .toLowerCase()
    .replace(/i\u0307/g, 'i')
}

const FOLDED: ReadonlyMap<string, string> = new Map([...MCP_METHODS].map((m) => [foldMethod(m), m]))

/**
 * The MCP method `method` is a disguise of, or undefined: undefined for MCP's own names
 * exactly as the specification spells them, and for names that fold to none of them.
 */
export function disguisedMethod(method: string): string | undefined {
  if (MCP_METHODS.has(method)) return undefined
  const meant = FOLDED.get(foldMethod(method))
  if (meant !== undefined) return meant
  // A server in C reads a name only up to its first NUL (cJSON, json-c: `strcmp`), so
  // `tools/call\u0000x` would run as `tools/call`.
  const nul = method.indexOf('\u0000')
  return nul < 0 ? undefined : FOLDED.get(foldMethod(method.slice(0, nul)))
}

/**
 * The text of the -32601 that refuses `method` when it is MCP's in disguise, or undefined: the
 * one wording for both directions.
 */
export function disguiseRefusal(method: string): string | undefined {
  const meant = disguisedMethod(method)
  if (meant === undefined) return undefined
  return `Method not found: ${JSON.stringify(method)} (MCP method names are exact: ${meant})`
}
