//! Shared, growable, writable mappings of ledger files: the only module of the
//! core that contains `unsafe` code.
//!
//! ## Safety
//!
//! A [`SharedMapping`] maps a file in *segments*: the first segment covers the
//! file as it was when opened, and each later segment covers a range the file
//! grew by, appended in file order. Segments end only on a *granule*
//! boundary (`PAGE + k × granule`; the ledger's granule is its chunk), never
//! inside one, whatever the file's length: a file extended part way (a
//! `fallocate` that failed half done) is mapped up to its last whole granule,
//! so a chunk never straddles two segments. Segments are never unmapped
//! or moved before the `SharedMapping` is dropped, so a pointer into a segment
//! stays valid for as long as a shared borrow of the `SharedMapping` lives.
//!
//! Mapped memory is shared with other threads and processes that map the same
//! file. Within this crate it is only ever accessed through atomics
//! (`AtomicU64`, `AtomicU128`) created from pointers that this module
//! validates; no plain loads or stores touch the shared bytes (headers are
//! read and written with `pread`/`pwrite` before they are published, which the
//! kernel keeps coherent with the mapping). So there is no mixed atomic and
//! non-atomic access to the same location.
//!
//! Every atomic is created at an offset whose alignment is checked (8 bytes for
//! `AtomicU64`, 16 for `AtomicU128`; segment bases are page-aligned) and whose
//! whole extent lies inside a mapped segment. Before a range is mapped the
//! file's length is checked with `fstat`, so mapping a short file yields an
//! error instead of pages that would raise SIGBUS when touched. (A file that
//! another program truncates *after* it was mapped can still raise SIGBUS; no
//! user-space check can prevent that, see docs/design.md, "Assumptions".)

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};
use std::sync::{Mutex, RwLock};

use memmap2::{MmapOptions, MmapRaw};
use portable_atomic::AtomicU128;

use crate::error::{Error, Result};
use crate::io::Site;
use crate::slot::{SlotCell, SLOT_BYTES};

/// Page size the format aligns segment boundaries to (the file header is one page).
pub(crate) const PAGE: u64 = 4096;

/// A validated address of a chunk inside a mapped segment of one [`SharedMapping`].
/// Only [`SharedMapping::chunk_addr`] creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkAddr {
    base: usize,
    len: u32,
    segment: u32,
    offset_in_segment: u64,
}

impl ChunkAddr {
    /// The chunk's address in this process (an identity for sorting, never dereferenced here).
    pub(crate) fn base_addr(&self) -> usize {
        self.base
    }

    /// A distinct address that maps nothing, for tests of structures that only
    /// store and compare addresses; a [`SharedMapping`] never resolves it
    /// (segment 0 of length 0 holds no slot).
    #[cfg(test)]
    pub(crate) fn for_tests(n: usize) -> Self {
        Self { base: n, len: 0, segment: 0, offset_in_segment: 0 }
    }
}

struct Segment {
    file_offset: u64,
    len: u64,
    map: MmapRaw,
}

/// A writable shared mapping of a file, in segments that only grow.
pub(crate) struct SharedMapping {
    path: PathBuf,
    segments: RwLock<Vec<Segment>>,
    grow: Mutex<()>,
    /// Base address of the first segment (file offset 0, at least one page).
    header_base: usize,
    /// Segments end at `PAGE + k × granule` (a multiple of [`PAGE`]).
    granule: u64,
}

impl SharedMapping {
    /// Maps `file` from offset 0 to its last whole granule after the header
    /// page: `PAGE + k × granule`, the largest such offset within the file.
    pub(crate) fn new(file: &File, path: &Path, granule: u64) -> Result<Self> {
        assert!(granule > 0 && granule.is_multiple_of(PAGE), "granule {granule} is not a multiple of the page");
        let mut this = Self { path: path.to_path_buf(), segments: RwLock::new(Vec::new()), grow: Mutex::new(()), header_base: 0, granule };
        let len = file.metadata().map_err(|e| Error::io("fstat", path, e))?.len();
        if len < PAGE {
            return Err(Error::corrupt(path, Some(len), "file is shorter than its 4096-byte header"));
        }
        this.map_to(file, PAGE)?;
        this.header_base = this.segments.read().unwrap_or_else(|p| p.into_inner())[0].map.as_mut_ptr() as usize;
        Ok(this)
    }

