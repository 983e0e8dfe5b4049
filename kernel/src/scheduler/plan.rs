//! `namu._kernel.Plan`: the Python-facing executable graph.

use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::context::Context;
use crate::dispatch::native::NativeOp;
use crate::dispatch::type_name;
use crate::error::{KernelError, Site};
use crate::scheduler::engine::{RunOptions, execute};
use crate::scheduler::graph::{Graph, GraphSpec, NodeSlots};

/// How a call node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Called directly by the run loop, on the thread running the plan.
    Inline,
    /// Handed to the run's worker pool (work-stealing deques); for calls that release the
    /// interpreter lock (numpy, I/O).
    Thread,
    /// The callable returns an awaitable, which the run's driver awaits on an event loop;
    /// at most `max_concurrency` are in flight at once.
    Async,
}

/// What a node does.
pub enum Op {
    /// Call a Python callable with the node's inputs.
    Call {
        /// The callable.
        callable: Py<PyAny>,
        /// How it runs.
        mode: Mode,
    },
    /// A builtin op evaluated without a Python-level call.
    Native(NativeOp),
    /// Fan-out: run `body` once per item of input 0, each in its own forked context.
    Map(MapOp),
    /// Run `then_branch` or `else_branch` depending on the truth of input 0.
    If {
        /// Run when the condition is true.
        then_branch: Py<Plan>,
        /// Run when it is false.
        else_branch: Py<Plan>,
        /// Context key of each captured input (inputs 1..).
        keys: Vec<i64>,
    },
    /// ONNX `Loop`: inputs are (trip count or None, condition or None, carried..., captured...).
    Loop {
        /// Inputs (iteration, condition, carried...); outputs (condition, carried...).
        body: Py<Plan>,
        /// Number of loop-carried values.
        n_carried: usize,
        /// Context key of each captured input.
        keys: Vec<i64>,
    },
    /// Call a function body: the node's inputs are the body's inputs, its outputs the
    /// body's outputs.
    Function {
        /// The function body.
        body: Py<Plan>,
    },
    /// Run a straight-line sequence of calls and builtin ops as one node, without the
    /// ready queue between them; the last step's result is the node's.
    Seq(SeqOp),
}

/// A fused chain of cheap calls (`namu.Fused`): one node of the plan whose steps run one
/// after another in the run loop, each through vectorcall (or natively), with no
/// scheduling in between.
///
/// A step reads *values*: the node's inputs (`0 .. n_inputs`), then the result of each
/// earlier step (`n_inputs + k` for step `k`). A value is released right after its last
/// reader ran, as the frame does for slots.
pub struct SeqOp {
    /// The steps, in order (at least one).
    pub steps: Vec<Step>,
}

/// What one step of a [`SeqOp`] runs.
pub enum StepOp {
    /// A Python callable, called through vectorcall.
    Call(Py<PyAny>),
    /// A builtin op evaluated without a Python-level call.
    Native(NativeOp),
}

/// One step of a [`SeqOp`].
pub struct Step {
    /// What it runs.
    pub op: StepOp,
    /// Its positional arguments, as value indices (node inputs, then earlier results).
    pub args: Vec<u32>,
    /// When the step raises an `Exception`, the handler is called with it and the node fails
    /// with the exception it returns (without one, the node's own handler applies).
    pub handler: Option<Py<PyAny>>,
    /// Values whose last reader is this step (its own result too, if nothing reads it and
    /// it is not the last step): released right after it ran.
    pub frees: Vec<u32>,
}

/// For steps reading `args` (value indices; the node has `n_inputs` inputs), the values
/// each step is the last reader of. A step result no later step reads is released by the
/// step itself, except the last step's (the node's result). Node inputs nobody reads are
/// not listed: the frame holds them anyway.
pub fn last_uses(n_inputs: usize, args: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let n_values = n_inputs + args.len();
    let mut last: Vec<Option<usize>> = vec![None; n_values];
    for (k, step_args) in args.iter().enumerate() {
        for &value in step_args {
            if let Some(reader) = last.get_mut(value as usize) {
                *reader = Some(k);
            }
        }
    }
    let mut frees: Vec<Vec<u32>> = vec![Vec::new(); args.len()];
    for (value, reader) in last.iter().enumerate() {
        let step = match *reader {
            Some(k) => k,
            None if value >= n_inputs && value + 1 < n_values => value - n_inputs,
            None => continue,
        };
        frees[step].push(value as u32);
    }
    frees
}

