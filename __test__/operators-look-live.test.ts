// The commands that look — inspect, grid, verify, export, audit, metrics,
// serve-metrics, gc without --delete — beside engines doing the README's loop, and on what a live
// or damaged directory holds: a busy ledger verifies clean, nothing is
// written, locked or touched (a read-only copy works), outputs are complete
// or the command exits 1, symbolic links are never followed, artifacts of any
// size are read, logs with lines of the wrong shape are reported line by
// line, and a directory of a newer format is named as such.
import { spawnSync } from 'node:child_process'
import { appendFileSync, closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, symlinkSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import * as net from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { checksum64, checksumFile, WindowSpaceController } from '../src/index'
import { canChattr, canMount, cli, makeState, removeScratch, scratch, snapshot, startEngine, startFleet, ws, wsAsync, wsStart, type Run } from './operators-helpers'

let work: string
let seq = 0
const fresh = (symbols = ['SPY'], windows = 64) => makeState(join(work, `d${seq++}`), symbols, windows)
const mountOk = canMount()
const chattrOk = canChattr()

/** A quiet directory with fills, clears, force-clears, a gc run and audit lines: what the look commands read. */
let quiet: string

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build:debug` first')
  work = scratch('look-live')
  quiet = fresh(['SPY', 'QQQ'], 48)
  await startEngine({ stateDir: quiet, symbol: 'SPY', from: 0, to: 48 }).done
  await startEngine({ stateDir: quiet, symbol: 'QQQ', from: 0, to: 48, clearEvery: 4 }).done
  expect(ws('clear', quiet, '--symbol', 'SPY', '--slot', 'optionTrade', '--from', '0', '--to', '4', '--yes').status).toBe(0)
  expect(ws('gc', quiet, '--delete', '--min-age', '0').status).toBe(0)
  await startEngine({ stateDir: quiet, symbol: 'SPY', from: 0, to: 4 }).done
}, 120_000)
afterAll(() => removeScratch(work))

const LOOKS = (dir: string): string[][] => [
  ['inspect', dir],
  ['inspect', dir, '--by-symbol', '--json'],
  ['grid', dir, '--symbol', 'SPY'],
  ['grid', dir, '--symbol', 'QQQ', '--json'],
  ['verify', dir],
  ['verify', dir, '--artifacts', '--json'],
  ['export', dir],
  ['audit', dir],
  ['audit', dir, '--json'],
  ['metrics', dir],
  ['gc', dir, '--min-age', '0'],
  ['gc', dir, '--json'],
]

describe('verify on a healthy busy ledger', () => {
  it('exits 0 on every run, with and without --artifacts, while engines claim, fill, clear, take over and start', async () => {
    const dir = fresh(['SPY', 'QQQ'], 32)
    const stop = join(work, `stop-${seq++}`)
    const fleet = startFleet(3, { stateDir: dir, symbol: 'SPY', from: 0, to: 32, leaseMs: 10, slowEvery: 4, clearEvery: 6, forceClearEvery: 4 }, stop)
    const runs: Run[] = []
    const late: Array<ReturnType<typeof startFleet>> = []
    for (let i = 0; i < 6; i++) {
      // Engines keep starting while verify runs (each opens the directory mid-scan).
      late.push(startFleet(1, { stateDir: dir, symbol: 'QQQ', from: 0, to: 32, leaseMs: 10, slowEvery: 3, forceClearEvery: 3 }, `${stop}-${i}`))
      runs.push(await wsAsync('verify', dir, ...(i % 2 ? ['--artifacts'] : []), '--json'))
      if (i >= 2) await late[i - 2]!.stop()
    }
    await Promise.all(late.map((l) => l.stop()))
    await fleet.stop()
    for (const r of runs) {
      const report = JSON.parse(r.stdout) as { ok: boolean; problems: unknown[] }
      expect(report.problems).toEqual([])
      expect(r.status).toBe(0)
    }
  })
})

describe('inspect --by-symbol', () => {
  it('works while an engine adds symbols', async () => {
    const dir = fresh(['SPY'], 16)
    const stop = join(work, `stop-${seq++}`)
    // A new symbol every 100 passes: an add costs microseconds, and every one
    // makes each `inspect --by-symbol` print another symbol.
    const fleet = startFleet(2, { stateDir: dir, symbol: 'SPY', from: 0, to: 16, newSymbolEvery: 100, clearEvery: 2 }, stop)
    const runs: Run[] = []
    for (let i = 0; i < 5; i++) runs.push(await wsAsync('inspect', dir, '--by-symbol', '--json'))
    const stats = await fleet.stop()
    expect(stats.reduce((a, s) => a + s.symbols, 0)).toBeGreaterThan(20)
    for (const r of runs) {
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
      const info = JSON.parse(r.stdout) as { symbols: string[]; bySymbol: Record<string, unknown> }
      expect(Object.keys(info.bySymbol)).toEqual(expect.arrayContaining(['SPY']))
    }
  })
})

describe('the commands that look change nothing', () => {
  it('no byte, no modification time, no lock file', async () => {
    const dir = join(work, `copy-${seq++}`)
    cpSync(quiet, dir, { recursive: true, preserveTimestamps: true })
    if (existsSync(join(dir, 'window-space.lock'))) unlinkSync(join(dir, 'window-space.lock'))
    const before = snapshot(dir)
    const runs = await Promise.all(LOOKS(dir).map((args) => wsAsync(...args)))
    for (const [i, r] of runs.entries()) expect(r.status, `${LOOKS(dir)[i]!.join(' ')}: ${r.stderr}`).toBe(0)
    expect(existsSync(join(dir, 'window-space.lock'))).toBe(false)
    const after = snapshot(dir)
    expect([...after.keys()]).toEqual([...before.keys()])
    for (const [f, b] of before) {
      expect(after.get(f)!.bytes.equals(b.bytes), f).toBe(true)
      expect(after.get(f)!.mtimeMs, f).toBe(b.mtimeMs)
    }
  })

  it('gc without --delete leaves alone what a bootstrap would repair: a torn tail, a dead writer\'s temp file, a missing change journal', () => {
    const dir = join(work, `copy-${seq++}`)
    cpSync(quiet, dir, { recursive: true, preserveTimestamps: true })
    if (existsSync(join(dir, 'window-space.lock'))) unlinkSync(join(dir, 'window-space.lock'))
    appendFileSync(join(dir, 'trades.map'), Buffer.from('WSR1 torn'))
    writeFileSync(join(dir, '.schedule.json.tmp-4194303-1'), '{')
    unlinkSync(join(dir, 'changes.journal'))
    const before = snapshot(dir)
    const r = ws('gc', dir, '--min-age', '0', '--json')
    expect([r.status, r.stderr]).toEqual([0, ''])
    expect((JSON.parse(r.stdout) as { deleted: boolean }).deleted).toBe(false)
    const after = snapshot(dir)
    expect([...after.keys()]).toEqual([...before.keys()])
    for (const [f, b] of before) {
      expect(after.get(f)!.bytes.equals(b.bytes), f).toBe(true)
      expect(after.get(f)!.mtimeMs, f).toBe(b.mtimeMs)
    }
    expect(existsSync(join(dir, 'window-space.lock'))).toBe(false)
  })

  it.skipIf(!mountOk && !chattrOk)('work on a read-only copy', async () => {
    const dir = join(work, `copy-${seq++}`)
    cpSync(quiet, dir, { recursive: true })
    let ro = dir
    let undo: () => void
    if (mountOk) {
      ro = join(work, `ro-${seq++}`)
      mkdirSync(ro)
      expect(spawnSync('mount', ['--bind', dir, ro]).status).toBe(0)
      expect(spawnSync('mount', ['-o', 'remount,bind,ro', ro]).status).toBe(0)
      undo = () => spawnSync('umount', [ro])
    } else {
      console.log('no mount permitted: a chattr +i copy stands for the read-only one')
      expect(spawnSync('chattr', ['-R', '+i', dir]).status).toBe(0)
      undo = () => spawnSync('chattr', ['-R', '-i', dir])
    }
    try {
      expect(() => writeFileSync(join(ro, 'probe'), '')).toThrow()
      const runs = await Promise.all(LOOKS(ro).map((args) => wsAsync(...args)))
      for (const [i, r] of runs.entries()) {
        expect(r.stderr, LOOKS(ro)[i]!.join(' ')).toBe('')
        expect(r.status, LOOKS(ro)[i]!.join(' ')).toBe(0)
      }
    } finally {
      undo()
    }
  })
})

describe('outputs are complete or the command exits 1', () => {
  it('every command that prints, into a full disk (/dev/full): exit 1 and one line saying so', async () => {
    const commands = [
      ['inspect'],
      ['inspect', '--json'],
      ['grid', '--symbol', 'SPY'],
      ['verify'],
      ['verify', '--json'],
      ['export'],
      ['audit'],
      ['audit', '--json'],
      ['metrics'],
      ['gc'],
      ['gc', '--json'],
      ['clear', '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '5', '--dry-run'],
      ['retention', '--keep', '2', '--before-window', '10', '--dry-run'],
    ]
    const full = openSync('/dev/full', 'w')
    try {
      const runs = await Promise.all(commands.map(([cmd, ...rest]) => wsStart([cmd!, quiet, ...rest], { stdio: ['ignore', full, 'pipe'] }).done))
      for (const [i, r] of runs.entries()) {
        expect(r.stderr, commands[i]!.join(' ')).toMatch(/ENOSPC|no space/i)
        expect(r.stderr.trim().split('\n')).toHaveLength(1)
        expect(r.status, commands[i]!.join(' ')).toBe(1)
      }
    } finally {
      closeSync(full)
    }
  })

  /** A directory whose export and audit --json print many lines. */
  let big: string
  beforeAll(async () => {
    big = fresh(['SPY', 'QQQ'], 800)
    await startEngine({ stateDir: big, symbol: 'SPY', from: 0, to: 400, auditLines: 2500 }).done
  })
  const count = (args: string[]) => {
    const file = join(work, `out-${seq++}`)
    const fd = openSync(file, 'w')
    const r = spawnSync(process.execPath, [cli, ...args], { stdio: ['pipe', fd, 'pipe'] })
    closeSync(fd)
    expect(r.status).toBe(0)
    return readFileSync(file, 'utf8').split('\n').length - 1
  }

  it.each([
    [['export', '<big>', '--all-rows']],
    [['audit', '<big>', '--json']],
  ])('%j into a slow pipe reader and into a non-blocking pipe loses no line; a reader that stops early ends it with 0', async (template) => {
    const args = template.map((a) => a.replace('<big>', big))
    const expected = count(args)
    expect(expected).toBeGreaterThan(2000)
    // A slow reader: the pipe fills up and the command waits for it.
    const slow = wsStart(args)
    slow.child.stdout!.pause()
    await new Promise((r) => setTimeout(r, 300))
    slow.child.stdout!.resume()
    const r = await slow.done
    expect(r.status).toBe(0)
    expect(r.stdout.split('\n').length - 1).toBe(expected)
    // A non-blocking pipe (O_NONBLOCK on the file description the command writes to), read slowly.
    const py = [
      'import os, fcntl, subprocess, sys, time, json',
      'r, w = os.pipe()',
      'fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)',
      'p = subprocess.Popen(sys.argv[1:], stdout=w, stderr=subprocess.PIPE)',
      'os.close(w)',
      'time.sleep(0.3)',
      'data = b""',
      'while True:',
      '    chunk = os.read(r, 4096)',
      '    if not chunk: break',
      '    data += chunk',
      '    time.sleep(0.0005)',
      'err = p.stderr.read().decode()',
      'print(json.dumps({"status": p.wait(), "lines": data.count(b"\\n"), "stderr": err}))',
    ].join('\n')
    const nb = spawnSync('python3', ['-c', py, process.execPath, cli, ...args], { encoding: 'utf8' })
    expect(nb.status, nb.stderr).toBe(0)
    expect(JSON.parse(nb.stdout)).toEqual({ status: 0, lines: expected, stderr: '' })
    // `| head -1`: the reader goes away; the command ends quietly with 0.
    const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`
    const head = spawnSync('bash', ['-c', `${[process.execPath, cli, ...args].map(quote).join(' ')} | head -1 > /dev/null; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8' })
    expect(head.stdout.trim()).toBe('0')
  })
})

describe('symbolic links are never followed out of the state directory', () => {
  /** A directory outside the state directory, with a file that looks like an old artifact. */
  const outside = () => {
    const o = join(work, `outside-${seq++}`)
    mkdirSync(join(o, 'SPY'), { recursive: true })
    writeFileSync(join(o, 'SPY', 'precious.json'), 'not the state directory’s')
    utimesSync(join(o, 'SPY', 'precious.json'), new Date(0), new Date(0))
    return o
  }

  it('artifacts itself a symbolic link: gc --delete and verify --artifacts touch and read nothing behind it', () => {
    const dir = fresh(['SPY'], 8)
    const o = outside()
    // A Filled slot names a file there (recorded before the directory was swapped for a link).
    const { controller: c } = WindowSpaceController.openExisting(dir)
    const claim = c.markPending('SPY', 1, 'optionTrade')
    const a = c.writeArtifact(claim, 'x.json', 'not the state directory’s')
    const id = c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 1, slotKind: 'optionTrade', payloadType: 'Json', uri: a.uri, checksum: a.checksum, size: a.size })
    c.setRef('SPY', 1, 'optionTrade', { payloadType: 'Json', payloadId: id, version: claim.version, checksum: a.checksum })
    c.close()
    cpSync(join(dir, 'artifacts'), o, { recursive: true })
    spawnSync('rm', ['-rf', join(dir, 'artifacts')])
    symlinkSync(o, join(dir, 'artifacts'))
    const before = snapshot(o)
    const gc = ws('gc', dir, '--delete', '--min-age', '0')
    expect(gc.status).toBe(0)
    expect(gc.stdout).toContain('artifacts is a symbolic link')
    const v = ws('verify', dir, '--artifacts', '--json')
    expect(v.status).toBe(1)
    const report = JSON.parse(v.stdout) as { counts: { artifacts: number }; problems: Array<{ kind: string }> }
    expect(report.counts.artifacts).toBe(0)
    expect(report.problems.map((p) => p.kind)).toContain('artifacts-not-a-directory')
    expect(snapshot(o)).toEqual(before)
  })

  it('a symbolic link deeper in the tree, to a directory or to a file', () => {
    const dir = fresh(['SPY'], 8)
    const o = outside()
    mkdirSync(join(dir, 'artifacts', 'SPY'), { recursive: true })
    symlinkSync(join(o, 'SPY'), join(dir, 'artifacts', 'SPY', 'linked-dir'))
    symlinkSync(join(o, 'SPY', 'precious.json'), join(dir, 'artifacts', 'SPY', 'linked-file.json'))
    // A Filled slot whose record names a file behind the directory link.
    const { controller: c } = WindowSpaceController.openExisting(dir)
    const claim = c.markPending('SPY', 2, 'optionTrade')
    const body = readFileSync(join(o, 'SPY', 'precious.json'))
    const id = c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 2, slotKind: 'optionTrade', payloadType: 'Json', uri: 'artifacts/SPY/linked-dir/precious.json', checksum: checksum64(body), size: body.length })
    c.setRef('SPY', 2, 'optionTrade', { payloadType: 'Json', payloadId: id, version: claim.version, checksum: checksum64(body) })
    c.close()
    const before = snapshot(o)
    const gc = ws('gc', dir, '--delete', '--min-age', '0')
    expect(gc.status).toBe(0)
    expect(gc.stdout).toContain('ignored symbolic link artifacts/SPY/linked-dir (never followed)')
    expect(gc.stdout).toContain('ignored symbolic link artifacts/SPY/linked-file.json (never followed)')
    const v = ws('verify', dir, '--artifacts', '--json')
    expect(v.status).toBe(1)
    const report = JSON.parse(v.stdout) as { counts: { artifacts: number }; problems: Array<{ kind: string }> }
    expect(report.counts.artifacts).toBe(0)
    expect(report.problems.map((p) => p.kind)).toEqual(['artifact-path'])
    expect(snapshot(o)).toEqual(before)
  })
})

describe('artifacts over 2 GiB', () => {
  const BIG = 2 ** 31 + 2 ** 16
  it('verify reads one as healthy, and gc collects one', () => {
    const dir = fresh(['SPY'], 8)
    const { controller: c } = WindowSpaceController.openExisting(dir)
    const claim = c.markPending('SPY', 0, 'optionTrade')
    const a = c.writeArtifact(claim, 'big.bin', 'head')
    truncateSync(a.path, BIG) // sparse: no disk space used
    const { checksum, size } = checksumFile(a.path)
    expect(size).toBe(BIG)
    const id = c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Binary', uri: a.uri, checksum, size })
    c.setRef('SPY', 0, 'optionTrade', { payloadType: 'Binary', payloadId: id, version: claim.version, checksum })
    c.close()
    const v = ws('verify', dir, '--artifacts', '--json')
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, problems: [], counts: { artifacts: 1 } })
    expect(v.status).toBe(0)
    expect(ws('retire', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '0', '--yes').status).toBe(0)
    const gc = ws('gc', dir, '--delete', '--json')
    expect(gc.status).toBe(0)
    expect(JSON.parse(gc.stdout)).toMatchObject({ removed: [a.uri], removedBytes: BIG })
    expect(existsSync(a.path)).toBe(false)
  })
})

describe('log lines that are valid JSON of the wrong shape', () => {
  it('are damaged lines with their line numbers: verify exits 1, never 2; inspect, audit and gc work', async () => {
    const dir = join(work, `copy-${seq++}`)
    cpSync(quiet, dir, { recursive: true })
    const lineCount = (f: string) => readFileSync(join(dir, f), 'utf8').split('\n').length - 1
    const auditAt = lineCount('audit.log') + 1
    appendFileSync(
      join(dir, 'audit.log'),
      [
        '',
        '[]',
        '42',
        'null',
        '"a string"',
        '{"v":1,"atNs":"5","actor":7,"action":"retire"}',
        '{"v":1,"atNs":5,"actor":"x","action":"retire"}',
        '{"v":1,"atNs":"5","actor":"x","action":"forceClear","symbol":"SPY","symbolId":0,"slot":"optionTrade","window":"seven","previous":"gone"}',
        '{"v":1,"atNs":"5","actor":"x","action":"retireRange","symbol":"SPY","symbolId":0,"slot":"optionTrade","from":"a","to":{},"changed":[[null],"x"]}',
        '{"v":1,"atNs":"5","actor":"x","action":"retireRange","symbol":"SPY","symbolId":0,"slot":"optionTrade","from":0,"to":2,"changed":{"0":1}}',
        '',
      ].join('\n'),
    )
    const gcAt = lineCount('gc.log') + 1
    appendFileSync(
      join(dir, 'gc.log'),
      [
        '[1,2]',
        '{"v":1,"op":"collect","id":5,"uri":[],"records":"x"}',
        '{"v":1,"op":"done"}',
        '{"v":1,"op":"record","at":"t","store":"nope","payloadId":-1,"uri":"u","why":"w"}',
        '{"v":1,"op":"collect","id":"z","at":"t","uri":"artifacts/x","checksum":"0x0","size":1,"records":[{"store":"trades","payloadId":"NaN"}],"trash":"gc-trash/z"}',
        '{"v":2,"op":"done","id":"z","at":"t"}',
        '',
      ].join('\n'),
    )
    const others = [['inspect', dir], ['inspect', dir, '--json'], ['audit', dir], ['audit', dir, '--json'], ['gc', dir], ['grid', dir, '--symbol', 'SPY']]
    const [v, ...runs] = await Promise.all([wsAsync('verify', dir, '--json'), ...others.map((args) => wsAsync(...args))])
    for (const [i, r] of runs.entries()) expect(r.status, `${others[i]!.join(' ')}: ${r.stderr}`).toBe(0)
    expect(ws('gc', dir, '--delete').status).toBe(0)
    expect(v.stderr).toBe('')
    expect(v.status).toBe(1)
    const problems = (JSON.parse(v.stdout) as { problems: Array<{ kind: string; message: string; line?: number; lines?: number[] }> }).problems
    const auditLines = problems.filter((p) => p.kind.startsWith('audit-')).map((p) => p.line)
    // The blank line is no entry and no damage; the next nine lines are all reported.
    expect(auditLines).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => auditAt + i))
    expect(problems.find((p) => p.kind === 'gc-log-damaged')!.lines).toEqual([0, 1, 2, 3, 4, 5].map((i) => gcAt + i))
  })
})

describe('a directory made by a newer version', () => {
  it('is reported as such (ERR_NEWER_FORMAT), not as corrupt', async () => {
    const dir = join(work, `copy-${seq++}`)
    cpSync(quiet, dir, { recursive: true })
    const p = join(dir, 'trade-ledger.dat')
    const b = readFileSync(p)
    b.writeUInt32LE(b.readUInt32LE(8) + 1, 8) // the format version
    writeFileSync(p, b)
    const commands = [['inspect', dir], ['verify', dir, '--json'], ['gc', dir], ['clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '1', '--yes']]
    const runs = await Promise.all(commands.map((args) => wsAsync(...args)))
    for (const [i, r] of runs.entries()) {
      const text = r.stdout + r.stderr
      expect(text, commands[i]![0]).toContain('made by a newer version of window-space')
      expect(text).toContain('ERR_NEWER_FORMAT')
      expect(text).not.toMatch(/corrupt/i)
      expect(r.status).toBe(1)
    }
  })
})

describe('serve-metrics', () => {
  it('SIGTERM lets scrapes in flight finish', async () => {
    const server = wsStart(['serve-metrics', quiet, '--port', '0'])
    let err = ''
    const port = await new Promise<number>((resolve, reject) => {
      server.child.stderr!.on('data', (b: Buffer) => {
        err += b.toString()
        const m = /127\.0\.0\.1:(\d+)\/metrics/.exec(err)
        if (m) resolve(Number(m[1]))
      })
      server.child.on('exit', () => reject(new Error(`exited early: ${err}`)))
    })
    // Keep-alive connections the server has accepted and served once.
    const conns = await Promise.all(
      Array.from({ length: 6 }, () => {
        const s = net.connect(port, '127.0.0.1')
        let text = ''
        s.on('data', (b: Buffer) => (text += b.toString()))
        const closed = new Promise<string>((resolve) => s.on('close', () => resolve(text)))
        s.on('error', () => {})
        return new Promise<{ s: net.Socket; closed: Promise<string>; text: () => string }>((resolve) =>
          s.on('connect', () => {
            s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
            resolve({ s, closed, text: () => text })
          }),
        )
      }),
    )
    for (const c of conns) {
      const end = Date.now() + 10_000
      while (!/window_space_slots[\s\S]*\n$/.test(c.text()) && Date.now() < end) await new Promise((r) => setTimeout(r, 5))
    }
    // Each sends a second scrape; the server is stopped meanwhile, so SIGTERM and the requests meet.
    server.child.kill('SIGSTOP')
    for (const c of conns) c.s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((r) => setTimeout(r, 50))
    server.child.kill('SIGTERM')
    server.child.kill('SIGCONT')
    const texts = await Promise.all(conns.map((c) => c.closed))
    expect((await server.done).status).toBe(0)
    for (const t of texts) expect(t.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2)
  })
})

describe.skipIf(!mountOk)('gc-trash on another file system', () => {
  it('is reported, not silent', () => {
    const dir = fresh(['SPY'], 8)
    const art = join(dir, 'artifacts')
    mkdirSync(art, { recursive: true })
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', art]).status).toBe(0)
    try {
      mkdirSync(join(art, 'SPY'))
      writeFileSync(join(art, 'SPY', 'orphan.json'), 'no record names this')
      const r = ws('gc', dir, '--delete', '--min-age', '0')
      expect(r.status).toBe(0)
      expect(r.stdout).toContain('another file system')
      expect(r.stdout).toMatch(/removed 0 files .*kept 1/)
      expect(existsSync(join(art, 'SPY', 'orphan.json'))).toBe(true)
    } finally {
      spawnSync('umount', [art])
    }
  })
})
if (!mountOk) console.log('gc-trash on another file system: skipped, this process may not mount a tmpfs')
if (!mountOk && !chattrOk) console.log('read-only copy: skipped, neither a read-only bind mount nor chattr +i is permitted here')
