//! The fixed workload of the instruction-count gate (`benchmark/instructions.mjs`,
//! docs/performance.md): the core's transitions, batch claim, batch fill, reads and a
//! bootstrap of a small existing directory, each run a fixed number of times
//! through the core API, for callgrind to count.
//!
//! Usage: `window-space-instructions <scratch directory>` (the directory is
//! created and its contents replaced). The program prints its sections as one
//! JSON array on stdout, in the order they ran:
//! `[{"op": name, "ops": n, "calls": {"claim": n, ...}}, ...]`.
//!
//! How the counts are taken: every call that is measured goes through one of
//! the `#[inline(never)]` functions of [`measured`], which callgrind collects
//! (`--collect-atstart=no`, and a `--toggle-collect` naming each of them), and
//! nothing else is collected. After the set-up and warm-up, and after each
//! section, the program calls [`section_end`], where callgrind dumps its
//! counters and starts from zero (`--dump-before=...::section_end`). So the
//! first dump holds the warm-up, dump `i + 1` holds section `i` alone, and a
//! section's count per operation is its dump's total divided by its `ops`;
//! `calls` says how many calls of each function of [`measured`] the section
//! made, which the script checks against the call counts in the dump.
//!
//! Each section works on slots no earlier section touched, in chunks the
//! set-up allocated, so every operation of a section takes the same path.
//! Every result is checked: a refused or failed call ends the program with an
//! error, since its count would measure another path.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use window_space_core::{
    ClaimGrant, Config, Controller, FillItem, FillPayload, PayloadInput, SlotAddr, SlotKind, StorageReport, Transition, WindowSpace,
};

/// Operations of a single-slot section.
const K: u32 = 1000;
/// Filled windows in front of the first unfilled one in the scan section.
const FILLED_IN_FRONT: u32 = 900;
/// Scans of that section.
const SCANS: u32 = 100;
/// Slots a batch claim asks for, and batches of that section.
const BATCH: u32 = 100;
const BATCHES: u32 = 10;
/// Bootstraps of the small directory.
const BOOTSTRAPS: u32 = 5;
/// Windows of the schedule: room for every section's slots.
const WINDOWS: u32 = 2048;
/// Lease of every claim: longer than any run under callgrind, so no claim
/// expires and turns a later call into a takeover.
const LEASE_MS: Option<u64> = Some(600_000);

/// The harness's own failures (a core error, or a result the workload did not expect).
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The calls whose instructions are counted: each a plain call of the core
/// API, kept out of line so that callgrind sees where it starts and ends.
mod measured {
    use super::*;
    use window_space_core::Result;

    #[inline(never)]
    pub fn claim(c: &Controller, at: SlotAddr) -> Result<ClaimGrant> {
        c.claim(at, LEASE_MS)
    }

    #[inline(never)]
    pub fn renew(c: &Controller, at: SlotAddr, version: u32) -> Result<u64> {
        c.renew(at, version, LEASE_MS)
    }

    #[inline(never)]
    pub fn fill(c: &Controller, at: SlotAddr, version: u32, payload: FillPayload) -> Result<Transition> {
        c.fill(at, version, payload)
    }

    #[inline(never)]
    pub fn clear(c: &Controller, at: SlotAddr, version: u32) -> Result<Transition> {
        c.clear(at, version)
    }

    #[inline(never)]
    pub fn read_slot(c: &Controller, at: SlotAddr) -> Result<window_space_core::SlotSnapshot> {
        c.read_slot(at)
    }

    #[inline(never)]
    pub fn next_unfilled_window(c: &Controller, symbol: u32, start: u32, kind: SlotKind) -> Result<Option<u32>> {
        c.next_unfilled_window(symbol, start, kind)
    }

    #[inline(never)]
    pub fn claim_next_unfilled(c: &Controller, start: SlotAddr, n: u32) -> Result<Vec<(u32, ClaimGrant)>> {
        c.claim_next_unfilled(start, n, LEASE_MS)
    }

