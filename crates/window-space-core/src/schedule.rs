//! The window schedule ("window space"): maps time to window indices
//! `0..window_count`, persists itself as `schedule.json`, and decides whether a
//! schedule given at bootstrap matches, rolls forward, or conflicts with the
//! persisted one.
//!
//! Two shapes:
//! * **uniform** — `origin_ns`, `window_ns`, `window_count`;
//! * **sessions** — a list of `{ start_ns, end_ns, window_ns }`, sorted and
//!   non-overlapping; each session holds `ceil((end - start) / window)` windows
//!   (the last one may be shorter), indices run on across sessions, and a
//!   timestamp between sessions falls in no window.
//!
//! Times are signed 64-bit nanoseconds since the Unix epoch.
//!
//! ## `schedule.json`
//! ```json
//! { "format": "window-space/schedule", "version": 1,
//!   "schedule": { "kind": "uniform", "originNs": 0, "windowNs": 60000000000, "windowCount": 1440 } }
//! ```
//! or `"schedule": { "kind": "sessions", "sessions": [ { "startNs": …, "endNs": …, "windowNs": … } ] }`.
//! Written atomically (temp file, fsync, rename, directory fsync) on first
//! bootstrap and on roll-forward.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ledger::SCHEMA_VERSION;

/// Most windows a schedule may have (indices must fit a u32 with room to spare).
pub const MAX_WINDOWS: u64 = (u32::MAX - 1) as u64;

/// One session of a session schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Session {
    pub start_ns: i64,
    pub end_ns: i64,
    pub window_ns: i64,
}

impl Session {
    fn window_count(&self) -> u64 {
        let span = (i128::from(self.end_ns) - i128::from(self.start_ns)) as u128;
        span.div_ceil(self.window_ns as u128) as u64
    }
}

/// A window schedule as given by the user and persisted in `schedule.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum WindowSpace {
    #[serde(rename_all = "camelCase")]
    Uniform { origin_ns: i64, window_ns: i64, window_count: u32 },
    #[serde(rename_all = "camelCase")]
    Sessions { sessions: Vec<Session> },
}

/// Start, duration and schema version of one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowMeta {
    pub window_idx: u32,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub schema_version: u32,
}

/// How a given schedule relates to the persisted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleRelation {
    Same,
    /// The given schedule appends windows or sessions: persist it.
    RollsForward,
    /// The persisted schedule is a roll-forward of the given one: keep the persisted one.
    Behind,
}

/// A validated schedule with its derived lookup tables.
#[derive(Debug, Clone)]
pub struct Schedule {
    space: WindowSpace,
    /// For sessions: the first window index of each session.
    bases: Vec<u32>,
    window_count: u32,
}

impl Schedule {
    /// Validates `space`.
    pub fn new(space: WindowSpace) -> Result<Self> {
        let bad = |what: String| Err(Error::InvalidSchedule { what });
        match &space {
            WindowSpace::Uniform { origin_ns, window_ns, window_count } => {
                if *window_ns <= 0 {
                    return bad(format!("windowNs must be positive, got {window_ns}"));
                }
                if *window_count == 0 || u64::from(*window_count) > MAX_WINDOWS {
                    return bad(format!("windowCount must be between 1 and {MAX_WINDOWS}, got {window_count}"));
                }
                let end = i128::from(*origin_ns) + i128::from(*window_ns) * i128::from(*window_count);
                if end > i128::from(i64::MAX) {
                    return bad("the last window ends after the year 2262 (i64 nanoseconds overflow)".into());
                }
                Ok(Self { window_count: *window_count, bases: Vec::new(), space })
            }
            WindowSpace::Sessions { sessions } => {
                if sessions.is_empty() {
                    return bad("a session schedule needs at least one session".into());
                }
                let mut bases = Vec::with_capacity(sessions.len());
                let mut total: u64 = 0;
                for (i, s) in sessions.iter().enumerate() {
                    if s.window_ns <= 0 {
                        return bad(format!("session {i}: windowNs must be positive, got {}", s.window_ns));
                    }
                    if s.end_ns <= s.start_ns {
                        return bad(format!("session {i}: endNs {} is not after startNs {}", s.end_ns, s.start_ns));
                    }
                    if i > 0 && s.start_ns < sessions[i - 1].end_ns {
                        return bad(format!(
                            "session {i} starts before session {} ends (sessions must be sorted and must not overlap)",
                            i - 1
                        ));
                    }
                    bases.push(total as u32);
                    total += s.window_count();
                    if total > MAX_WINDOWS {
                        return bad(format!("more than {MAX_WINDOWS} windows"));
                    }
                }
                Ok(Self { window_count: total as u32, bases, space })
            }
        }
    }

