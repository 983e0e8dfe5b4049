//! Where finished calls come back: a worker or the async driver sends a [`Completion`]
//! over the run's one channel, and the run loop handles it (see [`super::calls`]). The
//! driver reports through [`Sink`], the one engine object Python holds.

use crossbeam_channel::Sender;
use pyo3::prelude::*;

/// How a call handed out of the loop ended.
pub enum Outcome {
    /// It returned this value.
    Ok(Py<PyAny>),
    /// It raised.
    Err(PyErr),
    /// It never started (the pool stopped first).
    Dropped,
}

/// A finished call, sent to the run loop by a worker or the async driver.
pub struct Completion {
    /// The token the call was handed out with.
    pub token: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// `namu._kernel.Sink`: where an async driver reports finished awaitables.
#[pyclass(frozen, module = "namu._kernel", name = "Sink")]
pub struct Sink {
    pub(super) tx: Sender<Completion>,
}

#[pymethods]
impl Sink {
    /// The awaitable handed out with `token` returned `value`.
    fn ok(&self, token: u64, value: Py<PyAny>) {
        // The run may be over (a late completion of a cancelled call): nothing to do.
        let _ = self.tx.send(Completion { token, outcome: Outcome::Ok(value) });
    }

    /// The awaitable handed out with `token` raised `exc`.
    fn err(&self, token: u64, exc: Bound<'_, PyAny>) {
        let _ = self.tx.send(Completion { token, outcome: Outcome::Err(PyErr::from_value(exc)) });
    }

    /// Several results at once: `(token, ok, value_or_exception)` triples. A driver that
    /// reports a whole event-loop iteration's completions in one call wakes the run loop
    /// once for all of them, instead of once per awaitable.
    fn many(&self, batch: Vec<(u64, bool, Bound<'_, PyAny>)>) {
        for (token, ok, value) in batch {
            let outcome = if ok {
                Outcome::Ok(value.unbind())
            } else {
                Outcome::Err(PyErr::from_value(value))
            };
            let _ = self.tx.send(Completion { token, outcome });
        }
    }
}
