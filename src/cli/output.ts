/**
 * Everything the `window-space` command prints goes through here: writes to
 * stdout are complete or fail loudly. A pipe whose reader is slow, a
 * non-blocking stdout (`EAGAIN`) and partial writes are waited out and
 * finished; a reader that closes early (`export … | head`) ends the command
 * quietly with status 0; any other failure (a full disk: `ENOSPC`) is an
 * {@link OutputError}, exit status 1 and a message — never a silent 0.
 *
 * @module
 */
import * as fs from 'node:fs'

/** Writing the command's output failed (not a reader that closed early). */
export class OutputError extends Error {}

/** Thrown to end the command quietly: the reader of stdout went away. */
export class ReaderGone extends Error {}

const sleeper = new Int32Array(new SharedArrayBuffer(4))

/** Writes all of `text` to file descriptor `fd`, waiting while the other end is full. */
export function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8')
  let off = 0
  let waited = 0
  while (off < buf.length) {
    let n: number
    try {
      n = fs.writeSync(fd, buf, off, buf.length - off)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
        // A non-blocking pipe or terminal that is full: wait for the reader.
        Atomics.wait(sleeper, 0, 0, Math.min(50, 1 + waited++))
        continue
      }
      if (code === 'EPIPE') throw new ReaderGone('the reader of the output went away')
      throw new OutputError(`cannot write the output: ${(e as Error).message}`)
    }
    off += n
    waited = 0
  }
}

/** Prints `s` (with a final newline) on stdout. */
export function out(s: string): void {
  writeAll(1, s.endsWith('\n') ? s : `${s}\n`)
}

/** Prints `s` (with a final newline) on stderr. */
export function err(s: string): void {
  try {
    writeAll(2, s.endsWith('\n') ? s : `${s}\n`)
  } catch {
    // nowhere left to say it
  }
}

/** Batches lines and writes them in blocks (for long outputs such as export). */
export class LineWriter {
  #buf: string[] = []
  #size = 0
  line(s: string): void {
    this.#buf.push(s, '\n')
    this.#size += s.length + 1
    if (this.#size >= 1 << 16) this.flush()
  }
  flush(): void {
    if (this.#buf.length) writeAll(1, this.#buf.join(''))
    this.#buf = []
    this.#size = 0
  }
}