    /// End of the mapped range.
    pub(crate) fn mapped_len(&self) -> u64 {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segs.last().map_or(0, |s| s.file_offset + s.len)
    }

    /// The largest granule boundary at or before `len` (at least [`PAGE`]).
    fn whole_end(&self, len: u64) -> u64 {
        PAGE + (len.saturating_sub(PAGE) / self.granule) * self.granule
    }

    /// Makes sure `[0, end)` is mapped (`end` a granule boundary), mapping
    /// what the file grew by up to its last whole granule. Fails with
    /// `CorruptState` if the file is shorter than `end`.
    pub(crate) fn map_to(&self, file: &File, end: u64) -> Result<()> {
        let _g = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        let mapped = self.mapped_len();
        if end <= mapped {
            return Ok(());
        }
        let file_len = file.metadata().map_err(|e| Error::io("fstat", &self.path, e))?.len();
        if file_len < end {
            return Err(Error::corrupt(
                &self.path,
                Some(file_len),
                format!("file is {file_len} bytes but its header says it holds at least {end}"),
            ));
        }
        let len = self.whole_end(file_len).max(end) - mapped;
        let map = MmapOptions::new()
            .offset(mapped)
            .len(usize::try_from(len).map_err(|_| Error::invalid("mapping larger than the address space"))?)
            .map_raw(file)
            .map_err(|e| Error::io("mmap", &self.path, e))?;
        let mut segs = self.segments.write().unwrap_or_else(|p| p.into_inner());
        segs.push(Segment { file_offset: mapped, len, map });
        Ok(())
    }

    /// The address of the chunk `[offset, offset + len)`, which must lie inside
    /// one mapped segment and be 64-byte aligned.
    pub(crate) fn chunk_addr(&self, offset: u64, len: u32) -> Result<ChunkAddr> {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        for (i, s) in segs.iter().enumerate() {
            if offset >= s.file_offset && offset + u64::from(len) <= s.file_offset + s.len {
                let offset_in_segment = offset - s.file_offset;
                let base = s.map.as_mut_ptr() as usize + offset_in_segment as usize;
                if !base.is_multiple_of(64) {
                    break;
                }
                return Ok(ChunkAddr { base, len, segment: i as u32, offset_in_segment });
            }
        }
        Err(Error::corrupt(&self.path, Some(offset), format!("chunk of {len} bytes at this offset is not inside one mapped segment")))
    }

