//! Cancellation and shutdown: Ctrl+C (checked every few thousand nodes and while waiting)
//! stops a run, and when a run ends, for any reason, everything it still runs is stopped,
//! cancelled or waited for, and counted.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use super::sink::Outcome;
use super::{Engine, Waited, WAIT_SLICE};
use crate::error::KernelError;
use crate::scheduler::ops::Mode;

/// How long an interrupted or failed run waits for cancelled calls to report.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

impl<'p, 'py> Engine<'p, 'py> {
    /// Raises a pending Ctrl+C (or a signal handler's exception) as the run's error.
    pub(super) fn check_signals(&mut self) -> Result<(), KernelError> {
        self.since_signal_check = 0;
        self.py.check_signals().map_err(|err| self.abort_error(err))
    }

    /// The error a run stops with when `err` (a `BaseException` that is not an
    /// `Exception`) escapes a node: Ctrl+C becomes [`KernelError::Cancelled`].
    pub(super) fn abort_error(&self, err: PyErr) -> KernelError {
        if err.is_instance_of::<PyKeyboardInterrupt>(self.py) {
            KernelError::Cancelled {
                finished: self.finished,
                cancelled: 0,
                abandoned: 0,
                cause: err,
            }
        } else {
            KernelError::Python(err)
        }
    }

    /// Stops everything still running once the run has its result (or its error).
    ///
    /// Async calls in flight are cancelled and waited for up to [`CANCEL_GRACE`];
    /// awaitables never handed to the driver, deferred async calls and queued thread-mode
    /// jobs are never started. Thread-mode calls already running cannot be stopped: they
    /// are waited for (an interrupted run says so through the `on_stop` hook), unless
    /// Ctrl+C comes during the wait, which abandons them (their worker threads end when
    /// the calls return). A [`KernelError::Cancelled`] result gets the true counts.
    pub(super) fn shutdown(
        &mut self,
        result: Result<Vec<Bound<'py, PyAny>>, KernelError>,
    ) -> Result<Vec<Bound<'py, PyAny>>, KernelError> {
        let mut result = result;
        // Deferred async calls and awaitables made but not handed to the driver never
        // started: close the awaitables (so Python does not warn that they were never
        // awaited) and stop counting them.
        let mut cancelled = self.deferred.len() as u64;
        self.deferred.clear();
        for (token, awaitable) in std::mem::take(&mut self.to_spawn) {
            self.forget(token);
            cancelled += 1;
            let _ = awaitable.call_method0("close");
        }
        if self.n_async > 0 {
            if let Some(runner) = &self.runner {
                // Best effort: a driver that cannot cancel still lets its calls finish.
                let _ = runner.call_method0("cancel");
            }
        }
        let pool = &mut self.pool;
        let dropped = self.py.detach(|| pool.stop());
        for job in dropped {
            self.forget(job.token);
            cancelled += 1;
            drop(job);
        }
        let interrupted = matches!(result, Err(KernelError::Cancelled { .. }));
        let mut announced = false;
        let mut abandoned = 0u64;
        let async_deadline = Instant::now() + CANCEL_GRACE;
        while self.n_inflight > 0 {
            let running_threads = self.n_inflight - self.n_async;
            if running_threads == 0 && Instant::now() >= async_deadline {
                break; // async calls that ignore their cancellation are left to the loop
            }
            if interrupted && running_threads > 0 && !announced {
                announced = true;
                self.announce_wait(running_threads);
            }
            match self.next_completion(Some(WAIT_SLICE)) {
                Waited::Got(completion) => {
                    let Some(entry) = self.forget(completion.token) else { continue };
                    match completion.outcome {
                        Outcome::Dropped => cancelled += 1,
                        Outcome::Ok(_) => self.finished += 1,
                        // An async call that ended in its cancellation was cancelled.
                        Outcome::Err(_) if entry.mode == Mode::Async => cancelled += 1,
                        Outcome::Err(_) => self.finished += 1,
                    }
                }
                Waited::TimedOut => {
                    if let Err(err) = self.py.check_signals() {
                        // Ctrl+C during the wait: stop waiting; running calls are abandoned.
                        // The interrupt wins over the run's own result, as in plain Python.
                        if !interrupted {
                            result = Err(self.abort_error(err));
                        }
                        break;
                    }
                }
                Waited::Raised(err) => {
                    if !interrupted {
                        result = Err(self.abort_error(err));
                    }
                    break;
                }
                Waited::Closed => break,
            }
        }
        let running_threads = (self.n_inflight - self.n_async) as u64;
        abandoned += running_threads;
        let still_async = self.n_async as u64;
        let pool = &mut self.pool;
        self.py.detach(|| pool.finish(running_threads == 0));
        if let Err(KernelError::Cancelled { finished, cancelled: c, abandoned: a, .. }) =
            &mut result
        {
            *finished = self.finished;
            *c = cancelled + still_async;
            *a = abandoned;
        }
        // Values held by frames are dropped here, attached to the interpreter.
        self.frames.clear();
        self.subs.clear();
        self.to_spawn.clear();
        result
    }

    /// Tells the user an interrupted run waits for `running` thread-mode calls: through
    /// the `on_stop(running)` hook of the run options, if any.
    fn announce_wait(&self, running: usize) {
        if let Some(hook) = &self.options.on_stop {
            let _ = hook.call1((running,));
        }
    }
}
