// WebAssembly compiled by V8's baseline compiler (Liftoff) only, never its optimizing one, in the
// serving process. The only WebAssembly a gateway runs is undici's HTTP response parser (llhttp),
// on its outbound requests (discovery, JWKS, token exchange, CIMD): compiling it with TurboFan
// takes a 2.2 MB compilation zone, which glibc's malloc maps on its own and unmaps when it is
// freed, and glibc then raises its thresholds for the rest of the process (mmap 2.2 MB, trim
// 4.5 MB): each thread arena of V8's and libuv's threads may keep up to 4.5 MB free at its top
// from then on. Measured in issue 14's bench (gdb on glibc's mp_): raised at the first JWKS
// fetch; the arenas held 10-17 MB resident of which 10-14 MB free, given back at idle or not by
// chance, so RSS after 10,000 sessions opened and closed was x1.04 to x1.19 the idle RSS.
// Liftoff-only: thresholds 0.4 / 0.9 MB, arenas 2-3 MB. The parser's cost: ~10 µs more CPU per
// outbound request (local undici loop, JWKS-sized bodies), on requests that are rare.
import { setFlagsFromString } from 'node:v8'

/**
 * From now on, WebAssembly this process compiles stays on Liftoff. Call it before the first
 * outbound request (the serving process does, in main.ts); code embedding the gateway keeps its
 * own V8 flags.
 */
export function wasmLiftoffOnly(): void {
  setFlagsFromString('--liftoff-only')
}
