//! The watcher thread of a controller: follows the change journal (core
//! `journal::Follower`), sleeping on its wake word (a futex shared by every
//! process that maps the journal), and tells JS through a threadsafe function
//! when something may have changed: once at its start, then whenever an
//! entry is committed or judged abandoned. It owns no rule of its own: JS
//! reads the journal (`readJournal`) or its slots when told, then
//! acknowledges (`watcherAck`), and only then does the thread look again, so
//! JS is called at most once per drain however fast other processes write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use window_space_core::journal::Follower;
use window_space_core::Controller;

/// The JS callback: called with the journal head, no error argument.
pub type HeadCallback = ThreadsafeFunction<f64, (), f64, Status, false>;

/// How long a sleep on the wake word lasts before the thread re-checks its
/// stop flag (a wake-up from a writer ends it at once).
const SLEEP_SLICE: Duration = Duration::from_millis(500);
/// How long the thread sleeps while a writer is in flight: a commit wakes it
/// sooner; a writer that dies wakes nobody, so this is how soon the thread
/// looks at whether it is still alive.
const IN_FLIGHT_SLICE: Duration = Duration::from_millis(25);

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
    /// Starts the thread; it tells JS once at its start, so anything that
    /// changed before it runs is looked at again.
    pub fn start(controller: Arc<Controller>, callback: HeadCallback) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), told: Mutex::new(false), acked: Condvar::new() });
        let (s, c) = (shared.clone(), controller.clone());
        let thread = std::thread::Builder::new().name("window-space-watch".into()).spawn(move || run(&s, &c, &callback))?;
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

fn run(shared: &Shared, controller: &Controller, callback: &HeadCallback) {
    let journal = controller.journal();
    let mut follower = Follower::new(journal);
    loop {
        // Read the wake word before the stop flag: `stop` sets the flag and
        // then bumps the word, so a sleep on `seen` ends either way.
        let seen = journal.wake_word();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let look = follower.look(journal);
        if !look.news {
            let slice = if follower.in_flight() { IN_FLIGHT_SLICE } else { SLEEP_SLICE };
            journal.wait(seen, look.head, &follower.waiting_on(), slice);
            continue;
        }
        *shared.told.lock().unwrap_or_else(|p| p.into_inner()) = true;
        if callback.call(look.head as f64, ThreadsafeFunctionCallMode::NonBlocking) != Status::Ok {
            return; // the JS environment is going away (worker exit)
        }
        let mut unacked = shared.told.lock().unwrap_or_else(|p| p.into_inner());
        while *unacked && !shared.stop.load(Ordering::SeqCst) {
            unacked = shared.acked.wait_timeout(unacked, SLEEP_SLICE).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}