/// The parameters of a fan-out node.
pub struct MapOp {
    /// Inputs (item); outputs (result, ...). Runs once per item.
    pub body: Py<Plan>,
    /// Context key of each captured input (inputs 1..).
    pub keys: Vec<i64>,
    /// The node's result is the concatenation of the items' results (else their list).
    pub flatten: bool,
    /// `on_item_error(exc, index)`: returns None to drop the item, or the exception to
    /// raise. Without it, an item's error fails the node.
    pub on_item_error: Option<Py<PyAny>>,
    /// `on_start(n_items)`, called when the fan-out starts.
    pub on_start: Option<Py<PyAny>>,
    /// `on_item_done()`, called when an item finishes (or is dropped).
    pub on_item_done: Option<Py<PyAny>>,
}

impl Op {
    /// The plans this op runs as children.
    fn bodies(&self) -> Vec<&Py<Plan>> {
        match self {
            Op::Call { .. } | Op::Native(_) | Op::Seq(_) => vec![],
            Op::Map(map) => vec![&map.body],
            Op::If { then_branch, else_branch, .. } => vec![then_branch, else_branch],
            Op::Loop { body, .. } | Op::Function { body } => vec![body],
        }
    }

    /// The Python objects the op holds, for the cycle collector.
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Op::Call { callable, .. } => visit.call(callable)?,
            Op::Native(_) => {}
            Op::Map(map) => {
                visit.call(&map.body)?;
                for hook in
                    [&map.on_item_error, &map.on_start, &map.on_item_done].into_iter().flatten()
                {
                    visit.call(hook)?;
                }
            }
            Op::If { then_branch, else_branch, .. } => {
                visit.call(then_branch)?;
                visit.call(else_branch)?;
            }
            Op::Loop { body, .. } | Op::Function { body } => visit.call(body)?,
            Op::Seq(seq) => {
                for step in &seq.steps {
                    if let StepOp::Call(callable) = &step.op {
                        visit.call(callable)?;
                    }
                    if let Some(handler) = &step.handler {
                        visit.call(handler)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// An executable graph held as compact arrays.
///
/// Slots are registers holding one Python object each. A slot is written by exactly one run
/// input, constant, outer value (read from the enclosing context when the plan is a body)
/// or node output. Nodes run once their inputs are available, highest priority first, ties
/// to the lowest node index. The plan is immutable: runs share nothing but the plan, so
/// they may nest and may run on several threads at once.
#[pyclass(frozen, module = "namu._kernel", name = "Plan")]
pub struct Plan {
    pub(crate) graph: Graph,
    /// Per node, what it does.
    pub(crate) ops: Vec<Op>,
    /// Per constant, its value; the slot is `graph.constant_slots[i]`. Runs store clones.
    pub(crate) constants: Vec<Py<PyAny>>,
    /// Per outer slot, its context key.
    pub(crate) outer_keys: Vec<i64>,
    /// Per node, an optional error handler: when the node raises an `Exception`, the
    /// handler is called with it and the exception it returns is raised.
    pub(crate) error_handlers: Vec<Option<Py<PyAny>>>,
    /// Some node (here or in a body) runs in thread or async mode.
    pub(crate) concurrent: bool,
}

#[pymethods]
impl Plan {
    /// Reads the arguments (attached to the interpreter), then validates and builds the
    /// graph detached from it, as that is pure Rust work linear in the plan's size.
    #[new]
    #[allow(clippy::too_many_arguments)] // the Python constructor's keyword arguments
    #[pyo3(signature = (n_slots, nodes, input_slots, output_slots, constants = None, priorities = None, error_handlers = None, outer = None))]
    fn new(
        py: Python<'_>,
        n_slots: &Bound<'_, PyAny>,
        nodes: &Bound<'_, PyAny>,
        input_slots: &Bound<'_, PyAny>,
        output_slots: &Bound<'_, PyAny>,
        constants: Option<&Bound<'_, PyAny>>,
        priorities: Option<&Bound<'_, PyAny>>,
        error_handlers: Option<&Bound<'_, PyAny>>,
        outer: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self, KernelError> {
        let mut spec = GraphSpec { n_slots: int(n_slots, Site::NSlots)?, ..GraphSpec::default() };
        let mut ops = Vec::new();
        for (node, entry) in items(nodes, Site::Nodes)?.into_iter().enumerate() {
            let site = Site::Node(node);
            let [op, inputs, outputs] =
                fields::<3>(&entry, site, "an (op, input_slots, output_slots) tuple")?;
            let inputs = ints(&inputs, site, |position| Site::NodeInput { node, position })?;
            let outputs = ints(&outputs, site, |position| Site::NodeOutput { node, position })?;
            let op = parse_op(node, &op, inputs.len())?;
            check_op_shape(node, &op, inputs.len(), outputs.len())?;
            ops.push(op);
            spec.nodes.push(NodeSlots { inputs, outputs });
        }
        spec.input_slots = ints(input_slots, Site::InputSlots, Site::InputSlot)?;
        spec.output_slots = ints(output_slots, Site::OutputSlots, Site::OutputSlot)?;
        let mut constant_values = Vec::new();
        if let Some(constants) = constants {
            for (i, entry) in items(constants, Site::Constants)?.into_iter().enumerate() {
                let site = Site::Constant(i);
                let [slot, value] = fields::<2>(&entry, site, "a (slot, value) tuple")?;
                spec.constant_slots.push(int(&slot, site)?);
                constant_values.push(value.unbind());
            }
        }
        let mut outer_keys = Vec::new();
        if let Some(outer) = outer {
            for (i, entry) in
                items(outer, Site::OuterSlot(i64::MAX as usize))?.into_iter().enumerate()
            {
                let site = Site::OuterSlot(i);
                let [slot, key] = fields::<2>(&entry, site, "a (slot, key) tuple")?;
                spec.outer_slots.push(int(&slot, site)?);
                outer_keys.push(int(&key, site)?);
            }
        }
        if let Some(priorities) = priorities {
            spec.priorities = Some(ints(priorities, Site::Priorities, Site::Priority)?);
        }
        let mut handlers: Vec<Option<Py<PyAny>>> = (0..ops.len()).map(|_| None).collect();
        if let Some(given) = error_handlers {
            let given = items(given, Site::ErrorHandlers)?;
            if given.len() != ops.len() {
                return Err(KernelError::Malformed {
                    site: Site::ErrorHandlers,
                    detail: format!("expected one per node ({}), got {}", ops.len(), given.len()),
                });
            }
            for (node, handler) in given.into_iter().enumerate() {
                if handler.is_none() {
                    continue;
                }
                if !handler.is_callable() {
                    return Err(KernelError::Malformed {
                        site: Site::ErrorHandlers,
                        detail: format!(
                            "node {node}: expected a callable or None, got {}",
                            type_name(&handler)
                        ),
                    });
                }
                handlers[node] = Some(handler.unbind());
            }
        }
        let concurrent = ops.iter().any(|op| match op {
            Op::Call { mode, .. } => *mode != Mode::Inline,
            other => other.bodies().iter().any(|body| body.get().concurrent),
        });
        let graph = py.detach(|| Graph::build(&spec))?;
        Ok(Plan {
            graph,
            ops,
            constants: constant_values,
            outer_keys,
            error_handlers: handlers,
            concurrent,
        })
    }

    /// Runs the plan once on `inputs` and returns the values of the output slots.
    ///
    /// Args:
    ///     inputs: one value per input slot.
    ///     context: the `Context` outer slots are read from (default: empty).
    ///     driver: `driver(sink)` returns an object with `spawn(batch)` (`batch` is a list
    ///         of `(token, awaitable)`; each result goes to `sink.ok(token, value)` or
    ///         `sink.err(token, exc)`) and `cancel()`. Required if an async node runs.
    ///     workers: threads of the worker pool for thread-mode nodes (default: the
    ///         number of CPUs); started only when a thread-mode node runs.
    ///     max_concurrency: most async calls in flight at once (default 256).
    ///     contextvars: a `contextvars.Context`; worker threads run each call in a copy.
    ///     on_stop: `on_stop(running)` is called once when an interrupted run starts
    ///         waiting for `running` thread-mode calls, which cannot be stopped (a second
    ///         interrupt abandons them).
    #[pyo3(signature = (inputs, *, context = None, driver = None, workers = None, max_concurrency = 256, contextvars = None, on_stop = None))]
    #[allow(clippy::too_many_arguments)] // the Python method's keyword arguments
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Bound<'py, PyAny>>,
        context: Option<&Bound<'py, Context>>,
        driver: Option<Bound<'py, PyAny>>,
        workers: Option<usize>,
        max_concurrency: usize,
        contextvars: Option<Bound<'py, PyAny>>,
        on_stop: Option<Bound<'py, PyAny>>,
    ) -> Result<Bound<'py, PyList>, KernelError> {
        let options = RunOptions {
            context: context
                .map(|c| c.get().values().clone())
                .unwrap_or_else(crate::context::empty),
            driver,
            workers: workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
            }),
            max_concurrency: max_concurrency.max(1),
            contextvars,
            on_stop,
        };
        execute(py, self, inputs, options)
    }

    /// Number of nodes.
    #[getter]
    fn n_nodes(&self) -> usize {
        self.graph.n_nodes()
    }

    /// Number of slots.
    #[getter]
    fn n_slots(&self) -> usize {
        self.graph.n_slots()
    }

    /// Whether some node (here or in a body) runs in thread or async mode, so a run may
    /// need a driver, workers and a `contextvars` context.
    #[getter]
    fn concurrent(&self) -> bool {
        self.concurrent
    }

    fn __repr__(&self) -> String {
        format!(
            "<namu._kernel.Plan: {} nodes, {} slots>",
            self.graph.n_nodes(),
            self.graph.n_slots()
        )
    }

    /// Lets the cycle collector see the callables, constants and bodies, so a plan whose
    /// callable refers back to the plan can be collected. (A frozen class has no
    /// `__clear__`; the collector breaks such cycles by clearing the functions and cells
    /// instead.)
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for op in &self.ops {
            op.visit(&visit)?;
        }
        for value in &self.constants {
            visit.call(value)?;
        }
        for handler in self.error_handlers.iter().flatten() {
            visit.call(handler)?;
        }
        Ok(())
    }
}

