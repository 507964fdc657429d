// The change journal on a full disk: every transition stores its entry into
// the journal's mapping, so a journal whose blocks were not allocated when it
// was made would kill engines with SIGBUS on a full disk (after their slot
// changed). The journal is allocated when it is created: on a full disk the
// bootstrap that would create it fails with DiskFullError and changes
// nothing. Runs on a real, small tmpfs in a private mount namespace
// (`unshare`); skipped with the reason printed where that is not allowed.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const FIXTURE = join(__dirname, 'fixtures', 'journal-disk-full.mjs')
const mount = mkdtempSync(join(tmpdir(), 'ws-journal-full-'))
afterAll(() => rmSync(mount, { recursive: true, force: true }))

/** Runs `argv` in a private mount namespace with a tmpfs of `size` at `mount`. */
function onTmpfs(size: string, argv: string[]) {
  const script = 'mount -t tmpfs -o "size=$1" window-space-test "$2" && shift 2 && exec "$@"'
  return spawnSync('unshare', ['-rm', 'sh', '-c', script, 'sh', size, mount, ...argv], { encoding: 'utf8', timeout: 120_000 })
}

const probe = (() => {
  try {
    execFileSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=1m window-space-probe "$0"', mount], { stdio: 'pipe' })
    return null
  } catch (e) {
    return `cannot mount a tmpfs in a private mount namespace here (${(e as Error).message.split('\n')[0]})`
  }
})()
if (probe) console.warn(`journal-disk-full.test.ts skipped: ${probe}`)

describe.skipIf(probe !== null)('the change journal on a full disk', () => {
  it('a bootstrap that must create it gives DiskFullError and changes nothing; with space it works', () => {
    const r = onTmpfs('8m', [process.execPath, FIXTURE, JSON.stringify({ mount })])
    // A process killed by SIGBUS has no status and no result line.
    expect({ status: r.status, signal: r.signal }, r.stderr).toEqual({ status: 0, signal: null })
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      full: { ok: boolean; code: string; name: string; message: string }
      unchanged: boolean
      after: { version: number; allocatedBytes: number; bytes: number }
    }
    expect(out.full).toMatchObject({ ok: false, code: 'ERR_DISK_FULL', name: 'DiskFullError' })
    expect(out.full.message).toContain('changes.journal')
    expect(out.unchanged).toBe(true)
    expect(out.after.version).toBe(3) // claimed, cleared, claimed again
    // Every block of the journal exists: later stores into it need no space.
    expect(out.after.allocatedBytes).toBeGreaterThanOrEqual(out.after.bytes)
  })
})
