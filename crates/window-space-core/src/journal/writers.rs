//! The journal's writer table: which processes are between taking a number
//! and committing its entry (steps 1, 2, 4 and 7 of the Protocol in
//! `journal.rs`), the look readers take at it, and whether a process that
//! holds a cell is still alive.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::{Journal, OFF_HEAD, OFF_WRITERS};

/// Cells of the writer table: as many writers may be in flight at once; one
/// more waits for a cell.
pub(super) const CELLS: usize = 256;
pub(super) const CELL_BYTES: u64 = 16;
/// Bit 63 of a number word: "taking a number; the head was at least the other bits".
const TAKING: u64 = 1 << 63;

/// An owner word: `pid` in bits 0..32, the low 32 bits of the process's
/// start time (clock ticks after boot) in bits 32..64.
fn owner_word(pid: u32, start_ticks: u64) -> u64 {
    u64::from(pid) | ((start_ticks & 0xffff_ffff) << 32)
}

/// The state letter and the start time (field 22, clock ticks after boot)
/// of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: &str) -> std::io::Result<(u8, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc stat line");
    // Field 2, the command name, is in parentheses and may itself hold
    // spaces and parentheses: the fields after it start after the last ')'.
    let (_, rest) = text.rsplit_once(')').ok_or_else(bad)?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let state = fields.first().and_then(|s| s.bytes().next()).ok_or_else(bad)?;
    let start = fields.get(19).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    Ok((state, start))
}

/// This process as owner words record it (start time 0 when `/proc` does not say).
fn me() -> u64 {
    static ME: OnceLock<u64> = OnceLock::new();
    *ME.get_or_init(|| owner_word(std::process::id(), proc_stat("self").map_or(0, |(_, start)| start)))
}

/// Whether the process an owner word names is alive: `/proc` shows it, not
/// as a zombie, with the recorded start time; where `/proc` does not show
/// the pid, `kill(pid, 0)` decides; anything unclear counts as alive.
pub(super) fn alive(owner: u64) -> bool {
    if owner == me() {
        return true;
    }
    let (pid, start) = (owner as u32, (owner >> 32) as u32);
    match proc_stat(&pid.to_string()) {
        Ok((state, ticks)) => !matches!(state, b'Z' | b'X' | b'x') && (start == 0 || ticks as u32 == start),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match rustix::process::Pid::from_raw(pid as i32) {
            // Gone, or hidden from this process's /proc (a hidepid mount): ask the kernel.
            Some(p) => rustix::process::test_kill_process(p) != Err(rustix::io::Errno::SRCH),
            None => false,
        },
        Err(_) => true,
    }
}

