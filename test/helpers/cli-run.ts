// The `mcp-edge` command line as an operator runs it: a real process, its exit code and output.
import { type SpawnOptions, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The built CLI's entry point. */
export const CLI_MAIN = fileURLToPath(new URL('../../gateway/main.js', import.meta.url))

/**
 * Runs `mcp-edge args` to completion, `stdin` piped in (`o`: as another uid, in another
 * folder…); resolves its exit code and output.
 */
export function runCli(
  args: string[],
  stdin = '',
  o: Pick<SpawnOptions, 'uid' | 'gid' | 'cwd' | 'env'> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI_MAIN, ...args], { ...o, stdio: 'pipe' })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('close', (code) => resolve({ code, stdout, stderr }))
    p.stdin.on('error', () => {})
    p.stdin.end(stdin)
  })
}
