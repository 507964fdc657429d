//! Settles the Promises of the binding's async calls (the PostgreSQL
//! backend) from their Tokio tasks.
//!
//! One thread-safe function per JS thread carries every completion back:
//! a finished task queues its outcome and wakes the JS thread only when
//! the queue was empty, and the JS thread settles everything queued in one
//! pass. A call therefore costs a Promise and a map entry, not a
//! thread-safe function (and its libuv handle) of its own, and a burst of
//! completions costs one wake-up.
//!
//! The function keeps the event loop alive only while calls are in flight
//! (referenced at the first, unreferenced after the last). When the JS
//! thread's environment goes away with calls in flight (a worker
//! terminated, the process exiting), Node finalizes the function: the
//! finalizer closes the queue under its lock, later completions are
//! dropped there, no task touches the function after it is gone, and the
//! tasks still running are cancelled (a wait of a terminated worker does
//! not hold its connections open until it times out).

// Node-API's thread-safe functions and deferred Promises have no safe
// wrapper that fits (napi-rs's makes a function per call); each unsafe
// block says what it relies on.
#![allow(unsafe_code)]

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use napi::bindgen_prelude::{spawn, PromiseRaw, ToNapiValue};
use napi::{check_status, sys, Env, JsError, JsValue};
use window_space_core::Error as CoreError;

use crate::errors::{error_object, panicked};

/// What a task hands back: its `Result<T, CoreError>`, typed again by the
/// call's settle function.
type Outcome = Box<dyn Any + Send>;

/// Settles one call's Promise from its outcome, on the JS thread.
type Settle = Box<dyn FnOnce(sys::napi_env, Outcome)>;

/// A call in flight: how to settle it, and its task (to cancel it when the
/// environment goes away).
struct Pending {
    settle: Settle,
    task: Option<napi::tokio::task::AbortHandle>,
}

/// Completions waiting for the JS thread.
struct Queue {
    done: Vec<(u64, Outcome)>,
    /// The thread-safe function was finalized: nobody settles anything now.
    closed: bool,
}

/// What the Tokio tasks of one JS thread share with it.
struct Shared {
    /// Set once, right after the function is created (its context is this `Shared`).
    tsfn: AtomicPtr<sys::napi_threadsafe_function__>,
    queue: Mutex<Queue>,
}

// SAFETY: `tsfn` is only passed to `napi_call_threadsafe_function`, which
// Node-API allows from any thread while the function exists; every such
// call happens under `queue`'s lock with `closed` false, and the finalizer
// sets `closed` under the same lock before Node frees the function.
unsafe impl Send for Shared {}
// SAFETY: as above; the rest is behind the mutex.
unsafe impl Sync for Shared {}

impl Shared {
    fn tsfn(&self) -> sys::napi_threadsafe_function {
        self.tsfn.load(Ordering::Acquire)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while the lock was held left nothing half-done that matters here.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a task's outcome and wakes the JS thread if nothing was queued.
    fn complete(&self, id: u64, outcome: Outcome) {
        let mut q = self.queue();
        if q.closed {
            return;
        }
        let wake = q.done.is_empty();
        q.done.push((id, outcome));
        if wake {
            // SAFETY: `closed` is false under the lock, so the function
            // exists (see the `Send` impl). The status is `napi_closing`
            // while the environment shuts down; the finalizer then drops
            // what is queued.
            unsafe { sys::napi_call_threadsafe_function(self.tsfn(), ptr::null_mut(), sys::ThreadsafeFunctionCallMode::nonblocking) };
        }
    }
}

/// The JS thread's side: the calls in flight.
struct Calls {
    env: sys::napi_env,
    shared: Arc<Shared>,
    next: u64,
    pending: HashMap<u64, Pending>,
    /// Whether the function holds the event loop open.
    referenced: bool,
}

thread_local! {
    static CALLS: RefCell<Option<Calls>> = const { RefCell::new(None) };
}

/// Runs `fut` on the Tokio runtime; the Promise resolves with `map(value)`
/// or rejects with the core error's object (as a synchronous call throws).
pub(crate) fn run<'e, T, V, F, M>(env: &'e Env, fut: F, map: M) -> napi::Result<PromiseRaw<'e, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = Result<T, CoreError>> + Send + 'static,
    M: FnOnce(&Env, T) -> napi::Result<V> + 'static,
{
    let raw_env = env.raw();
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: called on the JS thread with its environment.
    check_status!(unsafe { sys::napi_create_promise(raw_env, &mut deferred, &mut promise) }, "creating a Promise")?;
    let settle: Settle = Box::new(move |raw_env, outcome| {
        let env = Env::from_raw(raw_env);
        let result = match outcome.downcast::<Result<T, CoreError>>() {
            Ok(r) => *r,
            Err(_) => Err(CoreError::Internal { what: "a call's outcome of another type".into() }),
        };
        let value = match result {
            // SAFETY: converting on the JS thread with its environment.
            Ok(v) => map(&env, v).and_then(|v| unsafe { V::to_napi_value(raw_env, v) }).map_err(|e| {
                // SAFETY: as above.
                unsafe { JsError::from(e).into_value(raw_env) }
            }),
            Err(e) => match error_object(&env, &e) {
                Ok(obj) => Err(obj.raw()),
                // SAFETY: as above.
                Err(err) => Err(unsafe { JsError::from(err).into_value(raw_env) }),
            },
        };
        // SAFETY: `deferred` came from `napi_create_promise` in this
        // environment and is settled exactly once (its entry is removed
        // from `pending` before this runs).
        unsafe {
            match value {
                Ok(v) => sys::napi_resolve_deferred(raw_env, deferred, v),
                Err(e) => sys::napi_reject_deferred(raw_env, deferred, e),
            };
        }
    });
    let (id, shared) = register(raw_env, settle)?;
    let task = spawn(async move {
        let outcome: Outcome = match (CatchUnwind(Box::pin(fut))).await {
            Ok(r) => Box::new(r),
            Err(_) => Box::new(Err::<T, CoreError>(panicked("a PostgreSQL call"))),
        };
        shared.complete(id, outcome);
    });
    // Still pending: only this thread settles calls, and it is here.
    CALLS.with(|cell| {
        if let Some(p) = cell.borrow_mut().as_mut().and_then(|c| c.pending.get_mut(&id)) {
            p.task = Some(task.abort_handle());
        }
    });
    Ok(PromiseRaw::new(raw_env, promise))
}

