//! Operators' transitions — force-clear and retire, on one slot or a range
//! of windows — and the audit trail they write (`audit.rs` owns its format).
//!
//! Every change is announced before it is made: an *intent* line (`"phase":
//! "intent"`, the slot or range about to change) is appended first, and only
//! if it was written does anything change; the *outcome* line after it
//! records what each transition actually replaced — the slot as read from
//! the very head word the compare-and-swap checked, never from a separate
//! read that another writer could have overtaken. An intent without an
//! outcome means the process died (or the disk filled up) in between: the
//! slots it names may or may not have changed. A call that would change
//! nothing writes nothing.

use std::ops::Range;

use super::Controller;
use crate::audit::{self, AuditContext, AuditLog};
use crate::error::{Error, Result};
use crate::slot::{AdminChange, SlotAddr, SlotSnapshot, SlotWriteError, Transition};
use crate::vocab::{self, LedgerEvent, SlotKind, SlotStatus};

/// One admin transition on one slot.
enum AdminOutcome {
    /// What it did, and the slot it replaced.
    Changed(Transition, SlotSnapshot),
    /// It left the slot as it was: the slot as it was when that was decided.
    Unchanged(SlotSnapshot),
}

/// What an admin action names in the audit trail: one slot, or a range of windows.
enum Target {
    One(u32),
    Range(Range<u32>),
}

/// The answer of an admin call that left the slot `s` as it was: no
/// transition, from `s`'s status to the same, at its version. It is the slot
/// the call decided on, not a later read, which could show a status the call
/// would have changed.
fn unchanged(s: &SlotSnapshot) -> Transition {
    Transition { from: s.status, to: s.status, version: s.version }
}

impl Controller {
    fn check_range(&self, symbol: u32, windows: &Range<u32>) -> Result<()> {
        if windows.start > windows.end {
            return Err(Error::invalid(format!("window range {}..{} is reversed", windows.start, windows.end)));
        }
        self.symbols.check_id(symbol)?;
        if windows.end > windows.start {
            self.check_window(windows.end - 1)?;
        }
        Ok(())
    }

    fn force_clear_one(&self, at: SlotAddr) -> Result<AdminOutcome> {
        self.check(at)?;
        let Some(cell) = self.ledger(at.kind).slot(at.symbol, at.window, at.kind.column())? else {
            return Ok(AdminOutcome::Unchanged(SlotSnapshot::EMPTY)); // never written: Empty, and claimable already
        };
        // A Retired slot is terminal; refusing it is not an engine's conflict, so it is not counted as one.
        let _in_flight = self.presence.in_flight();
        match cell.force_clear(|| self.journal.reserve()).map_err(|refusal| Error::SlotWrite { at, refusal })? {
            AdminChange::Changed(t, before, journaled) => {
                self.after(journaled, at, t, LedgerEvent::ForceClears, 0)?;
                failpoint!("admin::slot-changed");
                Ok(AdminOutcome::Changed(t, before))
            }
            AdminChange::Unchanged(s) => Ok(AdminOutcome::Unchanged(s)),
        }
    }

    /// An operator's repair (`ops/repair.rs`): force-clears a slot that is
    /// still Filled with `payload_id` (a payload id its table lost), through
    /// the path of every admin transition (journal number, in-flight mark,
    /// counters, the sync mode's msync); `None` when the slot no longer
    /// refers to it. The repair writes its own audit lines.
    pub(crate) fn clear_dangling(&self, at: SlotAddr, payload_id: u64) -> Result<Option<(Transition, SlotSnapshot)>> {
        let now = self.ledger(at.kind).read(at.symbol, at.window, at.kind.column())?;
        if now.status != SlotStatus::Filled || now.payload_id != payload_id {
            return Ok(None);
        }
        Ok(match self.force_clear_one(at)? {
            AdminOutcome::Changed(t, before) => Some((t, before)),
            AdminOutcome::Unchanged(_) => None,
        })
    }

    fn retire_one(&self, at: SlotAddr) -> Result<AdminOutcome> {
        self.check(at)?;
        let cell = self.ledger(at.kind).slot_for_write(at.symbol, at.window, at.kind.column())?;
        let _in_flight = self.presence.in_flight();
        match cell.retire(|| self.journal.reserve()).map_err(|refusal| Error::SlotWrite { at, refusal })? {
            AdminChange::Changed(t, before, journaled) => {
                self.after(journaled, at, t, LedgerEvent::Retires, 0)?;
                failpoint!("admin::slot-changed");
                Ok(AdminOutcome::Changed(t, before))
            }
            AdminChange::Unchanged(s) => Ok(AdminOutcome::Unchanged(s)),
        }
    }

    fn audit_slot(
        &self,
        ctx: &AuditContext,
        action: &str,
        symbol: u32,
        kind: SlotKind,
        mut fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        fields.insert("symbol".into(), self.symbols.name(symbol).ok().flatten().unwrap_or_default().into());
        fields.insert("symbolId".into(), symbol.into());
        fields.insert("slot".into(), kind.name().into());
        self.audit.append(ctx, action, fields)
    }

