//! The hot path as hand-written Node-API callbacks: claim, renew, fill,
//! clear, slot and row reads, and the next-unfilled scan.
//!
//! napi-rs's generated glue costs about 100 ns a call on this machine (argument
//! objects, borrow scopes, `napi_unwrap` and type-tag lookups); these callbacks
//! do only what a hand-written N-API addon does: `napi_get_cb_info` into a
//! stack array, one `napi_get_value_*` per argument, one result. They take the
//! controller as a small integer handle (first argument) into a per-thread
//! registry instead of unwrapping a class instance.
//!
//! ## Safety
//!
//! This is the only module of the binding crate with `unsafe` code: calls into
//! Node-API through `napi::sys`. Every callback runs on the JavaScript thread
//! that owns `env`, with `env` and `info` valid for the duration of the call,
//! as Node-API guarantees for a function created with `napi_create_function`.
//! Values read from JS are plain numbers and typed arrays; a typed array's
//! memory is borrowed only for the duration of the callback, during which no JS
//! runs (no callbacks into JS are made), so it cannot be detached or resized
//! under us. Panics are caught before they reach the C boundary.
//!
//! Errors are thrown with `napi_throw_error(env, code, message)`, so JS sees
//! the same `err.code` and JSON reason as the generated functions produce.

#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::CString;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::Object;
use napi::{sys, Env, JsValue};
use napi_derive::napi;
use window_space_core::{Controller, Error as CoreError, LedgerKind, SlotKind};

use crate::{reason, refusal, write_slot, SLOT_STRIDE};

thread_local! {
    /// Open controllers of this JS thread (each worker thread has its own), by handle.
    static CONTROLLERS: RefCell<Vec<Option<Arc<Controller>>>> = const { RefCell::new(Vec::new()) };
}

/// Registers a controller for the fast path; returns its handle.
pub(crate) fn register(c: Arc<Controller>) -> u32 {
    CONTROLLERS.with(|r| {
        let mut r = r.borrow_mut();
        if let Some(i) = r.iter().position(Option::is_none) {
            r[i] = Some(c);
            i as u32
        } else {
            r.push(Some(c));
            (r.len() - 1) as u32
        }
    })
}

/// Forgets a handle (the controller was closed).
pub(crate) fn unregister(handle: u32) {
    // try_with: a finalizer may run while the thread's locals are being torn down.
    let _ = CONTROLLERS.try_with(|r| {
        if let Some(slot) = r.borrow_mut().get_mut(handle as usize) {
            *slot = None;
        }
    });
}

