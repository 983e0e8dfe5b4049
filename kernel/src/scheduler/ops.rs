//! The op descriptors: what a node of a [`Plan`] does, as it crosses from Python into Rust.
//!
//! A node's op is a Python callable (an inline call) or one of these frozen classes of
//! `namu._kernel`, documented one by one in `namu/_kernel.pyi` (as pydantic-core's
//! `core_schema.py` documents every structure its validators accept). Each checks its own
//! arguments when it is made, so a malformed op fails where it is written, naming its class
//! and argument (`Map.on_start: expected a callable or None, got 'int'`); `Plan(...)` then
//! checks each against its node: input and output counts, body signatures, and the values
//! a `Seq` step reads.
//!
//! | descriptor                        | the node                                                 |
//! |-----------------------------------|----------------------------------------------------------|
//! | a callable `f`                    | calls `f(*inputs)` in the run loop                       |
//! | `Call(fn, mode)`                  | calls `fn(*inputs)` inline, on the worker pool, or awaits it |
//! | `Native(name)`                    | evaluates a builtin op (`NATIVE_OPS`) without a Python call |
//! | `Map(body, keys, flatten, on_item_error, on_start, on_item_done)` | runs `body` once per item of input 0 |
//! | `If(then_branch, else_branch, keys)` | runs one branch, on the truth of input 0              |
//! | `Loop(body, n_carried, keys)`     | ONNX `Loop`: runs `body` while the trip count and condition allow |
//! | `Function(body)`, `Function.declare(n_in, n_out)` | runs `body` on the node's inputs (a declared body comes later, for recursion) |
//! | `Try(body, handler, keys)`        | runs `body`; on an exception, `handler` on it            |
//! | `Seq(steps)`, `SeqStep(op, args, error_handler)` | runs a fused chain of calls straight-line  |
//!
//! `keys` are the context keys of a node's captured inputs (those after the op's own): the
//! node sets them in a fork of its frame's context, where its bodies' `outer` slots read them.

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{PyTraverseError, PyVisit};

use crate::dispatch::native::NativeOp;
use crate::error::{KernelError, Site};
use crate::scheduler::extract::{callable_or_none, expected, int, ints, items, plan};
use crate::scheduler::plan::Plan;

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

impl Mode {
    /// The mode's name in `Call(fn, mode)`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Inline => "inline",
            Mode::Thread => "thread",
            Mode::Async => "async",
        }
    }

    /// The mode named `name`, if there is one.
    fn from_name(name: &str) -> Option<Mode> {
        [Mode::Inline, Mode::Thread, Mode::Async].into_iter().find(|mode| mode.name() == name)
    }
}

/// `Call(fn, mode="inline")`: the node calls `fn` with its inputs as positional arguments.
/// `mode` is `"inline"` (in the run loop), `"thread"` (on the run's worker pool) or
/// `"async"` (`fn` returns an awaitable, which the run's driver awaits).
#[pyclass(frozen, module = "namu._kernel", name = "Call")]
pub struct Call {
    /// The callable.
    pub callable: Py<PyAny>,
    /// How it runs.
    pub mode: Mode,
}

impl Call {
    /// A copy holding its own reference to the callable.
    pub fn clone_ref(&self, py: Python<'_>) -> Call {
        Call { callable: self.callable.clone_ref(py), mode: self.mode }
    }
}

#[pymethods]
impl Call {
    #[new]
    #[pyo3(signature = (r#fn, mode = None), text_signature = "(fn, mode='inline')")]
    fn new(r#fn: &Bound<'_, PyAny>, mode: Option<&Bound<'_, PyAny>>) -> Result<Self, KernelError> {
        if !r#fn.is_callable() {
            return Err(expected(field("Call", "fn"), "a callable", r#fn));
        }
        let mode = match mode {
            None => Mode::Inline,
            Some(mode) => {
                mode.extract::<String>().ok().and_then(|name| Mode::from_name(&name)).ok_or_else(
                    || expected(field("Call", "mode"), "'inline', 'thread' or 'async'", mode),
                )?
            }
        };
        Ok(Call { callable: r#fn.clone().unbind(), mode })
    }

    /// The callable.
    #[getter]
    fn r#fn(&self, py: Python<'_>) -> Py<PyAny> {
        self.callable.clone_ref(py)
    }

    /// `"inline"`, `"thread"` or `"async"`.
    #[getter]
    fn mode(&self) -> &'static str {
        self.mode.name()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        repr_of(slf.as_any(), "Call", &["fn", "mode"])
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.callable)
    }
}

