// zig and cargo-zigbuild for the release build (scripts/targets.mjs says why
// every target goes through them): those on PATH when both answer, else a
// Python virtualenv in target/zig-tools holding the pinned versions from
// PyPI, made on first use (needs python3 with venv and pip: on Debian,
// python3-venv). Returns the environment to run `napi build` with and the
// versions, for the build manifest.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { zigTools } from './targets.mjs'

const answer = (cmd, args, env) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env }).trim().split('\n')[0]
  } catch {
    return undefined
  }
}

export function zigEnv(root) {
  const probe = (env) => {
    const zigbuild = answer('cargo-zigbuild', ['--version'], env)
    const zig = answer('zig', ['version'], env) ?? answer('python3', ['-m', 'ziglang', 'version'], env)
    return zigbuild && zig ? { env, zigbuild, zig } : undefined
  }
  const found = probe(process.env)
  if (found) return found
  const venv = join(root, 'target', 'zig-tools')
  const withVenv = { ...process.env, PATH: `${join(venv, 'bin')}${delimiter}${process.env.PATH ?? ''}` }
  if (!existsSync(join(venv, 'bin', 'cargo-zigbuild'))) {
    console.log(`release-build: installing ${zigTools.join(' ')} from PyPI into target/zig-tools`)
    try {
      execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' })
      execFileSync(join(venv, 'bin', 'pip'), ['install', '--quiet', ...zigTools], { stdio: 'inherit' })
    } catch {
      console.error(`release-build: could not install zig: needs python3 with venv and pip (Debian: apt-get install python3-venv), or zig and cargo-zigbuild on PATH (pip install ${zigTools.join(' ')})`)
      process.exit(1)
    }
  }
  const made = probe(withVenv)
  if (!made) {
    console.error(`release-build: target/zig-tools does not answer; remove it and run again, or put zig and cargo-zigbuild on PATH`)
    process.exit(1)
  }
  return made
}
