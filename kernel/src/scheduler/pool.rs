//! The worker pool for thread-mode calls: one deque per worker, work stealing between them.
//!
//! The run loop pushes jobs to a global injector; an idle worker takes a batch from it into
//! its own deque, and a worker whose deque is empty steals from its siblings (the scheme of
//! Blumofe and Leiserson, "Scheduling Multithreaded Computations by Work Stealing", 1999,
//! with the Chase-Lev deques of `crossbeam-deque`). Workers attach to the interpreter only
//! to call the job's callable, so calls that release the lock (numpy, I/O) overlap.
//!
//! Workers belong to one run. A run that ends normally has no call running, and
//! [`Pool::finish`] joins its workers before the run returns. A Python call cannot be
//! stopped from outside, so a run interrupted by a second Ctrl+C *abandons* the calls still
//! running: `finish(false)` detaches their threads, which end as soon as the call
//! returns (its result goes nowhere). Every worker is a plain (not scoped) thread for that
//! reason, and a job holds only owned Python references.

use std::iter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::scheduler::engine::{Completion, Outcome};

/// One call to run on a worker.
pub struct Job {
    /// Identifies the call to the run loop.
    pub token: u64,
    /// What to call.
    pub callable: Py<PyAny>,
    /// Positional arguments.
    pub args: Py<PyTuple>,
    /// A `contextvars.Context` to run the call in a copy of, if any.
    pub contextvars: Option<Py<PyAny>>,
}

/// State shared by the run loop and the workers.
struct Shared {
    injector: Injector<Job>,
    stop: AtomicBool,
    /// Woken when jobs arrive or the pool stops.
    idle: (Mutex<()>, Condvar),
}

/// A pool of `n` worker threads, started on first use.
pub struct Pool {
    size: usize,
    shared: Arc<Shared>,
    completions: Sender<Completion>,
    handles: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of `size` workers (at least one) sending results to `completions`.
    pub fn new(size: usize, completions: Sender<Completion>) -> Self {
        Pool {
            size: size.max(1),
            shared: Arc::new(Shared {
                injector: Injector::new(),
                stop: AtomicBool::new(false),
                idle: (Mutex::new(()), Condvar::new()),
            }),
            completions,
            handles: Vec::new(),
        }
    }

    /// Queues `job`, starting the workers if this is the first job. Gives the job back if
    /// not a single worker thread could be started (the caller then runs it itself).
    pub fn submit(&mut self, job: Job) -> Result<(), Job> {
        if self.handles.is_empty() {
            self.start();
            if self.handles.is_empty() {
                return Err(job);
            }
        }
        self.shared.injector.push(job);
        self.shared.idle.1.notify_one();
        Ok(())
    }

    fn start(&mut self) {
        let locals: Vec<Worker<Job>> = (0..self.size).map(|_| Worker::new_fifo()).collect();
        let stealers: Arc<Vec<Stealer<Job>>> =
            Arc::new(locals.iter().map(Worker::stealer).collect());
        for (index, local) in locals.into_iter().enumerate() {
            let shared = Arc::clone(&self.shared);
            let stealers = Arc::clone(&stealers);
            let completions = self.completions.clone();
            let handle = std::thread::Builder::new()
                .name(format!("namu-worker-{index}"))
                .spawn(move || work(index, &local, &shared, &stealers, &completions));
            match handle {
                Ok(handle) => self.handles.push(handle),
                // The OS refused a thread: the workers already started carry the load
                // (their siblings' deques are empty, so nothing is stranded).
                Err(_) => break,
            }
        }
    }

    /// Stops the workers from starting jobs and returns the queued jobs that never
    /// started. A worker finishes the call it is making, reports the jobs left in its own
    /// deque as [`Outcome::Dropped`], and exits. Call detached from the interpreter.
    pub fn stop(&mut self) -> Vec<Job> {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.idle.0.lock();
            self.shared.idle.1.notify_all();
        }
        let mut dropped = Vec::new();
        loop {
            match self.shared.injector.steal() {
                Steal::Success(job) => dropped.push(job),
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
        dropped
    }

    /// Ends the pool after [`Pool::stop`]: joins the workers when `join` (every call has
    /// reported, so each exits at once), else detaches them (calls still running are
    /// abandoned; each thread ends when its call returns). Call detached from the
    /// interpreter.
    pub fn finish(&mut self, join: bool) {
        for handle in self.handles.drain(..) {
            if join {
                // A worker that panicked has nothing left to report; its in-flight job is
                // lost, which the caller accounts for by token.
                let _ = handle.join();
            }
        }
    }
}

impl Drop for Pool {
    /// A pool dropped without [`Pool::stop`] (an unwinding run) still lets its idle workers
    /// exit instead of waiting for work forever.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.idle.1.notify_all();
    }
}

/// A worker's loop: run jobs from its deque, the injector, or a sibling, until stopped;
/// then report the jobs left in its deque as never started.
fn work(
    index: usize,
    local: &Worker<Job>,
    shared: &Shared,
    stealers: &[Stealer<Job>],
    completions: &Sender<Completion>,
) {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            while let Some(job) = local.pop() {
                let _ =
                    completions.send(Completion { token: job.token, outcome: Outcome::Dropped });
                Python::attach(|_py| drop(job));
            }
            return;
        }
        match find_job(index, local, shared, stealers) {
            Some(job) => {
                let token = job.token;
                let outcome = Python::attach(|py| {
                    let result = call(py, &job);
                    drop(job);
                    match result {
                        Ok(value) => Outcome::Ok(value),
                        Err(err) => Outcome::Err(err),
                    }
                });
                if completions.send(Completion { token, outcome }).is_err() {
                    return;
                }
            }
            None => {
                let guard = shared.idle.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if shared.injector.is_empty() && !shared.stop.load(Ordering::SeqCst) {
                    let _ = shared.idle.1.wait_timeout(guard, Duration::from_millis(5));
                }
            }
        }
    }
}

fn call(py: Python<'_>, job: &Job) -> PyResult<Py<PyAny>> {
    let callable = job.callable.bind(py);
    let args = job.args.bind(py);
    match &job.contextvars {
        None => Ok(callable.call1(args.clone())?.unbind()),
        Some(ctx) => {
            let copy = ctx.bind(py).call_method0("copy")?;
            let run_args: Vec<Bound<'_, PyAny>> =
                iter::once(callable.clone()).chain(args.iter()).collect();
            let run_args = PyTuple::new(py, run_args)?;
            Ok(copy.call_method1("run", run_args)?.unbind())
        }
    }
}

/// The next job: from this worker's deque, else a batch from the injector, else stolen
/// from a sibling.
fn find_job(
    index: usize,
    local: &Worker<Job>,
    shared: &Shared,
    stealers: &[Stealer<Job>],
) -> Option<Job> {
    local.pop().or_else(|| {
        iter::repeat_with(|| {
            shared.injector.steal_batch_and_pop(local).or_else(|| {
                stealers
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != index)
                    .map(|(_, s)| s.steal())
                    .collect()
            })
        })
        .find(|s| !s.is_retry())
        .and_then(|s| s.success())
    })
}
