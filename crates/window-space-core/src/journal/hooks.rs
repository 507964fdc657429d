//! Named steps of a journal writer, where tests stop or slow a writer down
//! to prove what readers see when a writer stalls or dies between two steps.
//!
//! In a normal build [`at`] does nothing and compiles away. Unit tests
//! (`cfg(test)`) install a callback for the current thread with
//! [`set_thread_hook`]. A build with the `test-hooks` feature (the addon
//! `npm test` builds; never the published one) also reads the environment
//! variable `WINDOW_SPACE_TEST_JOURNAL` once per process:
//!
//! * `stop@<step>` — the process sends itself SIGSTOP the first time any of
//!   its threads reaches `<step>` (`stop@<step>#<n>`: the n-th time), so a
//!   test can look at it from outside, then SIGCONT or SIGKILL it;
//! * `yield@<step>` — the thread yields the CPU every time it reaches `<step>`.
//!
//! Step names are those of [`Step::name`].

/// A point between two steps of journaling one transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The writer's cell in the writer table is taken and says "taking a
    /// number"; the head has not been moved yet.
    CellTaken,
    /// The head's `fetch_add` gave the writer its number; its cell does not
    /// show the number yet.
    Numbered,
    /// The cell shows the number; the slot's compare-and-swap comes next.
    Reserved,
    /// The slot's compare-and-swap succeeded; the entry is not written yet.
    Changed,
    /// The entry is committed; the writer's cell is not free yet.
    Committed,
}

impl Step {
    pub const ALL: [Step; 5] = [Step::CellTaken, Step::Numbered, Step::Reserved, Step::Changed, Step::Committed];

    /// The name tests use for the step.
    pub fn name(self) -> &'static str {
        match self {
            Step::CellTaken => "cell-taken",
            Step::Numbered => "numbered",
            Step::Reserved => "reserved",
            Step::Changed => "changed",
            Step::Committed => "committed",
        }
    }

    pub fn from_name(name: &str) -> Option<Step> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Whether this build has the hooks (`cfg(test)` or the `test-hooks` feature).
pub const ENABLED: bool = cfg!(any(test, feature = "test-hooks"));

#[cfg(not(any(test, feature = "test-hooks")))]
#[inline(always)]
pub(crate) fn at(_step: Step) {}

#[cfg(any(test, feature = "test-hooks"))]
pub(crate) use enabled::at;
#[cfg(test)]
pub(crate) use enabled::set_thread_hook;

#[cfg(any(test, feature = "test-hooks"))]
mod enabled {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    use super::Step;

    type Hook = Box<dyn FnMut(Step)>;

    thread_local! {
        static THREAD_HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Installs (or, with `None`, removes) the current thread's callback.
    #[cfg(test)]
    pub(crate) fn set_thread_hook(hook: Option<Hook>) {
        THREAD_HOOK.with(|h| *h.borrow_mut() = hook);
    }

    #[derive(Clone, Copy)]
    enum Action {
        Stop { nth: u64 },
        Yield,
    }

    fn from_env() -> Option<(Step, Action)> {
        let spec = std::env::var("WINDOW_SPACE_TEST_JOURNAL").ok()?;
        let (action, rest) = spec.split_once('@')?;
        let (step, nth) = match rest.split_once('#') {
            Some((s, n)) => (s, n.parse().ok()?),
            None => (rest, 1),
        };
        let step = Step::from_name(step)?;
        match action {
            "stop" => Some((step, Action::Stop { nth })),
            "yield" => Some((step, Action::Yield)),
            _ => None,
        }
    }

    static ENV: OnceLock<Option<(Step, Action)>> = OnceLock::new();
    static REACHED: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn at(step: Step) {
        THREAD_HOOK.with(|h| {
            if let Some(f) = h.borrow_mut().as_mut() {
                f(step);
            }
        });
        match *ENV.get_or_init(from_env) {
            Some((s, Action::Stop { nth })) if s == step && REACHED.fetch_add(1, Ordering::SeqCst) + 1 == nth => {
                let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
            }
            Some((s, Action::Yield)) if s == step => std::thread::yield_now(),
            _ => {}
        }
    }
}