    pub(super) fn audit_single(
        &self,
        ctx: &AuditContext,
        action: &str,
        at: SlotAddr,
        t: Transition,
        previous: &SlotSnapshot,
    ) -> Result<()> {
        let mut f = serde_json::Map::new();
        f.insert("window".into(), at.window.into());
        f.insert("previous".into(), audit::previous_json(previous));
        f.insert("status".into(), t.to.name().into());
        f.insert("version".into(), t.version.into());
        self.audit_slot(ctx, action, at.symbol, at.kind, f)
    }

    /// The intent line of an admin action on one slot (`window`) or on a
    /// range (`from`, `to`: also a range of one window), named as its
    /// outcome line will name it.
    fn audit_intent(&self, ctx: &AuditContext, action: &str, symbol: u32, kind: SlotKind, windows: Target) -> Result<()> {
        let mut f = serde_json::Map::new();
        f.insert("phase".into(), "intent".into());
        match windows {
            Target::One(window) => {
                f.insert("window".into(), window.into());
            }
            Target::Range(windows) => {
                f.insert("from".into(), windows.start.into());
                f.insert("to".into(), windows.end.into());
            }
        }
        self.audit_slot(ctx, action, symbol, kind, f)
    }

    /// Admin: any status but Retired → Cleared, recorded in the audit trail
    /// under `ctx` (intent first, outcome after) when the slot changes. An
    /// Empty or Cleared slot stays as it is and nothing is written; the
    /// returned transition then has `from == to`.
    pub fn force_clear(&self, at: SlotAddr, ctx: &AuditContext) -> Result<Transition> {
        self.check(at)?;
        let now = self.ledger(at.kind).read(at.symbol, at.window, at.kind.column())?;
        match now.status {
            SlotStatus::Empty | SlotStatus::Cleared => return self.as_it_was(at, now),
            SlotStatus::Retired => return Err(Error::SlotWrite { at, refusal: SlotWriteError::SlotRetired { current: now } }),
            _ => {}
        }
        self.audit_intent(ctx, "forceClear", at.symbol, at.kind, Target::One(at.window))?;
        failpoint!("admin::intent-written");
        match self.force_clear_one(at)? {
            AdminOutcome::Changed(t, previous) => {
                self.audit_single(ctx, "forceClear", at, t, &previous)?;
                failpoint!("admin::outcome-written");
                Ok(t)
            }
            AdminOutcome::Unchanged(s) => self.as_it_was(at, s),
        }
    }

    /// Admin: any status → Retired (terminal), recorded in the audit trail
    /// under `ctx` (intent first, outcome after) when the slot changes.
    pub fn retire(&self, at: SlotAddr, ctx: &AuditContext) -> Result<Transition> {
        self.check(at)?;
        let now = self.ledger(at.kind).read(at.symbol, at.window, at.kind.column())?;
        if now.status == SlotStatus::Retired {
            return self.as_it_was(at, now);
        }
        self.audit_intent(ctx, "retire", at.symbol, at.kind, Target::One(at.window))?;
        failpoint!("admin::intent-written");
        match self.retire_one(at)? {
            AdminOutcome::Changed(t, previous) => {
                self.audit_single(ctx, "retire", at, t, &previous)?;
                failpoint!("admin::outcome-written");
                Ok(t)
            }
            AdminOutcome::Unchanged(s) => self.as_it_was(at, s),
        }
    }

    /// The no-op transition of a slot found as `now`. In the sync mode its
    /// page is synced first: the state the call reports must survive power
    /// loss as a change would (it may be the change of an earlier call whose
    /// msync failed).
    fn as_it_was(&self, at: SlotAddr, now: SlotSnapshot) -> Result<Transition> {
        self.ledger(at.kind).flush_slot(at.symbol, at.window, at.kind.column())?;
        Ok(unchanged(&now))
    }

