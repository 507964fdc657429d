//! Crash images of a state directory: what a power loss could leave on the
//! disk, built from what the core's sync observer (`window_space_core::io`)
//! reported durable and from snapshots of every file taken while a
//! single-threaded workload ran.
//!
//! The model of the disk:
//!
//! * A file's bytes are durable up to its last sync: `fdatasync`/`fsync`
//!   make the whole file and its length durable, `msync` the pages of its
//!   range. A page written since may or may not have reached the disk, in
//!   any of the versions it had since (the kernel writes dirty pages back
//!   whenever it likes), and a page caught mid-write is *torn*: its 512-byte
//!   sectors come from two versions. Pages never written are zeros.
//! * A file's length is one of the lengths it had since its last
//!   `fdatasync`/`fsync`.
//! * A directory entry (a file created, or renamed over another) is durable
//!   once its directory was fsynced; before that the name may lead to the
//!   file it named at that fsync (or to nothing) or to the new one, each name
//!   on its own.
//! * Files are told apart by inode, so a file renamed into place (an
//!   atomic rewrite of `symbol-map.json`) keeps what was synced under its
//!   temporary name.
//!
//! The change journal, the lock file and the `presence/` records are not
//! part of an image: the journal is made anew after a power loss (the boot
//! id changes), the others are derived.
//!
//! A [`Recording`] captures every file of the state directory at each sync
//! the observer reports (inside the core's call) and at the end of each
//! operation of the workload (`op_end`). [`Sweep`] then walks those events
//! in order; at each *crash point* (just before the sync of an event took
//! effect, or just after an operation returned) it can write random images.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use window_space_core::io::{self, Durable};

const PAGE: usize = 4096;
const SECTOR: usize = 512;
/// Page id of a page of zeros.
const ZERO: u32 = 0;

/// Files of the state directory that are not part of an image.
fn excluded(name: &str) -> bool {
    name.starts_with("changes.journal") || name == "window-space.lock"
}

/// A small deterministic random source (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, of: &'a [T]) -> &'a T {
        &of[self.below(of.len())]
    }
}

/// Every distinct page content seen, by id (id 0 is the page of zeros).
#[derive(Default)]
struct Pool {
    pages: Vec<Box<[u8]>>,
    by_hash: HashMap<u64, Vec<u32>>,
}

impl Pool {
    fn new() -> Self {
        let mut p = Self::default();
        p.intern(&[0u8; PAGE]);
        p
    }

    fn intern(&mut self, page: &[u8]) -> u32 {
        let h = xxhash_rust::xxh3::xxh3_64(page);
        if let Some(ids) = self.by_hash.get(&h) {
            if let Some(id) = ids.iter().find(|id| &*self.pages[**id as usize] == page) {
                return *id;
            }
        }
        let id = self.pages.len() as u32;
        self.pages.push(page.into());
        self.by_hash.entry(h).or_default().push(id);
        id
    }
}

/// One file as captured.
#[derive(Clone)]
struct FileCapture {
    len: u64,
    pages: Vec<u32>,
}

/// Every file of the state directory at one moment.
#[derive(Clone, Default)]
struct Capture {
    /// Name → inode.
    listing: BTreeMap<String, u64>,
    files: HashMap<u64, FileCapture>,
}

/// What became durable at an event.
#[derive(Clone, Copy, Debug)]
enum Synced {
    Nothing,
    File { ino: u64, len: u64 },
    Range { ino: u64, start: u64, end: u64 },
    Directory,
}

struct Event {
    capture: Capture,
    synced: Synced,
    /// The operation (index) that had returned when this capture was taken.
    op_end: Option<usize>,
}

struct Shared {
    dir: PathBuf,
    /// Whether captures read every file, or only the one just synced (enough for the durable image).
    every_file: bool,
    pool: Pool,
    events: Vec<Event>,
}

impl Shared {
    /// Captures the listing, and the contents of every file (or only of the inode `only`).
    fn capture(&mut self, only: Option<u64>) -> Capture {
        let mut cap = Capture::default();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return cap };
        let last: Option<&Capture> = self.events.last().map(|e| &e.capture);
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || excluded(&name) {
                continue;
            }
            cap.listing.insert(name.clone(), meta.ino());
            if !self.every_file && only != Some(meta.ino()) {
                continue;
            }
            let Ok(bytes) = std::fs::read(e.path()) else { continue };
            let ino = meta.ino();
            let before = last.and_then(|l| l.files.get(&ino));
            let mut pages = Vec::with_capacity(bytes.len().div_ceil(PAGE));
            for (i, chunk) in bytes.chunks(PAGE).enumerate() {
                let mut page = [0u8; PAGE];
                page[..chunk.len()].copy_from_slice(chunk);
                // The page as it was at the last capture, without hashing, when it did not change.
                let same = before.and_then(|b| b.pages.get(i)).filter(|id| *self.pool.pages[**id as usize] == page[..]);
                pages.push(match same {
                    Some(id) => *id,
                    None => self.pool.intern(&page),
                });
            }
            cap.files.insert(ino, FileCapture { len: bytes.len() as u64, pages });
        }
        cap
    }
}

