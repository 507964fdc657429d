//! The hot path as hand-written Node-API callbacks: claim, renew, fill,
//! clear, slot and row reads, the next-unfilled scan, and the numbers-only
//! batch claim and batch fill.
//!
//! napi-rs's generated glue costs about 100 ns a call on this machine (argument
//! objects, borrow scopes, `napi_unwrap` and type-tag lookups); these callbacks
//! do only what a hand-written N-API addon does: `napi_get_cb_info` into a
//! stack array, one `napi_get_value_double` per argument, one result. They
//! take the controller as a numeric handle (first argument) into a
//! per-thread registry instead of unwrapping a class instance.
//!
//! Every number argument must be a whole number in its range: NaN, fractions,
//! negatives and values past the range throw a `RangeError`
//! (`ERR_OUT_OF_RANGE`) and never act on another slot.
//!
//! A refused transition returns a negative refusal code (the vocabulary's
//! `Refusal`) instead of throwing, and keeps the slot as the refusal saw it
//! (the snapshot the decision was made on, not a later read) for this thread:
//! `fastLastRefusal(out)` writes it to `out[0..8]` (see `convert::slot_numbers`).
//! A claim takes an optional last argument, a `Float64Array` of at least 8
//! numbers: on success it receives the lease deadline written into the slot
//! at `out[0]`, on a refusal the slot as seen. Only the claim takes one: a
//! typed array argument costs a Node-API call (`napi_get_typedarray_info`,
//! about 50 ns here) on every call, while the refusal it would serve is rare.
//!
//! ## Safety
//!
//! This is the only module of the binding crate with `unsafe` code: calls into
//! Node-API through `napi::sys`. Every callback runs on the JavaScript thread
//! that owns `env`, with `env` and `info` valid for the duration of the call,
//! as Node-API guarantees for a function created with `napi_create_function`.
//! Values read from JS are plain numbers and `Float64Array`s. A typed array's
//! memory is used only for the duration of the callback. No JS runs on this
//! thread meanwhile (no callbacks into JS are made), so the array cannot be
//! detached, nor its buffer shrunk, under us: only this thread can detach or
//! shrink an `ArrayBuffer`, and a `SharedArrayBuffer` never shrinks. But its
//! buffer may be a `SharedArrayBuffer` that other threads (workers) write
//! while the callback runs, so that memory is never viewed as a Rust slice
//! (`&[f64]` or `&mut [f64]` over memory others may write is undefined
//! behaviour), and never read twice for one decision: [`JsNumbers`] reads and
//! writes it one number at a time, each a relaxed atomic 64-bit access (on
//! x86-64 and arm64 the same plain aligned load or store JavaScript makes, so
//! a number is never torn). A call that checks numbers before it acts
//! (`fastFillBatch`) copies them once into memory of its own and checks and
//! uses only that copy. What another thread can see is its own writes racing
//! ours: an output array it reads while the call writes it may hold some
//! numbers of the call and some older ones, never numbers the call did not
//! write. Panics are caught before they reach the C boundary.

#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::Object;
use napi::{sys, Env, JsValue};
use napi_derive::napi;
use window_space_core::{Controller, Error as CoreError, FillItem, FillPayload, SlotAddr, SlotKind, SlotSnapshot};

use crate::convert::{slot_numbers, MAX_SAFE, SLOT_STRIDE};
use crate::errors::{error_object, invalid, panicked};

/// A handle is `generation × 2^INDEX_BITS + index`: the registry entry it
/// names and the generation it was given in. Each registration takes the next
/// generation of the process (all threads share the count), so a handle kept
/// past `close()` never reaches the controller that reuses its entry, nor one
/// in another thread's registry: it answers `ERR_CLOSED`. Generations stay
/// below 2^33, so a handle is a whole number below 2^53 (exact in a
/// JavaScript number); a process that used them all registers no more.
const INDEX_BITS: u32 = 20;
const MAX_ENTRIES: usize = 1 << INDEX_BITS;
const MAX_GENERATION: u64 = (1 << 33) - 1;

/// The next generation to give out, for the whole process.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(0);

