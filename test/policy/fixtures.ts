import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before } from 'node:test'
import type { Principal } from '../../gateway/auth/principal.js'

/** A temp folder of policy files. */
export interface PolicyDir {
  readonly dir: string
  /** Writes `text` to `name` (folders created) and returns the absolute path. */
  file(name: string, text: string): Promise<string>
}

/** A temp folder for policy files, created before and removed after the calling test file. */
export function policyDir(): PolicyDir {
  let dir = ''
  // Top-level hooks may start together (Node 20): a file() called from another before hook
  // waits for the folder instead of writing to the working directory (which is how a stray
  // policy.yaml kept appearing at the repository root).
  let made: Promise<string> | undefined
  const ready = () =>
    (made ??= mkdtemp(path.join(os.tmpdir(), 'mcp-edge-policy-')).then((d) => (dir = d)))
  before(ready)
  after(async () => rm(await ready(), { recursive: true, force: true }))
  return {
    get dir() {
      return dir
    },
    async file(name, text) {
      const file = path.join(await ready(), name)
      await mkdir(path.dirname(file), { recursive: true })
      await writeFile(file, text)
      return file
    },
  }
}

/**
 * A principal holding token `scopes` and `roles`. Its token carries a scope claim when it has
 * scopes (else roles decide alone), unless `hasScopeClaim` says otherwise.
 */
export function who(
  scopes: string[] = [],
  roles: string[] = [],
  sub = 'user-1',
  claims: Record<string, unknown> = {},
  hasScopeClaim = scopes.length > 0,
): Principal {
  return {
    iss: 'http://idp',
    sub,
    clientId: 'client',
    scopes: new Set(scopes),
    hasScopeClaim,
    roles: new Set(roles),
    exp: undefined,
    claims: { sub, ...claims },
  }
}

/** The policy most cases use; comments note what each rule shows. */
export const POLICY = `roles:
  viewer: [mcp:read]
  editor: [mcp:read, mcp:write]
  tooler: ["tools:*"]
  root: ["*"]
servers:
  s:
    access: [mcp:read]
    tools:
      danger_*: deny
      danger_ok: allow        # never reached: the deny above matches first
      public_*: allow
      write_*: [mcp:write]
      both: [mcp:write, mcp:admin]
      scoped: ["tools:scoped"]
      reread: [mcp:read, mcp:read]
      "*_note": [mcp:read]
    prompts:
      greet: allow
    resources:
      "file:///public/*": allow
      "file:///private/*": [mcp:admin]
  open:
    tools:
      "*": allow
`

/** A YAML text from its lines. */
export function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`
}
