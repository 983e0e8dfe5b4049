//! The frame engine: runs a [`Plan`] and the bodies its nodes start, over Python values.
//!
//! A *frame* is one running instance of a plan: its slot array, the dependency and use
//! counts of its nodes, and its context (a copy-on-write [`Values`] map). The root frame
//! runs the plan given to `run()`. A node with a body (a fan-out item, an `If` branch, a
//! `Loop` iteration, a function call) starts child frames: the node sets the values its
//! body captures into a fork of its frame's context once, and every child forks that in
//! O(1) and reads its outer slots from it. A write in a child never reaches its parent.
//!
//! One ready queue serves every frame: a max-heap on priority, then program order (see
//! `ready`), so with equal priorities the inline loop runs the body of an `If`, `Loop`
//! or fan-out before the later nodes of the enclosing graph, exactly where plain Python
//! would, and side effects happen in program order. Ready nodes run as their op says:
//!
//! * inline calls and native ops run right here, in a tight loop;
//! * a seq node (a fused chain) runs its steps right here, one after another, with no
//!   ready-queue traffic between them;
//! * thread-mode calls go to the [`Pool`] (work-stealing deques);
//! * async calls are called here to make an awaitable, and the awaitables made in one pass
//!   of the loop are handed to the run's *driver* in one batch. The engine never blocks on
//!   I/O (it is sans-IO): when nothing is ready it waits for completions, which workers and
//!   the driver send over one channel. A driver whose event loop is not running anywhere
//!   (the caller's thread has none running) is *inline*: the engine lends it this thread
//!   to run its loop while it waits, so an async call crosses no thread. At most
//!   `max_concurrency` async calls are in flight; further ready async nodes wait in FIFO
//!   order.
//!
//! A fan-out starts its items lazily: one at a time when its body is all inline (so a long
//! fan-out holds one item's intermediates at a time), else up to `max_concurrency`.
//! Values are released as soon as the last node reading them has run (the use counts are
//! computed when the plan is built), so neither a long chain nor a long fan-out keeps its
//! intermediates alive.
//!
//! Errors travel up the frame tree: a failing node fails its frame, which fails the node
//! that started it (a fan-out may instead drop the item, through its `on_item_error`
//! hook). A `KeyboardInterrupt` (Ctrl+C) stops the whole run: nothing more is scheduled,
//! async calls in flight are cancelled, queued thread-mode calls are dropped, and calls
//! already running in worker threads (which cannot be stopped) are waited for, unless a
//! second Ctrl+C comes: then they are abandoned and the run ends at once. The run raises
//! `namu.errors.RunCancelledError` saying how many calls finished, were cancelled and
//! were abandoned.
//!
//! The engine's parts, one module each: the run loop and its state (`Engine`, here);
//! the `ready` order; `frames` (starting, finishing and failing them); `nodes`
//! (running a ready node by its op); `bodies` (the nodes running child frames: fan-outs,
//! branches, loops, function calls); the `calls` handed out to the worker pool and the
//! async driver, and the `sink` their results come back through; and `shutdown`
//! (cancellation, and stopping what is still running when a run ends).

mod bodies;
mod calls;
mod frames;
mod nodes;
mod ready;
mod shutdown;
mod sink;

use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::context::Values;
use crate::dispatch::ArgBuffer;
use crate::error::KernelError;
use crate::scheduler::plan::Plan;
use crate::scheduler::pool::Pool;
pub use sink::{Completion, Outcome, Sink};

use bodies::Sub;
use calls::InFlight;
use frames::{Event, Frame};
use ready::ReadyEntry;

/// How often (in nodes run) the inline loop checks for Ctrl+C when no Python code runs.
const SIGNAL_CHECK_EVERY: u32 = 4096;
/// How long a wait for completions lasts before checking for Ctrl+C.
const WAIT_SLICE: Duration = Duration::from_millis(20);
/// How long an inline driver runs its event loop at a time while thread-mode calls are
/// also in flight (their completions are picked up between slices).
const MIXED_SLICE: Duration = Duration::from_millis(1);