/// Parses a node's op: a callable (an inline call), or a tuple `(kind, ...)`:
/// `("call", callable, "inline" | "thread" | "async")`, `("native", name)`,
/// `("map", body, keys, flatten, on_item_error, on_start, on_item_done)`,
/// `("if", then_branch, else_branch, keys)`, `("loop", body, n_carried, keys)`,
/// `("function", body)` or `("seq", steps)` (see [`parse_seq`]). `n_inputs` is the node's
/// input count.
fn parse_op(node: usize, op: &Bound<'_, PyAny>, n_inputs: usize) -> Result<Op, KernelError> {
    let site = Site::Node(node);
    if op.is_callable() && op.cast::<PyTuple>().is_err() {
        return Ok(Op::Call { callable: op.clone().unbind(), mode: Mode::Inline });
    }
    let Ok(tuple) = op.cast::<PyTuple>() else {
        return Err(KernelError::NotCallable { node, type_name: type_name(op) });
    };
    let parts: Vec<Bound<'_, PyAny>> = tuple.iter().collect();
    let kind: String = match parts.first().map(|k| k.extract::<String>()) {
        Some(Ok(kind)) => kind,
        _ => return Err(expected(site, "an op tuple starting with its kind (a str)", op)),
    };
    let arity = |n: usize| -> Result<(), KernelError> {
        if parts.len() == n {
            Ok(())
        } else {
            Err(KernelError::Malformed {
                site,
                detail: format!("a {kind:?} op has {} fields, got {}", n, parts.len()),
            })
        }
    };
    let plan = |obj: &Bound<'_, PyAny>| -> Result<Py<Plan>, KernelError> {
        obj.cast::<Plan>().map(|p| p.clone().unbind()).map_err(|_| expected(site, "a Plan", obj))
    };
    let hook = |obj: &Bound<'_, PyAny>| -> Result<Option<Py<PyAny>>, KernelError> {
        if obj.is_none() {
            Ok(None)
        } else if obj.is_callable() {
            Ok(Some(obj.clone().unbind()))
        } else {
            Err(expected(site, "a callable or None", obj))
        }
    };
    let keys = |obj: &Bound<'_, PyAny>| ints(obj, site, |_| site);
    Ok(match kind.as_str() {
        "call" => {
            arity(3)?;
            if !parts[1].is_callable() {
                return Err(KernelError::NotCallable { node, type_name: type_name(&parts[1]) });
            }
            let mode = match parts[2].extract::<String>().as_deref() {
                Ok("inline") => Mode::Inline,
                Ok("thread") => Mode::Thread,
                Ok("async") => Mode::Async,
                _ => {
                    return Err(expected(site, "a mode: 'inline', 'thread' or 'async'", &parts[2]));
                }
            };
            Op::Call { callable: parts[1].clone().unbind(), mode }
        }
        "native" => {
            arity(2)?;
            Op::Native(native_op(site, &parts[1])?)
        }
        "map" => {
            arity(7)?;
            Op::Map(MapOp {
                body: plan(&parts[1])?,
                keys: keys(&parts[2])?,
                flatten: parts[3].is_truthy()?,
                on_item_error: hook(&parts[4])?,
                on_start: hook(&parts[5])?,
                on_item_done: hook(&parts[6])?,
            })
        }
        "if" => {
            arity(4)?;
            Op::If {
                then_branch: plan(&parts[1])?,
                else_branch: plan(&parts[2])?,
                keys: keys(&parts[3])?,
            }
        }
        "loop" => {
            arity(4)?;
            let n_carried = usize::try_from(int(&parts[2], site)?)
                .map_err(|_| expected(site, "a non-negative carried count", &parts[2]))?;
            Op::Loop { body: plan(&parts[1])?, n_carried, keys: keys(&parts[3])? }
        }
        "function" => {
            arity(2)?;
            Op::Function { body: plan(&parts[1])? }
        }
        "seq" => {
            arity(2)?;
            Op::Seq(parse_seq(node, &parts[1], n_inputs)?)
        }
        other => {
            return Err(KernelError::Malformed {
                site,
                detail: format!("unknown op kind {other:?}"),
            });
        }
    })
}