thread_local! {
    /// The cell this thread tries first.
    static HINT: Cell<Option<usize>> = const { Cell::new(None) };
}
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The cell a thread tries first: threads of one process four cells (one
/// cache line) apart, processes spread by their pid.
fn hint() -> usize {
    HINT.with(|h| match h.get() {
        Some(cell) => cell,
        None => {
            let n = THREADS.fetch_add(1, Ordering::Relaxed);
            let cell = (std::process::id() as usize).wrapping_mul(0x9e37).wrapping_add(n * 4) % CELLS;
            h.set(Some(cell));
            cell
        }
    })
}

impl Journal {
    fn owner(&self, cell: usize) -> &AtomicU64 {
        self.word((OFF_WRITERS + cell as u64 * CELL_BYTES) as usize)
    }

    fn number(&self, cell: usize) -> &AtomicU64 {
        self.word((OFF_WRITERS + cell as u64 * CELL_BYTES + 8) as usize)
    }

    /// Steps 1 and 2: takes a free cell (or one whose owner died, when none
    /// is free) and marks it "taking a number".
    pub(super) fn take_cell(&self) -> usize {
        let me = me();
        let start = hint();
        loop {
            for i in 0..CELLS {
                let c = (start + i) % CELLS;
                let owner = self.owner(c);
                if owner.load(Ordering::Relaxed) == 0 && owner.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    self.taking(c);
                    return c;
                }
            }
            // Every cell is held: take over one whose owner died.
            let owners = Claimants { cells: Vec::new(), known: RefCell::new(Vec::new()) };
            for c in 0..CELLS {
                let o = self.owner(c).load(Ordering::Acquire);
                if o != 0 && !owners.alive(o) && self.owner(c).compare_exchange(o, me, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    self.taking(c);
                    return c;
                }
            }
            std::thread::yield_now();
        }
    }

    fn taking(&self, cell: usize) {
        // Loaded before this thread's `fetch_add`, so not above the number it will get.
        let head = self.word(OFF_HEAD).load(Ordering::Relaxed);
        self.number(cell).store(TAKING | head, Ordering::Release);
    }

    /// Step 4: the cell shows the number its writer holds.
    pub(super) fn publish_number(&self, cell: usize, seq: u64) {
        self.number(cell).store(seq + 1, Ordering::Release);
    }

    /// Step 7: the writer's entry is committed; the cell is free.
    pub(super) fn free_cell(&self, cell: usize) {
        self.owner(cell).store(0, Ordering::Release);
    }

    pub(super) fn clear_writer_table(&self) {
        for c in 0..CELLS {
            self.number(c).store(0, Ordering::SeqCst);
            self.owner(c).store(0, Ordering::SeqCst);
        }
    }

    /// The held cells, as a reader loads them after loading the head.
    pub(super) fn claimants(&self) -> Claimants {
        Claimants { cells: self.held_cells().into_iter().map(|(_, o, n)| (o, n)).collect(), known: RefCell::new(Vec::new()) }
    }

    /// Every held cell: (cell, owner word, number word).
    pub(super) fn held_cells(&self) -> Vec<(usize, u64, u64)> {
        let mut held = Vec::new();
        for c in 0..CELLS {
            let o = self.owner(c).load(Ordering::Acquire);
            if o != 0 {
                held.push((c, o, self.number(c).load(Ordering::Acquire)));
            }
        }
        held
    }

    /// The owner and number word of one cell now.
    pub(super) fn cell(&self, cell: usize) -> (u64, u64) {
        (self.owner(cell).load(Ordering::Acquire), self.number(cell).load(Ordering::Acquire))
    }

    /// Writes a cell as a writer of process `owner` would (tests).
    #[cfg(test)]
    pub(super) fn forge_cell(&self, cell: usize, owner: u64, number: u64) {
        self.number(cell).store(number, Ordering::SeqCst);
        self.owner(cell).store(owner, Ordering::SeqCst);
    }
}

/// What a number word says of the number its writer holds.
pub(super) fn held_number(number: u64) -> Option<u64> {
    (number & TAKING == 0 && number > 0).then(|| number - 1)
}

/// The head a "taking a number" word was stored with: the number its writer
/// will get is not below it.
pub(super) fn taking_head(number: u64) -> Option<u64> {
    (number & TAKING != 0).then_some(number & !TAKING)
}

/// A number word saying "taking a number" with the head at least `head`.
#[cfg(test)]
pub(super) fn taking_from(head: u64) -> u64 {
    TAKING | head
}

/// The owner word of a process (tests).
#[cfg(test)]
pub(super) fn owner_of(pid: u32) -> u64 {
    owner_word(pid, proc_stat(&pid.to_string()).map_or(0, |(_, start)| start))
}

/// The held cells of the writer table as one reader loaded them, with the
/// liveness of their owners looked up at most once each.
pub(super) struct Claimants {
    cells: Vec<(u64, u64)>,
    known: RefCell<Vec<(u64, bool)>>,
}

impl Claimants {
    /// Whether a live writer may hold number `seq`: its cell holds `seq`, or
    /// it is taking a number and the head was not past `seq` before.
    pub(super) fn may_hold(&self, seq: u64) -> bool {
        self.cells.iter().any(|&(owner, number)| {
            let could = if number & TAKING != 0 { number & !TAKING <= seq } else { number == seq + 1 };
            could && self.alive(owner)
        })
    }

    /// The cells as loaded: (owner word, number word).
    pub(super) fn cells(&self) -> &[(u64, u64)] {
        &self.cells
    }

    pub(super) fn alive(&self, owner: u64) -> bool {
        if let Some(&(_, a)) = self.known.borrow().iter().find(|(o, _)| *o == owner) {
            return a;
        }
        let a = alive(owner);
        self.known.borrow_mut().push((owner, a));
        a
    }
}