/// Records a call in flight on this JS thread, creating the thread-safe
/// function on the first call in this environment.
fn register(env: sys::napi_env, settle: Settle) -> napi::Result<(u64, Arc<Shared>)> {
    CALLS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|c| c.env != env) {
            *slot = Some(create(env)?);
        }
        let Some(calls) = slot.as_mut() else {
            return Err(napi::Error::from_reason("no completion queue"));
        };
        let id = calls.next;
        calls.next += 1;
        calls.pending.insert(id, Pending { settle, task: None });
        if !calls.referenced {
            // SAFETY: on the JS thread that created the function, which Node has not finalized (`CALLS` is cleared when it does).
            check_status!(unsafe { sys::napi_ref_threadsafe_function(env, calls.shared.tsfn()) }, "holding the event loop open")?;
            calls.referenced = true;
        }
        Ok((id, calls.shared.clone()))
    })
}

fn create(env: sys::napi_env) -> napi::Result<Calls> {
    let mut name = ptr::null_mut();
    let text = "window-space completions";
    check_status!(
        // SAFETY: a UTF-8 buffer of the given length, on the JS thread.
        unsafe { sys::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, &mut name) },
        "naming the completion queue"
    )?;
    let shared = Arc::new(Shared { tsfn: AtomicPtr::new(ptr::null_mut()), queue: Mutex::new(Queue { done: Vec::new(), closed: false }) });
    // The function's context: one strong count, given back by the finalizer.
    let context = Arc::into_raw(shared.clone()) as *mut c_void;
    let mut tsfn = ptr::null_mut();
    // SAFETY: no JS function (`drain` does the work), an unbounded queue,
    // one thread (this one); `context` stays valid until `finalize`.
    let status = unsafe {
        sys::napi_create_threadsafe_function(
            env,
            ptr::null_mut(),
            ptr::null_mut(),
            name,
            0,
            1,
            ptr::null_mut(),
            Some(finalize),
            context,
            Some(drain),
            &mut tsfn,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: the count taken for `context` above, which Node never got.
        drop(unsafe { Arc::from_raw(context as *const Shared) });
        return Err(napi::Error::new(napi::Status::from(status), "creating the completion queue"));
    }
    shared.tsfn.store(tsfn, Ordering::Release);
    // SAFETY: the function just created, on its JS thread.
    check_status!(unsafe { sys::napi_unref_threadsafe_function(env, tsfn) }, "releasing the event loop")?;
    Ok(Calls { env, shared, next: 0, pending: HashMap::new(), referenced: false })
}

/// The JS thread settles every queued completion.
unsafe extern "C" fn drain(env: sys::napi_env, _js_callback: sys::napi_value, context: *mut c_void, _data: *mut c_void) {
    if env.is_null() || context.is_null() {
        return;
    }
    // SAFETY: `context` is the `Shared` whose count the function holds until `finalize`.
    let shared = unsafe { &*(context as *const Shared) };
    let done = std::mem::take(&mut shared.queue().done);
    let ready: Vec<(Settle, Outcome)> = CALLS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let Some(calls) = slot.as_mut().filter(|c| c.env == env) else {
            return Vec::new();
        };
        let ready = done.into_iter().filter_map(|(id, o)| calls.pending.remove(&id).map(|p| (p.settle, o))).collect();
        if calls.pending.is_empty() && calls.referenced {
            // SAFETY: on the function's JS thread, before it is finalized.
            unsafe { sys::napi_unref_threadsafe_function(env, calls.shared.tsfn()) };
            calls.referenced = false;
        }
        ready
    });
    for (settle, outcome) in ready {
        settle(env, outcome);
    }
}

/// Node is destroying the function (its environment is going away): close
/// the queue, drop the calls still in flight, give back the context's count.
unsafe extern "C" fn finalize(env: sys::napi_env, _data: *mut c_void, context: *mut c_void) {
    if context.is_null() {
        return;
    }
    // SAFETY: the count taken in `create` for the function's context.
    let shared = unsafe { Arc::from_raw(context as *const Shared) };
    {
        let mut q = shared.queue();
        q.closed = true;
        q.done.clear();
    }
    let calls = CALLS
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            if slot.as_ref().is_some_and(|c| c.env == env || Arc::ptr_eq(&c.shared, &shared)) {
                slot.take()
            } else {
                None
            }
        })
        .ok()
        .flatten();
    // Nobody will see these calls' outcomes: stop their work.
    for p in calls.into_iter().flat_map(|c| c.pending.into_values()) {
        if let Some(task) = p.task {
            task.abort();
        }
    }
}

/// A future whose panic becomes its output, so that a call that panicked
/// still settles its Promise (with an internal error).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(move || fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}