    /// The slot at `byte_offset` inside the chunk at `addr`.
    ///
    /// # Panics
    /// Never in practice: callers compute `byte_offset` from the row layout;
    /// an offset past the chunk is refused by the explicit check below.
    #[inline]
    pub(crate) fn slot<'a>(&'a self, addr: ChunkAddr, byte_offset: usize) -> Option<SlotCell<'a>> {
        if !byte_offset.is_multiple_of(16) || byte_offset + SLOT_BYTES > addr.len as usize {
            return None;
        }
        let p = (addr.base + byte_offset) as *mut u128;
        // SAFETY: `addr` was produced by `chunk_addr` of this mapping, so
        // `[addr.base, addr.base + addr.len)` lies inside a segment that stays
        // mapped while `&'a self` lives (segments are never unmapped before
        // drop). We just checked that the 32 bytes of the slot are inside the
        // chunk and 16-byte aligned (chunk bases are 64-byte aligned). The
        // memory is only accessed through atomics (module-level `## Safety`).
        let (head, tail) = unsafe { (AtomicU128::from_ptr(p), AtomicU128::from_ptr(p.add(1))) };
        Some(SlotCell::new(head, tail))
    }

    /// The `AtomicI32` at `byte_offset` inside the chunk at `addr` (a word
    /// of its header), if it is 4-byte aligned and inside the chunk.
    #[inline]
    pub(crate) fn chunk_i32(&self, addr: ChunkAddr, byte_offset: usize) -> Option<&AtomicI32> {
        if !byte_offset.is_multiple_of(4) || byte_offset + 4 > addr.len as usize {
            return None;
        }
        // SAFETY: as in `slot`: `addr` comes from `chunk_addr` of this mapping,
        // so the chunk lies inside a segment mapped while `&self` lives; the
        // 4 bytes were just checked to be inside the chunk and 4-byte aligned
        // (chunk bases are 64-byte aligned), and are only accessed atomically.
        Some(unsafe { AtomicI32::from_ptr((addr.base + byte_offset) as *mut i32) })
    }

    /// An `AtomicU64` in the first segment (the file header page) at `offset`.
    pub(crate) fn header_u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= PAGE as usize, "header atomic offset {offset} outside the header page");
        // SAFETY: `header_base` is the base of the first segment, which starts at
        // file offset 0 and is at least one page long (`new` refuses shorter
        // files and maps the whole file); `offset + 8 <= PAGE` and 8-byte
        // alignment were asserted above, and the segment base is page-aligned.
        // The segment is never unmapped while `&self` lives, and the bytes are
        // only accessed atomically (module-level `## Safety`).
        unsafe { AtomicU64::from_ptr((self.header_base + offset) as *mut u64) }
    }

    /// Writes dirty pages of `[byte_offset, byte_offset + len)` of a chunk to the disk (msync, at `site`).
    pub(crate) fn flush(&self, site: Site, addr: ChunkAddr, byte_offset: usize, len: usize) -> Result<()> {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        let s = &segs[addr.segment as usize];
        crate::io::msync(site, &s.map, s.file_offset, addr.offset_in_segment as usize + byte_offset, len, &self.path)
    }

    /// Writes dirty pages of the header page to the disk (msync, at `site`).
    pub(crate) fn flush_header(&self, site: Site) -> Result<()> {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        crate::io::msync(site, &segs[0].map, 0, 0, PAGE as usize, &self.path)
    }
}

/// A writable shared mapping of a whole file of fixed length (the change
/// journal), reached only through the checked atomic accessors below.
pub(crate) struct FixedMapping {
    map: MmapRaw,
    len: usize,
}

impl FixedMapping {
    /// Maps `[0, len)` of `file` after checking the file holds that many bytes.
    pub(crate) fn new(file: &File, path: &Path, len: u64) -> Result<Self> {
        let file_len = file.metadata().map_err(|e| Error::io("fstat", path, e))?.len();
        if file_len < len {
            return Err(Error::corrupt(path, Some(file_len), format!("file is {file_len} bytes but its header says it holds {len}")));
        }
        let len = usize::try_from(len).map_err(|_| Error::invalid("mapping larger than the address space"))?;
        let map = MmapOptions::new().len(len).map_raw(file).map_err(|e| Error::io("mmap", path, e))?;
        Ok(Self { map, len })
    }

    /// The `AtomicU64` at byte `offset`, if it is 8-byte aligned and inside the mapping.
    pub(crate) fn u64_at(&self, offset: usize) -> Option<&AtomicU64> {
        if !offset.is_multiple_of(8) || offset.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: the mapping base is page-aligned and `[offset, offset + 8)`
        // was just checked to be 8-byte aligned and inside the `len` bytes
        // mapped by `new` (after checking the file is that long). The mapping
        // lives as long as `&self`, and its bytes are only accessed through
        // atomics (module-level `## Safety`).
        Some(unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset).cast::<u64>()) })
    }

    /// The `AtomicU32` at byte `offset`, if it is 4-byte aligned and inside the mapping.
    pub(crate) fn u32_at(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: as in `u64_at`, for 4 bytes at a 4-byte aligned offset inside the mapping.
        Some(unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(offset).cast::<u32>()) })
    }
}

/// Checks, once per process, that 128-bit atomics are lock-free: a lock-based
/// fallback would only exclude threads of this process, not other processes.
pub(crate) fn require_lock_free_u128() -> Result<()> {
    if AtomicU128::is_lock_free() {
        Ok(())
    } else {
        Err(Error::Unsupported { what: "this CPU has no lock-free 128-bit compare-and-swap (cmpxchg16b)".into() })
    }
}

#[cfg(target_endian = "big")]
compile_error!("window-space ledgers are little-endian; big-endian targets are not supported");
