//! Named crash points: the steps of every multi-step operation, where tests
//! stop a process (SIGSTOP), kill it (SIGKILL) or inject a fault, to prove
//! what the others see and what a restart finds.
//!
//! A point is marked in the code with `failpoint!("name")` (the `fail`
//! crate's `fail_point!`, see `lib.rs`), which compiles to nothing without
//! the `failpoints` feature. [`POINTS`] names every point and says where it
//! is; `tests/crash_points.rs` checks this list against the `failpoint!`
//! lines of the sources and against the crash-point table of
//! docs/reliability.md, so a point cannot exist without its row.
//!
//! Tests arm points in their own process with the `fail` crate (`fail::cfg`,
//! `fail::cfg_callback`), and in a child process through the environment
//! variable `WINDOW_SPACE_FAILPOINTS`, which [`arm_from_env`] reads (the
//! addon calls it when it is loaded; a Rust test's child process calls it
//! itself). Its value is `point=action;point=action;…` where an action is
//!
//! * `stop` — the process sends itself SIGSTOP the first time one of its
//!   threads reaches the point (`stop(n)`: the n-th time), so a test can look
//!   at it from outside, then continue it (SIGCONT) or kill it (SIGKILL);
//! * `kill` — the process sends itself SIGKILL there (`kill(n)`: the n-th time);
//! * any action of the `fail` crate: `return`, `return(arg)` (a point that
//!   injects a fault takes its argument), `yield`, `sleep(ms)`, `delay(ms)`,
//!   `panic(msg)`, `pause`, with its `p%`, `cnt*` and `->` forms.
//!
//! The I/O sites of `io.rs` (where a test injects a disk fault, e.g.
//! `payload.append.write=1*return(enospc)`) are armed the same way. A name
//! that is neither in [`POINTS`] nor an I/O site is refused, so a test
//! cannot arm a point that does not exist and pass because nothing happened.

