// Bench-only diagnostic, preloaded into a gateway the memory section starts with
// BENCH_MEMORY_GC=1 (`node --expose-gc --import gc-probe.js`); the gateway itself never loads
// it. On SIGUSR2 it reads process.memoryUsage(), forces full collections, reads it again and
// writes both to $BENCH_GC_PROBE_DIR/<n>.json: what the heap holds live against what it merely
// has not collected yet, and what V8 gives back to the OS once it has.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

/** What one probe writes. */
export interface GcProbeReport {
  before: NodeJS.MemoryUsage
  after: NodeJS.MemoryUsage
}

const dir = process.env.BENCH_GC_PROBE_DIR
const gc = (globalThis as { gc?: () => void }).gc
let n = 0

if (dir !== undefined && gc !== undefined) {
  process.on('SIGUSR2', () => {
    const file = join(dir, `${n++}.json`)
    const before = process.memoryUsage()
    // Three collections a macrotask apart: objects a FinalizationRegistry holds (undici's
    // Request keeps its parent signal until its cleanup task runs) go only in a later one.
    void (async () => {
      for (let i = 0; i < 3; i++) {
        gc()
        await delay(50)
      }
      const report: GcProbeReport = { before, after: process.memoryUsage() }
      writeFileSync(file, JSON.stringify(report))
    })()
  })
}
