// The platforms a release can hold: for each Rust target that package.json's
// napi list may name, its package folder under npm/, the npm `cpu`/`libc`
// it installs on, the ELF machine number of its addon, and the target every
// release build hands to zig. The release build, the publish check and the
// platform test read this table; a target missing from it cannot be listed.
//
// Every target is built with `cargo-zigbuild`, zig as the linker (napi's
// `--cross-compile`): for glibc against glibc 2.17's symbol versions (the
// `.2.17` suffix), so the addon loads on any glibc from 2.17 on rather than
// needing the build machine's; for musl against zig's own musl, so the addon
// needs musl's `libc.so` alone. zig links its own unwinder in, so neither
// needs `libgcc_s`.
export const targets = {
  'x86_64-unknown-linux-gnu': { abi: 'linux-x64-gnu', cpu: 'x64', libc: 'glibc', machine: 62, zigTarget: 'x86_64-unknown-linux-gnu.2.17' },
  'aarch64-unknown-linux-gnu': { abi: 'linux-arm64-gnu', cpu: 'arm64', libc: 'glibc', machine: 183, zigTarget: 'aarch64-unknown-linux-gnu.2.17' },
  'x86_64-unknown-linux-musl': { abi: 'linux-x64-musl', cpu: 'x64', libc: 'musl', machine: 62, zigTarget: 'x86_64-unknown-linux-musl' },
  'aarch64-unknown-linux-musl': { abi: 'linux-arm64-musl', cpu: 'arm64', libc: 'musl', machine: 183, zigTarget: 'aarch64-unknown-linux-musl' },
}

// The newest glibc symbol version a glibc addon may need: the version its
// `zigTarget` links against. The publish check refuses an addon needing more.
export const glibcFloor = '2.17'

// Whether glibc version `a` ("x.y") is newer than `b`.
export const glibcAbove = (a, b) => {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number))
  return x[0] !== y[0] ? x[0] > y[0] : x[1] > y[1]
}

// The newest `GLIBC_x.y` version an addon names (its version needs), or null.
export const newestGlibc = (addon) =>
  [...addon.toString('latin1').matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => `${m[1]}.${m[2]}`).reduce((a, b) => (a === null || glibcAbove(b, a) ? b : a), null)

// The PyPI packages the builds need, at pinned versions: scripts/zig-tools.mjs
// installs them into target/zig-tools when they are not on PATH.
export const zigTools = ['ziglang==0.17.1', 'cargo-zigbuild==0.24.1']