/// Every named point: its name and, in one line, where it is. Points whose
/// line says "a fault" inject an error (armed with `return(...)`); the
/// others are crash points that do nothing unless armed.
pub const POINTS: &[(&str, &str)] = &[
    ("repair::intent-written", "`window-space repair`: its audit intent line written; nothing else changed"),
    ("repair::symbols-added", "`window-space repair`: the placeholder symbols are in `symbols.log`; no lost-id record yet"),
    ("payload::lost-header-written", "a damaged table's header rewritten with format version 2; no lost-id record yet"),
    ("payload::lost-written", "a batch of lost-id records written, not synced"),
    ("repair::lost-marked", "`window-space repair`: every lost id marked; no dangling slot cleared yet"),
    ("repair::slot-cleared", "`window-space repair`: one dangling slot cleared (counted, journaled); the others not yet"),
    ("repair::cleared", "`window-space repair`: every dangling slot cleared; the outcome line not written"),
    (
        "migrate::staged",
        "`window-space migrate`: the converted files written and synced in `migrate-staging/`; not verified, nothing switched",
    ),
    ("migrate::ready", "`window-space migrate`: the converted files verified and `migrate-staging/READY` synced; nothing switched"),
    (
        "migrate::file-switched",
        "`window-space migrate`: one converted file renamed into place (its old one linked into the backup); the files after it not yet",
    ),
    (
        "migrate::switched",
        "`window-space migrate`: every converted file in place; the audit line not written, the staging directory not removed",
    ),
    ("slot::claim-read", "a claim has loaded the slot's head word and not yet decided on it"),
    ("slot::filled-uncounted", "a fill's compare-and-swap made (the slot Filled); its chunk's done count not raised yet"),
    ("slot::done-lowered", "a force-clear of a Filled slot has lowered its chunk's done count; its compare-and-swap not made yet"),
    ("slot::admin-read", "a force-clear or retire has loaded the slot's head word and not yet decided on it"),
    (
        "controller::before-count",
        "a transition's compare-and-swap done (claim, fill, clear, force-clear, retire); the shared counters not updated",
    ),
    (
        "controller::batch-slot-done",
        "a batch claim or batch fill: one slot's transition made and journaled; the batch's shared counters not updated",
    ),
    ("controller::takeover-claimed", "a takeover's claim made, counted and journaled; its audit line not written"),
    (
        "controller::repair-scanned",
        "a survivor's counter repair: both ledgers scanned; the check that no transition ran meanwhile not made",
    ),
    ("controller::symbol-added", "a new symbol in symbols.log, the locks released; the trade ledger's shared symbol count not raised"),
    ("payload::append-locked", "an append holds its mapping table's lock (a dead writer's torn tail cut); nothing written"),
    ("payload::append-written", "an append's record written (`pwrite`), not synced; the lock held"),
    ("payload::append-synced", "an append's record written and, in the sync mode, synced; the lock held"),
    ("payload::append-unlocked", "an append's lock released; its id not returned to the caller"),
    ("ledger::extended", "ledger growth: the file extended; the new chunk not written; the ledger's lock held"),
    ("ledger::chunk-written", "ledger growth: the chunk (header, zero rows) written; the chunk count not published"),
    ("ledger::published", "ledger growth: the chunk count published in the header; the slot that needed the chunk not changed"),
    (
        "fsutil::atomic-temp-written",
        "an atomic rewrite (schedule.json, an artifact): the temp file written and fsynced, not renamed",
    ),
    ("fsutil::atomic-renamed", "an atomic rewrite: the temp file renamed over the file; the directory not fsynced"),
    (
        "symbols::record-part-written",
        "a new symbol: the first half of its record written at the end of symbols.log (builds with failpoints write it in two halves); the gate and the log's lock held",
    ),
    (
        "symbols::appended",
        "a new symbol (or lost-symbol placeholders): the whole record written and, in the sync mode, synced; the locks held; this controller's map not updated",
    ),
    ("bootstrap::files-created", "a new state directory: every state file created; schedule.json (the commit mark) not written"),
    ("bootstrap::tails-cut", "a bootstrap with no other controller open: torn tails cut; the shared counters not rebuilt"),
    (
        "bootstrap::counts-rebuilt",
        "a bootstrap with no other controller open: counters and symbol count stored from its scan; stale temp files not removed",
    ),
    ("bootstrap::schedule-rolled", "a bootstrap that rolls the schedule forward: schedule.json rewritten; the window count not published"),
    ("bootstrap::present", "a bootstrap: its presence record made; the gate not released"),
    ("journal::cell-taken", "a journaled transition: the writer's cell says \"taking a number\"; the head not moved"),
    ("journal::numbered", "a journaled transition: the head's `fetch_add` gave the number; the cell does not show it"),
    ("journal::reserved", "a journaled transition: the cell shows the number; the slot's compare-and-swap next"),
    ("journal::changed", "a journaled transition: the slot changed and counted; the entry not written"),
    ("journal::committed", "a journaled transition (or a refused one's no-change entry): the entry written; the cell not freed"),
    ("admin::intent-written", "force-clear or retire (a slot or a range): the intent line in audit.log; no slot changed"),
    (
        "admin::slot-changed",
        "force-clear or retire: one slot changed (counted, journaled); the outcome line not written, later slots of a range not changed",
    ),
    ("admin::outcome-written", "force-clear or retire: the outcome line written; the call not returned"),
    ("gc::intent-audited", "gc --delete: the audit trail's `gc` intent line written; no file touched"),
    ("gc::log-written", "gc: a gc.log line written, not fsynced"),
    ("gc::collect-logged", "gc: a file's `collect` line in gc.log (fsynced); the file in place"),
    ("gc::trashed", "gc: the file moved into gc-trash/; judged again next"),
    ("gc::half-judged", "gc: a look at whether a file is still garbage: the slots looked at, the records not yet"),
    ("gc::deleted", "gc (also finishing a killed gc's collection): the trashed file deleted; `done` not written"),
    ("gc::restored", "gc: a file that became live again moved back; `abort` not written"),
    ("gc::records-marked", "gc: `record` lines of records without a file appended; the audit trail's `done` line not written"),
];

/// Whether this build has the points compiled in (the `failpoints` feature).
pub const ENABLED: bool = cfg!(feature = "failpoints");

/// The environment variable [`arm_from_env`] reads.
pub const ENV: &str = "WINDOW_SPACE_FAILPOINTS";

/// One armed point of a `WINDOW_SPACE_FAILPOINTS` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arming {
    /// SIGSTOP the process the n-th time the point is reached.
    Stop { point: String, nth: u64 },
    /// SIGKILL the process the n-th time the point is reached.
    Kill { point: String, nth: u64 },
    /// An action of the `fail` crate, as written.
    Fail { point: String, actions: String },
}

