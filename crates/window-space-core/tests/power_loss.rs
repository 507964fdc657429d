//! Power loss at any instant of a workload, in both durability modes
//! (built with the `failpoints` feature, for the core's sync observer).
//!
//! A single-threaded workload (seeded: symbols added, claims, appends,
//! fills, deferred fills with their group commit, clears, retires and
//! force-clears with their audit lines, reopens, schedule roll-forwards,
//! ledger growth) runs while `support::crash_image` records what every sync
//! made durable and snapshots every file at each sync and after each call.
//! At every crash point (each sync, each return) the test writes crash
//! images — the durable image (only what was synced) and random ones: each
//! file's length among those since its last sync, each page dirty since its
//! last sync in any of its versions since, sometimes torn (512-byte sectors
//! of two versions), new directory entries there or not — and bootstraps
//! each:
//!
//! * **sync mode**: it opens, and every call that returned success is there:
//!   each appended record with every byte of it, each acknowledged
//!   transition's slot state (or the state the call in flight was making),
//!   the symbols added, the schedule, the audit lines.
//! * **buffered mode**: it opens, or refuses with `CorruptState` naming a
//!   state file — and if it opens, every Filled slot refers to a record that
//!   exists with the slot's checksum.
//! * **both**: records that exist are the ones appended (none altered),
//!   symbol ids are the ones handed out, counts equal a recount.
//!
//! `WS_POWER_LOSS_RUNS` (workloads per mode, default 3),
//! `WS_POWER_LOSS_OPS` (calls per workload, default 60) and
//! `WS_POWER_LOSS_IMAGES` (random images per crash point, default 3) make it
//! longer (`npm run soak`).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;
use support::crash_image::{Recording, Rng};
use window_space_core::audit::{AuditContext, AuditLog};
use window_space_core::controller::state_file_names;
use window_space_core::{
    Config, Controller, Durability, ErrorCode, FillPayload, PayloadInput, PayloadRecord, SlotAddr, SlotKind, SlotSnapshot, SlotStatus,
    StoreKind, WindowSpace,
};

const WINDOWS: u32 = 2000;
const MORE_WINDOWS: u32 = 300;
const KINDS: [SlotKind; 3] = [SlotKind::OptionTrade, SlotKind::OptionQuote, SlotKind::Greeks];
/// Windows the workload uses: in the first trade chunk, across a chunk
/// boundary, past the first growth, and (after a roll-forward) past the
/// schedule's first end.
const SOME_WINDOWS: [u32; 9] = [0, 1, 2, 145, 146, 300, 1168, 1169, WINDOWS - 1];
const LATER_WINDOWS: [u32; 3] = [WINDOWS + 10, WINDOWS + 150, WINDOWS + 2 * MORE_WINDOWS - 1];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config(dir: &Path, mode: Durability, windows: u32) -> Config {
    let mut cfg = Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: windows });
    cfg.durability = mode;
    cfg.journal_capacity = 64;
    cfg
}

/// What one call of the workload returned, and the state it left.
#[derive(Debug, Clone)]
struct Acked {
    what: String,
    slot: Option<(SlotAddr, SlotSnapshot)>,
    record: Option<(StoreKind, PayloadRecord)>,
    symbol: Option<(String, u32)>,
    windows: u32,
    audit: Vec<Value>,
}

