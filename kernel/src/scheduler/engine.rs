//! The frame engine: runs a [`Plan`] and the bodies its nodes start, over Python values.
//!
//! A *frame* is one running instance of a plan: its slot array, the dependency and use
//! counts of its nodes, and its context (a copy-on-write [`Values`] map). The root frame
//! runs the plan given to `run()`. A node with a body (a fan-out item, an `If` branch, a
//! `Loop` iteration, a function call) starts child frames: the node sets the values its
//! body captures into a fork of its frame's context once, and every child forks that in
//! O(1) and reads its outer slots from it. A write in a child never reaches its parent.
//!
//! One ready queue serves every frame: a max-heap on priority, then program order. A
//! node's place in program order is its frame's *order path* followed by its index: the
//! root frame's path is empty, and a child frame's path is its parent's, then the node
//! that started it, then the item (or 0). So with equal priorities the inline loop runs
//! the body of an `If`, `Loop` or fan-out before the later nodes of the enclosing graph,
//! exactly where plain Python would, and side effects happen in program order. Ready
//! nodes run as their op says:
//!
//! * inline calls and native ops run right here, in a tight loop;
//! * a seq node (a fused chain) runs its steps right here, one after another, with no
//!   ready-queue traffic between them;
//! * thread-mode calls go to the [`Pool`] (work-stealing deques);
//! * async calls are called here to make an awaitable, and the awaitables made in one pass
//!   of the loop are handed to the run's *driver* in one batch. The engine never blocks on
//!   I/O (it is sans-IO): when nothing is ready it waits for completions, which workers and
//!   the driver send over one channel. At most `max_concurrency` async calls are in flight;
//!   further ready async nodes wait in FIFO order.
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

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::iter::once;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::context::{Key, Values};
use crate::dispatch::{ArgBuffer, unpack_outputs};
use crate::error::KernelError;
use crate::scheduler::graph::ABSENT;
use crate::scheduler::plan::{MapOp, Mode, Op, Plan, SeqOp, StepOp};
use crate::scheduler::pool::{Job, Pool};

/// How often (in nodes run) the inline loop checks for Ctrl+C when no Python code runs.
const SIGNAL_CHECK_EVERY: u32 = 4096;
/// How long a wait for completions lasts before checking for Ctrl+C.
const WAIT_SLICE: Duration = Duration::from_millis(20);
/// How long an interrupted or failed run waits for cancelled calls to report.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

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
}

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
    tx: Sender<Completion>,
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

/// A child frame's place in the node that started it.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// The [`Sub`] of the node.
    sub: u32,
    /// The item index, for a fan-out item.
    index: usize,
}

/// One running instance of a plan.
struct Frame<'p, 'py> {
    plan: &'p Plan,
    /// Bumped when the frame is freed, so stale queue entries and completions are ignored.
    generation: u32,
    alive: bool,
    slots: Vec<Option<Bound<'py, PyAny>>>,
    missing: Vec<u32>,
    uses: Vec<u32>,
    /// Nodes not yet finished; the frame is done at zero.
    pending: usize,
    ctx: Values,
    parent: Option<Link>,
    /// The frame's place in program order (see the module docs).
    order: Rc<[u32]>,
    /// Subs of this frame's nodes that are running bodies.
    subs: Vec<u32>,
}

/// A node of some frame that is running child frames.
struct Sub<'p, 'py> {
    frame: u32,
    node: u32,
    /// Live child frames and their generations.
    children: Vec<(u32, u32)>,
    kind: SubKind<'p, 'py>,
}

enum SubKind<'p, 'py> {
    /// If branch or function call: the child's outputs are the node's.
    Single,
    Map {
        op: &'p MapOp,
        body: &'p Plan,
        base: Values,
        items: Vec<Option<Bound<'py, PyAny>>>,
        next: usize,
        live: usize,
        window: usize,
        results: Vec<Option<Bound<'py, PyAny>>>,
        done: usize,
    },
    Loop {
        body: &'p Plan,
        base: Values,
        trip: Option<i64>,
        iteration: i64,
        n_carried: usize,
    },
}

/// A frame finished or failed; handled by [`Engine::drain_events`], so that chains of
/// frames finishing at once never recurse.
enum Event {
    Done(u32, u32),
    Failed(u32, u32, PyErr),
}

/// A call handed out of the loop.
#[derive(Clone, Copy)]
struct InFlight {
    frame: u32,
    generation: u32,
    node: u32,
    mode: Mode,
}