/// One entry of the registry: the generation of its last registration, and
/// the controller registered in it (none while the entry is free).
struct Entry {
    generation: u64,
    controller: Option<Arc<Controller>>,
}

thread_local! {
    /// Open controllers of this JS thread (each worker thread has its own), by entry.
    static CONTROLLERS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// The slot as the last refused transition of this thread saw it, until
    /// `fastLastRefusal` takes it.
    static LAST_REFUSAL: Cell<Option<SlotSnapshot>> = const { Cell::new(None) };
}

/// Registers a controller for the fast path; returns its handle, or `None`
/// when this thread has 2^20 controllers open or the process used up its
/// 2^33 generations.
pub(crate) fn register(c: Arc<Controller>) -> Option<f64> {
    CONTROLLERS.with(|r| {
        let mut r = r.borrow_mut();
        let index = match r.iter().position(|e| e.controller.is_none()) {
            Some(i) => i,
            None if r.len() < MAX_ENTRIES => {
                r.push(Entry { generation: 0, controller: None });
                r.len() - 1
            }
            None => return None,
        };
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        if generation > MAX_GENERATION {
            return None;
        }
        r[index] = Entry { generation, controller: Some(c) };
        Some((generation * MAX_ENTRIES as u64 + index as u64) as f64)
    })
}

/// Forgets a handle (the controller was closed).
pub(crate) fn unregister(handle: f64) {
    let (index, generation) = split_handle(handle as u64);
    // try_with: a finalizer may run while the thread's locals are being torn down.
    let _ = CONTROLLERS.try_with(|r| {
        if let Some(e) = r.borrow_mut().get_mut(index) {
            if e.generation == generation {
                e.controller = None;
            }
        }
    });
}

/// (entry index, generation) of a handle.
#[inline(always)]
fn split_handle(h: u64) -> (usize, u64) {
    ((h % MAX_ENTRIES as u64) as usize, h / MAX_ENTRIES as u64)
}

/// What a callback body can fail with.
enum Fail {
    /// Throw a typed window-space error.
    Core(CoreError),
    /// Throw a TypeError (an argument of the wrong type).
    Type(&'static str),
    /// Throw a RangeError (a number that is not a whole number in range).
    Range(String),
}

impl From<CoreError> for Fail {
    fn from(e: CoreError) -> Self {
        Fail::Core(e)
    }
}

type Out = Result<f64, Fail>;

/// The RangeError for an argument that is not a whole number in `0..=max`;
/// out of line, so the checks that call it stay a few instructions.
#[cold]
#[inline(never)]
fn not_whole(what: &'static str, max: f64, v: f64) -> Fail {
    Fail::Range(format!("{what} must be a whole number from 0 to {max}, got {v}"))
}

/// The memory of a `Float64Array` argument: `len` numbers at `data`, valid
/// and 8-byte aligned for the rest of the callback (module ## Safety).
///
/// It is never viewed as a Rust slice: its buffer may be shared with other
/// threads that write it while the callback runs. Each number is read or
/// written as one relaxed atomic 64-bit access, which is defined whatever
/// another thread does meanwhile; an index past `len` panics (caught by
/// [`finish`]) instead of reaching memory outside the array.
#[derive(Clone, Copy)]
struct JsNumbers {
    data: *mut f64,
    len: usize,
}

impl JsNumbers {
    const EMPTY: Self = Self { data: ptr::null_mut(), len: 0 };

    fn len(self) -> usize {
        self.len
    }

    /// Where numbers `at..at + k` are; panics (out of line) unless they
    /// lie in the array.
    fn range(self, at: usize, k: usize) -> *mut u64 {
        if at > self.len || k > self.len - at {
            past_end(at, k, self.len);
        }
        // SAFETY: at + k <= len: the numbers lie in the array's memory.
        unsafe { self.data.add(at).cast::<u64>() }
    }