/// Runs a workload of `ops` calls in `dir`; returns what each call returned.
fn run_workload(dir: &Path, mode: Durability, seed: u64, ops: usize, rec: &Recording) -> Vec<Acked> {
    let mut rng = Rng::new(seed);
    let mut windows = WINDOWS;
    let (mut c, _) = Controller::bootstrap(config(dir, mode, windows)).unwrap();
    let mut acked = vec![Acked { what: "bootstrap".into(), slot: None, record: None, symbol: None, windows, audit: Vec::new() }];
    rec.op_end(0);
    let mut symbols: Vec<u32> = Vec::new();
    let mut slots: HashMap<SlotAddr, SlotSnapshot> = HashMap::new();
    let mut claims: HashMap<SlotAddr, u32> = HashMap::new();
    let mut appended: HashMap<SlotAddr, u64> = HashMap::new();
    let mut next_checksum = 100u64;
    let mut rolled = 0;
    while acked.len() < ops {
        let r = rng.below(100);
        let status = |slots: &HashMap<SlotAddr, SlotSnapshot>, at: &SlotAddr| slots.get(at).map_or(SlotStatus::Empty, |s| s.status);
        let claimed: Vec<SlotAddr> = {
            let mut v: Vec<SlotAddr> = claims.keys().copied().collect();
            v.sort_by_key(|a| (a.symbol, a.window, a.kind.code()));
            v
        };
        let mut a = Acked { what: String::new(), slot: None, record: None, symbol: None, windows, audit: Vec::new() };
        if symbols.is_empty() || (symbols.len() < 3 && r < 6) {
            let name = format!("S{}", symbols.len());
            let id = c.resolve_symbol(&name).unwrap();
            symbols.push(id);
            a.what = format!("resolve {name}");
            a.symbol = Some((name, id));
        } else if r < 10 && rolled < 2 {
            drop(c);
            windows += MORE_WINDOWS;
            rolled += 1;
            c = Controller::bootstrap(config(dir, mode, windows)).unwrap().0;
            a.what = format!("roll forward to {windows} windows");
            a.windows = windows;
        } else if r < 13 {
            drop(c);
            c = Controller::bootstrap(config(dir, mode, windows)).unwrap().0;
            a.what = "reopen".into();
        } else if r < 45 || claimed.is_empty() {
            let mut choices = SOME_WINDOWS.to_vec();
            if rolled > 0 {
                choices.extend(LATER_WINDOWS.iter().filter(|w| **w < windows));
            }
            let at = SlotAddr::new(*rng.pick(&symbols), *rng.pick(&choices), *rng.pick(&KINDS));
            if !matches!(status(&slots, &at), SlotStatus::Empty | SlotStatus::Cleared) {
                continue;
            }
            let g = c.claim(at, Some(3_600_000)).unwrap();
            claims.insert(at, g.version);
            a.what = format!("claim {at}");
            a.slot = Some((at, c.read_slot(at).unwrap()));
        } else if r < 60 {
            let Some(at) = claimed.iter().find(|at| !appended.contains_key(at)).copied() else { continue };
            next_checksum += 1;
            let input = PayloadInput {
                symbol_id: at.symbol,
                window_idx: at.window,
                slot_kind: at.kind,
                payload_type: 2,
                checksum: next_checksum,
                size: next_checksum * 3,
                uri: format!("artifacts/p/{next_checksum}"),
            };
            let id = c.append_payload(at.kind.store(), input).unwrap();
            appended.insert(at, id);
            a.what = format!("append for {at}");
            a.record = Some((at.kind.store(), c.store(at.kind.store()).get(id).unwrap().unwrap()));
        } else if r < 75 {
            let Some(at) = claimed.iter().find(|at| appended.contains_key(at)).copied() else { continue };
            let id = appended.remove(&at).unwrap();
            let checksum = c.store(at.kind.store()).get(id).unwrap().unwrap().checksum;
            c.fill(at, claims.remove(&at).unwrap(), FillPayload { payload_type: 2, payload_id: id, checksum }).unwrap();
            a.what = format!("fill {at} with {id}");
            a.slot = Some((at, c.read_slot(at).unwrap()));
        } else if r < 83 {
            let Some(at) = claimed.iter().find(|at| !appended.contains_key(at)).copied() else { continue };
            next_checksum += 1;
            let checksum = next_checksum;
            let version = claims.remove(&at).unwrap();
            let input = PayloadInput {
                symbol_id: at.symbol,
                window_idx: at.window,
                slot_kind: at.kind,
                payload_type: 3,
                checksum,
                size: 1,
                uri: format!("artifacts/d/{checksum}"),
            };
            let (id, ticket) = c
                .deferred(|c| {
                    let id = c.append_payload(at.kind.store(), input)?;
                    c.fill(at, version, FillPayload { payload_type: 3, payload_id: id, checksum })?;
                    Ok(id)
                })
                .unwrap();
            c.commit_through(ticket).unwrap();
            a.what = format!("deferred fill {at} with {id}");
            a.record = Some((at.kind.store(), c.store(at.kind.store()).get(id).unwrap().unwrap()));
            a.slot = Some((at, c.read_slot(at).unwrap()));
        } else if r < 88 {
            let at = claimed[rng.below(claimed.len())];
            c.clear(at, claims.remove(&at).unwrap()).unwrap();
            appended.remove(&at);
            a.what = format!("clear {at}");
            a.slot = Some((at, c.read_slot(at).unwrap()));
        } else {
            let known: Vec<SlotAddr> = {
                let mut v: Vec<SlotAddr> = slots.keys().copied().filter(|at| slots[at].status != SlotStatus::Retired).collect();
                v.sort_by_key(|a| (a.symbol, a.window, a.kind.code()));
                v
            };
            if known.is_empty() {
                continue;
            }
            let at = known[rng.below(known.len())];
            if r < 93 {
                c.retire(at, &AuditContext::default()).unwrap();
                a.what = format!("retire {at}");
            } else {
                c.force_clear(at, &AuditContext::default()).unwrap();
                a.what = format!("force-clear {at}");
            }
            claims.remove(&at);
            appended.remove(&at);
            a.slot = Some((at, c.read_slot(at).unwrap()));
        }
        if let Some((at, s)) = a.slot {
            slots.insert(at, s);
        }
        a.audit = AuditLog::scan(&dir.join("audit.log")).unwrap().0;
        rec.op_end(acked.len());
        acked.push(a);
    }
    drop(c);
    acked
}

