// Prints where a profiled gateway's CPU went: self time by package, by file and by function.
//   node dist/test/bench/profile-summary.js [PROFILE.cpuprofile | DIR]... [--top N] [--whole]
//     [--callers NAME[,NAME…]]
// Default: every .cpuprofile in dist/bench-profile/ (BENCH_PROFILE=1 or =<row keys> npm run bench
// writes them; name one file to read one row's when several were profiled),
// each cut to the load run the bench recorded beside it (window-<pid>.json); --whole: the
// process's whole life (start-up included); --callers: the self time of the functions named
// (e.g. writeUtf8String,writev) by the gateway code that called them.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { callersOf, summarize, type CpuProfile, type SelfTime } from './cpu-profile.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** The .cpuprofile files named (a folder: every one in it), default the bench's profile folder. */
function profileFiles(args: string[]): string[] {
  const paths = args.length > 0 ? args : [join(ROOT, 'dist/bench-profile')]
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith('.cpuprofile'))
          .sort()
          .map((f) => join(p, f))
      : [p],
  )
}

/**
 * The load window the bench wrote for this profile's process (CPU.<date>.<time>.<pid>.…), and
 * the row it was, if any.
 */
function loadWindow(file: string): { us: [number, number]; row: string } | undefined {
  const pid = basename(file).split('.')[3]
  const sidecar = join(dirname(file), `window-${pid}.json`)
  if (!existsSync(sidecar)) return undefined
  const w = JSON.parse(readFileSync(sidecar, 'utf8')) as {
    loadWindowUs: [number, number]
    row: string
  }
  return { us: w.loadWindowUs, row: w.row }
}

function main(argv: string[]): number {
  const top = Number(argv[argv.indexOf('--top') + 1] ?? 25)
  const whole = argv.includes('--whole')
  const named = argv.includes('--callers') ? argv[argv.indexOf('--callers') + 1] : undefined
  const args = argv.filter(
    (a, i) => !a.startsWith('--') && argv[i - 1] !== '--top' && argv[i - 1] !== '--callers',
  )
  const files = profileFiles(args)
  if (files.length === 0) {
    console.error('no .cpuprofile found (run BENCH_PROFILE=1 npm run bench first)')
    return 1
  }
  const windows = new Map<CpuProfile, [number, number] | undefined>()
  const profiles = files.map((f) => {
    const p = JSON.parse(readFileSync(f, 'utf8')) as CpuProfile
    const found = whole ? undefined : loadWindow(f)
    const w = found?.us
    windows.set(p, w)
    const sec = (from: number, to: number) => `${((to - from) / 1e6).toFixed(1)} s`
    const span = w
      ? `${found!.row}, load run, ${sec(w[0], w[1])}`
      : `whole life, ${sec(p.startTime, p.endTime)}`
    console.log(`${f} (${span})`)
    return p
  })
  const s = summarize(profiles, ROOT, (p) => windows.get(p))
  const pct = (ms: number) => `${((100 * ms) / s.busyMs).toFixed(1)}%`
  // self time and share right-aligned, then the name (and where it is) left-aligned.
  const table = (head: string, rows: SelfTime[]) =>
    [
      `${'self ms'.padStart(9)}  ${'%'.padStart(6)}  ${head}`,
      ...rows
        .slice(0, top)
        .map(
          (r) =>
            `${r.ms.toFixed(1).padStart(9)}  ${pct(r.ms).padStart(6)}  ` +
            `${r.name}${r.where ? `  ${r.where}` : ''}`,
        ),
    ].join('\n')
  console.log(
    `\n${s.samples} samples; busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms ` +
      '(percentages of busy time)\n',
  )
  console.log(`${table('package', s.packages)}\n`)
  console.log(`${table('file', s.files)}\n`)
  console.log(table('function  where', s.functions))
  for (const name of named?.split(',') ?? []) {
    const rows = callersOf(profiles, ROOT, name, (p) => windows.get(p))
    console.log(`\n${name}, by the gateway code that called it:\n${table('caller  where', rows)}`)
  }
  return 0
}

// `node --test dist/test/` runs every file under a test/ folder, this one too: not a test.
if (process.env.NODE_TEST_CONTEXT === undefined) process.exitCode = main(process.argv.slice(2))