/// `Native(name)`: the node evaluates the builtin op `name` (one of `NATIVE_OPS`) through
/// CPython's C API, without a Python-level call. Equal names make equal descriptors.
#[pyclass(frozen, eq, hash, module = "namu._kernel", name = "Native")]
#[derive(PartialEq, Eq, Hash)]
pub struct Native {
    /// The op.
    pub op: NativeOp,
}

#[pymethods]
impl Native {
    #[new]
    fn new(name: &Bound<'_, PyAny>) -> Result<Self, KernelError> {
        let site = field("Native", "name");
        let text: String = name.extract().map_err(|_| expected(site, "an op name", name))?;
        let op = NativeOp::from_name(&text).ok_or_else(|| KernelError::Malformed {
            site,
            detail: format!("unknown native op {text:?} (see namu._kernel.NATIVE_OPS)"),
        })?;
        Ok(Native { op })
    }

    /// The op's name.
    #[getter]
    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        repr_of(slf.as_any(), "Native", &["name"])
    }
}

/// `Map(body, keys=(), flatten=False, on_item_error=None, on_start=None,
/// on_item_done=None)`: fan-out. The node's inputs are a sequence, then one captured value
/// per key; it runs `body` (one input: the item) once per item, each in its own forked
/// context, and its one output (if any) is the list of the items' first outputs.
#[pyclass(frozen, module = "namu._kernel", name = "Map")]
pub struct Map {
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

impl Map {
    /// The hooks that are set.
    fn hooks(&self) -> impl Iterator<Item = &Py<PyAny>> {
        [&self.on_item_error, &self.on_start, &self.on_item_done].into_iter().flatten()
    }
}

#[pymethods]
impl Map {
    #[new]
    #[pyo3(signature = (body, keys = None, flatten = None, on_item_error = None, on_start = None, on_item_done = None),
           text_signature = "(body, keys=(), flatten=False, on_item_error=None, on_start=None, on_item_done=None)")]
    fn new(
        body: &Bound<'_, PyAny>,
        keys: Option<&Bound<'_, PyAny>>,
        flatten: Option<&Bound<'_, PyAny>>,
        on_item_error: Option<&Bound<'_, PyAny>>,
        on_start: Option<&Bound<'_, PyAny>>,
        on_item_done: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self, KernelError> {
        let hook = |obj: Option<&Bound<'_, PyAny>>, name| match obj {
            Some(obj) => callable_or_none(obj, field("Map", name)),
            None => Ok(None),
        };
        let flatten = match flatten {
            None => false,
            Some(flag) => flag
                .extract::<bool>()
                .map_err(|_| expected(field("Map", "flatten"), "a bool", flag))?,
        };
        Ok(Map {
            body: plan(body, field("Map", "body"))?,
            keys: optional_keys(keys, field("Map", "keys"))?,
            flatten,
            on_item_error: hook(on_item_error, "on_item_error")?,
            on_start: hook(on_start, "on_start")?,
            on_item_done: hook(on_item_done, "on_item_done")?,
        })
    }

    /// The plan run once per item.
    #[getter]
    fn body(&self, py: Python<'_>) -> Py<Plan> {
        self.body.clone_ref(py)
    }

    /// The context keys of the captured inputs.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.keys)
    }

    /// Whether the items' results are concatenated.
    #[getter]
    fn flatten(&self) -> bool {
        self.flatten
    }

    /// `on_item_error(exc, index)`, or None.
    #[getter]
    fn on_item_error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.on_item_error.as_ref().map(|hook| hook.clone_ref(py))
    }

    /// `on_start(n_items)`, or None.
    #[getter]
    fn on_start(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.on_start.as_ref().map(|hook| hook.clone_ref(py))
    }

    /// `on_item_done()`, or None.
    #[getter]
    fn on_item_done(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.on_item_done.as_ref().map(|hook| hook.clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        let fields = ["body", "keys", "flatten", "on_item_error", "on_start", "on_item_done"];
        repr_of(slf.as_any(), "Map", &fields)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.body)?;
        for hook in self.hooks() {
            visit.call(hook)?;
        }
        Ok(())
    }
}