    /// Reads numbers `at..at + K`, each once.
    fn read<const K: usize>(self, at: usize) -> [f64; K] {
        let p = self.range(at, K);
        // SAFETY: `range` gives K numbers of the array, which stays valid for
        // the callback (module ## Safety), 8-byte aligned (checked in
        // `Args::f64_array`) as AtomicU64 needs; each reference is used at
        // once and dropped. Every access of ours to typed-array memory is
        // atomic, so none of ours races another non-atomically.
        std::array::from_fn(|j| f64::from_bits(unsafe { AtomicU64::from_ptr(p.add(j)) }.load(Ordering::Relaxed)))
    }

    /// Writes `vs` as numbers `at..at + K`.
    fn write<const K: usize>(self, at: usize, vs: [f64; K]) {
        let p = self.range(at, K);
        for (j, v) in vs.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { AtomicU64::from_ptr(p.add(j)) }.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    /// Writes `v` as number `i`.
    fn set(self, i: usize, v: f64) {
        self.write(i, [v]);
    }
}

/// The panic of an access past a typed array's end (caught by [`finish`]).
#[cold]
#[inline(never)]
fn past_end(at: usize, k: usize, len: usize) -> ! {
    panic!("numbers {at}..{} past a typed array of {len}", at + k)
}

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
        Self { env, argv, argc: argc.min(N) }
    }

    #[inline(always)]
    fn f64(&self, i: usize) -> Result<f64, Fail> {
        if i >= self.argc {
            return Err(Fail::Type("missing argument"));
        }
        let mut v = 0f64;
        // SAFETY: argv[i] is a value of this callback (i < argc); v is a valid out pointer.
        let status = unsafe { sys::napi_get_value_double(self.env, self.argv[i], &mut v) };
        if status == sys::Status::napi_ok {
            Ok(v)
        } else {
            Err(Fail::Type("expected a number"))
        }
    }

    /// A whole number in `0..=max` (`max` at most 2^53 − 1); anything else is
    /// a RangeError naming `what`. Two compares and a round trip through an
    /// integer register (`f64::fract` would call libm's `trunc` through the
    /// PLT, several nanoseconds an argument).
    #[inline(always)]
    fn whole(&self, i: usize, max: f64, what: &'static str) -> Result<f64, Fail> {
        debug_assert!(max <= MAX_SAFE);
        let v = self.f64(i)?;
        // NaN fails the first compare.
        if v >= 0.0 && v <= max {
            // SAFETY: `v` is not NaN and lies in 0..=max <= 2^53 - 1, so it is
            // finite and its integer part fits in an i64, which is all that
            // `to_int_unchecked` requires.
            let n = unsafe { v.to_int_unchecked::<i64>() };
            if n as f64 == v {
                return Ok(v);
            }
        }
        Err(not_whole(what, max, v))
    }

    #[inline(always)]
    fn u32(&self, i: usize, what: &'static str) -> Result<u32, Fail> {
        self.whole(i, f64::from(u32::MAX), what).map(|v| v as u32)
    }

    #[inline(always)]
    fn kind(&self, i: usize) -> Result<SlotKind, Fail> {
        let code = self.whole(i, (SlotKind::ALL.len() - 1) as f64, "slot kind code")?;
        SlotKind::from_code(code as u32).ok_or_else(|| Fail::Range(format!("slot kind code {code} does not exist")))
    }

    /// A lease in ms, or the controller's default for a negative number.
    #[inline(always)]
    fn lease(&self, i: usize) -> Result<Option<u64>, Fail> {
        let v = self.f64(i)?;
        if v < 0.0 {
            return Ok(None);
        }
        if v <= MAX_SAFE {
            // SAFETY: `v` is not NaN (it compared) and lies in 0..=2^53 - 1, so
            // its integer part fits in an i64, all `to_int_unchecked` requires.
            let n = unsafe { v.to_int_unchecked::<i64>() };
            if n as f64 == v {
                return Ok(Some(n as u64));
            }
        }
        Err(not_whole("leaseMs", MAX_SAFE, v))
    }

    /// (symbol, window, kind) from arguments `i`, `i + 1`, `i + 2`.
    #[inline(always)]
    fn addr(&self, i: usize) -> Result<SlotAddr, Fail> {
        Ok(SlotAddr::new(self.u32(i, "symbol id")?, self.u32(i + 1, "window index")?, self.kind(i + 2)?))
    }