/// What an image must hold at a crash point where calls `0..n` had returned.
struct Expected<'a> {
    acked: &'a [Acked],
    /// The call under way, if any (its change may or may not be there).
    in_flight: Option<&'a Acked>,
    /// Every record the workload appended (a record's position is its id, so
    /// any record found at an id must be this one).
    all_records: &'a BTreeMap<(u32, u64), PayloadRecord>,
    all_symbols: &'a [String],
}

#[derive(Debug)]
struct Violation {
    what: &'static str,
    detail: String,
}

fn violation(what: &'static str, detail: impl Into<String>) -> Violation {
    Violation { what, detail: detail.into() }
}

/// Bootstraps the image in `dir` and checks it; `Ok(true)` if it opened.
fn check_image(dir: &Path, mode: Durability, e: &Expected<'_>) -> Result<bool, Violation> {
    let windows = e.acked.last().map_or(WINDOWS, |a| a.windows);
    let c = match Controller::bootstrap(config(dir, mode, windows)) {
        Ok((c, _)) => c,
        Err(err) => {
            if mode == Durability::Sync {
                return Err(violation("the sync mode refused to open", err.to_string()));
            }
            let file = err.details().get("file").and_then(Value::as_str).map(|f| Path::new(f).to_path_buf());
            let names_a_state_file = file.as_ref().is_some_and(|f| {
                f.parent() == Some(dir)
                    && f.file_name().is_some_and(|n| state_file_names().contains(&&*n.to_string_lossy()) || n == "audit.log")
            });
            if err.code() == ErrorCode::CorruptState && names_a_state_file {
                return Ok(false);
            }
            return Err(violation("refused without a CorruptState naming a state file", format!("{}: {err}", err.code().as_str())));
        }
    };
    // Symbols: the ids handed out, none other.
    let symbols = c.symbols().map_err(|x| violation("symbols unreadable", x.to_string()))?;
    if !e.all_symbols.starts_with(&symbols) {
        return Err(violation("symbols altered", format!("{symbols:?} is not a prefix of {:?}", e.all_symbols)));
    }
    // Records: each one found is the one appended at that id.
    let mut lens = HashMap::new();
    for store in StoreKind::ALL {
        let s = c.store(store);
        let len = s.len().map_err(|x| violation("store unreadable", x.to_string()))?;
        for id in 0..len {
            let got = s.get(id).map_err(|x| violation("store unreadable", x.to_string()))?;
            if got.as_ref() != e.all_records.get(&(store.code(), id)) {
                return Err(violation("a record differs from the one appended", format!("{} id {id}: {got:?}", store.file_name())));
            }
        }
        lens.insert(store, len);
    }
    // Every Filled slot refers to an existing record with its checksum.
    for symbol in 0..symbols.len() as u32 {
        for kind in SlotKind::ALL {
            let ledger = c.ledger_of(kind.ledger());
            let mut from = 0;
            while let Some(w) = ledger
                .find_window(symbol, from, c.window_count(), kind.column(), |_, s| s == SlotStatus::Filled)
                .map_err(|x| violation("ledger unreadable", x.to_string()))?
            {
                let at = SlotAddr::new(symbol, w, kind);
                let s = c.read_slot(at).map_err(|x| violation("ledger unreadable", x.to_string()))?;
                let len = lens[&kind.store()];
                if s.payload_id >= len {
                    return Err(violation(
                        "opened with a Filled slot referring to a record that does not exist",
                        format!("{at} is Filled with payload id {} but {} holds {len} records", s.payload_id, kind.store().file_name()),
                    ));
                }
                let rec = c.store(kind.store()).get(s.payload_id).ok().flatten();
                if !rec.as_ref().is_some_and(|r| r.checksum == s.checksum && r.symbol_id == symbol && r.window_idx == w) {
                    return Err(violation("a Filled slot's record has another checksum or slot", format!("{at}: {s:?} vs {rec:?}")));
                }
                from = w + 1;
            }
        }
    }
    let recount = c.recount().map_err(|x| violation("recount failed", x.to_string()))?;
    if c.slot_metrics() != recount {
        return Err(violation("counts differ from a recount", format!("{:?} vs {recount:?}", c.slot_metrics())));
    }
    if mode == Durability::Sync {
        check_acked(&c, dir, e)?;
    }
    Ok(true)
}

