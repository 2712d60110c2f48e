// The sessions' idle clock a test holds still and moves itself (StartOptions.sessionClock), so
// whether a session is idle depends on what the test moved, never on how fast the machine ran.
import { waitFor } from './wait-for.js'

/** The wall clock until `hold()`; then still, moved only by `advance`, until `release()`. */
export class IdleClock {
  private frozen: number | undefined
  /** How often the gateway read it: with no request under way, only the reapers' sweeps do. */
  private reads = 0

  /** For `sessionClock`. */
  readonly now = (): number => {
    this.reads++
    return this.frozen ?? Date.now()
  }

  hold(): void {
    this.frozen = Date.now()
  }

  advance(ms: number): void {
    if (this.frozen === undefined) throw new Error('advance a held clock only')
    this.frozen += ms
  }

  release(): void {
    this.frozen = undefined
  }

  /**
   * Resolves once the clock was read twice more. Call it with no request under way: then the
   * reads are sweeps, and a sweep is synchronous, so at least one whole sweep saw the clock as
   * it is now (two reads, should one be a request's late bookkeeping).
   */
  async sweeps(): Promise<void> {
    const seen = this.reads
    await waitFor(() => this.reads >= seen + 2, 'an idle sweep read the clock')
  }
}