/// `If(then_branch, else_branch, keys=())`: the node's inputs are the condition, then one
/// captured value per key; it runs `then_branch` if the condition is truthy, else
/// `else_branch` (both take no inputs and have one output per node output).
#[pyclass(frozen, module = "namu._kernel", name = "If")]
pub struct If {
    /// Run when the condition is true.
    pub then_branch: Py<Plan>,
    /// Run when it is false.
    pub else_branch: Py<Plan>,
    /// Context key of each captured input (inputs 1..).
    pub keys: Vec<i64>,
}

#[pymethods]
impl If {
    #[new]
    #[pyo3(signature = (then_branch, else_branch, keys = None), text_signature = "(then_branch, else_branch, keys=())")]
    fn new(
        then_branch: &Bound<'_, PyAny>,
        else_branch: &Bound<'_, PyAny>,
        keys: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self, KernelError> {
        Ok(If {
            then_branch: plan(then_branch, field("If", "then_branch"))?,
            else_branch: plan(else_branch, field("If", "else_branch"))?,
            keys: optional_keys(keys, field("If", "keys"))?,
        })
    }

    /// The plan run when the condition is true.
    #[getter]
    fn then_branch(&self, py: Python<'_>) -> Py<Plan> {
        self.then_branch.clone_ref(py)
    }

    /// The plan run when it is false.
    #[getter]
    fn else_branch(&self, py: Python<'_>) -> Py<Plan> {
        self.else_branch.clone_ref(py)
    }

    /// The context keys of the captured inputs.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.keys)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        repr_of(slf.as_any(), "If", &["then_branch", "else_branch", "keys"])
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.then_branch)?;
        visit.call(&self.else_branch)
    }
}

/// `Loop(body, n_carried, keys=())`: ONNX `Loop`. The node's inputs are the trip count (or
/// None), the condition (or None), `n_carried` loop-carried values, then one captured
/// value per key; its outputs are the final carried values. `body` takes (iteration,
/// condition, carried...) and returns (condition, carried...).
#[pyclass(frozen, module = "namu._kernel", name = "Loop")]
pub struct Loop {
    /// Inputs (iteration, condition, carried...); outputs (condition, carried...).
    pub body: Py<Plan>,
    /// Number of loop-carried values.
    pub n_carried: usize,
    /// Context key of each captured input.
    pub keys: Vec<i64>,
}

#[pymethods]
impl Loop {
    #[new]
    #[pyo3(signature = (body, n_carried, keys = None), text_signature = "(body, n_carried, keys=())")]
    fn new(
        body: &Bound<'_, PyAny>,
        n_carried: &Bound<'_, PyAny>,
        keys: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self, KernelError> {
        let site = field("Loop", "n_carried");
        let count = int(n_carried, site)?;
        let n_carried = usize::try_from(count).map_err(|_| KernelError::Malformed {
            site,
            detail: format!("expected a non-negative count, got {count}"),
        })?;
        Ok(Loop {
            body: plan(body, field("Loop", "body"))?,
            n_carried,
            keys: optional_keys(keys, field("Loop", "keys"))?,
        })
    }

    /// The plan run once per iteration.
    #[getter]
    fn body(&self, py: Python<'_>) -> Py<Plan> {
        self.body.clone_ref(py)
    }

    /// The number of loop-carried values.
    #[getter]
    fn n_carried(&self) -> usize {
        self.n_carried
    }

    /// The context keys of the captured inputs.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.keys)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        repr_of(slf.as_any(), "Loop", &["body", "n_carried", "keys"])
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.body)
    }
}

/// `Function(body)`: a function call. The node's inputs are the body's inputs and its
/// outputs the body's outputs; the body reads outer values from the caller's context.
///
/// A recursive function (one whose body calls it, directly or through others) is made
/// with `Function.declare(n_inputs, n_outputs)` before its body is planned, and given
/// its body once with `define(body)`: the plans of the bodies on the cycle then hold the
/// same `Function`. A run checks its nesting of function calls against its
/// `recursion_limit`.
#[pyclass(frozen, module = "namu._kernel", name = "Function")]
pub struct Function {
    /// The function body, once defined.
    body: OnceLock<Py<Plan>>,
    /// How many inputs and outputs the body has.
    signature: (usize, usize),
}

impl Function {
    /// The function body, or None before `define`.
    pub fn body(&self) -> Option<&Py<Plan>> {
        self.body.get()
    }

    /// How many inputs and outputs the body has (or will have).
    pub fn signature(&self) -> (usize, usize) {
        self.signature
    }
}