/// Captures of a state directory while a workload runs (see the module doc).
pub struct Recording {
    shared: Arc<Mutex<Shared>>,
    _observer: io::Observer,
}

impl Recording {
    /// Starts recording `dir` (which need not exist yet).
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, true)
    }

    /// Starts recording only what syncs make durable, for
    /// [`write_final_durable_image`](Self::write_final_durable_image).
    pub fn start_durable_only(dir: &Path) -> Self {
        Self::start_with(dir, false)
    }

    fn start_with(dir: &Path, every_file: bool) -> Self {
        let shared = Arc::new(Mutex::new(Shared { dir: dir.to_path_buf(), every_file, pool: Pool::new(), events: Vec::new() }));
        let s = shared.clone();
        let observer = io::observe(dir, move |synced| {
            let mut sh = s.lock().unwrap();
            let synced = match synced.durable {
                Durable::Directory if synced.path == sh.dir => Synced::Directory,
                Durable::Directory => return,
                Durable::File { len } => match file_ino(&sh.dir, synced.path) {
                    Some(ino) => Synced::File { ino, len },
                    None => return,
                },
                Durable::Range { start, end } => match file_ino(&sh.dir, synced.path) {
                    Some(ino) => Synced::Range { ino, start, end },
                    None => return,
                },
            };
            let only = match synced {
                Synced::File { ino, .. } | Synced::Range { ino, .. } => Some(ino),
                Synced::Nothing | Synced::Directory => None,
            };
            let capture = sh.capture(only);
            sh.events.push(Event { capture, synced, op_end: None });
        });
        Self { shared, _observer: observer }
    }

    /// Captures every file after operation `op` returned.
    pub fn op_end(&self, op: usize) {
        let mut sh = self.shared.lock().unwrap();
        let capture = sh.capture(None);
        sh.events.push(Event { capture, synced: Synced::Nothing, op_end: Some(op) });
    }

    /// Walks the events in order, calling `at(crash_point, acked_ops, sweep)`
    /// at each crash point: the operations `0..acked_ops` had returned.
    pub fn sweep(&self, mut at: impl FnMut(usize, usize, &Sweep<'_>)) {
        let sh = self.shared.lock().unwrap();
        let mut sweep = Sweep { pool: &sh.pool, states: HashMap::new(), durable: BTreeMap::new(), current: BTreeMap::new() };
        let mut acked = 0;
        let mut previous: BTreeMap<String, u64> = BTreeMap::new();
        for (c, event) in sh.events.iter().enumerate() {
            sweep.take(&event.capture, &previous);
            if let Some(op) = event.op_end {
                acked = op + 1;
            }
            at(c, acked, &sweep);
            sweep.apply(&event.capture, event.synced);
            previous = event.capture.listing.clone();
        }
    }
}

impl Recording {
    /// Writes the image of what every sync so far made durable into `into`:
    /// what a power loss now would leave at the least.
    pub fn write_final_durable_image(&self, into: &Path) {
        let sh = self.shared.lock().unwrap();
        let mut sweep = Sweep { pool: &sh.pool, states: HashMap::new(), durable: BTreeMap::new(), current: BTreeMap::new() };
        let mut previous: BTreeMap<String, u64> = BTreeMap::new();
        for event in &sh.events {
            sweep.take(&event.capture, &previous);
            sweep.apply(&event.capture, event.synced);
            previous = event.capture.listing.clone();
        }
        sweep.write_durable_image(into);
    }
}

/// The file's inode, if it is a file of the image (directly in `dir`, not excluded).
fn file_ino(dir: &Path, path: &Path) -> Option<u64> {
    if path.parent() != Some(dir) || path.file_name().is_none_or(|n| excluded(&n.to_string_lossy())) {
        return None;
    }
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// What may be on the disk of one file (one inode).
#[derive(Clone, Default)]
struct InodeState {
    /// Per page: the version durable since the last sync first (zeros if
    /// none), then every version captured since.
    versions: Vec<Vec<u32>>,
    /// The length durable since the last full sync first, then every length captured since.
    lens: Vec<u64>,
}

/// The model of the disk at one crash point (see [`Recording::sweep`]).
pub struct Sweep<'a> {
    pool: &'a Pool,
    states: HashMap<u64, InodeState>,
    /// Directory entries as of the last directory fsync.
    durable: BTreeMap<String, u64>,
    /// Directory entries now.
    current: BTreeMap<String, u64>,
}

