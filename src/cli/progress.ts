/**
 * A one-line progress bar on stderr for long commands, drawn only when
 * stderr is a terminal.
 *
 * @module
 */

/** Draws (phase, done, total) as a bar; call {@link Progress.end} when done. */
export class Progress {
  #last = 0
  #drawn = false
  readonly #on = process.stderr.isTTY === true

  /** The callback to hand to a long operation. */
  readonly tick = (phase: string, done: number, total: number): void => {
    if (!this.#on || total <= 0) return
    const now = Date.now()
    if (now - this.#last < 100 && done < total) return
    this.#last = now
    const frac = Math.min(1, done / total)
    const width = 30
    const full = Math.round(frac * width)
    process.stderr.write(`\r${phase} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% ${done}/${total}`)
    this.#drawn = true
  }

  end(): void {
    if (this.#drawn) process.stderr.write('\r\x1b[2K')
    this.#drawn = false
  }
}