    #[inline(never)]
    pub fn fill_batch(c: &Controller, items: &[FillItem], outcomes: &mut Vec<u32>) -> Result<()> {
        c.fill_batch(items.len(), |i| Ok(items[i]), |_, outcome| outcomes.push(outcome.map_or(0, |t| t.version)))
    }

    #[inline(never)]
    pub fn bootstrap(config: Config) -> Result<(Controller, StorageReport)> {
        Controller::bootstrap(config)
    }
}

/// Where callgrind dumps the counts of the section that just ended
/// (`--dump-before`); it does nothing else.
#[inline(never)]
fn section_end() {
    black_box(());
}

/// Calls of functions of [`measured`] a section makes, by name.
type Calls = &'static [(&'static str, u32)];

/// The sections run so far, in order: (op, ops, calls).
struct Sections(Vec<(&'static str, u32, Calls)>);

impl Sections {
    /// Runs one section (its own set-up included: only calls into `measured` count).
    fn run(&mut self, op: &'static str, ops: u32, calls: Calls, body: impl FnOnce() -> Result<()>) -> Result<()> {
        body()?;
        section_end();
        self.0.push((op, ops, calls));
        Ok(())
    }

    fn json(&self) -> String {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|(op, ops, calls)| {
                let calls: Vec<String> = calls.iter().map(|(f, n)| format!("\"{f}\":{n}")).collect();
                format!("{{\"op\":\"{op}\",\"ops\":{ops},\"calls\":{{{}}}}}", calls.join(","))
            })
            .collect();
        format!("[{}]", items.join(","))
    }
}

/// A result the workload needs: anything else would measure another path.
fn expect(what: &str, ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("the workload went wrong: {what}").into())
    }
}

fn config(dir: &Path) -> Config {
    // Windows of one minute from 2023-11-14 (any origin would do).
    let space = WindowSpace::Uniform { origin_ns: 1_700_000_000_000_000_000, window_ns: 60_000_000_000, window_count: WINDOWS };
    Config::new(dir, space)
}

/// A payload record of `kind` to fill with (a fill checks only that its id exists).
fn record(c: &Controller, symbol: u32, kind: SlotKind, name: &str) -> Result<FillPayload> {
    let input = PayloadInput {
        symbol_id: symbol,
        window_idx: 0,
        slot_kind: kind,
        payload_type: 1,
        checksum: 0x5eed,
        size: 4096,
        uri: format!("artifacts/instructions/{name}.bin"),
    };
    let payload_id = c.append_payload(kind.store(), input)?;
    Ok(FillPayload { payload_type: 1, payload_id, checksum: 0x5eed })
}

/// Allocates the chunks of `symbol` that hold windows `0..windows`, by
/// claiming a slot of a kind no section uses in each.
fn allocate(c: &Controller, symbol: u32, windows: u32) -> Result<()> {
    let rows = c.ledger_of(SlotKind::RfRate.ledger()).geometry().rows_per_chunk;
    for w in (0..windows).step_by(rows as usize) {
        c.claim(SlotAddr::new(symbol, w, SlotKind::RfRate), LEASE_MS)?;
    }
    Ok(())
}

/// Claims and fills `windows` of `symbol`'s `kind`, outside any measurement.
fn fill_windows(c: &Controller, symbol: u32, windows: std::ops::Range<u32>, kind: SlotKind, p: FillPayload) -> Result<()> {
    for w in windows {
        let at = SlotAddr::new(symbol, w, kind);
        let g = c.claim(at, LEASE_MS)?;
        c.fill(at, g.version, p)?;
    }
    Ok(())
}