/// A ready node. The heap pops the highest priority first, then the node earliest in
/// program order (its frame's order path, then its index).
struct ReadyEntry {
    priority: i64,
    order: Rc<[u32]>,
    node: u32,
    frame: u32,
    generation: u32,
}

impl ReadyEntry {
    fn position(&self) -> impl Iterator<Item = &u32> {
        self.order.iter().chain(once(&self.node))
    }
}

impl Ord for ReadyEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.position().cmp(self.position()))
            .then_with(|| other.frame.cmp(&self.frame))
            .then_with(|| self.generation.cmp(&other.generation))
    }
}

impl PartialOrd for ReadyEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ReadyEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ReadyEntry {}

struct Engine<'p, 'py> {
    py: Python<'py>,
    options: RunOptions<'py>,
    frames: Vec<Frame<'p, 'py>>,
    free_frames: Vec<u32>,
    subs: Vec<Option<Sub<'p, 'py>>>,
    free_subs: Vec<u32>,
    ready: BinaryHeap<ReadyEntry>,
    events: VecDeque<Event>,
    inflight: Vec<Option<InFlight>>,
    free_tokens: Vec<u64>,
    n_inflight: usize,
    n_async: usize,
    deferred: VecDeque<(u32, u32, u32)>,
    to_spawn: Vec<(u64, Bound<'py, PyAny>)>,
    runner: Option<Bound<'py, PyAny>>,
    pool: Pool,
    tx: Sender<Completion>,
    rx: Receiver<Completion>,
    args: ArgBuffer,
    finished: u64,
    since_signal_check: u32,
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

    // ------------------------------------------------------------------ the loop

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

    /// Waits (detached from the interpreter) for at least one completion, then handles
    /// every completion already there. Checks for Ctrl+C every [`WAIT_SLICE`].
    fn wait(&mut self) -> Result<(), KernelError> {
        let rx = self.rx.clone();
        let first = self.py.detach(|| rx.recv_timeout(WAIT_SLICE));
        match first {
            Ok(completion) => self.complete(completion)?,
            Err(RecvTimeoutError::Timeout) => return self.check_signals(),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(KernelError::Internal("the completion channel closed".into()));
            }
        }
        while let Ok(completion) = self.rx.try_recv() {
            self.complete(completion)?;
        }
        Ok(())
    }

    fn check_signals(&mut self) -> Result<(), KernelError> {
        self.since_signal_check = 0;
        self.py.check_signals().map_err(|err| self.abort_error(err))
    }

