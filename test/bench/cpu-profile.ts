// Self time of a V8 .cpuprofile (what `node --cpu-prof` writes), optionally only within a time
// window, by function, by file and by package: where a process's CPU goes, for a reader; and the
// self time of one function (native code, a Node internal) by the gateway code that called it.

/** The parts of a .cpuprofile this reads (Chrome DevTools Protocol `Profiler.Profile`). */
export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[]
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
 * The samples of `p` stamped within `window` ([start, end] µs on the profile's clock; every one
 * without it), each as its node and its time: the gap to the next sample (the last has none).
 */
function* samplesIn(
  p: CpuProfile,
  window?: (p: CpuProfile) => [number, number] | undefined,
): Generator<[id: number, us: number]> {
  const [from, to] = window?.(p) ?? [-Infinity, Infinity]
  let t = p.startTime
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0
    if (t >= from && t <= to) yield [p.samples[i]!, p.timeDeltas[i + 1] ?? 0]
  }
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
    for (const [id, us] of samplesIn(p, window)) {
      const frame = frames.get(id)
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

/**
 * Where the self time of the functions named `name` comes from: each of their samples (within
 * `window`) given to the nearest frame of the gateway's own code above it, `(no gateway frame)`
 * when none is. Native code (`writeUtf8String`, `writev`) and Node's internals have no caller of
 * their own in a summary: this says which of the gateway's writes (or parses, or timers) they are.
 */
export function callersOf(
  profiles: CpuProfile[],
  root: string,
  name: string,
  window?: (p: CpuProfile) => [number, number] | undefined,
): SelfTime[] {
  const by = new Map<string, SelfTime>()
  for (const p of profiles) {
    const nodes = new Map(p.nodes.map((n) => [n.id, n]))
    const parent = new Map<number, number>()
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
    for (const [id, us] of samplesIn(p, window)) {
      if (nodes.get(id)?.callFrame.functionName !== name) continue
      let caller: CallFrame | undefined
      for (let up = parent.get(id); up !== undefined && caller === undefined; up = parent.get(up)) {
        const frame = nodes.get(up)!.callFrame
        if (locate(frame.url, frame.functionName, root).pkg.startsWith('mcp-edge ')) caller = frame
      }
      const file = caller && locate(caller.url, caller.functionName, root).file
      const entry: SelfTime = caller
        ? {
            name: caller.functionName || '(anonymous)',
            where: `${file}:${caller.lineNumber + 1}`,
            ms: 0,
          }
        : { name: '(no gateway frame)', ms: 0 }
      const key = `${entry.name}\u0000${entry.where}`
      const found = by.get(key) ?? entry
      found.ms += us
      by.set(key, found)
    }
  }
  return [...by.values()].map((c) => ({ ...c, ms: c.ms / 1000 })).sort((a, b) => b.ms - a.ms)
}
