// The other processes of the portable API slice (api-slice.mjs): each opens
// the state directory the slice made, does one role, and reports on stdout in
// JSON lines; commands, if the role takes any, arrive on stdin as lines.
//
// Run as `node api-slice-child.mjs ROLE ARGS_JSON`, where ARGS_JSON holds
// `dir` and `schedule` ({ origin, windowDuration, windowCount }) and the
// role's own fields:
// - `race` (`symbol`, `windows`, `id`, `mode`, `leaseMs`): says `{ ready }`,
//   waits for the line `go`, then claims and fills every optionTrade window
//   of `symbol` it can win, in one of three forms (`mode`): `object`
//   (markPending, setRef), `raw` (controller.raw claim and fill) or `batch`
//   (claimNextUnfilled, fillMany). Reports the windows it won and the
//   refusals it got.
// - `hold` (`symbol`, `window`): claims that optionTrade slot with a long
//   lease, writes the claim's artifact and records it, and reports the claim;
//   on the line `renew MS` it renews the claim to a lease of MS ms and
//   reports it again, then waits to be killed.
// - `fill` (`symbol`, `window`, `kinds`): claims and fills those slot kinds
//   of one window, reports what it filled, and exits.
//
// Imported instead of run, it lends the slice `openLedger` and `produce`,
// so both processes build configurations and artifacts the same way.
import { realpathSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import * as ws from 'window-space'

/** Opens (or creates) `dir` with the uniform schedule `schedule`. */
export function openLedger(dir, schedule, options) {
  return ws.WindowSpaceController.bootstrap(new ws.WindowSpaceConfig(dir, ws.WindowSpace.uniform(schedule), options))
}

/**
 * What an engine does between its claim and its fill: writes the claim's
 * artifact (its text names `tag`), records it in the slot kind's payload
 * store, and returns the record's id, checksum and URI.
 */
export function produce(c, claim, tag) {
  const text = JSON.stringify({ symbol: claim.symbolId, window: claim.windowIdx, slot: claim.slotKind.name, version: claim.version, by: tag })
  const artifact = c.writeArtifact(claim, `${tag}.json`, text)
  const payloadId = c.payloadStores()[ws.STORE_OF_SLOT_KIND[claim.slotKind.name]].append({
    symbol: claim.symbolId,
    windowIdx: claim.windowIdx,
    slotKind: claim.slotKind,
    payloadType: 'Json',
    uri: artifact.uri,
    checksum: artifact.checksum,
    size: artifact.size,
  })
  return { payloadId, checksum: artifact.checksum, uri: artifact.uri }
}

const send = (message) => process.stdout.write(JSON.stringify(message) + '\n')

function race(c, args, kind) {
  const sym = c.symbolId(args.symbol)
  const tag = `by-c${args.id}`
  const won = []
  const refused = { ERR_SLOT_BUSY: 0, ERR_SLOT_FILLED: 0 }
  if (args.mode === 'object') {
    for (let w = 0; w < args.windows; w++) {
      let claim
      try {
        claim = c.markPending(sym, w, kind, { leaseMs: args.leaseMs })
      } catch (e) {
        if (!(e instanceof ws.SlotBusyError || e instanceof ws.SlotFilledError)) throw e
        refused[e.code]++
        continue
      }
      const { payloadId, checksum } = produce(c, claim, tag)
      c.setRef(sym, w, kind, { payloadType: 'Json', payloadId, version: claim.version, checksum })
      won.push(w)
    }
  } else if (args.mode === 'raw') {
    const trades = c.payloadStores().trades
    for (let w = 0; w < args.windows; w++) {
      const v = c.raw.claim(sym, w, kind.code, args.leaseMs)
      if (v === ws.Refusal.Busy) refused.ERR_SLOT_BUSY++
      else if (v === ws.Refusal.Filled) refused.ERR_SLOT_FILLED++
      else if (v < 0) throw new Error(`raw claim of window ${w} refused with ${v}`)
      else {
        const a = c.writeArtifact(`race/${tag}-w${w}.json`, JSON.stringify({ window: w, by: tag }))
        const id = trades.append({ symbol: sym, windowIdx: w, slotKind: kind, payloadType: 'Json', uri: a.uri, checksum: a.checksum, size: a.size })
        const r = c.raw.fill(sym, w, kind.code, v, ws.PayloadType.Json, id, Number(a.checksum >> 32n), Number(a.checksum & 0xffffffffn))
        if (r !== v + 1) throw new Error(`raw fill of window ${w} at version ${v} returned ${r}`)
        won.push(w)
      }
    }
  } else if (args.mode === 'batch') {
    for (;;) {
      const claims = c.claimNextUnfilled(sym, 0, kind, 3, { leaseMs: args.leaseMs })
      if (claims.length === 0) break
      const items = claims.map((claim) => {
        const { payloadId, checksum } = produce(c, claim, tag)
        return { symbol: sym, windowIdx: claim.windowIdx, slotKind: kind, meta: { payloadType: 'Json', payloadId, version: claim.version, checksum } }
      })
      c.fillMany(items).forEach((r, i) => {
        if (!r.ok) throw r.error
        won.push(claims[i].windowIdx)
      })
    }
  } else {
    throw new Error(`unknown race mode ${args.mode}`)
  }
  return { won, refused }
}

async function main() {
  const [role, json] = process.argv.slice(2)
  const args = JSON.parse(json)
  const commands = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
  const command = async () => {
    const next = await commands.next()
    if (next.done) throw new Error(`${role}: stdin ended before the next command`)
    return next.value
  }
  const { controller: c } = openLedger(args.dir, args.schedule)
  const optionTrade = ws.SlotKind.Trade(ws.TradeSlotKind.OptionTrade)
  if (role === 'race') {
    send({ ready: true })
    if ((await command()) !== 'go') throw new Error('race: expected go')
    const result = race(c, args, optionTrade)
    c.close()
    send(result)
  } else if (role === 'hold') {
    const claim = c.markPending(args.symbol, args.window, optionTrade, { leaseMs: 600_000 })
    const { payloadId, uri } = produce(c, claim, 'held')
    send({ claim: { version: claim.version, leaseExpiresAt: claim.leaseExpiresAt }, payloadId, uri })
    const [verb, ms] = (await command()).split(' ')
    if (verb !== 'renew') throw new Error(`hold: unknown command ${verb}`)
    const renewed = c.renewClaim(claim, { leaseMs: Number(ms) })
    send({ renewed: { version: renewed.version, leaseExpiresAt: renewed.leaseExpiresAt } })
    // Holds the claim, its controller open, until the slice kills it.
    setInterval(() => {}, 60_000)
    return
  } else if (role === 'fill') {
    const filled = args.kinds.map((kind) => {
      const claim = c.markPending(args.symbol, args.window, kind)
      const { payloadId, checksum } = produce(c, claim, 'filler')
      const version = c.setRef(args.symbol, args.window, kind, { payloadType: 'Json', payloadId, version: claim.version, checksum })
      return { kind, version, payloadId }
    })
    c.close()
    send({ filled })
  } else {
    throw new Error(`unknown role ${role}`)
  }
  process.exit(0)
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) await main()