    /// The error a run stops with when `err` (a `BaseException` that is not an
    /// `Exception`) escapes a node: Ctrl+C becomes [`KernelError::Cancelled`].
    fn abort_error(&self, err: PyErr) -> KernelError {
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
    fn shutdown(
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
            let rx = self.rx.clone();
            match self.py.detach(|| rx.recv_timeout(WAIT_SLICE)) {
                Ok(completion) => {
                    let Some(entry) = self.forget(completion.token) else { continue };
                    match completion.outcome {
                        Outcome::Dropped => cancelled += 1,
                        Outcome::Ok(_) => self.finished += 1,
                        // An async call that ended in its cancellation was cancelled.
                        Outcome::Err(_) if entry.mode == Mode::Async => cancelled += 1,
                        Outcome::Err(_) => self.finished += 1,
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(err) = self.py.check_signals() {
                        // Ctrl+C during the wait: stop waiting; running calls are abandoned.
                        // The interrupt wins over the run's own result, as in plain Python.
                        if !interrupted {
                            result = Err(self.abort_error(err));
                        }
                        break;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let running_threads = (self.n_inflight - self.n_async) as u64;
        abandoned += running_threads;
        let still_async = self.n_async as u64;
        let pool = &mut self.pool;
        self.py.detach(|| pool.finish(running_threads == 0));
        if let Err(KernelError::Cancelled { finished, cancelled: c, abandoned: a, .. }) = &mut result {
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

    /// Drops the record of the call handed out with `token`.
    fn forget(&mut self, token: u64) -> Option<InFlight> {
        let entry = self.inflight.get_mut(token as usize).and_then(Option::take)?;
        self.free_tokens.push(token);
        self.n_inflight -= 1;
        if entry.mode == Mode::Async {
            self.n_async -= 1;
        }
        Some(entry)
    }

    // ------------------------------------------------------------------ frames

    fn spawn_frame(
        &mut self,
        plan: &'p Plan,
        ctx: Values,
        inputs: Vec<Bound<'py, PyAny>>,
        parent: Option<Link>,
    ) -> Result<(u32, u32), KernelError> {
        let py = self.py;
        let graph = &plan.graph;
        let order: Rc<[u32]> = match parent {
            None => Rc::from([]),
            Some(link) => match self.subs[link.sub as usize].as_ref() {
                Some(sub) => {
                    let index = u32::try_from(link.index).unwrap_or(u32::MAX);
                    let parent_order = &self.frames[sub.frame as usize].order;
                    parent_order.iter().copied().chain([sub.node, index]).collect()
                }
                None => Rc::from([]),
            },
        };
        let id = match self.free_frames.pop() {
            Some(id) => id,
            None => {
                let id = u32::try_from(self.frames.len())
                    .map_err(|_| KernelError::Internal("more than 2^32 live frames".into()))?;
                self.frames.push(Frame {
                    plan,
                    generation: 0,
                    alive: false,
                    slots: Vec::new(),
                    missing: Vec::new(),
                    uses: Vec::new(),
                    pending: 0,
                    ctx: crate::context::empty(),
                    parent: None,
                    order: Rc::from([]),
                    subs: Vec::new(),
                });
                id
            }
        };
        let frame = &mut self.frames[id as usize];
        frame.plan = plan;
        frame.alive = true;
        frame.slots.clear();
        frame.slots.resize(graph.n_slots(), None);
        frame.missing.clone_from(&graph.missing);
        frame.uses.clone_from(&graph.uses);
        frame.pending = graph.n_nodes();
        frame.parent = parent;
        frame.order = order;
        frame.subs.clear();
        for (&slot, value) in graph.input_slots.iter().zip(inputs) {
            if graph.keep[slot as usize] {
                frame.slots[slot as usize] = Some(value);
            }
        }
        for (&slot, value) in graph.constant_slots.iter().zip(&plan.constants) {
            if graph.keep[slot as usize] {
                frame.slots[slot as usize] = Some(value.bind(py).clone());
            }
        }
        for (&slot, &key) in graph.outer_slots.iter().zip(&plan.outer_keys) {
            if graph.keep[slot as usize] {
                let value =
                    ctx.get(&Key::Int(key)).ok_or(KernelError::MissingContextValue { key })?;
                frame.slots[slot as usize] = Some(value.bind(py).clone());
            }
        }
        frame.ctx = ctx;
        let generation = frame.generation;
        for (node, &missing) in graph.missing.iter().enumerate() {
            if missing == 0 {
                self.ready.push(ReadyEntry {
                    priority: graph.priorities[node],
                    order: frame.order.clone(),
                    node: node as u32,
                    frame: id,
                    generation,
                });
            }
        }
        if graph.n_nodes() == 0 {
            self.events.push_back(Event::Done(id, generation));
        }
        Ok((id, generation))
    }

    /// Frees frame `id`, first killing every frame its running nodes started.
    fn kill_frame(&mut self, id: u32) {
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let frame = &mut self.frames[id as usize];
            if !frame.alive {
                continue;
            }
            frame.alive = false;
            frame.generation = frame.generation.wrapping_add(1);
            frame.slots.clear();
            // The context holds the values the frame's body captured: release them now,
            // not when the frame is reused or the run ends.
            frame.ctx = crate::context::empty();
            let subs = std::mem::take(&mut frame.subs);
            for sub in subs {
                if let Some(sub) = self.subs[sub as usize].take() {
                    for (child, generation) in sub.children {
                        if self.frames[child as usize].generation == generation {
                            stack.push(child);
                        }
                    }
                }
                self.free_subs.push(sub);
            }
            self.free_frames.push(id);
        }
    }

    fn drain_events(&mut self) -> Result<(), KernelError> {
        while let Some(event) = self.events.pop_front() {
            match event {
                Event::Done(id, generation) => {
                    let frame = &self.frames[id as usize];
                    if frame.generation != generation || !frame.alive {
                        continue;
                    }
                    let outputs = frame
                        .plan
                        .graph
                        .output_slots
                        .iter()
                        .map(|&slot| {
                            frame.slots[slot as usize].clone().ok_or_else(|| {
                                KernelError::Internal(format!(
                                    "output slot {slot} was never written"
                                ))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let parent = frame.parent;
                    self.kill_frame(id);
                    match parent {
                        None => self.result = Some(outputs),
                        Some(link) => self.child_done(id, link, outputs)?,
                    }
                }
                Event::Failed(id, generation, err) => {
                    let frame = &self.frames[id as usize];
                    if frame.generation != generation || !frame.alive {
                        continue;
                    }
                    let parent = frame.parent;
                    self.kill_frame(id);
                    match parent {
                        None => return Err(KernelError::Python(err)),
                        Some(link) => self.child_failed(id, link, err)?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Node `node` of frame `id` raised `err`: the frame fails (see [`Engine::fail_with`]),
    /// through the node's error handler.
    fn fail_node(&mut self, id: u32, node: u32, err: PyErr) -> Result<(), KernelError> {
        let plan = self.frames[id as usize].plan;
        self.fail_with(id, plan.error_handlers[node as usize].as_ref(), err)
    }

    /// A node of frame `id` raised `err`: the frame fails with the exception `handler`
    /// makes of it (or `err` itself), unless `err` is not an `Exception` (Ctrl+C,
    /// `SystemExit`, cancellation), which stops the whole run.
    fn fail_with(
        &mut self,
        id: u32,
        handler: Option<&Py<PyAny>>,
        err: PyErr,
    ) -> Result<(), KernelError> {
        if !err.is_instance_of::<PyException>(self.py) {
            return Err(self.abort_error(err));
        }
        let err = match handler {
            Some(handler) => match handler.bind(self.py).call1((err.value(self.py),)) {
                Ok(replacement) => PyErr::from_value(replacement),
                Err(handler_err) => handler_err,
            },
            None => err,
        };
        let generation = self.frames[id as usize].generation;
        self.events.push_back(Event::Failed(id, generation, err));
        Ok(())
    }

    // ------------------------------------------------------------------ nodes

    fn run_node(
        &mut self,
        ReadyEntry { frame: id, node, generation, .. }: ReadyEntry,
    ) -> Result<(), KernelError> {
        let frame = &self.frames[id as usize];
        if frame.generation != generation || !frame.alive {
            return Ok(());
        }
        let plan = frame.plan;
        self.since_signal_check += 1;
        if self.since_signal_check >= SIGNAL_CHECK_EVERY {
            self.check_signals()?;
        }
        match &plan.ops[node as usize] {
            Op::Call { callable, mode: Mode::Inline } => {
                let called = self.call(id, node, callable);
                match called {
                    Ok(result) => {
                        self.finished += 1;
                        self.store_result(id, node, result)
                    }
                    Err(KernelError::Python(err)) => self.fail_node(id, node, err),
                    Err(other) => Err(other),
                }
            }
            Op::Call { callable, mode: Mode::Thread } => {
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
            Op::Call { mode: Mode::Async, .. } => {
                if self.n_async >= self.options.max_concurrency {
                    self.deferred.push_back((id, generation, node));
                    Ok(())
                } else {
                    self.start_async(id, node)
                }
            }
            Op::Native(op) => {
                let inputs = self.inputs(id, node)?;
                let refs: Vec<&Bound<'py, PyAny>> = inputs.iter().collect();
                match op.eval(self.py, &refs) {
                    Ok(value) => self.store_result(id, node, value),
                    Err(KernelError::Python(err)) => self.fail_node(id, node, err),
                    Err(other) => Err(other),
                }
            }
            Op::Map(map) => self.start_map(id, node, map),
            Op::If { then_branch, else_branch, keys } => {
                let inputs = self.inputs(id, node)?;
                let truth = match inputs[0].is_truthy() {
                    Ok(truth) => truth,
                    Err(err) => return self.fail_node(id, node, err),
                };
                let branch = if truth { then_branch.get() } else { else_branch.get() };
                let base = self.capture(id, keys, &inputs[1..]);
                let sub = self.new_sub(id, node, SubKind::Single);
                let child =
                    self.spawn_frame(branch, base, Vec::new(), Some(Link { sub, index: 0 }))?;
                self.adopt(sub, child);
                Ok(())
            }
            Op::Loop { body, n_carried, keys } => {
                let inputs = self.inputs(id, node)?;
                let trip = if inputs[0].is_none() {
                    None
                } else {
                    match inputs[0].extract::<i64>() {
                        Ok(trip) => Some(trip),
                        Err(err) => return self.fail_node(id, node, err),
                    }
                };
                let base = self.capture(id, keys, &inputs[2 + n_carried..]);
                let kind = SubKind::Loop {
                    body: body.get(),
                    base,
                    trip,
                    iteration: 0,
                    n_carried: *n_carried,
                };
                let sub = self.new_sub(id, node, kind);
                let cond = inputs[1].clone();
                let carried = inputs[2..2 + n_carried].to_vec();
                self.next_iteration(sub, cond, carried)
            }
            Op::Function { body } => {
                let inputs = self.inputs(id, node)?;
                let base = self.frames[id as usize].ctx.clone();
                let sub = self.new_sub(id, node, SubKind::Single);
                let child =
                    self.spawn_frame(body.get(), base, inputs, Some(Link { sub, index: 0 }))?;
                self.adopt(sub, child);
                Ok(())
            }
            Op::Seq(seq) => self.run_seq(id, node, seq),
        }
    }

    /// Runs the steps of seq node `node` one after another, right here: each call goes
    /// through vectorcall on the node's (or an earlier step's) values, with no ready-queue
    /// traffic in between. A step's result is released after its last reader ran. An
    /// exception in a step fails the node through that step's error handler (else the
    /// node's), so the error names the step's task.
    fn run_seq(&mut self, id: u32, node: u32, seq: &'p SeqOp) -> Result<(), KernelError> {
        let py = self.py;
        let plan = self.frames[id as usize].plan;
        let mut values: Vec<Option<Bound<'py, PyAny>>> =
            self.inputs(id, node)?.into_iter().map(Some).collect();
        values.reserve(seq.steps.len());
        for step in &seq.steps {
            let args = step.args.iter().map(|&i| {
                values.get(i as usize).and_then(Option::as_ref).ok_or_else(|| {
                    KernelError::Internal(format!(
                        "seq node {node} read value {i} after its release"
                    ))
                })
            });
            let result = match &step.op {
                StepOp::Call(callable) => {
                    self.since_signal_check += 1;
                    self.args.call(callable.bind(py), args)
                }
                StepOp::Native(op) => {
                    args.collect::<Result<Vec<_>, _>>().and_then(|refs| op.eval(py, &refs))
                }
            };
            match result {
                Ok(value) => {
                    if matches!(step.op, StepOp::Call(_)) {
                        self.finished += 1;
                    }
                    values.push(Some(value));
                    for &i in &step.frees {
                        if let Some(value) = values.get_mut(i as usize) {
                            *value = None;
                        }
                    }
                }
                Err(KernelError::Python(err)) => {
                    drop(values);
                    let handler =
                        step.handler.as_ref().or(plan.error_handlers[node as usize].as_ref());
                    return self.fail_with(id, handler, err);
                }
                Err(other) => return Err(other),
            }
            if self.since_signal_check >= SIGNAL_CHECK_EVERY {
                self.check_signals()?;
            }
        }
        let result = values.pop().flatten().ok_or_else(|| {
            KernelError::Internal(format!("seq node {node} finished without a result"))
        })?;
        drop(values);
        self.store_result(id, node, result)
    }

    /// Calls `callable` with node `node`'s inputs through vectorcall.
    fn call(
        &mut self,
        id: u32,
        node: u32,
        callable: &Py<PyAny>,
    ) -> Result<Bound<'py, PyAny>, KernelError> {
        let frame = &self.frames[id as usize];
        let none = &self.none;
        self.args.call(
            callable.bind(self.py),
            frame
                .plan
                .graph
                .args
                .row(node as usize)
                .iter()
                .map(|&slot| arg(frame, none, node, slot)),
        )
    }

    /// Node `node`'s inputs (`None` for absent ones), as new references.
    fn inputs(&self, id: u32, node: u32) -> Result<Vec<Bound<'py, PyAny>>, KernelError> {
        let frame = &self.frames[id as usize];
        frame
            .plan
            .graph
            .args
            .row(node as usize)
            .iter()
            .map(|&slot| arg(frame, &self.none, node, slot).cloned())
            .collect()
    }

    /// Stores a node's single result over its outputs and marks it finished.
    fn store_result(
        &mut self,
        id: u32,
        node: u32,
        result: Bound<'py, PyAny>,
    ) -> Result<(), KernelError> {
        let frame = &mut self.frames[id as usize];
        let graph = &frame.plan.graph;
        let outputs = graph.outputs.row(node as usize);
        let slots = &mut frame.slots;
        match unpack_outputs(node as usize, result, outputs.len(), |i, value| {
            let slot = outputs[i] as usize;
            if graph.keep[slot] {
                slots[slot] = Some(value);
            }
        }) {
            Ok(()) => self.node_done(id, node),
            Err(KernelError::Python(err)) => self.fail_node(id, node, err),
            Err(other) => self.fail_node(id, node, PyErr::from(other)),
        }
    }

    /// Stores one value per output of node `node` and marks it finished.
    fn store_values(
        &mut self,
        id: u32,
        node: u32,
        values: Vec<Bound<'py, PyAny>>,
    ) -> Result<(), KernelError> {
        let frame = &mut self.frames[id as usize];
        let graph = &frame.plan.graph;
        for (&slot, value) in graph.outputs.row(node as usize).iter().zip(values) {
            if graph.keep[slot as usize] {
                frame.slots[slot as usize] = Some(value);
            }
        }
        self.node_done(id, node)
    }

    /// Node `node` of frame `id` finished and its outputs are stored: release the inputs
    /// it was the last reader of, wake its consumers, and finish the frame after its last
    /// node.
    fn node_done(&mut self, id: u32, node: u32) -> Result<(), KernelError> {
        let frame = &mut self.frames[id as usize];
        let graph = &frame.plan.graph;
        for &slot in graph.reads.row(node as usize) {
            let left = &mut frame.uses[slot as usize];
            *left -= 1;
            if *left == 0 && !graph.is_output[slot as usize] {
                frame.slots[slot as usize] = None;
            }
        }
        for &slot in graph.outputs.row(node as usize) {
            for &consumer in graph.consumers.row(slot as usize) {
                let waiting = &mut frame.missing[consumer as usize];
                *waiting -= 1;
                if *waiting == 0 {
                    self.ready.push(ReadyEntry {
                        priority: graph.priorities[consumer as usize],
                        order: frame.order.clone(),
                        node: consumer,
                        frame: id,
                        generation: frame.generation,
                    });
                }
            }
        }
        frame.pending -= 1;
        if frame.pending == 0 {
            self.events.push_back(Event::Done(id, frame.generation));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ calls handed out

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

    /// Calls an async node's callable to get its awaitable and queues it for the driver.
    fn start_async(&mut self, id: u32, node: u32) -> Result<(), KernelError> {
        let frame = &self.frames[id as usize];
        let generation = frame.generation;
        let Op::Call { callable, .. } = &frame.plan.ops[node as usize] else {
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
    fn flush_spawns(&mut self) -> Result<(), KernelError> {
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
    fn complete(&mut self, completion: Completion) -> Result<(), KernelError> {
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

    // ------------------------------------------------------------------ bodies

    /// A fork of frame `id`'s context holding `values` under `keys`.
    fn capture(&self, id: u32, keys: &[i64], values: &[Bound<'py, PyAny>]) -> Values {
        let mut base = self.frames[id as usize].ctx.clone();
        for (&key, value) in keys.iter().zip(values) {
            base.insert_mut(Key::Int(key), value.clone().unbind());
        }
        base
    }

    fn new_sub(&mut self, frame: u32, node: u32, kind: SubKind<'p, 'py>) -> u32 {
        let sub = Sub { frame, node, children: Vec::new(), kind };
        let id = match self.free_subs.pop() {
            Some(id) => {
                self.subs[id as usize] = Some(sub);
                id
            }
            None => {
                self.subs.push(Some(sub));
                (self.subs.len() - 1) as u32
            }
        };
        self.frames[frame as usize].subs.push(id);
        id
    }

    fn adopt(&mut self, sub: u32, child: (u32, u32)) {
        if let Some(sub) = self.subs[sub as usize].as_mut() {
            sub.children.push(child);
        }
    }

    /// The node of `sub` finished with `values`: frees the sub and stores them.
    fn finish_sub(
        &mut self,
        sub_id: u32,
        values: Vec<Bound<'py, PyAny>>,
    ) -> Result<(), KernelError> {
        let Some(sub) = self.take_sub(sub_id) else { return Ok(()) };
        self.store_values(sub.frame, sub.node, values)
    }

    /// Removes `sub_id` from the table and from its frame's running subs.
    fn take_sub(&mut self, sub_id: u32) -> Option<Sub<'p, 'py>> {
        let sub = self.subs[sub_id as usize].take()?;
        self.free_subs.push(sub_id);
        self.frames[sub.frame as usize].subs.retain(|&s| s != sub_id);
        Some(sub)
    }

    fn start_map(&mut self, id: u32, node: u32, map: &'p MapOp) -> Result<(), KernelError> {
        let py = self.py;
        let inputs = self.inputs(id, node)?;
        let items: Vec<Option<Bound<'py, PyAny>>> = match collect_items(&inputs[0]) {
            Ok(items) => items,
            Err(err) => return self.fail_node(id, node, err),
        };
        if let Some(on_start) = &map.on_start {
            if let Err(err) = on_start.bind(py).call1((items.len(),)) {
                return self.fail_node(id, node, err);
            }
        }
        let body = map.body.get();
        let has_output = !self.frames[id as usize].plan.graph.outputs.row(node as usize).is_empty();
        if items.is_empty() {
            let value = if has_output { PyList::empty(py).into_any() } else { self.none.clone() };
            return self.store_result(id, node, value);
        }
        let base = self.capture(id, &map.keys, &inputs[1..]);
        let n = items.len();
        let window = if body.concurrent { self.options.max_concurrency } else { 1 };
        let kind = SubKind::Map {
            op: map,
            body,
            base,
            items,
            next: 0,
            live: 0,
            window,
            results: (0..n).map(|_| None).collect(),
            done: 0,
        };
        let sub = self.new_sub(id, node, kind);
        self.spawn_items(sub)
    }

    /// Starts items of fan-out `sub` until its window is full or none is left.
    fn spawn_items(&mut self, sub_id: u32) -> Result<(), KernelError> {
        loop {
            let Some(sub) = self.subs[sub_id as usize].as_mut() else { return Ok(()) };
            let SubKind::Map { body, base, items, next, live, window, .. } = &mut sub.kind else {
                return Ok(());
            };
            if *live >= *window || *next >= items.len() {
                return Ok(());
            }
            let index = *next;
            let item = items[index].take().unwrap_or_else(|| self.none.clone());
            *next += 1;
            *live += 1;
            let (body, ctx) = (*body, base.clone());
            let child =
                self.spawn_frame(body, ctx, vec![item], Some(Link { sub: sub_id, index }))?;
            self.adopt(sub_id, child);
        }
    }

    fn next_iteration(
        &mut self,
        sub_id: u32,
        cond: Bound<'py, PyAny>,
        carried: Vec<Bound<'py, PyAny>>,
    ) -> Result<(), KernelError> {
        let Some(sub) = self.subs[sub_id as usize].as_ref() else { return Ok(()) };
        let SubKind::Loop { body, base, trip, iteration, .. } = &sub.kind else {
            return Ok(());
        };
        let more_trips = trip.is_none_or(|trip| *iteration < trip);
        let go_on = more_trips
            && (cond.is_none()
                || match cond.is_truthy() {
                    Ok(truth) => truth,
                    Err(err) => return self.fail_sub(sub_id, err),
                });
        if !go_on {
            return self.finish_sub(sub_id, carried);
        }
        let (body, ctx) = (*body, base.clone());
        let i = (*iteration).into_bound_py_any(self.py)?;
        let mut inputs = Vec::with_capacity(2 + carried.len());
        inputs.push(i);
        inputs.push(cond);
        inputs.extend(carried);
        let child = self.spawn_frame(body, ctx, inputs, Some(Link { sub: sub_id, index: 0 }))?;
        self.adopt(sub_id, child);
        Ok(())
    }

    /// Child frame `child` of `link` finished with `outputs`.
    fn child_done(
        &mut self,
        child: u32,
        link: Link,
        outputs: Vec<Bound<'py, PyAny>>,
    ) -> Result<(), KernelError> {
        let py = self.py;
        let Some(sub) = self.subs[link.sub as usize].as_mut() else { return Ok(()) };
        sub.children.retain(|&(c, _)| c != child);
        match &mut sub.kind {
            SubKind::Single => self.finish_sub(link.sub, outputs),
            SubKind::Loop { iteration, n_carried, .. } => {
                *iteration += 1;
                let n_carried = *n_carried;
                let mut outputs = outputs.into_iter();
                let cond = outputs.next().unwrap_or_else(|| self.none.clone());
                let carried: Vec<_> = outputs.take(n_carried).collect();
                self.next_iteration(link.sub, cond, carried)
            }
            SubKind::Map { op, results, live, done, .. } => {
                results[link.index] = outputs.into_iter().next();
                *live -= 1;
                *done += 1;
                let hook = op.on_item_done.as_ref().map(|h| h.clone_ref(py));
                self.item_finished(link.sub, hook)
            }
        }
    }

    /// An item of fan-out `sub_id` finished or was dropped: report it, start the next
    /// items, and finish the node after the last one.
    fn item_finished(&mut self, sub_id: u32, hook: Option<Py<PyAny>>) -> Result<(), KernelError> {
        let py = self.py;
        if let Some(hook) = hook {
            if let Err(err) = hook.bind(py).call0() {
                return self.fail_sub(sub_id, err);
            }
        }
        let Some(sub) = self.subs[sub_id as usize].as_mut() else { return Ok(()) };
        let SubKind::Map { op, results, done, .. } = &mut sub.kind else { return Ok(()) };
        if *done < results.len() {
            return self.spawn_items(sub_id);
        }
        let (frame, node) = (sub.frame, sub.node);
        let flatten = op.flatten;
        let results = std::mem::take(results);
        let has_output =
            !self.frames[frame as usize].plan.graph.outputs.row(node as usize).is_empty();
        if !has_output {
            return self.finish_sub(sub_id, Vec::new());
        }
        let gathered = PyList::empty(py);
        for value in results.into_iter().flatten() {
            let appended = if flatten {
                value
                    .try_iter()
                    .and_then(|mut items| items.try_for_each(|item| gathered.append(item?)))
            } else {
                gathered.append(value)
            };
            if let Err(err) = appended {
                return self.fail_sub(sub_id, err);
            }
        }
        self.finish_sub(sub_id, vec![gathered.into_any()])
    }

    /// The node of `sub_id` fails with `err`: its other children are killed.
    fn fail_sub(&mut self, sub_id: u32, err: PyErr) -> Result<(), KernelError> {
        let Some(sub) = self.take_sub(sub_id) else { return Ok(()) };
        for (child, generation) in sub.children {
            if self.frames[child as usize].generation == generation {
                self.kill_frame(child);
            }
        }
        self.fail_node(sub.frame, sub.node, err)
    }

    /// Child frame `child` of `link` failed with `err`. A fan-out with an
    /// `on_item_error` hook asks it whether to drop the item; otherwise the node fails.
    fn child_failed(&mut self, child: u32, link: Link, err: PyErr) -> Result<(), KernelError> {
        let py = self.py;
        let Some(sub) = self.subs[link.sub as usize].as_mut() else { return Ok(()) };
        sub.children.retain(|&(c, _)| c != child);
        if let SubKind::Map { op, live, done, .. } = &mut sub.kind {
            if let Some(on_item_error) = &op.on_item_error {
                let decision = on_item_error.bind(py).call1((err.value(py), link.index));
                match decision {
                    Ok(raise) if raise.is_none() => {
                        *live -= 1;
                        *done += 1;
                        let hook = op.on_item_done.as_ref().map(|h| h.clone_ref(py));
                        return self.item_finished(link.sub, hook);
                    }
                    Ok(raise) => return self.fail_sub(link.sub, PyErr::from_value(raise)),
                    Err(hook_err) => return self.fail_sub(link.sub, hook_err),
                }
            }
        }
        self.fail_sub(link.sub, err)
    }
}

/// The value of argument slot `slot` of `node` in `frame` (`none` for an absent input).
#[inline]
fn arg<'a, 'py>(
    frame: &'a Frame<'_, 'py>,
    none: &'a Bound<'py, PyAny>,
    node: u32,
    slot: u32,
) -> Result<&'a Bound<'py, PyAny>, KernelError> {
    if slot == ABSENT {
        return Ok(none);
    }
    frame.slots[slot as usize].as_ref().ok_or_else(|| {
        KernelError::Internal(format!("node {node} ran before slot {slot} was written"))
    })
}

/// The items of a fan-out's input: a list or tuple is read directly, anything else iterated.
fn collect_items<'py>(seq: &Bound<'py, PyAny>) -> PyResult<Vec<Option<Bound<'py, PyAny>>>> {
    if let Ok(list) = seq.cast::<PyList>() {
        return Ok(list.iter().map(Some).collect());
    }
    if let Ok(tuple) = seq.cast::<PyTuple>() {
        return Ok(tuple.iter().map(Some).collect());
    }
    seq.try_iter()?.map(|item| item.map(Some)).collect()
}