/// A plan's input and output counts.
fn plan_signature(body: &Py<Plan>) -> (usize, usize) {
    let graph = &body.get().graph;
    (graph.input_slots.len(), graph.output_slots.len())
}

#[pymethods]
impl Function {
    #[new]
    fn new(body: &Bound<'_, PyAny>) -> Result<Self, KernelError> {
        let body = plan(body, field("Function", "body"))?;
        let signature = plan_signature(&body);
        Ok(Function { body: OnceLock::from(body), signature })
    }

    /// A function whose body comes later (`define`): for a call that a body on a cycle of
    /// calls makes before the cycle's plans exist.
    #[staticmethod]
    fn declare(n_inputs: usize, n_outputs: usize) -> Self {
        Function { body: OnceLock::new(), signature: (n_inputs, n_outputs) }
    }

    /// Gives a declared function its body (once, with the declared input and output counts).
    fn define(&self, body: &Bound<'_, PyAny>) -> Result<(), KernelError> {
        let body = plan(body, field("Function", "body"))?;
        let site = field("Function", "body");
        if plan_signature(&body) != self.signature {
            let (n_in, n_out) = self.signature;
            let (b_in, b_out) = plan_signature(&body);
            return Err(KernelError::Malformed {
                site,
                detail: format!(
                    "declared with {n_in} inputs and {n_out} outputs, defined with {b_in} and {b_out}"
                ),
            });
        }
        self.body.set(body).map_err(|_| KernelError::Malformed {
            site,
            detail: "the function already has a body".into(),
        })
    }

    /// The function body (None before `define`).
    #[getter(body)]
    fn get_body(&self, py: Python<'_>) -> Option<Py<Plan>> {
        self.body.get().map(|body| body.clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        repr_of(slf.as_any(), "Function", &["body"])
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(body) = self.body.get() {
            visit.call(body)?;
        }
        Ok(())
    }
}

/// `Try(body, handler, keys=())`: a catch region. The node's inputs are one captured value
/// per key; it runs `body` (no inputs, one output per node output). If the body raises an
/// `Exception`, its other frames are stopped and `handler` runs on the exception (one
/// input, one output per node output); the outputs of whichever finished are the node's.
/// An exception the handler raises fails the node. Anything else (Ctrl+C, `SystemExit`)
/// stops the run as everywhere.
#[pyclass(frozen, module = "namu._kernel", name = "Try")]
pub struct Try {
    /// The protected region.
    pub body: Py<Plan>,
    /// Runs on the body's exception.
    pub handler: Py<Plan>,
    /// Context key of each captured input.
    pub keys: Vec<i64>,
}

#[pymethods]
impl Try {
    #[new]
    #[pyo3(signature = (body, handler, keys = None), text_signature = "(body, handler, keys=())")]
    fn new(
        body: &Bound<'_, PyAny>,
        handler: &Bound<'_, PyAny>,
        keys: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self, KernelError> {
        Ok(Try {
            body: plan(body, field("Try", "body"))?,
            handler: plan(handler, field("Try", "handler"))?,
            keys: optional_keys(keys, field("Try", "keys"))?,
        })
    }

    /// The protected region.
    #[getter]
    fn body(&self, py: Python<'_>) -> Py<Plan> {
        self.body.clone_ref(py)
    }

    /// The plan run on the body's exception.
    #[getter]
    fn handler(&self, py: Python<'_>) -> Py<Plan> {
        self.handler.clone_ref(py)
    }

    /// The context keys of the captured inputs.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.keys)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        repr_of(slf.as_any(), "Try", &["body", "handler", "keys"])
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.body)?;
        visit.call(&self.handler)
    }
}

/// What one step of a [`Seq`] runs.
pub enum StepOp {
    /// A Python callable, called through vectorcall.
    Call(Py<PyAny>),
    /// A builtin op evaluated without a Python-level call.
    Native(NativeOp),
}

/// `SeqStep(op, args=(), error_handler=None)`: one step of a [`Seq`]. `op` is a callable
/// or a `Native`; `args` are indices into the node's *values* (its inputs `0 ..
/// n_inputs - 1`, then the result of step `j` at `n_inputs + j`); when the step raises an
/// `Exception`, `error_handler(exc)` (else the node's handler) makes the exception the run
/// raises.
#[pyclass(frozen, module = "namu._kernel", name = "SeqStep")]
pub struct SeqStep {
    /// What it runs.
    pub op: StepOp,
    /// Its positional arguments, as value indices.
    pub args: Vec<u32>,
    /// Makes the exception the node fails with when the step raises.
    pub error_handler: Option<Py<PyAny>>,
}