    /// An admin action over `windows` of (symbol, kind): `action` names it in
    /// the audit trail, `changes` says which statuses it changes, `one` does
    /// it to one slot.
    fn range(
        &self,
        (symbol, kind, windows): (u32, SlotKind, Range<u32>),
        ctx: &AuditContext,
        (action, changes): (&str, impl Fn(SlotStatus) -> bool),
        one: impl Fn(SlotAddr) -> Result<AdminOutcome>,
    ) -> Result<u64> {
        self.check_range(symbol, &windows)?;
        // Nothing to change, nothing to announce.
        let ledger = self.ledger(kind);
        let mut any = false;
        for w in windows.clone() {
            if changes(ledger.read(symbol, w, kind.column())?.status) {
                any = true;
                break;
            }
        }
        if !any {
            // As it is: in the sync mode, durably so.
            for w in windows {
                ledger.flush_slot(symbol, w, kind.column())?;
            }
            return Ok(0);
        }
        self.audit_intent(ctx, action, symbol, kind, Target::Range(windows.clone()))?;
        failpoint!("admin::intent-written");
        let mut changed = Vec::new();
        let mut failure = None;
        for window in windows.clone() {
            match one(SlotAddr { symbol, window, kind }) {
                Ok(AdminOutcome::Changed(_, p)) => changed.push(serde_json::json!([window, p.status.name(), p.version, p.payload_id])),
                Ok(AdminOutcome::Unchanged(_)) => {
                    if let Err(e) = ledger.flush_slot(symbol, window, kind.column()) {
                        failure = Some(e);
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let n = changed.len() as u64;
        if n > 0 {
            let mut f = serde_json::Map::new();
            f.insert("from".into(), windows.start.into());
            f.insert("to".into(), windows.end.into());
            f.insert("changed".into(), serde_json::Value::Array(changed));
            self.audit_slot(ctx, action, symbol, kind, f)?;
            failpoint!("admin::outcome-written");
        }
        failure.map_or(Ok(n), Err)
    }

    /// Admin: force-clears `kind` in `windows` of `symbol`; returns how many
    /// slots changed. Retired slots in the range are skipped. One audit line
    /// for the range lists each slot that changed.
    pub fn force_clear_range(&self, symbol: u32, windows: Range<u32>, kind: SlotKind, ctx: &AuditContext) -> Result<u64> {
        let changes = |s: SlotStatus| matches!(s, SlotStatus::Pending | SlotStatus::Filled);
        self.range((symbol, kind, windows), ctx, ("forceClearRange", changes), |at| match self.force_clear_one(at) {
            Err(Error::SlotWrite { refusal: SlotWriteError::SlotRetired { current }, .. }) => Ok(AdminOutcome::Unchanged(current)),
            other => other,
        })
    }

    /// Admin: retires `kind` in `windows` of `symbol`; returns how many slots changed.
    pub fn retire_range(&self, symbol: u32, windows: Range<u32>, kind: SlotKind, ctx: &AuditContext) -> Result<u64> {
        self.range((symbol, kind, windows), ctx, ("retireRange", |s| s != SlotStatus::Retired), |at| self.retire_one(at))
    }

    /// Appends a tool's own action (gc deletions, retention, ...) to the
    /// audit trail. `action` must be 1 to 64 ASCII letters, digits, `-` or `_`.
    pub fn audit_action(&self, ctx: &AuditContext, action: &str, details: serde_json::Value) -> Result<()> {
        if !vocab::valid_tool_action(action) {
            return Err(Error::invalid(format!("audit action must be 1-64 ASCII letters, digits, - or _, got {action:?}")));
        }
        let mut f = serde_json::Map::new();
        f.insert("details".into(), details);
        self.audit.append(ctx, action, f)
    }

    /// The audit trail's file and default actor.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, WindowSpace};

    #[test]
    fn a_status_the_slot_already_has_is_no_transition_and_no_audit_line() {
        let d = tempfile::tempdir().unwrap();
        let space: WindowSpace = serde_json::from_str(r#"{"kind":"uniform","originNs":0,"windowNs":60000000000,"windowCount":8}"#).unwrap();
        let (c, _) = Controller::bootstrap(Config::new(d.path(), space)).unwrap();
        let spy = c.resolve_symbol("SPY").unwrap();
        let at = SlotAddr::new(spy, 3, SlotKind::Greeks);
        let ctx = AuditContext::default();
        let t = c.force_clear(at, &ctx).unwrap();
        assert_eq!((t.from, t.to), (SlotStatus::Empty, SlotStatus::Empty));
        c.retire(at, &ctx).unwrap();
        let again = c.retire(at, &ctx).unwrap();
        assert_eq!((again.from, again.to, again.version), (SlotStatus::Retired, SlotStatus::Retired, 1));
        assert_eq!(c.retire_range(spy, 0..8, SlotKind::Greeks, &ctx).unwrap(), 7);
        assert_eq!(c.retire_range(spy, 0..8, SlotKind::Greeks, &ctx).unwrap(), 0);
        assert_eq!(c.force_clear_range(spy, 0..8, SlotKind::Greeks, &ctx).unwrap(), 0);
        let lines = AuditLog::read_all(c.audit_log().path()).unwrap();
        let phases: Vec<_> =
            lines.iter().map(|l| (l["action"].as_str().unwrap(), l.get("phase").and_then(|p| p.as_str()).unwrap_or("outcome"))).collect();
        assert_eq!(phases, vec![("retire", "intent"), ("retire", "outcome"), ("retireRange", "intent"), ("retireRange", "outcome")]);
        // A range of one window is named as a range by its intent and its outcome alike.
        c.claim(SlotAddr::new(spy, 5, SlotKind::OptionTrade), None).unwrap();
        assert_eq!(c.force_clear_range(spy, 5..6, SlotKind::OptionTrade, &ctx).unwrap(), 1);
        let lines = AuditLog::read_all(c.audit_log().path()).unwrap();
        let last: Vec<_> =
            lines[lines.len() - 2..].iter().map(|l| (l.get("window").is_some(), l["from"].as_u64(), l["to"].as_u64())).collect();
        assert_eq!(last, vec![(false, Some(5), Some(6)), (false, Some(5), Some(6))]);
    }
}