/// Per-run options of [`execute`].
pub struct RunOptions<'py> {
    /// The context outer slots of the root plan are read from.
    pub context: Values,
    /// `driver(sink)` makes the object async calls are handed to.
    pub driver: Option<Bound<'py, PyAny>>,
    /// Worker threads for thread-mode calls.
    pub workers: usize,
    /// Most async calls in flight at once (>= 1).
    pub max_concurrency: usize,
    /// A `contextvars.Context` thread-mode calls run in (a copy per call).
    pub contextvars: Option<Bound<'py, PyAny>>,
    /// `on_stop(running)`: called once when an interrupted run starts waiting for
    /// `running` thread-mode calls that cannot be stopped.
    pub on_stop: Option<Bound<'py, PyAny>>,
    /// Most function calls nested in one another (a deeper call raises `RecursionError`).
    pub recursion_limit: u32,
}

/// Runs `plan` on `inputs` and returns the values of its output slots.
pub fn execute<'py>(
    py: Python<'py>,
    plan: &Plan,
    inputs: Vec<Bound<'py, PyAny>>,
    options: RunOptions<'py>,
) -> Result<Bound<'py, PyList>, KernelError> {
    if inputs.len() != plan.graph.input_slots.len() {
        return Err(KernelError::InputCount {
            got: inputs.len(),
            expected: plan.graph.input_slots.len(),
        });
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let workers = options.workers;
    let mut engine = Engine::new(py, options, Pool::new(workers, tx.clone()), tx, rx);
    engine.args = ArgBuffer::new(plan.graph.max_arity);
    let result = engine.run(plan, inputs);
    let result = engine.shutdown(result);
    let values = result?;
    Ok(PyList::new(py, values)?)
}

/// The state of one run: its frames, the one ready queue, and the calls handed out.
/// Plans live for `'p` (the run), Python values for `'py` (attached to the interpreter).
struct Engine<'p, 'py> {
    py: Python<'py>,
    options: RunOptions<'py>,
    /// Every frame ever started; freed ones are reused (see `free_frames`).
    frames: Vec<Frame<'p, 'py>>,
    free_frames: Vec<u32>,
    /// The nodes running child frames; freed entries are `None` and reused.
    subs: Vec<Option<Sub<'p, 'py>>>,
    free_subs: Vec<u32>,
    /// The one ready queue, of every frame's ready nodes (see [`ready`]).
    ready: BinaryHeap<ReadyEntry>,
    /// Frames finished or failed, not yet reported to their parents.
    events: VecDeque<Event>,
    /// Per token, the call handed out with it (`None` once it reported); freed tokens
    /// are reused.
    inflight: Vec<Option<InFlight>>,
    free_tokens: Vec<u64>,
    /// Calls handed out and not yet reported, and how many of them are async.
    n_inflight: usize,
    n_async: usize,
    /// Ready async nodes `(frame, generation, node)` waiting for a free async slot.
    deferred: VecDeque<(u32, u32, u32)>,
    /// Awaitables made in this pass of the loop, to hand to the driver in one batch.
    to_spawn: Vec<(u64, Bound<'py, PyAny>)>,
    /// What the driver made of the run's sink, once the first awaitable was made.
    runner: Option<Bound<'py, PyAny>>,
    /// Whether the runner runs its event loop on this thread (see [`Engine::next_completion`]).
    inline_runner: bool,
    pool: Pool,
    tx: Sender<Completion>,
    rx: Receiver<Completion>,
    args: ArgBuffer,
    /// Calls that finished (the count a cancelled run reports).
    finished: u64,
    since_signal_check: u32,
    /// The root frame's outputs, once it finished.
    result: Option<Vec<Bound<'py, PyAny>>>,
    none: Bound<'py, PyAny>,
}

impl<'p, 'py> Engine<'p, 'py> {
    fn new(
        py: Python<'py>,
        options: RunOptions<'py>,
        pool: Pool,
        tx: Sender<Completion>,
        rx: Receiver<Completion>,
    ) -> Self {
        Engine {
            py,
            options,
            frames: Vec::new(),
            free_frames: Vec::new(),
            subs: Vec::new(),
            free_subs: Vec::new(),
            ready: BinaryHeap::new(),
            events: VecDeque::new(),
            inflight: Vec::new(),
            free_tokens: Vec::new(),
            n_inflight: 0,
            n_async: 0,
            deferred: VecDeque::new(),
            to_spawn: Vec::new(),
            runner: None,
            inline_runner: false,
            pool,
            tx,
            rx,
            args: ArgBuffer::new(8),
            finished: 0,
            since_signal_check: 0,
            result: None,
            none: py.None().into_bound(py),
        }
    }

