// A throwaway PostgreSQL server for the tests and the benchmark: `initdb` in
// a temporary directory, `postgres` listening only on a unix socket in that
// directory, stopped and deleted by `stop()`. PostgreSQL refuses to run as
// root, so as root the server runs as an unprivileged user (WS_PG_USER,
// default `wspg`, created when missing).
//
//   const server = await startPgServer()   // { url, dir, stop() }
//
// `listen: ['10.0.0.1', …]` also listens on those TCP addresses and trusts
// clients from `trust: ['10.0.0.0/30', …]` (pg_hba lines added).
//
// Binaries: WS_PG_BINDIR, else the directory of `initdb` on PATH, else
// /usr/local/bin, else Debian's /usr/lib/postgresql/<newest>/bin.
import { spawnSync } from 'node:child_process'
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

function bindir() {
  if (process.env.WS_PG_BINDIR) return process.env.WS_PG_BINDIR
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' })
  if (which.status === 0 && which.stdout.trim()) return join(which.stdout.trim(), '..')
  if (existsSync('/usr/local/bin/initdb')) return '/usr/local/bin'
  const debian = '/usr/lib/postgresql'
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => existsSync(join(debian, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
    if (versions.length) return join(debian, versions[0], 'bin')
  }
  throw new Error('no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: install PostgreSQL (Debian: apt-get install postgresql) or set WS_PG_BINDIR')
}

function run(cmd, args, asUser) {
  const full = asUser ? ['runuser', ['-u', asUser, '--', cmd, ...args]] : [cmd, args]
  const r = spawnSync(full[0], full[1], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${[cmd, ...args].join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`)
  return r.stdout
}

/** Starts a server; resolves to `{ url, dir, stop }`. */
export async function startPgServer(options = {}) {
  const bin = bindir()
  const root = process.getuid?.() === 0
  const user = root ? (process.env.WS_PG_USER ?? 'wspg') : undefined
  if (user && spawnSync('id', ['-u', user]).status !== 0) run('useradd', ['--create-home', '--shell', '/bin/sh', user])
  const dir = mkdtempSync(join(tmpdir(), 'ws-pg-'))
  if (user) {
    const uid = Number(run('id', ['-u', user]).trim())
    const gid = Number(run('id', ['-g', user]).trim())
    chownSync(dir, uid, gid)
  }
  const data = join(dir, 'data')
  const port = options.port ?? 5432
  run(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], user)
  for (const net of options.trust ?? []) appendFileSync(join(data, 'pg_hba.conf'), `host all all ${net} trust\n`)
  const listen = (options.listen ?? []).join(',')
  const settings = [`-k ${dir}`, `-p ${port}`, `-c listen_addresses='${listen}'`, '-c max_connections=200', ...(options.settings ?? []).map((s) => `-c ${s}`)]
  run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', settings.join(' '), 'start'], user)
  const url = `postgresql://postgres@${encodeURIComponent(dir)}:${port}/postgres`
  let stopped = false
  return {
    url,
    dir,
    bin,
    user,
    /** Restarts the server (same data, same socket). */
    restart() {
      // `-l`: the server must not inherit our pipes (spawnSync would wait for them).
      run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-m', 'immediate', '-o', settings.join(' '), 'restart'], user)
    },
    stop() {
      if (stopped) return
      stopped = true
      try {
        run(join(bin, 'pg_ctl'), ['-D', data, '-w', '-m', 'immediate', 'stop'], user)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