/// What a callback body can fail with.
enum Fail {
    /// Throw a typed window-space error.
    Core(CoreError),
    /// Throw a TypeError (an argument of the wrong type).
    Type(&'static str),
}

impl From<CoreError> for Fail {
    fn from(e: CoreError) -> Self {
        Fail::Core(e)
    }
}

type Out = Result<f64, Fail>;

/// Arguments of one call, read from `napi_get_cb_info`.
struct Args<const N: usize> {
    env: sys::napi_env,
    argv: [sys::napi_value; N],
    argc: usize,
}

impl<const N: usize> Args<N> {
    /// # Safety
    /// `env` and `info` must be the arguments of the running callback.
    unsafe fn read(env: sys::napi_env, info: sys::napi_callback_info) -> Self {
        let mut argc = N;
        let mut argv = [ptr::null_mut(); N];
        // SAFETY: env and info belong to this callback (caller's contract);
        // argv has room for `argc` values and napi writes at most that many.
        unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) };
        Self { env, argv, argc }
    }

    fn u32(&self, i: usize) -> Result<u32, Fail> {
        if i >= self.argc {
            return Err(Fail::Type("missing argument"));
        }
        let mut v = 0u32;
        // SAFETY: argv[i] is a value of this callback (i < argc); v is a valid out pointer.
        let status = unsafe { sys::napi_get_value_uint32(self.env, self.argv[i], &mut v) };
        if status == sys::Status::napi_ok {
            Ok(v)
        } else {
            Err(Fail::Type("expected a number"))
        }
    }

    fn f64(&self, i: usize) -> Result<f64, Fail> {
        if i >= self.argc {
            return Err(Fail::Type("missing argument"));
        }
        let mut v = 0f64;
        // SAFETY: as in `u32`.
        let status = unsafe { sys::napi_get_value_double(self.env, self.argv[i], &mut v) };
        if status == sys::Status::napi_ok {
            Ok(v)
        } else {
            Err(Fail::Type("expected a number"))
        }
    }

    /// The `Float64Array` argument `i`, borrowed for the rest of the callback.
    fn f64_array(&mut self, i: usize) -> Result<&mut [f64], Fail> {
        if i >= self.argc {
            return Err(Fail::Type("missing argument"));
        }
        let mut kind = 0;
        let mut len = 0usize;
        let mut data = ptr::null_mut();
        // SAFETY: argv[i] is a value of this callback; all out pointers are valid.
        let status = unsafe {
            sys::napi_get_typedarray_info(self.env, self.argv[i], &mut kind, &mut len, &mut data, ptr::null_mut(), ptr::null_mut())
        };
        if status != sys::Status::napi_ok || kind != sys::TypedarrayType::float64_array {
            return Err(Fail::Type("expected a Float64Array"));
        }
        if len == 0 || data.is_null() {
            return Ok(&mut []);
        }
        // SAFETY: napi reports `data` (already adjusted by the byte offset) and
        // `len` elements of a live Float64Array passed to this call; f64 alignment
        // is guaranteed for Float64Array views. No JS runs before we return, so
        // the buffer cannot be detached while the slice lives (module ## Safety).
        Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<f64>(), len) })
    }

    fn controller(&self) -> Result<Arc<Controller>, Fail> {
        let h = self.u32(0)?;
        CONTROLLERS.with(|r| r.borrow().get(h as usize).cloned().flatten()).ok_or(Fail::Core(CoreError::Closed))
    }
}

fn kind(code: u32) -> Result<SlotKind, Fail> {
    SlotKind::from_code(code)
        .ok_or_else(|| Fail::Core(CoreError::InvalidArgument { what: format!("slot kind code {code} does not exist (0..=8)") }))
}

fn lease(v: f64) -> Result<Option<u64>, Fail> {
    if v < 0.0 {
        return Ok(None);
    }
    if v.is_finite() && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0 {
        Ok(Some(v as u64))
    } else {
        Err(Fail::Core(CoreError::InvalidArgument { what: format!("leaseMs must be a whole number of milliseconds, got {v}") }))
    }
}

/// A core result as a hot-path number: the value, or a negative refusal code.
fn hot<T>(r: Result<T, CoreError>, ok: impl FnOnce(T) -> f64) -> Out {
    match r {
        Ok(v) => Ok(ok(v)),
        Err(CoreError::SlotWrite(e)) => Ok(f64::from(refusal(&e))),
        Err(e) => Err(Fail::Core(e)),
    }
}

/// Runs a callback body: returns its number, or throws; never unwinds into C.
///
/// # Safety
/// `env` must be the env of the running callback.
unsafe fn finish(env: sys::napi_env, body: impl FnOnce() -> Out) -> sys::napi_value {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .unwrap_or_else(|_| Err(Fail::Core(CoreError::Unsupported { what: "internal panic in the native hot path".into() })));
    match result {
        Ok(v) => {
            let mut out = ptr::null_mut();
            // SAFETY: env is this callback's; out is a valid out pointer.
            unsafe { sys::napi_create_double(env, v, &mut out) };
            out
        }
        Err(fail) => {
            let (code, msg) = match fail {
                Fail::Core(e) => (e.code(), reason(&e)),
                Fail::Type(what) => ("ERR_INVALID_ARG_TYPE", what.to_string()),
            };
            let code = CString::new(code).unwrap_or_default();
            let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
            // SAFETY: env is this callback's; both strings are NUL-terminated and
            // outlive the call. Returning null after a throw is what N-API expects.
            unsafe {
                if code.as_bytes() == b"ERR_INVALID_ARG_TYPE" {
                    sys::napi_throw_type_error(env, code.as_ptr(), msg.as_ptr());
                } else {
                    sys::napi_throw_error(env, code.as_ptr(), msg.as_ptr());
                }
            }
            ptr::null_mut()
        }
    }
}

