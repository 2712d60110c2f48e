// A tool from the registry that a test file runs several times through npx (`npx -y -p <pkg>…`),
// resolved once: npx takes ~1 s of CPU at every run to resolve its packages, even from its cache.
import { spawn } from 'node:child_process'
import { delimiter, dirname } from 'node:path'

const resolved = new Map<string, Promise<string>>()

/**
 * The `.bin` folder in which npx finds `bin` with `packages` installed (each given to npx as
 * `-p`), from one `npx -c` run per file and tool. Rejects, with npx's output, if npx cannot.
 */
export function npxBin(packages: string[], bin: string, cwd?: string): Promise<string> {
  const key = JSON.stringify([packages, bin])
  let found = resolved.get(key)
  if (found === undefined) {
    found = new Promise((resolve, reject) => {
      const args = ['-y', ...packages.flatMap((p) => ['-p', p]), '-c', `command -v ${bin}`]
      const child = spawn('npx', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (err += d.toString()))
      child.on('error', reject)
      child.on('close', (code) => {
        const path = out.trim().split('\n').at(-1) ?? ''
        if (code === 0 && path.endsWith(`/${bin}`)) resolve(dirname(path))
        else reject(new Error(`npx could not resolve ${bin} (exit ${code}):\n${err}${out}`))
      })
    })
    resolved.set(key, found)
  }
  return found
}

/** The environment npx gives the tool: its `.bin` folder first in PATH (its shebang's `node`). */
export function npxEnv(bin: string): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` }
}
