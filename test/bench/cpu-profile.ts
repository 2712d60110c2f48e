// Self time of a V8 .cpuprofile (what `node --cpu-prof` writes), optionally only within a time
// window, by function, by file and by package: where a process's CPU goes, for a reader.

/** The parts of a .cpuprofile this reads (Chrome DevTools Protocol `Profiler.Profile`). */
export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[]
  /** µs, on the clock of the process (CLOCK_MONOTONIC on Linux). */
  startTime: number
  endTime: number
  samples: number[]
  /** µs between consecutive samples; the first is from startTime. */
  timeDeltas: number[]
}

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

/** One line of a summary: a function, file or package, and its self time. */
export interface SelfTime {
  name: string
  ms: number
  where?: string
}

/** A profile's self time, busy time being everything but `(idle)`. */
export interface ProfileSummary {
  busyMs: number
  idleMs: number
  samples: number
  functions: SelfTime[]
  files: SelfTime[]
  packages: SelfTime[]
}

/** Where a call frame's code lives: its package (or group) and its file. */
export function locate(
  url: string,
  functionName: string,
  root: string,
): { pkg: string; file: string } {
  if (url === '') {
    // (program), (garbage collector), (idle), (root): V8's own; else code with no script: a V8
    // builtin or a Node binding in C++ (writeUtf8String, writev).
    const group = functionName.startsWith('(') ? functionName : '(native)'
    return { pkg: group, file: group }
  }
  if (url.startsWith('node:')) return { pkg: 'node (internals)', file: url }
  const path = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url
  const at = path.lastIndexOf('/node_modules/')
  if (at >= 0) {
    const rest = path.slice(at + '/node_modules/'.length).split('/')
    const pkg = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
    return { pkg, file: `${pkg}/${rest.slice(pkg.split('/').length).join('/')}` }
  }
  const base = root.endsWith('/') ? root : `${root}/`
  if (path.startsWith(base)) {
    const file = path.slice(base.length).replace(/^dist\//, '')
    const dir = file.split('/').slice(0, -1).join('/')
    return { pkg: `mcp-edge ${dir === '' ? '.' : dir}/`, file }
  }
  return { pkg: path, file: path }
}

/**
 * Self time by function, file and package, of the samples within `window` ([start, end] µs on
 * the profile's clock; all samples without it). A sample's time is the gap to the next sample.
 */
export function summarize(
  profiles: CpuProfile[],
  root: string,
  window?: (p: CpuProfile) => [number, number] | undefined,
): ProfileSummary {
  const fn = new Map<string, SelfTime>()
  const files = new Map<string, number>()
  const pkgs = new Map<string, number>()
  let busyUs = 0
  let idleUs = 0
  let samples = 0
  const add = (m: Map<string, number>, k: string, us: number) => m.set(k, (m.get(k) ?? 0) + us)
  for (const p of profiles) {
    const frames = new Map(p.nodes.map((n) => [n.id, n.callFrame]))
    const [from, to] = window?.(p) ?? [-Infinity, Infinity]
    let t = p.startTime
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i] ?? 0
      const us = p.timeDeltas[i + 1] ?? 0
      if (t < from || t > to) continue
      const frame = frames.get(p.samples[i]!)
      if (frame === undefined) continue
      samples++
      if (frame.functionName === '(idle)') {
        idleUs += us
        continue
      }
      busyUs += us
      const { pkg, file } = locate(frame.url, frame.functionName, root)
      const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
      // V8's own entries name themselves; native code has no line.
      const where =
        frame.url !== ''
          ? `${file}:${frame.lineNumber + 1}`
          : name.startsWith('(')
            ? undefined
            : file
      const key = `${name}\u0000${where}`
      const entry = fn.get(key) ?? { name, ms: 0, ...(where ? { where } : {}) }
      entry.ms += us // µs until the end
      fn.set(key, entry)
      add(files, file, us)
      add(pkgs, pkg, us)
    }
  }
  const ranked = (m: Map<string, number>) =>
    [...m].map(([name, us]) => ({ name, ms: us / 1000 })).sort((a, b) => b.ms - a.ms)
  return {
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    samples,
    functions: [...fn.values()].map((f) => ({ ...f, ms: f.ms / 1000 })).sort((a, b) => b.ms - a.ms),
    files: ranked(files),
    packages: ranked(pkgs),
  }
}
