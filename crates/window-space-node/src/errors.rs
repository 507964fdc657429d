//! Core errors as JavaScript errors: an `Error` whose `message` is the
//! core's message for people, whose `code` is the stable code from the
//! vocabulary, and whose `details` is an object of named fields (the table
//! in the core's `error.rs`). Nothing is encoded in the message.
//!
//! A panic caught at the boundary becomes `ERR_INTERNAL`.

use napi::bindgen_prelude::{JsObjectValue, Null, Object, ToNapiValue, Unknown};
use napi::JsValue;
use napi::{Env, Status};
use window_space_core::Error as CoreError;

/// A JS value for a JSON value of error details. Numbers become JS numbers
/// (details hold no integer past 2^53; 64-bit checksums are decimal strings).
pub(crate) fn json_to_js<'e>(env: &'e Env, v: &serde_json::Value) -> napi::Result<Unknown<'e>> {
    use serde_json::Value;
    match v {
        Value::Null => Null.into_unknown(env),
        Value::Bool(b) => b.into_unknown(env),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN).into_unknown(env),
        Value::String(s) => s.as_str().into_unknown(env),
        Value::Array(items) => items.iter().map(|x| json_to_js(env, x)).collect::<napi::Result<Vec<_>>>()?.into_unknown(env),
        Value::Object(fields) => {
            let mut o = Object::new(env)?;
            for (k, x) in fields {
                o.set_named_property(k, json_to_js(env, x)?)?;
            }
            o.into_unknown(env)
        }
    }
}

/// The JS `Error` object of a core error.
pub(crate) fn error_object<'e>(env: &'e Env, e: &CoreError) -> napi::Result<Object<'e>> {
    let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, e.to_string()))?;
    obj.set_named_property("code", e.code().as_str())?;
    obj.set_named_property("details", json_to_js(env, &e.details())?)?;
    Ok(obj)
}

/// A core error as the `napi::Error` a `#[napi]` function returns: napi-rs
/// throws (or rejects with) the error object built here.
pub(crate) fn js_error(env: &Env, e: CoreError) -> napi::Error {
    match error_object(env, &e) {
        Ok(obj) => napi::Error::from(obj.to_unknown()),
        // Building the object failed (out of memory): the code still reaches JS.
        Err(_) => napi::Error::new(Status::GenericFailure, format!("{}: {e}", e.code())),
    }
}

/// An argument of the right type but an unacceptable value.
pub(crate) fn invalid(what: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument { what: what.into() }
}

/// The error of a panic caught at the boundary.
pub(crate) fn panicked(during: &str) -> CoreError {
    CoreError::Internal { what: format!("a panic during {during}") }
}

/// `?` for core results inside `#[napi]` functions.
pub(crate) trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for Result<T, CoreError> {
    #[inline]
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|e| js_error(env, e))
    }
}
