//! The watcher thread of a controller: sleeps on the change journal's wake
//! word (a futex shared by every process that maps the journal) and tells JS
//! when the journal head moved, through a threadsafe function. It owns no
//! logic of its own: JS reads the journal (`readJournal`) when told, then
//! acknowledges (`watcherAck`), and only then does the thread sleep again, so
//! JS is called at most once per drain however fast other processes write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use window_space_core::Controller;

/// Whether this addon was built with the journal writer's test stops
/// (`WINDOW_SPACE_TEST_JOURNAL`, core `journal::hooks`): only the crash-point
/// tests need them, and only the addon `npm test` builds has them.
#[napi(catch_unwind)]
pub fn journal_test_hooks() -> bool {
    window_space_core::journal::hooks::ENABLED
}

/// The JS callback: called with the journal head, no error argument.
pub type HeadCallback = ThreadsafeFunction<f64, (), f64, Status, false>;

/// How long a sleep on the wake word lasts before the thread re-checks its
/// stop flag (a wake-up from a writer ends it at once).
const SLEEP_SLICE: Duration = Duration::from_millis(500);

struct Shared {
    stop: AtomicBool,
    /// True while JS has been told and has not acknowledged yet.
    told: Mutex<bool>,
    acked: Condvar,
}

/// A running watcher thread.
pub struct Watcher {
    shared: Arc<Shared>,
    controller: Arc<Controller>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts the thread; it tells JS as soon as the journal head differs
    /// from `known_head` (what the caller last read), so nothing written
    /// between that read and the thread's start goes unannounced.
    pub fn start(controller: Arc<Controller>, callback: HeadCallback, known_head: u64) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), told: Mutex::new(false), acked: Condvar::new() });
        let (s, c) = (shared.clone(), controller.clone());
        let thread = std::thread::Builder::new().name("window-space-watch".into()).spawn(move || run(&s, &c, &callback, known_head))?;
        Ok(Self { shared, controller, thread: Some(thread) })
    }

    /// JS has read the journal up to what it was told: the thread may sleep again.
    pub fn ack(&self) {
        let mut told = self.shared.told.lock().unwrap_or_else(|p| p.into_inner());
        *told = false;
        self.shared.acked.notify_all();
        drop(told);
    }

    /// Stops and joins the thread (idempotent).
    pub fn stop(&mut self) {
        {
            // Under the lock: the thread checks `stop` under it before waiting.
            let _told = self.shared.told.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.acked.notify_all();
        }
        self.controller.journal().wake_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long an entry may stay numbered but unwritten before the thread stops
/// waiting for it (its writer died; JS then reports the gap to watchers).
const ABANDONED: Duration = Duration::from_secs(2);
/// How long the thread sleeps while an entry is in flight: its writer's
/// commit wakes it sooner, this only bounds a wake-up lost to a narrow race.
const IN_FLIGHT_SLICE: Duration = Duration::from_millis(25);

fn run(shared: &Shared, controller: &Controller, callback: &HeadCallback, known_head: u64) {
    let journal = controller.journal();
    // JS has been told of every change before `told`; `settled` is the first
    // entry not seen committed. Writers number an entry before their slot's
    // compare-and-swap and commit it after, so JS is told only of committed
    // entries: when told, the slot changes they stand for have happened.
    let mut told = known_head;
    let mut settled = known_head;
    let mut stuck: Option<(u64, Instant)> = None;
    loop {
        // Read the wake word before the stop flag: `stop` sets the flag and
        // then bumps the word, so a sleep on `seen` ends either way.
        let seen = journal.wake_word();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let head = journal.head();
        settled = journal.first_uncommitted(settled.max(told), head);
        if settled == told {
            if settled == head {
                journal.wait(seen, head, SLEEP_SLICE);
                continue;
            }
            // An entry in flight, or abandoned by a writer that died.
            match stuck {
                Some((at, since)) if at == settled && since.elapsed() >= ABANDONED => {
                    settled += 1;
                    stuck = None;
                }
                Some((at, _)) if at == settled => journal.wait(seen, head, IN_FLIGHT_SLICE),
                _ => {
                    stuck = Some((settled, Instant::now()));
                    journal.wait(seen, head, IN_FLIGHT_SLICE);
                }
            }
            continue;
        }
        told = settled;
        let head = told;
        *shared.told.lock().unwrap_or_else(|p| p.into_inner()) = true;
        if callback.call(head as f64, ThreadsafeFunctionCallMode::NonBlocking) != Status::Ok {
            return; // the JS environment is going away (worker exit)
        }
        let mut unacked = shared.told.lock().unwrap_or_else(|p| p.into_inner());
        while *unacked && !shared.stop.load(Ordering::SeqCst) {
            unacked = shared.acked.wait_timeout(unacked, SLEEP_SLICE).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}