#[pymethods]
impl SeqStep {
    #[new]
    #[pyo3(signature = (op, args = None, error_handler = None), text_signature = "(op, args=(), error_handler=None)")]
    fn new(
        op: &Bound<'_, PyAny>,
        args: Option<&Bound<'_, PyAny>>,
        error_handler: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self, KernelError> {
        let op = if let Ok(native) = op.cast::<Native>() {
            StepOp::Native(native.get().op)
        } else if op.is_callable() {
            StepOp::Call(op.clone().unbind())
        } else {
            return Err(expected(field("SeqStep", "op"), "a callable or a Native", op));
        };
        let site = field("SeqStep", "args");
        let args = optional_keys(args, site)?
            .into_iter()
            .map(|index| {
                u32::try_from(index).map_err(|_| KernelError::Malformed {
                    site,
                    detail: format!("expected value indices (0 ..= {}), got {index}", u32::MAX),
                })
            })
            .collect::<Result<Vec<u32>, KernelError>>()?;
        let error_handler = match error_handler {
            Some(handler) => callable_or_none(handler, field("SeqStep", "error_handler"))?,
            None => None,
        };
        Ok(SeqStep { op, args, error_handler })
    }

    /// The callable, or the `Native` op.
    #[getter]
    fn op(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.op {
            StepOp::Call(callable) => Ok(callable.clone_ref(py)),
            StepOp::Native(op) => Ok(Py::new(py, Native { op: *op })?.into_any()),
        }
    }

    /// The value indices passed as positional arguments.
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.args)
    }

    /// The step's error handler, or None.
    #[getter]
    fn error_handler(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.error_handler.as_ref().map(|handler| handler.clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        repr_of(slf.as_any(), "SeqStep", &["op", "args", "error_handler"])
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let StepOp::Call(callable) = &self.op {
            visit.call(callable)?;
        }
        if let Some(handler) = &self.error_handler {
            visit.call(handler)?;
        }
        Ok(())
    }
}

/// `Seq(steps)`: a fused chain (`namu.Fused`) run as one node. The steps (`SeqStep`s, at
/// least one) run one after another right in the run loop, with no ready-queue traffic in
/// between; each value is released after its last reader ran, and the last step's result
/// is the node's (spread over its outputs as a call's is).
#[pyclass(frozen, module = "namu._kernel", name = "Seq")]
pub struct Seq {
    /// The steps, in order (at least one).
    pub steps: Vec<Py<SeqStep>>,
}

#[pymethods]
impl Seq {
    #[new]
    fn new(steps: &Bound<'_, PyAny>) -> Result<Self, KernelError> {
        let site = field("Seq", "steps");
        let steps = items(steps, site)?
            .into_iter()
            .map(|step| match step.cast_into::<SeqStep>() {
                Ok(step) => Ok(step.unbind()),
                Err(err) => Err(expected(site, "a list of SeqStep", &err.into_inner())),
            })
            .collect::<Result<Vec<_>, KernelError>>()?;
        if steps.is_empty() {
            return Err(KernelError::Malformed {
                site,
                detail: "expected at least one step".into(),
            });
        }
        Ok(Seq { steps })
    }

    /// The steps, in order.
    #[getter]
    fn steps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.steps)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> Result<String, KernelError> {
        repr_of(slf.as_any(), "Seq", &["steps"])
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for step in &self.steps {
            visit.call(step)?;
        }
        Ok(())
    }
}

/// The site of argument `field` of descriptor `class`, for messages.
fn field(class: &'static str, field: &'static str) -> Site {
    Site::Field { class, field }
}

/// `obj` as a list of ints, or none for an omitted argument.
fn optional_keys(obj: Option<&Bound<'_, PyAny>>, site: Site) -> Result<Vec<i64>, KernelError> {
    obj.map_or(Ok(Vec::new()), |obj| ints(obj, site, |_| site))
}

/// `Class(field=repr, ...)` of a descriptor, reading each field through its getter.
fn repr_of(obj: &Bound<'_, PyAny>, class: &str, fields: &[&str]) -> Result<String, KernelError> {
    let mut parts = Vec::with_capacity(fields.len());
    for &name in fields {
        parts.push(format!("{name}={}", obj.getattr(name)?.repr()?));
    }
    Ok(format!("{class}({})", parts.join(", ")))
}