    pub fn space(&self) -> &WindowSpace {
        &self.space
    }

    pub fn window_count(&self) -> u32 {
        self.window_count
    }

    /// Checks `window_idx < window_count`.
    pub fn check(&self, window_idx: u32) -> Result<()> {
        if window_idx < self.window_count {
            Ok(())
        } else {
            Err(Error::WindowOutOfRange { window_idx: u64::from(window_idx), window_count: self.window_count })
        }
    }

    /// The window a timestamp (ns since epoch) falls in.
    pub fn window_idx_for_timestamp(&self, ts_ns: i128) -> Result<u32> {
        let none = Err(Error::NoWindowForTimestamp { timestamp_ns: ts_ns });
        match &self.space {
            WindowSpace::Uniform { origin_ns, window_ns, window_count } => {
                let rel = ts_ns - i128::from(*origin_ns);
                if rel < 0 {
                    return none;
                }
                let idx = rel / i128::from(*window_ns);
                if idx >= i128::from(*window_count) {
                    return none;
                }
                Ok(idx as u32)
            }
            WindowSpace::Sessions { sessions } => {
                // Last session starting at or before ts.
                let i = sessions.partition_point(|s| i128::from(s.start_ns) <= ts_ns);
                if i == 0 {
                    return none;
                }
                let s = &sessions[i - 1];
                if ts_ns >= i128::from(s.end_ns) {
                    return none;
                }
                let k = (ts_ns - i128::from(s.start_ns)) / i128::from(s.window_ns);
                Ok(self.bases[i - 1] + k as u32)
            }
        }
    }

    /// Start and duration of a window.
    pub fn window_meta(&self, window_idx: u32) -> Result<WindowMeta> {
        self.check(window_idx)?;
        // In i128: a window's offset from its origin may exceed i64 even when
        // its start (which `new` proved lies before the schedule's end) does not.
        let (start, duration) = match &self.space {
            WindowSpace::Uniform { origin_ns, window_ns, .. } => {
                (i128::from(*origin_ns) + i128::from(*window_ns) * i128::from(window_idx), i128::from(*window_ns))
            }
            WindowSpace::Sessions { sessions } => {
                let i = self.bases.partition_point(|b| *b <= window_idx) - 1;
                let s = &sessions[i];
                let start = i128::from(s.start_ns) + i128::from(s.window_ns) * i128::from(window_idx - self.bases[i]);
                (start, i128::from(s.window_ns).min(i128::from(s.end_ns) - start))
            }
        };
        let narrow = |v: i128| {
            i64::try_from(v)
                .map_err(|_| Error::InvalidSchedule { what: format!("window {window_idx} lies outside the i64 nanosecond range") })
        };
        Ok(WindowMeta { window_idx, start_ns: narrow(start)?, duration_ns: narrow(duration)?, schema_version: SCHEMA_VERSION })
    }