/// Declares an `extern "C"` N-API callback over `finish`.
macro_rules! callback {
    ($name:ident, $n:literal, |$a:ident| $body:expr) => {
        unsafe extern "C" fn $name(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
            // SAFETY: Node-API calls this with the env and info of the running call.
            #[allow(unused_mut)]
            let mut $a = unsafe { Args::<$n>::read(env, info) };
            // SAFETY: env is this callback's.
            unsafe { finish(env, || $body) }
        }
    };
}

// fastClaim(handle, symbol, window, kind, leaseMs) → version, or a negative refusal code.
callback!(fast_claim, 5, |a| {
    let (c, s, w, k, l) = (a.controller()?, a.u32(1)?, a.u32(2)?, kind(a.u32(3)?)?, lease(a.f64(4)?)?);
    hot(c.claim(s, w, k, l), |g| f64::from(g.version))
});

// fastRenew(handle, symbol, window, kind, version, leaseMs) → new deadline (ms), or a negative refusal code.
callback!(fast_renew, 6, |a| {
    let (c, s, w, k, v, l) = (a.controller()?, a.u32(1)?, a.u32(2)?, kind(a.u32(3)?)?, a.u32(4)?, lease(a.f64(5)?)?);
    hot(c.renew(s, w, k, v, l), |d| d as f64)
});

// fastFill(handle, symbol, window, kind, version, payloadType, payloadId, checksumHi, checksumLo)
// → new version, or a negative refusal code.
callback!(fast_fill, 9, |a| {
    let c = a.controller()?;
    let (s, w, k, v) = (a.u32(1)?, a.u32(2)?, kind(a.u32(3)?)?, a.u32(4)?);
    let pt = u8::try_from(a.u32(5)?).map_err(|_| Fail::Core(CoreError::InvalidArgument { what: "payloadType must be 0..=255".into() }))?;
    let id = a.f64(6)?;
    if !(id.is_finite() && id >= 0.0 && id.fract() == 0.0 && id <= 9_007_199_254_740_991.0) {
        return Err(Fail::Core(CoreError::InvalidArgument { what: format!("payloadId must be a whole number, got {id}") }));
    }
    let sum = (u64::from(a.u32(7)?) << 32) | u64::from(a.u32(8)?);
    hot(c.fill(s, w, k, v, pt, id as u64, sum), |t| f64::from(t.version))
});

// fastClear(handle, symbol, window, kind, version) → new version, or a negative refusal code.
callback!(fast_clear, 5, |a| {
    let (c, s, w, k, v) = (a.controller()?, a.u32(1)?, a.u32(2)?, kind(a.u32(3)?)?, a.u32(4)?);
    hot(c.clear(s, w, k, v), |t| f64::from(t.version))
});

// fastReadSlot(handle, symbol, window, kind, out: Float64Array) → 1; out[0..8] = the slot.
callback!(fast_read_slot, 5, |a| {
    let (c, s, w, k) = (a.controller()?, a.u32(1)?, a.u32(2)?, kind(a.u32(3)?)?);
    let out = a.f64_array(4)?;
    if out.len() < SLOT_STRIDE {
        return Err(Fail::Core(CoreError::InvalidArgument { what: "the output array needs at least 8 numbers".into() }));
    }
    write_slot(&mut out[..SLOT_STRIDE], &c.read_slot(s, w, k)?);
    Ok(1.0)
});