/// The native op named `name` (a `str` such as `"add"`).
fn native_op(site: Site, name: &Bound<'_, PyAny>) -> Result<NativeOp, KernelError> {
    let text: String = name.extract().map_err(|_| expected(site, "an op name", name))?;
    NativeOp::from_name(&text).ok_or_else(|| KernelError::Malformed {
        site,
        detail: format!("unknown native op {text:?}"),
    })
}

/// Parses the steps of a `("seq", steps)` op: a non-empty list of `(op, args, handler)`
/// tuples, where `op` is a callable or `("native", name)`, `args` lists value indices
/// (`0 .. n_inputs` the node's inputs, `n_inputs + j` the result of step `j`; step `k` may
/// read only values defined before it) and `handler` is a callable or `None`.
fn parse_seq(node: usize, obj: &Bound<'_, PyAny>, n_inputs: usize) -> Result<SeqOp, KernelError> {
    let site = Site::Node(node);
    let malformed = |detail: String| KernelError::Malformed { site, detail };
    let entries = items(obj, site)?;
    if entries.is_empty() {
        return Err(malformed("a seq op needs at least one step".into()));
    }
    let mut ops = Vec::with_capacity(entries.len());
    let mut args = Vec::with_capacity(entries.len());
    let mut handlers = Vec::with_capacity(entries.len());
    for (k, entry) in entries.iter().enumerate() {
        let [op, refs, handler] =
            fields::<3>(entry, site, "a seq step: an (op, args, error_handler) tuple")?;
        let defined = n_inputs + k;
        let mut step_args = Vec::new();
        for (j, value) in ints(&refs, site, |_| site)?.into_iter().enumerate() {
            match u32::try_from(value) {
                Ok(index) if (index as usize) < defined => step_args.push(index),
                _ => {
                    return Err(malformed(format!(
                        "seq step {k} argument {j} reads value {value}, but only values 0..{defined} \
                         are defined before it ({n_inputs} node inputs, then {k} earlier steps)"
                    )));
                }
            }
        }
        let op = if let Ok(tuple) = op.cast::<PyTuple>() {
            let native = match (tuple.len(), tuple.get_item(0).and_then(|k| k.extract::<String>()))
            {
                (2, Ok(kind)) if kind == "native" => native_op(site, &tuple.get_item(1)?)?,
                _ => {
                    return Err(expected(
                        site,
                        "a seq step op: a callable or ('native', name)",
                        &op,
                    ));
                }
            };
            match native.arity() {
                Some(a) if a != step_args.len() => {
                    return Err(malformed(format!(
                        "seq step {k}: native op {native:?} takes {a} inputs, got {}",
                        step_args.len()
                    )));
                }
                _ => StepOp::Native(native),
            }
        } else if op.is_callable() {
            StepOp::Call(op.unbind())
        } else {
            return Err(KernelError::NotCallable { node, type_name: type_name(&op) });
        };
        let handler = if handler.is_none() {
            None
        } else if handler.is_callable() {
            Some(handler.unbind())
        } else {
            return Err(expected(site, "a seq step error handler: a callable or None", &handler));
        };
        ops.push(op);
        args.push(step_args);
        handlers.push(handler);
    }
    let frees = last_uses(n_inputs, &args);
    let steps = ops
        .into_iter()
        .zip(args)
        .zip(handlers)
        .zip(frees)
        .map(|(((op, args), handler), frees)| Step { op, args, handler, frees })
        .collect();
    Ok(SeqOp { steps })
}

