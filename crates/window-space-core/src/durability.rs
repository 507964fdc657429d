//! Group commit for the synchronous durability mode.
//!
//! In the `sync` mode every plain call makes its own change durable before it
//! returns (`fdatasync` of a mapping table, `msync` of a slot's page). The
//! async calls of the facade instead run their write inside a *deferral scope*
//! ([`Controller::deferred`](crate::Controller::deferred)): the write reaches
//! the shared page cache at once, the ledger or mapping table only remembers
//! what must still be synced, and the call gets a *ticket*. Awaiting the ticket
//! ([`Controller::commit_through`](crate::Controller::commit_through)) makes
//! everything deferred up to it durable; one committer syncs for every ticket
//! issued before it started, so N concurrent async calls cost one round of
//! syncs, not N.
//!
//! Ordering (a Filled slot must never refer to a record that power loss
//! could take): a commit syncs the mapping
//! tables before the ledgers, and a deferred fill first makes its payload
//! record durable if that record was itself appended in a deferral scope
//! that has not been committed yet (`PayloadStore::ensure_durable`), so the
//! kernel's own write-back of a ledger page can never publish a fill whose
//! record would be lost with power.
//!
//! Invariant behind the tickets: a deferred write registers what it dirtied
//! *before* it draws its ticket, and a committer reads the highest issued
//! ticket *before* it drains the dirty sets. So everything registered by a
//! ticket `<= upto` is drained by that committer or an earlier one.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

thread_local! {
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs a write inside a deferral scope.
pub(crate) fn deferring() -> bool {
    DEFERRING.with(Cell::get)
}

/// Clears this thread's deferral flag whatever set it (for a binding whose
/// controller closed between beginning and ending a deferral).
pub fn clear_deferring() {
    set_deferring(false);
}

/// Sets or clears this thread's deferral flag (the unscoped form of [`DeferScope`]).
pub(crate) fn set_deferring(on: bool) {
    DEFERRING.with(|d| d.set(on));
}

/// Marks this thread as deferring its syncs until dropped.
pub(crate) struct DeferScope {
    previous: bool,
}

impl DeferScope {
    pub(crate) fn enter() -> Self {
        Self { previous: DEFERRING.with(|d| d.replace(true)) }
    }
}

impl Drop for DeferScope {
    fn drop(&mut self) {
        DEFERRING.with(|d| d.set(self.previous));
    }
}

/// Tickets of deferred writes and how far they are durable.
#[derive(Default)]
pub(crate) struct GroupCommit {
    issued: AtomicU64,
    durable: AtomicU64,
    /// How many times a committer synced (one round serves many tickets).
    rounds: AtomicU64,
    /// Highest ticket a failed round was to cover: after a failed fsync Linux
    /// marks the pages clean and reports the error once, so a later sync
    /// proves nothing about these tickets. They all fail, for good.
    failed_through: AtomicU64,
    committer: Mutex<()>,
}

impl GroupCommit {
    /// Draws the ticket of a deferred write (after it registered its dirty state).
    pub(crate) fn issue(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Makes every write with a ticket `<= ticket` durable by running `sync`
    /// once for all tickets issued so far, unless a committer already did.
    pub(crate) fn commit_through(&self, ticket: u64, sync: impl FnOnce() -> crate::Result<()>) -> crate::Result<()> {
        if self.durable.load(Ordering::Acquire) >= ticket {
            return Ok(());
        }
        let _one_committer = self.committer.lock().unwrap_or_else(|p| p.into_inner());
        if self.durable.load(Ordering::Acquire) >= ticket {
            return Ok(());
        }
        if ticket <= self.failed_through.load(Ordering::Acquire) {
            return Err(crate::Error::io(
                "fdatasync",
                "(group commit)",
                std::io::Error::other("an earlier sync covering this write failed; whether it reached the disk is unknown"),
            ));
        }
        let upto = self.issued.load(Ordering::Acquire);
        if let Err(e) = sync() {
            self.failed_through.fetch_max(upto, Ordering::AcqRel);
            return Err(e);
        }
        self.rounds.fetch_add(1, Ordering::AcqRel);
        self.durable.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Tickets issued, tickets made durable, and commit rounds so far.
    pub(crate) fn progress(&self) -> (u64, u64, u64) {
        (self.issued.load(Ordering::Acquire), self.durable.load(Ordering::Acquire), self.rounds.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn a_scope_sets_and_restores_the_flag() {
        assert!(!deferring());
        {
            let _a = DeferScope::enter();
            assert!(deferring());
            {
                let _b = DeferScope::enter();
                assert!(deferring());
            }
            assert!(deferring());
        }
        assert!(!deferring());
    }

    #[test]
    fn one_sync_covers_every_ticket_issued_before_it() {
        let g = GroupCommit::default();
        let syncs = AtomicUsize::new(0);
        let t1 = g.issue();
        let t2 = g.issue();
        let t3 = g.issue();
        g.commit_through(t2, || {
            syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        // t1 and t3 were issued before that commit started: already durable.
        for t in [t1, t3] {
            g.commit_through(t, || panic!("ticket {t} should be durable already")).unwrap();
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        let t4 = g.issue();
        g.commit_through(t4, || {
            syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 2);
        assert_eq!(g.progress(), (4, 4, 2));
    }

    #[test]
    fn a_failed_sync_fails_every_ticket_it_covered_for_good_but_not_later_ones() {
        let g = GroupCommit::default();
        let t1 = g.issue();
        let t2 = g.issue();
        let err = g.commit_through(t1, || Err(crate::Error::invalid("EIO"))).unwrap_err();
        assert!(err.to_string().contains("EIO"));
        assert_eq!(g.progress(), (2, 0, 0));
        // A retry would succeed (the kernel reports EIO once), but proves nothing.
        for t in [t1, t2] {
            let e = g.commit_through(t, || panic!("must not sync again for ticket {t}")).unwrap_err();
            assert!(e.to_string().contains("earlier sync"), "{e}");
        }
        let t3 = g.issue();
        let mut ran = false;
        g.commit_through(t3, || {
            ran = true;
            Ok(())
        })
        .unwrap();
        assert!(ran);
        assert_eq!(g.progress(), (3, 3, 1));
    }

    #[test]
    fn no_racing_committer_returns_before_its_ticket_is_durable() {
        let g = Arc::new(GroupCommit::default());
        let syncs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (g, syncs) = (g.clone(), syncs.clone());
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        let t = g.issue();
                        g.commit_through(t, || {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(50));
                            Ok(())
                        })
                        .unwrap();
                        assert!(g.progress().1 >= t, "ticket {t} returned before it was durable");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (issued, durable, rounds) = g.progress();
        assert_eq!((issued, durable), (2000, 2000));
        assert_eq!(rounds as usize, syncs.load(Ordering::SeqCst));
    }
}