    /// How many windows have started by `ts_ns` (windows `0..n` start at or
    /// before it): the first window that starts after it, or the window count.
    pub fn windows_started_by(&self, ts_ns: i128) -> u32 {
        let (mut lo, mut hi) = (0u32, self.window_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let start = self.window_meta(mid).map_or(i128::MAX, |m| i128::from(m.start_ns));
            if start <= ts_ns {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// How `given` relates to `self` (the persisted schedule).
    pub fn relation_to(&self, given: &Schedule) -> Result<ScheduleRelation> {
        if self.space == given.space {
            return Ok(ScheduleRelation::Same);
        }
        if extends(&given.space, &self.space) {
            return Ok(ScheduleRelation::RollsForward);
        }
        if extends(&self.space, &given.space) {
            return Ok(ScheduleRelation::Behind);
        }
        Err(Error::ScheduleMismatch { what: describe_difference(&self.space, &given.space) })
    }

    /// The JSON document of `schedule.json`.
    pub fn to_json(&self) -> String {
        let doc = serde_json::json!({ "format": "window-space/schedule", "version": 1, "schedule": self.space });
        let mut s = serde_json::to_string_pretty(&doc).expect("schedule serializes");
        s.push('\n');
        s
    }

    /// Parses `schedule.json`.
    pub fn from_json(path: &std::path::Path, text: &str) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            format: String,
            version: u32,
            schedule: WindowSpace,
        }
        let doc: Doc = serde_json::from_str(text)
            .map_err(|e| Error::corrupt(path, None, format!("invalid schedule JSON at line {}, column {}: {e}", e.line(), e.column())))?;
        if doc.format != "window-space/schedule" || doc.version != 1 {
            return Err(Error::corrupt(path, None, format!("unsupported schedule document {:?} version {}", doc.format, doc.version)));
        }
        Schedule::new(doc.schedule).map_err(|e| Error::corrupt(path, None, e.to_string()))
    }
}

/// True when `longer` is `shorter` with windows or sessions appended at the end.
fn extends(longer: &WindowSpace, shorter: &WindowSpace) -> bool {
    match (longer, shorter) {
        (
            WindowSpace::Uniform { origin_ns: o1, window_ns: w1, window_count: c1 },
            WindowSpace::Uniform { origin_ns: o2, window_ns: w2, window_count: c2 },
        ) => o1 == o2 && w1 == w2 && c1 >= c2,
        (WindowSpace::Sessions { sessions: long }, WindowSpace::Sessions { sessions: short }) => {
            if long.len() < short.len() {
                return false;
            }
            let n = short.len();
            let last_ok = {
                let (a, b) = (&long[n - 1], &short[n - 1]);
                // The last persisted session may grow at its end only if it held
                // whole windows (so no existing window changes its duration).
                a == b
                    || (a.start_ns == b.start_ns
                        && a.window_ns == b.window_ns
                        && a.end_ns >= b.end_ns
                        && (i128::from(b.end_ns) - i128::from(b.start_ns)) % i128::from(b.window_ns) == 0)
            };
            long[..n - 1] == short[..n - 1] && last_ok
        }
        _ => false,
    }
}

fn describe_difference(persisted: &WindowSpace, given: &WindowSpace) -> String {
    match (persisted, given) {
        (
            WindowSpace::Uniform { origin_ns: o1, window_ns: w1, window_count: c1 },
            WindowSpace::Uniform { origin_ns: o2, window_ns: w2, window_count: c2 },
        ) => {
            format!("persisted uniform schedule (originNs {o1}, windowNs {w1}, windowCount {c1}) differs from the given one (originNs {o2}, windowNs {w2}, windowCount {c2}); only windowCount may grow")
        }
        (WindowSpace::Sessions { sessions: a }, WindowSpace::Sessions { sessions: b }) => {
            let i = a.iter().zip(b.iter()).position(|(x, y)| x != y).unwrap_or_else(|| a.len().min(b.len()));
            format!("persisted session schedule ({} sessions) and the given one ({} sessions) differ at session {i}; sessions may only be appended", a.len(), b.len())
        }
        _ => "the persisted schedule and the given one are of different kinds (uniform vs sessions)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn uniform_maps_time_both_ways() {
        let s = Schedule::new(WindowSpace::Uniform { origin_ns: 1_000, window_ns: MIN, window_count: 10 }).unwrap();
        assert_eq!(s.window_idx_for_timestamp(1_000).unwrap(), 0);
        assert_eq!(s.window_idx_for_timestamp(1_000 + 3 * i128::from(MIN) + 5).unwrap(), 3);
        assert_eq!(s.window_idx_for_timestamp(999).unwrap_err().code(), "ERR_NO_WINDOW_FOR_TIMESTAMP");
        assert_eq!(s.window_idx_for_timestamp(1_000 + 10 * i128::from(MIN)).unwrap_err().code(), "ERR_NO_WINDOW_FOR_TIMESTAMP");
        let m = s.window_meta(9).unwrap();
        assert_eq!((m.start_ns, m.duration_ns), (1_000 + 9 * MIN, MIN));
        assert_eq!(s.window_meta(10).unwrap_err().code(), "ERR_WINDOW_OUT_OF_RANGE");
    }

    #[test]
    fn sessions_skip_gaps_and_run_indices_on() {
        let s = Schedule::new(WindowSpace::Sessions {
            sessions: vec![
                Session { start_ns: 0, end_ns: 10 * MIN, window_ns: 5 * MIN },
                Session { start_ns: 20 * MIN, end_ns: 27 * MIN, window_ns: 5 * MIN },
            ],
        })
        .unwrap();
        assert_eq!(s.window_count(), 4);
        assert_eq!(s.window_idx_for_timestamp(i128::from(15 * MIN)).unwrap_err().code(), "ERR_NO_WINDOW_FOR_TIMESTAMP");
        assert_eq!(s.window_idx_for_timestamp(i128::from(26 * MIN)).unwrap(), 3);
        let last = s.window_meta(3).unwrap();
        assert_eq!((last.start_ns, last.duration_ns), (25 * MIN, 2 * MIN));
    }

    #[test]
    fn roll_forward_is_allowed_other_changes_are_not() {
        let base = Schedule::new(WindowSpace::Uniform { origin_ns: 0, window_ns: MIN, window_count: 10 }).unwrap();
        let more = Schedule::new(WindowSpace::Uniform { origin_ns: 0, window_ns: MIN, window_count: 12 }).unwrap();
        let other = Schedule::new(WindowSpace::Uniform { origin_ns: 1, window_ns: MIN, window_count: 12 }).unwrap();
        assert_eq!(base.relation_to(&more).unwrap(), ScheduleRelation::RollsForward);
        assert_eq!(more.relation_to(&base).unwrap(), ScheduleRelation::Behind);
        assert_eq!(base.relation_to(&other).unwrap_err().code(), "ERR_SCHEDULE_MISMATCH");
    }

    #[test]
    fn windows_started_by_counts_windows_that_began() {
        let s = Schedule::new(WindowSpace::Sessions {
            sessions: vec![
                Session { start_ns: 0, end_ns: 10 * MIN, window_ns: 5 * MIN },
                Session { start_ns: 20 * MIN, end_ns: 30 * MIN, window_ns: 5 * MIN },
            ],
        })
        .unwrap();
        assert_eq!(s.windows_started_by(-1), 0);
        assert_eq!(s.windows_started_by(0), 1);
        assert_eq!(s.windows_started_by(i128::from(15 * MIN)), 2, "between sessions");
        assert_eq!(s.windows_started_by(i128::from(25 * MIN)), 4);
        assert_eq!(s.windows_started_by(i128::from(99 * MIN)), 4);
    }

    #[test]
    fn invalid_schedules_are_refused() {
        assert!(Schedule::new(WindowSpace::Uniform { origin_ns: 0, window_ns: 0, window_count: 1 }).is_err());
        assert!(Schedule::new(WindowSpace::Sessions { sessions: vec![] }).is_err());
        assert!(Schedule::new(WindowSpace::Uniform { origin_ns: i64::MAX - 5, window_ns: 10, window_count: 1 }).is_err());
    }

    #[test]
    fn schedules_spanning_the_whole_i64_range_give_every_window() {
        let half = 1i64 << 62;
        let u = Schedule::new(WindowSpace::Uniform { origin_ns: i64::MIN, window_ns: half, window_count: 3 }).unwrap();
        assert_eq!(u.window_meta(2).unwrap().start_ns, 0);
        assert_eq!(u.window_idx_for_timestamp(0).unwrap(), 2);
        let wide = Session { start_ns: i64::MIN, end_ns: i64::MAX, window_ns: half };
        let s = Schedule::new(WindowSpace::Sessions { sessions: vec![wide] }).unwrap();
        assert_eq!(s.window_count(), 4);
        let last = s.window_meta(3).unwrap();
        assert_eq!((last.start_ns, last.duration_ns), (half, i64::MAX - half));
        assert_eq!(s.windows_started_by(i128::from(i64::MAX)), 4);
        let longer = Schedule::new(WindowSpace::Sessions {
            sessions: vec![wide, Session { start_ns: i64::MAX - 1, end_ns: i64::MAX, window_ns: 1 }],
        });
        // The wide session does not hold whole windows, so it may not grow, and
        // appending overlaps it: both refused without overflowing.
        assert!(longer.is_err());
        // Growing a session that does not hold whole windows is refused (its
        // last window would change length), judged without overflowing.
        let shorter = Schedule::new(WindowSpace::Sessions { sessions: vec![Session { end_ns: i64::MAX - 1, ..wide }] }).unwrap();
        assert!(matches!(shorter.relation_to(&s), Err(Error::ScheduleMismatch { .. })));
    }
}
