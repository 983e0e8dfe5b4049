//! `namu._kernel.Plan`: the Python-facing executable graph.

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3::{PyTraverseError, PyVisit};

use crate::context::Context;
use crate::dispatch::native::NativeOp;
use crate::dispatch::type_name;
use crate::error::{KernelError, Site};
use crate::scheduler::engine::{RunOptions, execute};
use crate::scheduler::extract::{fields, int, ints, items};
use crate::scheduler::graph::{Graph, GraphSpec, NodeSlots};
use crate::scheduler::ops::{Call, Function, If, Loop, Map, Mode, Native, Seq, SeqStep, StepOp, Try};

/// What a node does: its op descriptor (see [`crate::scheduler::ops`]), as the run loop
/// reads it.
pub enum Op {
    /// Call a Python callable with the node's inputs (a bare callable is an inline call).
    Call(Call),
    /// A builtin op evaluated without a Python-level call.
    Native(NativeOp),
    /// Fan-out: run the body once per item of input 0, each in its own forked context.
    Map(Py<Map>),
    /// Run one branch depending on the truth of input 0.
    If(Py<If>),
    /// ONNX `Loop`: inputs are (trip count or None, condition or None, carried..., captured...).
    Loop(Py<Loop>),
    /// Call a function body: the node's inputs are the body's inputs, its outputs the
    /// body's outputs.
    Function(Py<Function>),
    /// A catch region: run the body; on an exception, the handler on it.
    Try(Py<Try>),
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

/// One step of a [`SeqOp`]: its descriptor, checked against the node, and the values it
/// releases.
pub struct Step {
    /// What the step runs, on which values, with which error handler.
    pub op: Py<SeqStep>,
    /// Values whose last reader is this step (its own result too, if nothing reads it and
    /// it is not the last step): released right after it ran.
    pub frees: Vec<u32>,
}

/// For steps reading `args` (value indices; the node has `n_inputs` inputs), the values
/// each step is the last reader of. A step result no later step reads is released by the
/// step itself, except the last step's (the node's result). Node inputs nobody reads are
/// not listed: the frame holds them anyway.
pub fn last_uses<A: AsRef<[u32]>>(n_inputs: usize, args: &[A]) -> Vec<Vec<u32>> {
    let n_values = n_inputs + args.len();
    let mut last: Vec<Option<usize>> = vec![None; n_values];
    for (k, step_args) in args.iter().enumerate() {
        for &value in step_args.as_ref() {
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

impl Op {
    /// The plans this op runs as children.
    fn bodies(&self) -> Vec<&Py<Plan>> {
        match self {
            Op::Call(_) | Op::Native(_) | Op::Seq(_) => vec![],
            Op::Map(map) => vec![&map.get().body],
            Op::If(branch) => vec![&branch.get().then_branch, &branch.get().else_branch],
            Op::Loop(op) => vec![&op.get().body],
            Op::Function(op) => op.get().body().into_iter().collect(),
            Op::Try(op) => vec![&op.get().body, &op.get().handler],
        }
    }

    /// The Python objects the op holds, for the cycle collector.
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Op::Call(call) => visit.call(&call.callable)?,
            Op::Native(_) => {}
            Op::Map(op) => visit.call(op)?,
            Op::If(op) => visit.call(op)?,
            Op::Loop(op) => visit.call(op)?,
            Op::Function(op) => visit.call(op)?,
            Op::Try(op) => visit.call(op)?,
            Op::Seq(seq) => {
                for step in &seq.steps {
                    visit.call(&step.op)?;
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
/// or node output. Nodes run once their inputs are available, highest priority first (in a
/// concurrent plan; an inline one ignores priorities), ties in program order. The plan is
/// immutable: runs share nothing but the plan, so they may nest and may run on
/// several threads at once.
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
            Op::Call(call) => call.mode != Mode::Inline,
            // A body defined later (recursion) may run anything: plan for concurrency.
            Op::Function(function) if function.get().body().is_none() => true,
            other => other.bodies().iter().any(|body| body.get().concurrent),
        });
        let mut graph = py.detach(|| Graph::build(&spec))?;
        if !concurrent {
            // One node runs at a time, so no order finishes sooner: keep program order,
            // and with it the order of side effects.
            graph.priorities.fill(0);
        }
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
    ///     recursion_limit: most function calls nested in one another (default 1000,
    ///         Python's own); a deeper call raises `RecursionError`.
    #[pyo3(signature = (inputs, *, context = None, driver = None, workers = None, max_concurrency = 256, contextvars = None, on_stop = None, recursion_limit = 1000))]
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
        recursion_limit: u32,
    ) -> Result<Bound<'py, PyList>, KernelError> {
        let options = RunOptions {
            context: context
                .map(|c| c.get().values().clone())
                .unwrap_or_else(crate::context::empty),
            driver,
            workers: workers.unwrap_or_else(default_workers),
            max_concurrency: max_concurrency.max(1),
            contextvars,
            on_stop,
            recursion_limit,
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

    /// Whether the ready queue orders this plan's nodes by the `priorities` given: some
    /// priority is non-zero and the plan is [`Plan::concurrent`] (an inline plan runs one
    /// node at a time, in program order).
    #[getter]
    fn prioritized(&self) -> bool {
        self.graph.priorities.iter().any(|&p| p != 0)
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

/// A node's op: a callable (an inline call) or an op descriptor (see
/// [`crate::scheduler::ops`]). A `Seq` is checked against the node's `n_inputs` inputs.
fn parse_op(node: usize, op: &Bound<'_, PyAny>, n_inputs: usize) -> Result<Op, KernelError> {
    let py = op.py();
    Ok(if op.is_callable() {
        Op::Call(Call { callable: op.clone().unbind(), mode: Mode::Inline })
    } else if let Ok(call) = op.cast::<Call>() {
        Op::Call(call.get().clone_ref(py))
    } else if let Ok(native) = op.cast::<Native>() {
        Op::Native(native.get().op)
    } else if let Ok(map) = op.cast::<Map>() {
        Op::Map(map.clone().unbind())
    } else if let Ok(branch) = op.cast::<If>() {
        Op::If(branch.clone().unbind())
    } else if let Ok(body) = op.cast::<Loop>() {
        Op::Loop(body.clone().unbind())
    } else if let Ok(function) = op.cast::<Function>() {
        Op::Function(function.clone().unbind())
    } else if let Ok(region) = op.cast::<Try>() {
        Op::Try(region.clone().unbind())
    } else if let Ok(seq) = op.cast::<Seq>() {
        Op::Seq(seq_op(py, node, seq.get(), n_inputs)?)
    } else {
        return Err(KernelError::NotAnOp { node, type_name: type_name(op) });
    })
}

/// The steps of `seq` checked against node `node` with `n_inputs` inputs: step `k` may read
/// only values defined before it (`0 .. n_inputs + k`), and a native step gets as many
/// arguments as its op takes.
fn seq_op(py: Python<'_>, node: usize, seq: &Seq, n_inputs: usize) -> Result<SeqOp, KernelError> {
    let malformed = |detail: String| KernelError::Malformed { site: Site::Node(node), detail };
    for (k, step) in seq.steps.iter().enumerate() {
        let step = step.get();
        let defined = n_inputs + k;
        if let Some((j, value)) =
            step.args.iter().enumerate().find(|&(_, &v)| v as usize >= defined)
        {
            return Err(malformed(format!(
                "seq step {k} argument {j} reads value {value}, but only values 0..{defined} \
                 are defined before it ({n_inputs} node inputs, then {k} earlier steps)"
            )));
        }
        if let StepOp::Native(native) = step.op {
            if let Some(arity) = native.arity().filter(|&a| a != step.args.len()) {
                return Err(malformed(format!(
                    "seq step {k}: native op {:?} takes {arity} inputs, got {}",
                    native.name(),
                    step.args.len()
                )));
            }
        }
    }
    let args: Vec<&[u32]> = seq.steps.iter().map(|step| step.get().args.as_slice()).collect();
    let frees = last_uses(n_inputs, &args);
    let steps = seq
        .steps
        .iter()
        .zip(frees)
        .map(|(step, frees)| Step { op: step.clone_ref(py), frees })
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
        Op::Call(_) | Op::Seq(_) => Ok(()),
        Op::Native(native) => match native.arity() {
            Some(a) if a != n_in => {
                fail(format!("native op {:?} takes {a} inputs, got {n_in}", native.name()))
            }
            _ if n_out != 1 => {
                fail(format!("native op {:?} has one output, got {n_out}", native.name()))
            }
            _ => Ok(()),
        },
        Op::Map(map) => {
            let map = map.get();
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
        Op::If(branch) => {
            let If { then_branch, else_branch, keys } = branch.get();
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
        Op::Loop(op) => {
            let Loop { body, n_carried, keys } = op.get();
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
        Op::Function(op) => {
            let (b_in, b_out) = op.get().signature();
            if b_in != n_in || b_out != n_out {
                fail(format!(
                    "a function node's inputs and outputs match its body's ({b_in} in, {b_out} out); got {n_in} in, {n_out} out"
                ))
            } else {
                Ok(())
            }
        }
        Op::Try(op) => {
            let Try { body, handler, keys } = op.get();
            let (b_in, b_out) = sig(body);
            let (h_in, h_out) = sig(handler);
            if n_in != keys.len() {
                fail(format!(
                    "a try node takes one input per key; got {n_in} inputs for {} keys",
                    keys.len()
                ))
            } else if b_in != 0 || h_in != 1 || b_out != n_out || h_out != n_out {
                fail(format!(
                    "a try body takes no inputs and its handler one (the exception), both with one output per node output ({n_out}); got body ({b_in} in, {b_out} out), handler ({h_in} in, {h_out} out)"
                ))
            } else {
                Ok(())
            }
        }
    }
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

/// The worker count of a run that names none: the CPUs this process may use, asked once
/// (the standard library reads the cgroup quota files on every call).
fn default_workers() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
}