/// Checks a node's input and output counts against its op (and its bodies' signatures).
fn check_op_shape(node: usize, op: &Op, n_in: usize, n_out: usize) -> Result<(), KernelError> {
    let fail = |detail: String| Err(KernelError::Malformed { site: Site::Node(node), detail });
    let sig = |p: &Py<Plan>| {
        let g = &p.get().graph;
        (g.input_slots.len(), g.output_slots.len())
    };
    match op {
        Op::Call { .. } | Op::Seq(_) => Ok(()),
        Op::Native(native) => match native.arity() {
            Some(a) if a != n_in => {
                fail(format!("native op {native:?} takes {a} inputs, got {n_in}"))
            }
            _ if n_out != 1 => fail(format!("native op {native:?} has one output, got {n_out}")),
            _ => Ok(()),
        },
        Op::Map(map) => {
            let (b_in, b_out) = sig(&map.body);
            if n_in != 1 + map.keys.len() {
                fail(format!(
                    "a map node takes the sequence and one input per key; got {n_in} inputs for {} keys",
                    map.keys.len()
                ))
            } else if b_in != 1 {
                fail(format!("a map body takes one input (the item), got {b_in}"))
            } else if n_out > 1 || (n_out == 1 && b_out == 0) {
                fail(format!(
                    "a map node has at most one output and needs a body output for it; got {n_out} outputs, body has {b_out}"
                ))
            } else {
                Ok(())
            }
        }
        Op::If { then_branch, else_branch, keys } => {
            let (t_in, t_out) = sig(then_branch);
            let (e_in, e_out) = sig(else_branch);
            if n_in != 1 + keys.len() {
                fail(format!(
                    "an if node takes the condition and one input per key; got {n_in} inputs for {} keys",
                    keys.len()
                ))
            } else if t_in != 0 || e_in != 0 || t_out != n_out || e_out != n_out {
                fail(format!(
                    "if branches take no inputs and have one output per node output ({n_out}); got then ({t_in} in, {t_out} out), else ({e_in} in, {e_out} out)"
                ))
            } else {
                Ok(())
            }
        }
        Op::Loop { body, n_carried, keys } => {
            let (b_in, b_out) = sig(body);
            if n_in != 2 + n_carried + keys.len() {
                fail(format!(
                    "a loop node takes trip count, condition, {n_carried} carried and {} captured inputs; got {n_in}",
                    keys.len()
                ))
            } else if b_in != 2 + n_carried || b_out < 1 + n_carried || n_out != *n_carried {
                fail(format!(
                    "a loop body takes (iteration, condition, carried...) and returns (condition, carried...); got {b_in} inputs, {b_out} outputs for {n_carried} carried values and {n_out} node outputs"
                ))
            } else {
                Ok(())
            }
        }
        Op::Function { body } => {
            let (b_in, b_out) = sig(body);
            if b_in != n_in || b_out != n_out {
                fail(format!(
                    "a function node's inputs and outputs match its body's ({b_in} in, {b_out} out); got {n_in} in, {n_out} out"
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// The items of the sequence `obj` (any iterable; a `str` is rejected as it is almost
/// certainly a mistake).
fn items<'py>(obj: &Bound<'py, PyAny>, site: Site) -> Result<Vec<Bound<'py, PyAny>>, KernelError> {
    if let Ok(list) = obj.cast::<PyList>() {
        return Ok(list.iter().collect());
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return Ok(tuple.iter().collect());
    }
    if obj.is_instance_of::<pyo3::types::PyString>() {
        return Err(expected(site, "a list", obj));
    }
    match obj.try_iter() {
        Ok(iter) => Ok(iter.collect::<PyResult<Vec<_>>>()?),
        Err(_) => Err(expected(site, "a list", obj)),
    }
}

/// The `N` fields of the tuple or list `obj`, which must have exactly `N` items.
fn fields<'py, const N: usize>(
    obj: &Bound<'py, PyAny>,
    site: Site,
    what: &str,
) -> Result<[Bound<'py, PyAny>; N], KernelError> {
    let values: Vec<Bound<'py, PyAny>> = if let Ok(tuple) = obj.cast::<PyTuple>() {
        tuple.iter().collect()
    } else if let Ok(list) = obj.cast::<PyList>() {
        list.iter().collect()
    } else {
        return Err(expected(site, what, obj));
    };
    let got = values.len();
    <[Bound<'py, PyAny>; N]>::try_from(values).map_err(|_| KernelError::Malformed {
        site,
        detail: format!("expected {what}, got a {} of length {got}", type_name(obj)),
    })
}

/// The items of `obj` as integers; `entry(i)` names item `i` in messages.
fn ints(
    obj: &Bound<'_, PyAny>,
    site: Site,
    entry: impl Fn(usize) -> Site,
) -> Result<Vec<i64>, KernelError> {
    items(obj, site)?.iter().enumerate().map(|(i, item)| int(item, entry(i))).collect()
}

/// `obj` as an `i64` (anything with `__index__`). Too large an integer is a
/// [`KernelError::Malformed`] naming the value, never an overflow panic.
fn int(obj: &Bound<'_, PyAny>, site: Site) -> Result<i64, KernelError> {
    match obj.extract::<i64>() {
        Ok(value) => Ok(value),
        Err(err) if err.is_instance_of::<PyOverflowError>(obj.py()) => {
            Err(KernelError::Malformed {
                site,
                detail: format!(
                    "{} is out of range",
                    obj.str().map(|s| s.to_string()).unwrap_or_default()
                ),
            })
        }
        Err(_) => Err(expected(site, "an int", obj)),
    }
}

/// A [`KernelError::Malformed`] saying `site` should be `what` but is `obj`'s type.
fn expected(site: Site, what: &str, obj: &Bound<'_, PyAny>) -> KernelError {
    KernelError::Malformed { site, detail: format!("expected {what}, got '{}'", type_name(obj)) }
}

#[cfg(test)]
mod tests {
    use super::last_uses;

    #[test]
    fn a_chain_releases_each_value_after_its_one_reader() {
        // x -> s0 -> s1 -> s2: step k releases value k; the last result is kept.
        assert_eq!(last_uses(1, &[vec![0], vec![1], vec![2]]), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn values_live_until_their_last_reader_and_unread_results_go_at_once() {
        // s0(x), s1(x) (unread), s2(s0, s0): x goes after s1, s1's result right away.
        assert_eq!(
            last_uses(1, &[vec![0], vec![0], vec![1, 1]]),
            vec![vec![], vec![0, 2], vec![1]]
        );
        // Unread inputs are not listed; a single step frees nothing of its own.
        assert_eq!(last_uses(2, &[vec![1]]), vec![vec![1]]);
        assert_eq!(last_uses(0, &[vec![]]), vec![Vec::<u32>::new()]);
    }
}
