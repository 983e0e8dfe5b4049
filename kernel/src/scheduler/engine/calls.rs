//! Calls handed out of the run loop: thread-mode calls to the worker pool, async calls (as
//! awaitables) to the driver. Each gets a token; its result comes back as a
//! [`Completion`] carrying the token, and finishes its node unless the node's frame was
//! freed meanwhile. At most `max_concurrency` async calls are in flight; further ready
//! async nodes wait in FIFO order.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::Engine;
use super::sink::{Completion, Outcome, Sink};
use crate::error::KernelError;
use crate::scheduler::ops::{Call, Mode};
use crate::scheduler::plan::Op;
use crate::scheduler::pool::Job;

/// A call handed out of the loop: the node it finishes, in which frame (and generation).
#[derive(Clone, Copy)]
pub(super) struct InFlight {
    frame: u32,
    generation: u32,
    node: u32,
    pub(super) mode: Mode,
}

impl<'p, 'py> Engine<'p, 'py> {
    /// Drops the record of the call handed out with `token`.
    pub(super) fn forget(&mut self, token: u64) -> Option<InFlight> {
        let entry = self.inflight.get_mut(token as usize).and_then(Option::take)?;
        self.free_tokens.push(token);
        self.n_inflight -= 1;
        if entry.mode == Mode::Async {
            self.n_async -= 1;
        }
        Some(entry)
    }

    /// Records a call of node `node` of frame `frame` handed out in `mode`; returns its
    /// token.
    fn hand_out(&mut self, frame: u32, generation: u32, node: u32, mode: Mode) -> u64 {
        let entry = Some(InFlight { frame, generation, node, mode });
        self.n_inflight += 1;
        if mode == Mode::Async {
            self.n_async += 1;
        }
        match self.free_tokens.pop() {
            Some(token) => {
                self.inflight[token as usize] = entry;
                token
            }
            None => {
                self.inflight.push(entry);
                (self.inflight.len() - 1) as u64
            }
        }
    }

    /// Hands a thread-mode call of node `node` to the worker pool (or, if no worker thread
    /// could be started, makes it right here).
    pub(super) fn start_thread(
        &mut self,
        id: u32,
        generation: u32,
        node: u32,
        callable: &Py<PyAny>,
    ) -> Result<(), KernelError> {
        let args = PyTuple::new(self.py, self.inputs(id, node)?)?.unbind();
        let token = self.hand_out(id, generation, node, Mode::Thread);
        let contextvars = self.options.contextvars.as_ref().map(|c| c.clone().unbind());
        let job = Job { token, callable: callable.clone_ref(self.py), args, contextvars };
        if let Err(job) = self.pool.submit(job) {
            // No worker thread could be started: run the call here.
            self.forget(job.token);
            let result = job.callable.bind(self.py).call1(job.args.bind(self.py));
            return self.finish_call(
                id,
                node,
                result.map(Bound::unbind).map_err(KernelError::Python),
            );
        }
        Ok(())
    }

    /// Starts async node `node`, or defers it while `max_concurrency` calls are in flight.
    pub(super) fn queue_async(
        &mut self,
        id: u32,
        generation: u32,
        node: u32,
    ) -> Result<(), KernelError> {
        if self.n_async >= self.options.max_concurrency {
            self.deferred.push_back((id, generation, node));
            Ok(())
        } else {
            self.start_async(id, node)
        }
    }

    /// Calls an async node's callable to get its awaitable and queues it for the driver.
    fn start_async(&mut self, id: u32, node: u32) -> Result<(), KernelError> {
        let frame = &self.frames[id as usize];
        let generation = frame.generation;
        let Op::Call(Call { callable, .. }) = &frame.plan.ops[node as usize] else {
            return Err(KernelError::Internal(format!("node {node} is not a call")));
        };
        if self.options.driver.is_none() {
            return Err(KernelError::NoAsyncDriver { node: node as usize });
        }
        match self.call(id, node, callable) {
            Ok(awaitable) => {
                let token = self.hand_out(id, generation, node, Mode::Async);
                self.to_spawn.push((token, awaitable));
                Ok(())
            }
            Err(KernelError::Python(err)) => self.fail_node(id, node, err),
            Err(other) => Err(other),
        }
    }

    /// Hands the awaitables made since the last flush to the driver, in one batch.
    pub(super) fn flush_spawns(&mut self) -> Result<(), KernelError> {
        if self.to_spawn.is_empty() {
            return Ok(());
        }
        let runner = match &self.runner {
            Some(runner) => runner.clone(),
            None => {
                let driver =
                    self.options.driver.as_ref().ok_or(KernelError::NoAsyncDriver { node: 0 })?;
                let sink = Bound::new(self.py, Sink { tx: self.tx.clone() })?;
                let runner = driver.call1((sink,))?;
                self.inline_runner = runner.hasattr("wait")?;
                self.runner = Some(runner.clone());
                runner
            }
        };
        let batch = PyList::empty(self.py);
        for (token, awaitable) in self.to_spawn.drain(..) {
            batch.append((token, awaitable))?;
        }
        runner.call_method1("spawn", (batch,))?;
        Ok(())
    }

    /// Handles one completion from a worker or the driver.
    pub(super) fn complete(&mut self, completion: Completion) -> Result<(), KernelError> {
        let Some(entry) = self.forget(completion.token) else {
            return Ok(());
        };
        if entry.mode == Mode::Async {
            while self.n_async < self.options.max_concurrency {
                let Some((id, generation, node)) = self.deferred.pop_front() else { break };
                let frame = &self.frames[id as usize];
                if frame.generation == generation && frame.alive {
                    self.start_async(id, node)?;
                }
            }
        }
        let frame = &self.frames[entry.frame as usize];
        if frame.generation != entry.generation || !frame.alive {
            return Ok(()); // its frame failed or was dropped meanwhile
        }
        let result = match completion.outcome {
            Outcome::Ok(value) => Ok(value),
            Outcome::Err(err) => Err(KernelError::Python(err)),
            Outcome::Dropped => return Ok(()),
        };
        self.finish_call(entry.frame, entry.node, result)
    }

    /// A handed-out call of node `node` of frame `id` ended with `result`.
    fn finish_call(
        &mut self,
        id: u32,
        node: u32,
        result: Result<Py<PyAny>, KernelError>,
    ) -> Result<(), KernelError> {
        match result {
            Ok(value) => {
                self.finished += 1;
                let value = value.into_bound(self.py);
                self.store_result(id, node, value)
            }
            Err(KernelError::Python(err)) => self.fail_node(id, node, err),
            Err(other) => Err(other),
        }
    }
}
