/**
 * A text to find, overlapping occurrences too: a value that repeats itself (`abab…`, a
 * doubled key) may be printed overlapping itself, and searching on from where a match ended
 * left the second copy's tail showing. `indexOf` finds a first match; a KMP scan then goes on
 * while a match may still continue, and hands back to `indexOf` once none can: linear.
 */
export class Needle {
  /** For each prefix of the text, the length of its longest proper border. */
  private readonly fail: Int32Array
  constructor(readonly text: string) {
    this.fail = new Int32Array(text.length)
    for (let i = 1, k = 0; i < text.length; i++) {
      while (k > 0 && text.charCodeAt(i) !== text.charCodeAt(k)) k = this.fail[k - 1]!
      if (text.charCodeAt(i) === text.charCodeAt(k)) k++
      this.fail[i] = k
    }
  }

  /**
   * The most of the text's first characters (fewer than all of it) a stream ends with after
   * `hay`, when it ended with `q` of them before; `found` hears where in `hay` each match of
   * the whole text ends (exclusive). Reads no more of `hay` than the text's length before its
   * end: what came earlier cannot end a prefix of it.
   */
  after(q: number, hay: string, found?: (end: number) => void): number {
    const f = this.text
    let j = 0
    if (hay.length >= f.length - 1 && found === undefined) {
      q = 0
      j = hay.length - (f.length - 1)
    }
    for (; j < hay.length; j++) {
      const c = hay.charCodeAt(j)
      while (q > 0 && c !== f.charCodeAt(q)) q = this.fail[q - 1]!
      if (c === f.charCodeAt(q)) q++
      if (q === f.length) {
        found?.(j + 1)
        q = this.fail[q - 1]!
      }
    }
    return q
  }

  each(hay: string, found: (start: number, end: number) => void): void {
    const f = this.text
    const n = f.length
    // Without a border, two matches cannot overlap.
    if (this.fail[n - 1] === 0) {
      for (let i = hay.indexOf(f); i !== -1; i = hay.indexOf(f, i + n)) found(i, i + n)
      return
    }
    for (let i = hay.indexOf(f); i !== -1; ) {
      let q = 0
      let j = i
      for (; j < hay.length; j++) {
        const c = hay.charCodeAt(j)
        while (q > 0 && c !== f.charCodeAt(q)) q = this.fail[q - 1]!
        if (c === f.charCodeAt(q)) q++
        if (q === n) {
          found(j + 1 - n, j + 1)
          q = this.fail[n - 1]!
        } else if (q === 0) break
      }
      i = j + 1 >= hay.length ? -1 : hay.indexOf(f, j + 1)
    }
  }
}
