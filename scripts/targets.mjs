// The platforms a release can hold: for each Rust target that package.json's
// napi list may name, its package folder under npm/, the npm `cpu`/`libc`
// it installs on, the ELF machine number of its addon, and how it is built
// here. The release build, the publish check and the platform test read this
// table; a target missing from it cannot be listed.
//
// Builds:
// - `host`: this machine's toolchain (x86-64 Linux with glibc);
// - `gcc`: cross-compiled with Debian's cross gcc as the linker;
// - `zig`: cross-compiled with `cargo-zigbuild`, zig linking against its own
//   musl (ziglang and cargo-zigbuild from PyPI). The addon then needs musl's
//   `libc.so` alone: zig links its unwinder in, so no `libgcc_s` either.
export const targets = {
  'x86_64-unknown-linux-gnu': { abi: 'linux-x64-gnu', cpu: 'x64', libc: 'glibc', machine: 62, build: 'host' },
  'aarch64-unknown-linux-gnu': {
    abi: 'linux-arm64-gnu',
    cpu: 'arm64',
    libc: 'glibc',
    machine: 183,
    build: 'gcc',
    linker: 'aarch64-linux-gnu-gcc',
    install: 'apt-get install gcc-aarch64-linux-gnu',
  },
  'x86_64-unknown-linux-musl': { abi: 'linux-x64-musl', cpu: 'x64', libc: 'musl', machine: 62, build: 'zig' },
  'aarch64-unknown-linux-musl': { abi: 'linux-arm64-musl', cpu: 'arm64', libc: 'musl', machine: 183, build: 'zig' },
}

// The PyPI packages the `zig` builds need, at the versions CI installs.
export const zigTools = ['ziglang==0.17.1', 'cargo-zigbuild==0.24.1']
