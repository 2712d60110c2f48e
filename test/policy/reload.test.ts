import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { DEFAULT_RELOAD_DEBOUNCE_MS } from '../../gateway/config/schema.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import { watchPolicy, type ReloadResult } from '../../gateway/policy/reload.js'
import { createPolicyStore } from '../../gateway/policy/store.js'
import { waitFor } from '../helpers/wait-for.js'

const policy = (scope: string) => `servers:\n  s:\n    tools:\n      t: ["${scope}"]\n`

/** Resolves with the next reload result. */
async function nextResult(results: ReloadResult[]): Promise<ReloadResult> {
  const seen = results.length
  await waitFor(() => results.length > seen, 'a reload')
  return results.at(-1)!
}

describe('watchPolicy', () => {
  const dirs: string[] = []
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

  it('sees a Kubernetes ConfigMap update (an atomic swap of the ..data symlink)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mcp-edge-cm-'))
    dirs.push(root)
    // The kubelet's layout: ..<timestamp>/ holds the files, ..data -> ..<timestamp>, name -> ..data/name.
    mkdirSync(join(root, '..v1'))
    writeFileSync(join(root, '..v1', 'p.yaml'), policy('a:one'))
    symlinkSync('..v1', join(root, '..data'))
    symlinkSync(join('..data', 'p.yaml'), join(root, 'p.yaml'))
    const store = createPolicyStore(loadPolicy(root))
    const results: ReloadResult[] = []
    const reloader = watchPolicy(root, store, DEFAULT_RELOAD_DEBOUNCE_MS, (r) => results.push(r))
    try {
      const next = nextResult(results)
      mkdirSync(join(root, '..v2'))
      writeFileSync(join(root, '..v2', 'p.yaml'), policy('b:two'))
      symlinkSync('..v2', join(root, '..data_tmp'))
      renameSync(join(root, '..data_tmp'), join(root, '..data'))
      const r = await next
      assert.equal(r.ok, true)
      const rule = store.current.servers.get('s')!.rules.tools[0]!
      assert.deepEqual(rule.effect, { kind: 'scopes', scopes: ['b:two'] })
    } finally {
      reloader.close()
    }
  })

  it('a single watched file replaced by rename is reloaded', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mcp-edge-file-'))
    dirs.push(root)
    const file = join(root, 'p.yaml')
    writeFileSync(file, policy('a:one'))
    const store = createPolicyStore(loadPolicy(file))
    const results: ReloadResult[] = []
    const reloader = watchPolicy(file, store, DEFAULT_RELOAD_DEBOUNCE_MS, (r) => results.push(r))
    try {
      const next = nextResult(results)
      writeFileSync(join(root, 'p.yaml.tmp'), policy('c:three'))
      renameSync(join(root, 'p.yaml.tmp'), file)
      assert.equal((await next).ok, true)
      assert.deepEqual(store.current.servers.get('s')!.rules.tools[0]!.effect, {
        kind: 'scopes',
        scopes: ['c:three'],
      })
    } finally {
      reloader.close()
    }
  })

  it('a chain of links (etc/p -> mid/p -> real/p): a re-pointed middle link is applied', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mcp-edge-chain-'))
    dirs.push(root)
    for (const sub of ['etc', 'mid', 'real', 'real2']) mkdirSync(join(root, sub))
    writeFileSync(join(root, 'real', 'p.yaml'), policy('a:one'))
    writeFileSync(join(root, 'real2', 'p.yaml'), policy('b:two'))
    symlinkSync(join(root, 'real', 'p.yaml'), join(root, 'mid', 'p.yaml'))
    const file = join(root, 'etc', 'p.yaml')
    symlinkSync(join(root, 'mid', 'p.yaml'), file)
    const store = createPolicyStore(loadPolicy(file))
    const scopes = () => {
      const e = store.current.servers.get('s')!.rules.tools[0]!.effect
      return e.kind === 'scopes' ? e.scopes[0] : e.kind
    }
    const results: ReloadResult[] = []
    const reloader = watchPolicy(file, store, 20, (r) => results.push(r))
    try {
      // The operator moves production to another policy by re-pointing the middle link.
      symlinkSync(join(root, 'real2', 'p.yaml'), join(root, 'mid', 'p.yaml.new'))
      renameSync(join(root, 'mid', 'p.yaml.new'), join(root, 'mid', 'p.yaml'))
      await waitFor(() => scopes() === 'b:two', 'the re-pointed middle link was applied')
      // And edits that file, where it lives.
      writeFileSync(join(root, 'real2', 'p.yaml'), policy('c:three'))
      await waitFor(() => scopes() === 'c:three', "the new target's edit was applied")
      assert.ok(results.every((r) => r.ok))
    } finally {
      reloader.close()
    }
  })

  it('a loop of links is a refused reload, the last good policy stays; undone, it applies', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mcp-edge-loop-'))
    dirs.push(root)
    for (const sub of ['etc', 'mid', 'real']) mkdirSync(join(root, sub))
    writeFileSync(join(root, 'real', 'p.yaml'), policy('a:one'))
    symlinkSync(join(root, 'real', 'p.yaml'), join(root, 'mid', 'p.yaml'))
    const file = join(root, 'etc', 'p.yaml')
    symlinkSync(join(root, 'mid', 'p.yaml'), file)
    const store = createPolicyStore(loadPolicy(file))
    const results: ReloadResult[] = []
    const reloader = watchPolicy(file, store, 20, (r) => results.push(r))
    const repoint = (link: string, target: string) => {
      symlinkSync(target, `${link}.new`)
      renameSync(`${link}.new`, link)
    }
    try {
      // real/p now points back at mid/p: etc/p -> mid/p -> real/p -> mid/p -> ...
      repoint(join(root, 'real', 'p.yaml'), join(root, 'mid', 'p.yaml'))
      const refused = await waitFor(() => results.find((r) => !r.ok), 'the loop was refused')
      assert.match(refused.ok ? '' : refused.problems.join('\n'), /ELOOP/)
      assert.deepEqual(store.current.servers.get('s')!.rules.tools[0]!.effect, {
        kind: 'scopes',
        scopes: ['a:one'],
      })
      // An explicit reload (SIGHUP) on the loop returns, refused too.
      assert.equal(reloader.reload().ok, false)
      // Undone: the middle link now leads to a file in a folder nothing watched before.
      mkdirSync(join(root, 'real2'))
      writeFileSync(join(root, 'real2', 'p.yaml'), policy('b:two'))
      repoint(join(root, 'real', 'p.yaml'), join(root, 'real2', 'p.yaml'))
      await waitFor(
        () => results.at(-1)?.ok,
        () => JSON.stringify(results),
      )
      writeFileSync(join(root, 'real2', 'p.yaml'), policy('c:three'))
      await waitFor(
        () =>
          (store.current.servers.get('s')!.rules.tools[0]!.effect as { scopes?: string[] })
            .scopes?.[0] === 'c:three',
        "the edit past the former loop's end was applied",
      )
    } finally {
      reloader.close()
    }
  })
})