impl Sweep<'_> {
    fn take(&mut self, cap: &Capture, previous: &BTreeMap<String, u64>) {
        let known: std::collections::HashSet<u64> = previous.values().copied().collect();
        for (ino, f) in &cap.files {
            if !known.contains(ino) {
                // A new file (or an inode number used again by one).
                self.states.remove(ino);
            }
            let st = self.states.entry(*ino).or_insert_with(|| InodeState { versions: Vec::new(), lens: vec![0] });
            let n = f.pages.len().max(st.versions.len());
            st.versions.resize_with(n, || vec![ZERO]);
            for (p, v) in st.versions.iter_mut().enumerate() {
                let page = f.pages.get(p).copied().unwrap_or(ZERO);
                if v.last() != Some(&page) {
                    v.push(page);
                }
            }
            if st.lens.last() != Some(&f.len) {
                st.lens.push(f.len);
            }
        }
        self.current = cap.listing.clone();
    }

    fn apply(&mut self, cap: &Capture, synced: Synced) {
        match synced {
            Synced::Nothing => {}
            Synced::Directory => self.durable = cap.listing.clone(),
            Synced::File { ino, len } => {
                let (Some(st), Some(f)) = (self.states.get_mut(&ino), cap.files.get(&ino)) else { return };
                for (p, v) in st.versions.iter_mut().enumerate() {
                    *v = vec![f.pages.get(p).copied().unwrap_or(ZERO)];
                }
                st.lens = vec![len];
            }
            Synced::Range { ino, start, end } => {
                let (Some(st), Some(f)) = (self.states.get_mut(&ino), cap.files.get(&ino)) else { return };
                for p in (start as usize / PAGE)..(end as usize).div_ceil(PAGE) {
                    if let Some(v) = st.versions.get_mut(p) {
                        *v = vec![f.pages.get(p).copied().unwrap_or(ZERO)];
                    }
                }
            }
        }
    }

    /// Writes one random crash image into `into` (an empty directory).
    pub fn write_image(&self, rng: &mut Rng, into: &Path) {
        self.write(into, Some(rng));
    }

    /// Writes the image holding only what was made durable: no page or
    /// length written since its last sync, no entry since its directory's.
    pub fn write_durable_image(&self, into: &Path) {
        self.write(into, None);
    }

    /// Writes an image: random choices from `rng`, or (`None`) the durable ones.
    fn write(&self, into: &Path, mut rng: Option<&mut Rng>) {
        let mut names: Vec<&String> = self.durable.keys().chain(self.current.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let (d, n) = (self.durable.get(name), self.current.get(name));
            let newer = d != n && rng.as_deref_mut().is_some_and(|r| r.one_in(2));
            let ino = if newer { n } else { d };
            let Some(ino) = ino else { continue };
            let Some(st) = self.states.get(ino) else {
                // An entry made durable before anything of its file was.
                std::fs::write(into.join(name), b"").unwrap();
                continue;
            };
            let len = match rng.as_deref_mut() {
                Some(r) => *r.pick(&st.lens),
                None => st.lens[0],
            };
            let mut bytes = vec![0u8; len as usize];
            for (p, chunk) in bytes.chunks_mut(PAGE).enumerate() {
                let choices = st.versions.get(p).map_or(&[ZERO][..], |v| &v[..]);
                let torn = choices.len() > 1 && rng.as_deref_mut().is_some_and(|r| r.one_in(6));
                let page: Vec<u8> = match rng.as_deref_mut() {
                    Some(r) if torn => {
                        // Torn: each sector from one of two versions.
                        let (a, b) = (*r.pick(choices), *r.pick(choices));
                        let mut page = self.pool.pages[a as usize].to_vec();
                        for s in 0..PAGE / SECTOR {
                            if r.one_in(2) {
                                page[s * SECTOR..(s + 1) * SECTOR]
                                    .copy_from_slice(&self.pool.pages[b as usize][s * SECTOR..(s + 1) * SECTOR]);
                            }
                        }
                        page
                    }
                    Some(r) => self.pool.pages[*r.pick(choices) as usize].to_vec(),
                    None => self.pool.pages[choices[0] as usize].to_vec(),
                };
                chunk.copy_from_slice(&page[..chunk.len()]);
            }
            std::fs::write(into.join(name), &bytes).unwrap();
        }
    }
}
