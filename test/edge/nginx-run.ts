// nginx as a test child: a self-signed certificate, the config rendered by nginx/render.mjs,
// and the nginx binary run in the foreground with every path inside a temp dir.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, watch } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root (tests run from dist/test/edge). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** True when an `nginx` binary is on PATH. */
export function hasNginx(): boolean {
  return spawnSync('nginx', ['-v']).status === 0
}

/**
 * A self-signed certificate (cert.pem, key.pem in `dir`) for these DNS names, the first its
 * subject, and IP addresses; returns the PEM paths and the certificate.
 */
export function selfSignedCert(
  dir: string,
  names = ['localhost'],
  ips = ['127.0.0.1'],
): { cert: string; key: string; pem: string } {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  const san = [...names.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(',')
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${names[0]}`,
      '-addext',
      `subjectAltName=${san}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'pipe' },
  )
  return { cert, key, pem: readFileSync(cert, 'utf8') }
}

/** Runs `node nginx/render.mjs` with these settings; returns the config file's path. */
export function renderConfig(dir: string, settings: Record<string, string>): string {
  const out = join(dir, 'nginx.conf')
  const pairs = Object.entries(settings).map(([k, v]) => `${k}=${v}`)
  const args = [join(ROOT, 'nginx/render.mjs'), '--out', out, ...pairs]
  const run = spawnSync(process.execPath, args, { encoding: 'utf8' })
  if (run.status !== 0) throw new Error(`render.mjs failed: ${run.stderr}`)
  return out
}

/** A running nginx. */
export interface Nginx {
  /** Everything nginx wrote to stderr so far. */
  stderr(): string
  /** Fast shutdown (SIGTERM: open event streams are cut, not awaited), awaited. */
  stop(): Promise<void>
}

/** `-g` directives: foreground, pid file and error log in the temp dir. */
const globals = (dir: string) => `daemon off; pid ${join(dir, 'nginx.pid')}; error_log stderr;`

/** `nginx -t` on the rendered config: returns nginx's verdict text, throws if it fails. */
export function checkConfig(dir: string, conf: string): string {
  const args = ['-t', '-p', dir, '-c', conf, '-g', `pid ${join(dir, 'nginx.pid')};`]
  const run = spawnSync('nginx', args, { encoding: 'utf8' })
  if (run.status !== 0) throw new Error(`nginx -t failed:\n${run.stderr}`)
  return run.stderr
}

/**
 * Starts nginx in the foreground. Resolves once its pid file exists: the master writes it
 * after binding every listening socket, so connections are accepted from then on.
 */
export async function startNginx(dir: string, conf: string): Promise<Nginx> {
  const pidFile = join(dir, 'nginx.pid')
  let stderr = ''
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', conf, '-g', globals(dir)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const watcher = watch(dir)
  try {
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '') resolve()
      }
      watcher.on('change', check)
      child.once('exit', (code) =>
        reject(new Error(`nginx exited (${code}) before ready:\n${stderr}`)),
      )
      check()
    })
  } finally {
    watcher.close()
  }
  return {
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}

/** Runs nginx's rendered config in `dir` with these settings (a root master keeps its workers root). */
export async function runNginx(dir: string, settings: Record<string, string>): Promise<Nginx> {
  const conf = renderConfig(dir, {
    LISTEN: '127.0.0.1',
    WORKER_PROCESSES: '1',
    TEMP_DIR: dir,
    ERROR_LOG: join(dir, 'error.log'),
    ACCESS_LOG: join(dir, 'access.log'),
    // A root master hands its workers to "nobody", who cannot enter the 0700 temp dir.
    ...(process.getuid?.() === 0 ? { NGINX_USER: 'root' } : {}),
    ...settings,
  })
  checkConfig(dir, conf)
  return startNginx(dir, conf)
}