    /// The memory of the `Float64Array` argument `i`, for the rest of the
    /// callback; `None` if the caller did not pass one.
    fn f64_array(&self, i: usize) -> Result<Option<JsNumbers>, Fail> {
        if i >= self.argc {
            return Ok(None);
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
            return Ok(Some(JsNumbers::EMPTY));
        }
        // napi reports `data` already adjusted by the view's byte offset, which
        // JavaScript keeps a multiple of 8; checked, as `JsNumbers` relies on it.
        if !data.cast::<AtomicU64>().is_aligned() {
            return Err(Fail::Type("expected a Float64Array aligned to 8 bytes"));
        }
        Ok(Some(JsNumbers { data: data.cast::<f64>(), len }))
    }

    /// The output array at `i`, which must hold at least `n` numbers.
    fn out(&self, i: usize, n: usize) -> Result<Option<JsNumbers>, Fail> {
        match self.f64_array(i)? {
            Some(o) if o.len() < n => Err(Fail::Core(invalid(format!("the output array needs at least {n} numbers")))),
            other => Ok(other),
        }
    }

    /// Runs `body` with the controller named by the handle in argument 0.
    ///
    /// The registry stays borrowed (shared) for the call instead of cloning
    /// the controller's `Arc`: a clone and its drop are two locked
    /// read-modify-writes on a shared counter every call. Nothing in a body
    /// registers or unregisters a controller (no JavaScript runs during a
    /// callback), so the shared borrow cannot conflict.
    #[inline(always)]
    fn with_controller(&mut self, body: impl FnOnce(&Controller, &mut Self) -> Out) -> Out {
        let (index, generation) = split_handle(self.whole(0, MAX_SAFE, "controller handle")? as u64);
        CONTROLLERS.with(|r| match r.borrow().get(index) {
            Some(Entry { generation: g, controller: Some(c) }) if *g == generation => body(c, self),
            _ => Err(Fail::Core(CoreError::Closed)),
        })
    }
}

/// A transition's result as a hot-path number: `ok(value)`, or a negative
/// refusal code, keeping the slot as seen for `fastLastRefusal` (and writing
/// it to `out`, when given).
fn hot<T>(r: Result<T, CoreError>, out: Option<JsNumbers>, ok: impl FnOnce(T, Option<JsNumbers>) -> f64) -> Out {
    match r {
        Ok(v) => Ok(ok(v, out)),
        Err(CoreError::SlotWrite { refusal, .. }) => {
            let seen = *refusal.current();
            LAST_REFUSAL.with(|l| l.set(Some(seen)));
            if let Some(o) = out {
                o.write(0, slot_numbers(&seen));
            }
            Ok(f64::from(refusal.refusal().code()))
        }
        Err(e) => Err(Fail::Core(e)),
    }
}

/// Runs a callback body: returns its number, or throws; never unwinds into C.
///
/// # Safety
/// `env` must be the env of the running callback.
unsafe fn finish(env: sys::napi_env, body: impl FnOnce() -> Out) -> sys::napi_value {
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|_| Err(Fail::Core(panicked("a hot-path call"))));
    match result {
        Ok(v) => {
            let mut out = ptr::null_mut();
            // SAFETY: env is this callback's; out is a valid out pointer.
            unsafe { sys::napi_create_double(env, v, &mut out) };
            out
        }
        Err(Fail::Core(e)) => {
            let js_env = Env::from_raw(env);
            match error_object(&js_env, &e) {
                // SAFETY: env is this callback's, the value was created in it.
                Ok(obj) => unsafe {
                    sys::napi_throw(env, obj.raw());
                },
                Err(_) => throw_plain(env, e.code().as_str(), &e.to_string(), false),
            }
            ptr::null_mut()
        }
        Err(Fail::Type(what)) => {
            throw_plain(env, "ERR_INVALID_ARG_TYPE", what, true);
            ptr::null_mut()
        }
        Err(Fail::Range(what)) => {
            let code = CString::new("ERR_OUT_OF_RANGE").unwrap_or_default();
            let msg = CString::new(what.replace('\0', " ")).unwrap_or_default();
            // SAFETY: env is this callback's; both strings are NUL-terminated and outlive the call.
            unsafe { sys::napi_throw_range_error(env, code.as_ptr(), msg.as_ptr()) };
            ptr::null_mut()
        }
    }
}