// fastReadRow(handle, ledger, symbol, window, out: Float64Array) → slots written (8 numbers each).
callback!(fast_read_row, 5, |a| {
    let c = a.controller()?;
    let ledger = match a.u32(1)? {
        0 => LedgerKind::Trade,
        1 => LedgerKind::Enrichment,
        other => return Err(Fail::Core(CoreError::InvalidArgument { what: format!("ledger code {other} does not exist") })),
    };
    let (s, w) = (a.u32(2)?, a.u32(3)?);
    let out = a.f64_array(4)?;
    let n = ledger.slot_kinds().len();
    if out.len() < n * SLOT_STRIDE {
        return Err(Fail::Core(CoreError::InvalidArgument {
            what: format!("the output array needs at least {} numbers", n * SLOT_STRIDE),
        }));
    }
    for (i, slot) in c.read_row(ledger, s, w)?.iter().enumerate() {
        write_slot(&mut out[i * SLOT_STRIDE..(i + 1) * SLOT_STRIDE], slot);
    }
    Ok(n as f64)
});

// fastNextUnfilled(handle, symbol, start, kind) → window, or -1.
callback!(fast_next_unfilled, 4, |a| {
    let (c, s, start, k) = (a.controller()?, a.u32(1)?, a.u32(2)?, kind(a.u32(3)?)?);
    Ok(c.next_unfilled_window(s, start, k)?.map_or(-1.0, f64::from))
});

// fastEmpty() → 0: the cost of a call through this path, for the benchmark's floor.
callback!(fast_empty, 1, |_a| Ok(0.0));

/// Words private to `fastCasInternal`: the benchmark's "one compare-and-swap" floor.
static CAS_WORDS: [std::sync::atomic::AtomicU32; 1024] = [const { std::sync::atomic::AtomicU32::new(0) }; 1024];

// fastCasInternal(index, expected, desired) → 1 if word `index % 1024` held `expected`
// and now holds `desired`, else 0: a call plus one CAS on an internal array, for the
// benchmark's floor (no ledger, no mapping, no controller lookup).
callback!(fast_cas_internal, 3, |a| {
    let (i, expected, desired) = (a.u32(0)?, a.u32(1)?, a.u32(2)?);
    let word = &CAS_WORDS[i as usize % CAS_WORDS.len()];
    let swapped = word.compare_exchange(expected, desired, std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire);
    Ok(if swapped.is_ok() { 1.0 } else { 0.0 })
});

/// Adds the hand-written functions to the module's exports.
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> napi::Result<()> {
    type Cb = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
    let fns: [(&str, Cb); 9] = [
        ("fastClaim", fast_claim),
        ("fastRenew", fast_renew),
        ("fastFill", fast_fill),
        ("fastClear", fast_clear),
        ("fastReadSlot", fast_read_slot),
        ("fastReadRow", fast_read_row),
        ("fastNextUnfilled", fast_next_unfilled),
        ("fastEmpty", fast_empty),
        ("fastCasInternal", fast_cas_internal),
    ];
    for (name, cb) in fns {
        let mut f = ptr::null_mut();
        // SAFETY: env is the module-init env; name is valid UTF-8 of the given
        // length; cb is an `extern "C"` callback that upholds the module contract.
        let status =
            unsafe { sys::napi_create_function(env.raw(), name.as_ptr().cast(), name.len() as isize, Some(cb), ptr::null_mut(), &mut f) };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::from_reason(format!("napi_create_function({name}) failed with status {status}")));
        }
        let cname = CString::new(name).map_err(|e| napi::Error::from_reason(e.to_string()))?;
        // SAFETY: exports is the module's exports object, f the function just created.
        let status = unsafe { sys::napi_set_named_property(env.raw(), exports.raw(), cname.as_ptr(), f) };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::from_reason(format!("setting exports.{name} failed with status {status}")));
        }
    }
    Ok(())
}
