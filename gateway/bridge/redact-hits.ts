/** Character ranges to blot; overlapping ones are blotted as one. */
export class Hits {
  private readonly starts: number[] = []
  private readonly ends: number[] = []
  add(start: number, end: number): void {
    this.starts.push(start)
    this.ends.push(end)
  }
  /** The line's first `upTo` characters, each range starting among them blotted whole. */
  blot(line: string, upTo: number): string {
    if (this.starts.length === 0) return line.slice(0, upTo)
    const order = this.starts.map((_, i) => i).sort((a, b) => this.starts[a]! - this.starts[b]!)
    let out = ''
    let at = 0
    let i = 0
    while (i < order.length) {
      const start = this.starts[order[i]!]!
      if (start >= upTo) break
      let end = this.ends[order[i]!]!
      for (i++; i < order.length && this.starts[order[i]!]! < end; i++)
        end = Math.max(end, this.ends[order[i]!]!)
      out += `${line.slice(at, Math.max(at, start))}[redacted]`
      at = Math.max(at, end)
    }
    return out + line.slice(at, Math.max(at, upTo))
  }
}
