/**
 * Hosts as Linux network namespaces for the PostgreSQL tests: each one
 * joined to the root namespace by a veth pair on a /30 of its own, so a
 * process started in it (`argv`) reaches a server listening on the root
 * side's address over real TCP, and the link can be cut and restored under
 * it. Names and subnets are unique per run; {@link removeHosts} deletes
 * every namespace and link made, whatever state the test left them in.
 *
 * @module
 */
import { spawnSync } from 'node:child_process'

export interface Host {
  /** `hostA`, `hostB`, …: how the test names it. */
  readonly name: string
  /** The network namespace. */
  readonly netns: string
  /** The root side of the veth pair (where the server listens). */
  readonly rootIf: string
  /** The root side's address: the server's address as this host sees it. */
  readonly rootAddr: string
  /** The host's own address: its connections come from here. */
  readonly addr: string
  /** The /30 both addresses are in. */
  readonly subnet: string
  /** `argv` run inside the namespace. */
  argv(argv: readonly string[]): string[]
  /** Takes the root side of the link down: nothing gets through either way. */
  cut(): void
  /** Brings the root side of the link back up. */
  restore(): void
}

function ip(args: readonly string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' })
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
}

const tag = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 * 36).toString(36)}`.slice(-6)
/** 10.231.<run>.0/24, cut into /30s, one per host: <run> is one no address here is in yet. */
function freeOctet(): number {
  const used = spawnSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout ?? ''
  const start = Math.floor(Math.random() * 256)
  for (let i = 0; i < 256; i++) {
    const o = (start + i) % 256
    if (!used.includes(`10.231.${o}.`)) return o
  }
  throw new Error('every 10.231.x.0/24 is in use')
}
let runOctet: number | undefined
const made: { netns: string; rootIf: string }[] = []

/**
 * Why namespaces cannot be made here, or null when they can: makes one,
 * with a veth pair, and removes it.
 */
export function netnsProbe(): string | null {
  const netns = `ws-probe-${tag}`
  const rootIf = `wsp${tag}`
  try {
    if (process.getuid?.() !== 0) return 'not root: creating network namespaces needs CAP_NET_ADMIN'
    ip(['netns', 'add', netns])
    made.push({ netns, rootIf })
    ip(['link', 'add', rootIf, 'type', 'veth', 'peer', 'name', `wsq${tag}`, 'netns', netns])
    return null
  } catch (e) {
    return `cannot create a network namespace with a veth pair here (${(e as Error).message.split('\n')[0]})`
  } finally {
    removeHosts()
  }
}

/** Makes host number `index` (0, 1, …) named `name`. */
export function makeHost(name: string, index: number): Host {
  const netns = `ws-${name}-${tag}`
  const rootIf = `wsr${index}${tag}`
  const hostIf = `wsh${index}${tag}`
  runOctet ??= freeOctet()
  const base = `10.231.${runOctet}.`
  const rootAddr = `${base}${index * 4 + 1}`
  const addr = `${base}${index * 4 + 2}`
  ip(['netns', 'add', netns])
  made.push({ netns, rootIf })
  ip(['link', 'add', rootIf, 'type', 'veth', 'peer', 'name', hostIf, 'netns', netns])
  ip(['addr', 'add', `${rootAddr}/30`, 'dev', rootIf])
  ip(['link', 'set', rootIf, 'up'])
  ip(['-n', netns, 'addr', 'add', `${addr}/30`, 'dev', hostIf])
  ip(['-n', netns, 'link', 'set', hostIf, 'up'])
  ip(['-n', netns, 'link', 'set', 'lo', 'up'])
  return {
    name,
    netns,
    rootIf,
    rootAddr,
    addr,
    subnet: `${base}${index * 4}/30`,
    argv: (argv) => ['ip', 'netns', 'exec', netns, ...argv],
    cut: () => ip(['link', 'set', rootIf, 'down']),
    restore: () => ip(['link', 'set', rootIf, 'up']),
  }
}

/** Deletes every namespace and root-side link made (deleting either end of a veth pair deletes both). */
export function removeHosts(): void {
  for (const { netns, rootIf } of made.splice(0)) {
    spawnSync('ip', ['link', 'del', rootIf], { encoding: 'utf8' })
    spawnSync('ip', ['netns', 'del', netns], { encoding: 'utf8' })
  }
}
