/**
 * The waiting engine of the watch benchmark (lib/watch.mjs), in its own
 * process. It reads commands from stdin, one a line, and answers on stdout:
 *   `wait W`  → arms `waitFor(SYM, W, ['greeks'])`, prints `armed W`, and when
 *               it resolves prints `woke W <hrtime ns>`
 *   `watch N` → starts a `watch({ slotKinds: ['greeks'] })`, prints `armed`,
 *               and prints `saw W <hrtime ns>` for each of the next N Filled changes
 *   `idle MS` → with a waitFor armed on a window nobody fills, sleeps MS ms and
 *               prints `cpu <µs of CPU this process used meanwhile>`
 *   `quit`
 * process.hrtime is CLOCK_MONOTONIC, shared by every process of the host.
 */
import { createInterface } from 'node:readline'

import { loadWindowSpace } from './floor.mjs'

const [stateDir, symbol] = process.argv.slice(2)
const { ws } = loadWindowSpace()
const { controller: c } = ws.WindowSpaceController.openExisting(stateDir)
const say = (s) => process.stdout.write(`${s}\n`)

for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, arg] = line.split(' ')
  if (cmd === 'wait') {
    const w = Number(arg)
    c.waitFor(symbol, w, ['greeks']).then(
      () => say(`woke ${w} ${process.hrtime.bigint()}`),
      () => {}, // closed at the end of the run
    )
    say(`armed ${w}`)
  } else if (cmd === 'watch') {
    let left = Number(arg)
    const it = c.watch({ slotKinds: ['greeks'] })
    say('armed')
    ;(async () => {
      for await (const ch of it) {
        if (ch.to !== 'Filled') continue
        say(`saw ${ch.windowIdx} ${process.hrtime.bigint()}`)
        if (--left === 0) break
      }
    })()
  } else if (cmd === 'idle') {
    const ac = new AbortController()
    c.waitFor(symbol, c.windowCount - 1, ['greeks'], { signal: ac.signal }).catch(() => {})
    const before = process.cpuUsage()
    await new Promise((r) => setTimeout(r, Number(arg)))
    const used = process.cpuUsage(before)
    ac.abort()
    say(`cpu ${used.user + used.system}`)
  } else if (cmd === 'quit') {
    break
  }
}
c.close()