/// Throws an `Error` (or a `TypeError`) with a code and a message.
fn throw_plain(env: sys::napi_env, code: &str, msg: &str, type_error: bool) {
    let code = CString::new(code).unwrap_or_default();
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: env is the running callback's (all callers get it from `finish`);
    // both strings are NUL-terminated and outlive the call.
    unsafe {
        if type_error {
            sys::napi_throw_type_error(env, code.as_ptr(), msg.as_ptr());
        } else {
            sys::napi_throw_error(env, code.as_ptr(), msg.as_ptr());
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

// fastClaim(handle, symbol, window, kind, leaseMs, out?) → version, or a negative refusal code.
callback!(fast_claim, 6, |a| a.with_controller(|c, a| {
    let (at, l) = (a.addr(1)?, a.lease(4)?);
    let out = a.out(5, SLOT_STRIDE)?;
    hot(c.claim(at, l), out, |g, out| {
        if let Some(o) = out {
            o.set(0, g.lease_deadline_ms as f64);
        }
        f64::from(g.version)
    })
}));

// fastRenew(handle, symbol, window, kind, version, leaseMs) → new deadline (ms), or a negative refusal code.
callback!(fast_renew, 6, |a| a.with_controller(|c, a| {
    let (at, v, l) = (a.addr(1)?, a.u32(4, "version")?, a.lease(5)?);
    hot(c.renew(at, v, l), None, |d, _| d as f64)
}));

// fastFill(handle, symbol, window, kind, version, payloadType, payloadId, checksumHi, checksumLo)
// → new version, or a negative refusal code.
callback!(fast_fill, 9, |a| a.with_controller(|c, a| {
    let (at, v) = (a.addr(1)?, a.u32(4, "version")?);
    let payload_type = a.whole(5, 255.0, "payloadType")? as u8;
    let payload_id = a.whole(6, MAX_SAFE, "payloadId")? as u64;
    let checksum = (u64::from(a.u32(7, "checksumHi")?) << 32) | u64::from(a.u32(8, "checksumLo")?);
    hot(c.fill(at, v, FillPayload { payload_type, payload_id, checksum }), None, |t, _| f64::from(t.version))
}));

// fastClear(handle, symbol, window, kind, version) → new version, or a negative refusal code.
callback!(fast_clear, 5, |a| a.with_controller(|c, a| {
    let (at, v) = (a.addr(1)?, a.u32(4, "version")?);
    hot(c.clear(at, v), None, |t, _| f64::from(t.version))
}));

// fastLastRefusal(out: Float64Array) → 1 with out[0..8] = the slot as this thread's last
// refused transition saw it, or 0 when there was none since the last call.
callback!(fast_last_refusal, 1, |a| {
    let Some(out) = a.out(0, SLOT_STRIDE)? else { return Err(Fail::Type("missing output array")) };
    match LAST_REFUSAL.with(Cell::take) {
        Some(seen) => {
            out.write(0, slot_numbers(&seen));
            Ok(1.0)
        }
        None => Ok(0.0),
    }
});

// fastReadSlot(handle, symbol, window, kind, out: Float64Array) → 1; out[0..8] = the slot.
callback!(fast_read_slot, 5, |a| a.with_controller(|c, a| {
    let at = a.addr(1)?;
    let Some(out) = a.out(4, SLOT_STRIDE)? else { return Err(Fail::Type("missing output array")) };
    let s: SlotSnapshot = c.read_slot(at)?;
    out.write(0, slot_numbers(&s));
    Ok(1.0)
}));

// fastReadRow(handle, ledger, symbol, window, out: Float64Array) → slots written (8 numbers each).
callback!(fast_read_row, 5, |a| a.with_controller(|c, a| {
    let ledger = crate::convert::ledger_kind(a.u32(1, "ledger code")?)?;
    let (s, w) = (a.u32(2, "symbol id")?, a.u32(3, "window index")?);
    let n = ledger.slot_kinds().len();
    let Some(out) = a.out(4, n * SLOT_STRIDE)? else { return Err(Fail::Type("missing output array")) };
    for (i, slot) in c.read_row(ledger, s, w)?.iter().enumerate() {
        out.write(i * SLOT_STRIDE, slot_numbers(slot));
    }
    Ok(n as f64)
}));

// fastNextUnfilled(handle, symbol, start, kind) → window, or -1.
callback!(fast_next_unfilled, 4, |a| a.with_controller(|c, a| {
    let at = a.addr(1)?;
    Ok(c.next_unfilled_window(at.symbol, at.window, at.kind)?.map_or(-1.0, f64::from))
}));

// fastClaimNextUnfilled(handle, symbol, start, kind, count, leaseMs, out: Float64Array)
// → claims made (at most count); out[3i..3i+3] = (window, version, lease deadline ms) of
// claim i, in window order. `out` must hold at least 3 × count numbers.
callback!(fast_claim_next_unfilled, 7, |a| a.with_controller(|c, a| {
    let (start, n, l) = (a.addr(1)?, a.u32(4, "count")?, a.lease(5)?);
    let Some(out) = a.out(6, 3 * n as usize)? else { return Err(Fail::Type("missing output array")) };
    let mut at = 0;
    let got = c.claim_next_unfilled_with(start, n, l, |w, g| {
        out.write(at, [f64::from(w), f64::from(g.version), g.lease_deadline_ms as f64]);
        at += 3;
    })?;
    Ok(f64::from(got))
}));

/// Numbers of one item of `fastFillBatch`.
const FILL_ITEM: usize = 8;

/// The fields of a batch fill's item: name and largest value.
const FILL_FIELDS: [(&str, f64); FILL_ITEM] = [
    ("symbolId", 4_294_967_295.0),
    ("windowIdx", 4_294_967_295.0),
    ("slot kind code", (SlotKind::ALL.len() - 1) as f64),
    ("version", 4_294_967_295.0),
    ("payloadType", 255.0),
    ("payloadId", MAX_SAFE),
    ("checksumHi", 4_294_967_295.0),
    ("checksumLo", 4_294_967_295.0),
];

/// Whether `v` is a whole number in `0..=max` (`max` at most 2^53 − 1).
#[inline(always)]
fn whole_in(v: f64, max: f64) -> bool {
    if !(v >= 0.0 && v <= max) {
        return false;
    }
    // SAFETY: `v` is not NaN and lies in 0..=max <= 2^53 - 1, so its integer
    // part fits in an i64, which is all that `to_int_unchecked` requires.
    let n = unsafe { v.to_int_unchecked::<i64>() };
    n as f64 == v
}

/// Whether every number of a batch fill's item is a whole number in its range.
#[inline(always)]
fn item_ok(it: &[f64]) -> bool {
    it.len() == FILL_ITEM && FILL_FIELDS.iter().zip(it).all(|((_, max), v)| whole_in(*v, *max))
}

/// The RangeError for item `i`, one [`item_ok`] refused: it names the first bad field.
#[cold]
#[inline(never)]
fn bad_item(i: usize, it: &[f64]) -> Fail {
    let (what, max, v) =
        FILL_FIELDS.iter().zip(it).find(|((_, max), v)| !whole_in(**v, *max)).map_or(("item", 0.0, f64::NAN), |((w, m), v)| (*w, *m, *v));
    Fail::Range(format!("item {i}: {what} must be a whole number from 0 to {max}, got {v}"))
}

/// Item `i` of a batch fill, whose numbers [`item_ok`] accepted.
#[inline(always)]
fn fill_item(it: &[f64]) -> Result<FillItem, CoreError> {
    let kind = SlotKind::from_code(it[2] as u32).ok_or_else(|| invalid(format!("slot kind code {} does not exist", it[2])))?;
    Ok(FillItem {
        at: SlotAddr::new(it[0] as u32, it[1] as u32, kind),
        claim_version: it[3] as u32,
        payload: FillPayload { payload_type: it[4] as u8, payload_id: it[5] as u64, checksum: ((it[6] as u64) << 32) | it[7] as u64 },
    })
}

// fastFillBatch(handle, buf: Float64Array, count) → count. `buf` holds 8 numbers an item,
// `[symbol, window, kind, version, payloadType, payloadId, checksumHi, checksumLo]`, then one
// number an item: `buf[8 × count + i]` gets item i's new version or a negative refusal code,
// and a refused item's 8 numbers are overwritten with the slot as its refusal saw it
// (`convert::slot_numbers`). Every number is checked before any slot changes (a RangeError
// names the item); an error of the core (unknown symbol, window or payload id) stops the
// batch and is thrown, the items before it filled and their results written.
//
// The items' numbers are copied once, before the check, and only the copy is checked and
// used: `buf` may be shared with threads that change it while the batch runs, and a number
// read again after the check could name a slot the check never saw.
callback!(fast_fill_batch, 3, |a| a.with_controller(|c, a| {
    let n = a.u32(2, "count")? as usize;
    let Some(buf) = a.f64_array(1)? else { return Err(Fail::Type("missing items array")) };
    let needs = n.saturating_mul(FILL_ITEM + 1);
    if buf.len() < needs {
        return Err(Fail::Core(invalid(format!("fillBatch of {n} items needs {needs} numbers, got {}", buf.len()))));
    }
    let items: Vec<[f64; FILL_ITEM]> = (0..n).map(|i| buf.read(i * FILL_ITEM)).collect();
    if let Some(i) = items.iter().position(|it| !item_ok(it)) {
        return Err(bad_item(i, &items[i]));
    }
    let results = n * FILL_ITEM;
    c.fill_batch(
        n,
        |i| fill_item(&items[i]),
        |i, outcome| match outcome {
            Ok(t) => buf.set(results + i, f64::from(t.version)),
            Err(refusal) => {
                buf.set(results + i, f64::from(refusal.refusal().code()));
                buf.write(i * FILL_ITEM, slot_numbers(refusal.current()));
            }
        },
    )?;
    Ok(n as f64)
}));

// fastEmpty() → 0: the cost of a call through this path, for the benchmark's floor.
#[cfg(feature = "bench")]
callback!(fast_empty, 1, |_a| Ok(0.0));

/// Words private to `fastCasInternal`: the benchmark's "one compare-and-swap" floor.
#[cfg(feature = "bench")]
static CAS_WORDS: [std::sync::atomic::AtomicU32; 1024] = [const { std::sync::atomic::AtomicU32::new(0) }; 1024];

// fastCasInternal(index, expected, desired) → 1 if word `index % 1024` held `expected`
// and now holds `desired`, else 0: a call plus one CAS on an internal array, for the
// benchmark's floor (no ledger, no mapping, no controller lookup).
#[cfg(feature = "bench")]
callback!(fast_cas_internal, 3, |a| {
    let (i, expected, desired) = (a.u32(0, "index")?, a.u32(1, "expected")?, a.u32(2, "desired")?);
    let word = &CAS_WORDS[i as usize % CAS_WORDS.len()];
    let swapped = word.compare_exchange(expected, desired, std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire);
    Ok(if swapped.is_ok() { 1.0 } else { 0.0 })
});

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// The hand-written functions and their export names.
fn exported() -> Vec<(&'static str, Callback)> {
    #[allow(unused_mut)]
    let mut fns: Vec<(&'static str, Callback)> = vec![
        ("fastClaim", fast_claim),
        ("fastRenew", fast_renew),
        ("fastFill", fast_fill),
        ("fastClear", fast_clear),
        ("fastLastRefusal", fast_last_refusal),
        ("fastReadSlot", fast_read_slot),
        ("fastReadRow", fast_read_row),
        ("fastNextUnfilled", fast_next_unfilled),
        ("fastClaimNextUnfilled", fast_claim_next_unfilled),
        ("fastFillBatch", fast_fill_batch),
    ];
    #[cfg(feature = "bench")]
    fns.extend([("fastEmpty", fast_empty as Callback), ("fastCasInternal", fast_cas_internal as Callback)]);
    fns
}

/// Adds the hand-written functions to the module's exports.
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> napi::Result<()> {
    for (name, cb) in exported() {
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