    /// Runs `plan` on `inputs` until its root frame finished, failed, or the run stopped:
    /// pops ready nodes while there are any, then hands out the awaitables made, then
    /// waits for completions.
    fn run(
        &mut self,
        plan: &'p Plan,
        inputs: Vec<Bound<'py, PyAny>>,
    ) -> Result<Vec<Bound<'py, PyAny>>, KernelError> {
        let ctx = self.options.context.clone();
        self.spawn_frame(plan, ctx, inputs, None)?;
        loop {
            self.drain_events()?;
            if let Some(entry) = self.ready.pop() {
                self.run_node(entry)?;
                continue;
            }
            self.flush_spawns()?;
            if self.n_inflight == 0 {
                return self.result.take().ok_or_else(|| {
                    KernelError::Internal(
                        "the run stalled: nothing ready, nothing in flight".into(),
                    )
                });
            }
            self.wait()?;
        }
    }

    /// Waits for at least one completion, then handles every completion already there.
    /// Checks for Ctrl+C every [`WAIT_SLICE`].
    fn wait(&mut self) -> Result<(), KernelError> {
        match self.next_completion(None) {
            Waited::Got(completion) => self.complete(completion)?,
            Waited::TimedOut => return self.check_signals(),
            Waited::Raised(err) => return Err(self.abort_error(err)),
            Waited::Closed => {
                return Err(KernelError::Internal("the completion channel closed".into()));
            }
        }
        while let Ok(completion) = self.rx.try_recv() {
            self.complete(completion)?;
        }
        Ok(())
    }

    /// The next completion, waiting up to `timeout` for it (None: [`WAIT_SLICE`] on the
    /// channel, as long as it takes with an inline runner).
    ///
    /// Usually the wait is on the channel, detached from the interpreter, while workers
    /// and the driver's event-loop thread report. An *inline* runner (one with a
    /// `wait(timeout_s)` method) runs its event loop on this thread instead, so an async
    /// call costs no hop between threads: while async calls are in flight the engine lends
    /// the thread to `runner.wait`, which returns once an awaitable finished or the time
    /// is up. Ctrl+C reaches the loop as `KeyboardInterrupt`, which is returned like
    /// anything else `wait` raises. Thread-mode completions are picked up between slices
    /// of at most [`MIXED_SLICE`].
    fn next_completion(&mut self, timeout: Option<Duration>) -> Waited {
        if self.inline_runner && self.n_async > 0 {
            if let Ok(completion) = self.rx.try_recv() {
                return Waited::Got(completion);
            }
            let slice = if self.n_inflight > self.n_async {
                Some(timeout.unwrap_or(MIXED_SLICE).min(MIXED_SLICE))
            } else {
                timeout
            };
            if let Some(runner) = &self.runner {
                let slice_s = slice.map(|d| d.as_secs_f64());
                if let Err(err) = runner.call_method1("wait", (slice_s,)) {
                    return Waited::Raised(err);
                }
            }
            return match self.rx.try_recv() {
                Ok(completion) => Waited::Got(completion),
                Err(TryRecvError::Empty) => Waited::TimedOut,
                Err(TryRecvError::Disconnected) => Waited::Closed,
            };
        }
        let rx = self.rx.clone();
        match self.py.detach(|| rx.recv_timeout(timeout.unwrap_or(WAIT_SLICE))) {
            Ok(completion) => Waited::Got(completion),
            Err(RecvTimeoutError::Timeout) => Waited::TimedOut,
            Err(RecvTimeoutError::Disconnected) => Waited::Closed,
        }
    }
}

/// What [`Engine::next_completion`] found.
enum Waited {
    Got(Completion),
    TimedOut,
    /// The inline runner's `wait` raised this (Ctrl+C, or a broken driver).
    Raised(PyErr),
    Closed,
}
