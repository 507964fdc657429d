//! Following the journal for a watcher thread, which tells its listeners
//! (`waitFor`, `watch()`) to look again whenever something they may wait for
//! has happened: an entry committed, an entry abandoned by a writer that
//! died, or a writer that was in flight when the follower started moving on.
//!
//! Listeners re-read what they wait for when told, so a follower may tell
//! them more often than needed, never less. It tells of every entry as soon
//! as it is committed, also when an entry numbered before it is still in
//! flight (a stopped writer holds up nobody else's news), and it judges an
//! uncommitted entry abandoned only on a later look than the one that first
//! saw it uncommitted, so a writer that is merely between two steps costs no
//! look at `/proc`.

use super::writers::{alive, held_number};
use super::{Journal, Verdict};

/// What a look at the journal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// Something happened since the last look (the first look always says so).
    pub news: bool,
    /// The head at this look.
    pub head: u64,
}

/// The state a watcher thread keeps between looks.
pub struct Follower {
    /// Entries below were looked at.
    scanned: u64,
    /// The head when the follower started.
    start: u64,
    /// Numbered, uncommitted entries; `true` once seen at an earlier look.
    open: Vec<(u64, bool)>,
    /// Writer cells held when the follower started (their writers may hold
    /// numbers below `start`): cell, owner word, number word.
    cells: Vec<(usize, u64, u64)>,
    first: bool,
}

impl Follower {
    /// Starts following at the head now. The first [`look`](Self::look)
    /// reports news, so listeners re-read what changed before the start.
    pub fn new(journal: &Journal) -> Self {
        // The head before the cells: a writer whose number is below it took
        // its cell before, so it is in `cells` unless it has committed already.
        let start = journal.head();
        let cells = journal.held_cells();
        Self { scanned: start, start, open: Vec::new(), cells, first: true }
    }

    /// Whether some writer is known to be in flight: the caller should look
    /// again soon even if no writer wakes it (one that dies wakes nobody).
    pub fn in_flight(&self) -> bool {
        !self.open.is_empty() || !self.cells.is_empty()
    }

    /// Entries whose commit the caller's sleep should not miss (see [`Journal::wait`]).
    pub fn waiting_on(&self) -> Vec<u64> {
        let held = self.cells.iter().filter_map(|&(_, _, n)| held_number(n));
        self.open.iter().map(|&(s, _)| s).chain(held).collect()
    }

    /// Looks at the journal.
    pub fn look(&mut self, journal: &Journal) -> Look {
        let head = journal.head();
        let mut news = std::mem::take(&mut self.first);
        let oldest = head.saturating_sub(journal.capacity());
        if self.scanned < oldest {
            // Entries lost to the ring: readers get their gaps.
            news = true;
            self.scanned = oldest;
        }
        // Writers that were in flight when the follower started.
        let mut moved_on = Vec::new();
        self.cells.retain(|&(c, owner, number)| {
            let same = journal.cell(c) == (owner, number);
            let committed = held_number(number).is_some_and(|s| journal.committed(s));
            if !same || committed || !alive(owner) {
                moved_on.push(journal.cell(c));
                return false;
            }
            true
        });
        for (_, number) in moved_on {
            news = true;
            // It may have taken its number since: follow that entry too.
            if let Some(s) = held_number(number).filter(|&s| s < self.start && s >= oldest) {
                if !self.open.iter().any(|&(o, _)| o == s) {
                    self.open.push((s, false));
                }
            }
        }
        // Entries seen before: committed, or judged.
        let before = self.open.len();
        self.open.retain(|&(s, _)| s >= oldest && !journal.committed(s));
        news |= self.open.len() != before;
        if self.open.iter().any(|&(_, seen)| seen) {
            let claimants = journal.claimants();
            let before = self.open.len();
            self.open.retain(|&(s, seen)| !seen || journal.judge(s, &claimants) == Verdict::InFlight);
            news |= self.open.len() != before;
        }
        // Entries numbered since the last look.
        for s in self.scanned..head {
            if journal.committed(s) {
                news = true;
            } else {
                self.open.push((s, false));
            }
        }
        self.scanned = head;
        for e in &mut self.open {
            e.1 = true;
        }
        Look { news, head }
    }
}