/// Sync mode: every call that returned success is in the image.
fn check_acked(c: &Controller, dir: &Path, e: &Expected<'_>) -> Result<(), Violation> {
    let lost = |what: String| violation("the sync mode lost an acknowledged call", what);
    let mut last: HashMap<SlotAddr, (&str, SlotSnapshot)> = HashMap::new();
    for a in e.acked {
        if let Some((name, id)) = &a.symbol {
            if c.lookup_symbol(name).ok().flatten() != Some(*id) {
                return Err(lost(format!("{}: symbol {name} is not id {id}", a.what)));
            }
        }
        if let Some((store, r)) = &a.record {
            if c.store(*store).get(r.payload_id).ok().flatten().as_ref() != Some(r) {
                return Err(lost(format!("{}: record {} of {} is missing", a.what, r.payload_id, store.file_name())));
            }
        }
        if let Some((at, s)) = a.slot {
            last.insert(at, (&a.what, s));
        }
    }
    for (at, (what, want)) in last {
        let got = c.read_slot(at).map_err(|x| lost(x.to_string()))?;
        let in_flight = e.in_flight.and_then(|f| f.slot).filter(|(a, _)| *a == at).map(|(_, s)| s);
        if got != want && Some(got) != in_flight {
            return Err(lost(format!("{what}: {at} is {got:?}, was {want:?}")));
        }
    }
    let windows = e.acked.last().map_or(WINDOWS, |a| a.windows);
    if c.window_count() < windows {
        return Err(lost(format!("the schedule has {} windows, {windows} were acknowledged", c.window_count())));
    }
    let audit = e.acked.last().map(|a| &a.audit[..]).unwrap_or_default();
    let (lines, _) = AuditLog::scan(&dir.join("audit.log")).map_err(|x| lost(x.to_string()))?;
    if !lines.starts_with(audit) {
        return Err(lost(format!("audit lines are missing: {} of {} acknowledged ones there", lines.len(), audit.len())));
    }
    Ok(())
}