/// A small existing directory for the bootstrap section: 4 symbols, 200
/// filled slots and 200 payload records, 20 live claims.
fn small_directory(dir: &Path) -> Result<()> {
    let (c, _) = Controller::bootstrap(config(dir))?;
    for s in 0..4u32 {
        let symbol = c.resolve_symbol(&format!("SMALL-{s}"))?;
        for w in 0..50u32 {
            let at = SlotAddr::new(symbol, w, SlotKind::OptionTrade);
            let p = record(&c, symbol, SlotKind::OptionTrade, &format!("small-{s}-{w}"))?;
            let g = c.claim(at, LEASE_MS)?;
            c.fill(at, g.version, p)?;
        }
        for w in 50..55u32 {
            c.claim(SlotAddr::new(symbol, w, SlotKind::OptionQuote), LEASE_MS)?;
        }
    }
    Ok(())
}

fn fresh_dir(path: PathBuf) -> std::io::Result<PathBuf> {
    if path.exists() {
        std::fs::remove_dir_all(&path)?;
    }
    std::fs::create_dir_all(&path)?;
    Ok(path)
}

fn run(scratch: &Path) -> Result<Sections> {
    let io = |e: std::io::Error| format!("scratch directory {}: {e}", scratch.display());
    let main_dir = fresh_dir(scratch.join("core")).map_err(io)?;
    let small_dir = fresh_dir(scratch.join("small")).map_err(io)?;

    let (c, _) = Controller::bootstrap(config(&main_dir))?;
    let [a, b, w] = ["SYM-A", "SYM-B", "SYM-W"].map(|s| c.resolve_symbol(s));
    let (a, b, w) = (a?, b?, w?);
    for s in [a, b, w] {
        allocate(&c, s, WINDOWS)?;
    }
    let trade = record(&c, a, SlotKind::OptionTrade, "trade")?;
    let quote = record(&c, a, SlotKind::UnderlyingQuote, "quote")?;
    small_directory(&small_dir)?;

    // Warm-up: every measured call once or more on slots of its own, so
    // that nothing done once per process (thread-locals, lazily opened
    // files, first lookups) lands in a section.
    for win in 0..8 {
        let at = SlotAddr::new(w, win, SlotKind::OptionTrade);
        let g = measured::claim(&c, at)?;
        measured::renew(&c, at, g.version)?;
        let t = measured::fill(&c, at, g.version, trade)?;
        black_box(measured::read_slot(&c, at)?);
        expect("warm-up fill", t.version == g.version + 1)?;
        let at = SlotAddr::new(w, win, SlotKind::OptionQuote);
        let g = measured::claim(&c, at)?;
        measured::clear(&c, at, g.version)?;
    }
    black_box(measured::next_unfilled_window(&c, w, 0, SlotKind::OptionTrade)?);
    let warm = measured::claim_next_unfilled(&c, SlotAddr::new(w, 100, SlotKind::OptionTrade), BATCH)?;
    let warm: Vec<FillItem> = warm
        .iter()
        .map(|(win, g)| FillItem { at: SlotAddr::new(w, *win, SlotKind::OptionTrade), claim_version: g.version, payload: trade })
        .collect();
    let mut outcomes = Vec::with_capacity(warm.len());
    measured::fill_batch(&c, &warm, &mut outcomes)?;
    expect("warm-up batch fill", outcomes.len() == BATCH as usize && outcomes.iter().all(|&v| v == 2))?;
    drop(measured::bootstrap(config(&small_dir))?);
    section_end();

    let mut sections = Sections(Vec::new());
    let slots = |kind| (0..K).map(move |win| SlotAddr::new(a, win, kind));
    let mut grants = Vec::with_capacity(K as usize);

    sections.run("core claim", K, &[("claim", K)], || {
        for at in slots(SlotKind::OptionTrade) {
            grants.push(measured::claim(&c, at)?);
        }
        expect("claims of Empty slots", grants.iter().all(|g| g.version == 1))
    })?;
    sections.run("core renew", K, &[("renew", K)], || {
        for (at, g) in slots(SlotKind::OptionTrade).zip(&grants) {
            black_box(measured::renew(&c, at, g.version)?);
        }
        Ok(())
    })?;
    sections.run("core fill", K, &[("fill", K)], || {
        for (at, g) in slots(SlotKind::OptionTrade).zip(&grants) {
            let t = measured::fill(&c, at, g.version, trade)?;
            expect("fill of a claim", t.version == g.version + 1)?;
        }
        Ok(())
    })?;
    sections.run("core clear", K, &[("clear", K)], || {
        let mut claims = Vec::with_capacity(K as usize);
        for at in slots(SlotKind::OptionQuote) {
            claims.push(c.claim(at, LEASE_MS)?);
        }
        for (at, g) in slots(SlotKind::OptionQuote).zip(&claims) {
            let t = measured::clear(&c, at, g.version)?;
            expect("clear of a claim", t.version == g.version + 1)?;
        }
        Ok(())
    })?;
    sections.run("core claim+fill cycle", K, &[("claim", K), ("fill", K)], || {
        for at in slots(SlotKind::UnderlyingQuote) {
            let g = measured::claim(&c, at)?;
            let t = measured::fill(&c, at, g.version, quote)?;
            expect("cycle", t.version == g.version + 1)?;
        }
        Ok(())
    })?;
    sections.run("core read_slot", K, &[("read_slot", K)], || {
        for at in slots(SlotKind::OptionTrade) {
            black_box(measured::read_slot(&c, at)?);
        }
        Ok(())
    })?;
    sections.run("core next_unfilled_window (900 filled)", SCANS, &[("next_unfilled_window", SCANS)], || {
        fill_windows(&c, b, 0..FILLED_IN_FRONT, SlotKind::OptionTrade, trade)?;
        for _ in 0..SCANS {
            let found = measured::next_unfilled_window(&c, b, 0, SlotKind::OptionTrade)?;
            expect("the first unfilled window", found == Some(FILLED_IN_FRONT))?;
        }
        Ok(())
    })?;
    let mut batches = Vec::with_capacity(BATCHES as usize);
    sections.run("core claim_next_unfilled, per slot (batches of 100)", BATCH * BATCHES, &[("claim_next_unfilled", BATCHES)], || {
        for i in 0..BATCHES {
            let got = measured::claim_next_unfilled(&c, SlotAddr::new(b, FILLED_IN_FRONT + i * BATCH, SlotKind::OptionTrade), BATCH)?;
            expect("a full batch", got.len() == BATCH as usize)?;
            batches.push(got);
        }
        Ok(())
    })?;
    sections.run("core fill_batch, per slot (batches of 100)", BATCH * BATCHES, &[("fill_batch", BATCHES)], || {
        let items: Vec<Vec<FillItem>> = batches
            .iter()
            .map(|got| {
                got.iter()
                    .map(|(win, g)| FillItem {
                        at: SlotAddr::new(b, *win, SlotKind::OptionTrade),
                        claim_version: g.version,
                        payload: trade,
                    })
                    .collect()
            })
            .collect();
        let mut outcomes = Vec::with_capacity((BATCH * BATCHES) as usize);
        for batch in &items {
            measured::fill_batch(&c, batch, &mut outcomes)?;
        }
        expect("fills of the batch claims", outcomes.len() == (BATCH * BATCHES) as usize && outcomes.iter().all(|&v| v == 2))
    })?;
    sections.run("core bootstrap (small directory)", BOOTSTRAPS, &[("bootstrap", BOOTSTRAPS)], || {
        for _ in 0..BOOTSTRAPS {
            let (opened, report) = measured::bootstrap(config(&small_dir))?;
            expect("an existing directory", !report.created && report.symbols == 4)?;
            drop(opened);
        }
        Ok(())
    })?;
    Ok(sections)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, scratch] = &args[..] else {
        eprintln!("usage: window-space-instructions <scratch directory>");
        return ExitCode::from(2);
    };
    match run(Path::new(scratch)) {
        Ok(sections) => {
            println!("{}", sections.json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("window-space-instructions: {e}");
            ExitCode::FAILURE
        }
    }
}