/// Parses a `WINDOW_SPACE_FAILPOINTS` value (see the module docs).
pub fn parse(spec: &str) -> Result<Vec<Arming>, String> {
    let mut out = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((point, action)) = part.split_once('=') else {
            return Err(format!("{part:?} is not point=action"));
        };
        let (point, action) = (point.trim(), action.trim());
        if !POINTS.iter().any(|(name, _)| *name == point) && !crate::io::Site::ALL.iter().any(|site| site.name() == point) {
            return Err(format!("{point:?} is not a crash point or I/O site of window-space"));
        }
        let counted = |word: &str| -> Result<Option<u64>, String> {
            if action == word {
                return Ok(Some(1));
            }
            match action.strip_prefix(word).and_then(|r| r.strip_prefix('(')).and_then(|r| r.strip_suffix(')')) {
                Some(n) => match n.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(format!("{point}: {action:?}: the count must be a whole number from 1")),
                },
                None => Ok(None),
            }
        };
        let point = point.to_string();
        out.push(if let Some(nth) = counted("stop")? {
            Arming::Stop { point, nth }
        } else if let Some(nth) = counted("kill")? {
            Arming::Kill { point, nth }
        } else {
            Arming::Fail { point, actions: action.to_string() }
        });
    }
    Ok(out)
}

/// Arms the points `WINDOW_SPACE_FAILPOINTS` names in this process (nothing
/// when it is unset). Returns the points armed. An unknown point or a
/// malformed count is an error before anything is armed; an action the
/// `fail` crate refuses is an error too.
#[cfg(feature = "failpoints")]
pub fn arm_from_env() -> Result<Vec<String>, String> {
    let Ok(spec) = std::env::var(ENV) else { return Ok(Vec::new()) };
    let armings = parse(&spec)?;
    let mut armed = Vec::new();
    for a in armings {
        let point = match a {
            Arming::Stop { point, nth } => arm_signal(point, rustix::process::Signal::STOP, nth),
            Arming::Kill { point, nth } => arm_signal(point, rustix::process::Signal::KILL, nth),
            Arming::Fail { point, actions } => {
                fail::cfg(point.as_str(), &actions).map_err(|e| format!("{point}: {actions:?}: {e}"))?;
                point
            }
        };
        armed.push(point);
    }
    Ok(armed)
}

/// The process sends itself `signal` the `nth` time any of its threads reaches `point`.
///
/// The signal is sent with the id of the thread at the point (`kill(tid)`):
/// Linux delivers it to the whole process, and has the thread that sent it
/// take it before it returns, so that thread stops (or dies) right at the
/// point. Sent to the process id, it may be taken by another thread, and
/// the thread at the point would run on until that one has stopped them all.
#[cfg(feature = "failpoints")]
fn arm_signal(point: String, signal: rustix::process::Signal, nth: u64) -> String {
    let reached = std::sync::atomic::AtomicU64::new(0);
    let armed = fail::cfg_callback(point.as_str(), move || {
        if reached.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == nth {
            let _ = rustix::process::kill_process(rustix::thread::gettid(), signal);
        }
    });
    debug_assert!(armed.is_ok(), "a callback always arms");
    point
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_the_variable_parse_and_unknown_points_are_refused() {
        let a = parse("journal::numbered=stop; payload::append-written=kill(3);ledger.grow.extend=return(short:3072)").unwrap();
        assert_eq!(
            a,
            vec![
                Arming::Stop { point: "journal::numbered".into(), nth: 1 },
                Arming::Kill { point: "payload::append-written".into(), nth: 3 },
                Arming::Fail { point: "ledger.grow.extend".into(), actions: "return(short:3072)".into() },
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert!(parse("journal::numberd=stop").unwrap_err().contains("not a crash point"));
        assert!(parse("journal::numbered").unwrap_err().contains("point=action"));
        assert!(parse("journal::numbered=stop(0)").is_err());
        assert!(parse("journal::numbered=kill(x)").is_err());
    }

    #[test]
    fn every_point_is_named_once() {
        let mut names: Vec<_> = POINTS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a point is listed twice");
    }
}