/// Runs `runs` workloads in `mode` and checks images at every crash point;
/// returns the violations found, grouped by kind, with a sample of each.
fn power_loss(mode: Durability) -> (BTreeMap<&'static str, (usize, String)>, usize, usize) {
    let runs = env("WS_POWER_LOSS_RUNS", 3);
    let ops = env("WS_POWER_LOSS_OPS", 60);
    let images = env("WS_POWER_LOSS_IMAGES", 3);
    let mut found: BTreeMap<&'static str, (usize, String)> = BTreeMap::new();
    let (mut total, mut opened) = (0, 0);
    for run in 0..runs {
        let seed = 1000 * run as u64 + mode as u64;
        let scratch = support::scratch_dir();
        let dir = scratch.path().join("state");
        let rec = Recording::start(&dir);
        let acked = run_workload(&dir, mode, seed, ops, &rec);
        let mut all_records = BTreeMap::new();
        let mut all_symbols = Vec::new();
        for a in &acked {
            if let Some((store, r)) = &a.record {
                all_records.insert((store.code(), r.payload_id), r.clone());
            }
            if let Some((name, _)) = &a.symbol {
                all_symbols.push(name.clone());
            }
        }
        let mut rng = Rng::new(seed ^ 0xC0FFEE);
        let mut n = 0;
        rec.sweep(|point, done, sweep| {
            let e = Expected { acked: &acked[..done], in_flight: acked.get(done), all_records: &all_records, all_symbols: &all_symbols };
            for image in 0..=images {
                let into = scratch.path().join(format!("image-{n}"));
                n += 1;
                std::fs::create_dir(&into).unwrap();
                if image == 0 {
                    sweep.write_durable_image(&into);
                } else {
                    sweep.write_image(&mut rng, &into);
                }
                total += 1;
                match check_image(&into, mode, &e) {
                    Ok(true) => opened += 1,
                    Ok(false) => {}
                    Err(v) => {
                        let at =
                            acked.get(done).map_or_else(|| "after the last call".to_string(), |a| format!("during or after {:?}", a.what));
                        let sample = format!("seed {seed}, crash point {point} (call {done}, {at}), image {image}: {}", v.detail);
                        found.entry(v.what).or_insert((0, sample)).0 += 1;
                    }
                }
                std::fs::remove_dir_all(&into).unwrap();
            }
        });
    }
    (found, total, opened)
}

fn report(found: &BTreeMap<&'static str, (usize, String)>) -> String {
    found.iter().map(|(what, (n, sample))| format!("{n} images: {what}\n    e.g. {sample}")).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_sync_mode_loses_no_acknowledged_call_to_a_power_loss() {
    let (found, total, opened) = power_loss(Durability::Sync);
    assert!(found.is_empty(), "of {total} crash images:\n{}", report(&found));
    assert_eq!(opened, total, "every image opens");
    println!("{total} crash images, all opened with every acknowledged call");
}

#[test]
fn the_buffered_mode_never_opens_with_a_reference_to_something_lost() {
    let (found, total, opened) = power_loss(Durability::Buffered);
    assert!(found.is_empty(), "of {total} crash images ({opened} opened):\n{}", report(&found));
    assert!(opened > 0, "no image opened: the images are not realistic");
    println!("{total} crash images, {opened} opened, the others refused with CorruptState");
}
