//! Work on the libuv thread pool: the asynchronous bootstrap and the group
//! commit of the async calls (core `durability.rs`). Both catch panics; a
//! failure rejects the promise with the same error object a synchronous
//! call would throw.

use std::sync::Arc;

use napi::bindgen_prelude::Undefined;
use napi::{Env, Task};
use window_space_core::{Config, Controller, Error as CoreError, StorageReport};

use crate::controller::NativeController;
use crate::errors::{js_error, panicked};

/// Off-thread bootstrap.
pub struct OpenTask {
    pub(crate) config: Option<Config>,
}

impl Task for OpenTask {
    type Output = Result<(Controller, StorageReport), CoreError>;
    type JsValue = NativeController;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let Some(config) = self.config.take() else { return Ok(Err(panicked("a bootstrap task that ran twice"))) };
        Ok(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Controller::bootstrap(config)))
            .unwrap_or_else(|_| Err(panicked("bootstrap"))))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output {
            Ok((c, r)) => NativeController::new(c, r).map_err(|e| js_error(&env, e)),
            Err(e) => Err(js_error(&env, e)),
        }
    }
}

/// Group commit on the libuv thread pool.
pub struct CommitTask {
    pub(crate) controller: Arc<Controller>,
    pub(crate) ticket: u64,
}

impl Task for CommitTask {
    type Output = Result<(), CoreError>;
    type JsValue = Undefined;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let (c, t) = (&self.controller, self.ticket);
        Ok(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.commit_through(t))).unwrap_or_else(|_| Err(panicked("group commit"))))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        output.map_err(|e| js_error(&env, e))
    }
}
