//! The kernel's one error type, and the one place where it becomes a Python exception.
//!
//! Every fallible function in the crate returns [`KernelError`]. A Python exception raised by
//! a node's callable travels as [`KernelError::Python`] and is handed back to Python
//! unchanged (same exception object, traceback and `__cause__`); every other variant becomes
//! `namu.errors.KernelError` with the variant's message. Panics are never an error path.

use std::fmt;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// How many nodes of a cycle a [`KernelError::Cycle`] message spells out.
const CYCLE_NODES_SHOWN: usize = 12;

/// Where in the `Plan(...)` arguments a value was found; used to name it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The `n_slots` argument.
    NSlots,
    /// The `nodes` argument as a whole.
    Nodes,
    /// The entry `nodes[node]`.
    Node(usize),
    /// Input `position` of node `node` (`nodes[node][1][position]`).
    NodeInput {
        /// Node index.
        node: usize,
        /// Position in the node's input list.
        position: usize,
    },
    /// Output `position` of node `node` (`nodes[node][2][position]`).
    NodeOutput {
        /// Node index.
        node: usize,
        /// Position in the node's output list.
        position: usize,
    },
    /// The `input_slots` argument as a whole.
    InputSlots,
    /// The entry `input_slots[i]`.
    InputSlot(usize),
    /// The `output_slots` argument as a whole.
    OutputSlots,
    /// The entry `output_slots[i]`.
    OutputSlot(usize),
    /// The `constants` argument as a whole.
    Constants,
    /// The entry `constants[i]`.
    Constant(usize),
    /// The `priorities` argument as a whole.
    Priorities,
    /// The entry `priorities[i]`.
    Priority(usize),
    /// The `error_handlers` argument.
    ErrorHandlers,
    /// The entry `outer[i]`.
    OuterSlot(usize),
    /// The constructor argument `field` of the op descriptor `class` (e.g. `Map.keys`).
    Field {
        /// The descriptor's class name.
        class: &'static str,
        /// The argument's name.
        field: &'static str,
    },
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Site::NSlots => f.write_str("n_slots"),
            Site::Nodes => f.write_str("nodes"),
            Site::Node(node) => write!(f, "node {node}"),
            Site::NodeInput { node, position } => write!(f, "node {node} input {position}"),
            Site::NodeOutput { node, position } => write!(f, "node {node} output {position}"),
            Site::InputSlots => f.write_str("input_slots"),
            Site::InputSlot(i) => write!(f, "input_slots[{i}]"),
            Site::OutputSlots => f.write_str("output_slots"),
            Site::OutputSlot(i) => write!(f, "output_slots[{i}]"),
            Site::Constants => f.write_str("constants"),
            Site::Constant(i) => write!(f, "constants[{i}]"),
            Site::Priorities => f.write_str("priorities"),
            Site::ErrorHandlers => f.write_str("error_handlers"),
            Site::OuterSlot(i) => write!(f, "outer[{i}]"),
            Site::Priority(i) => write!(f, "priorities[{i}]"),
            Site::Field { class, field } => write!(f, "{class}.{field}"),
        }
    }
}

/// What writes a slot: a run input, a constant, or a node output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// `input_slots[i]`: written from `run()`'s `inputs[i]`.
    RunInput(usize),
    /// `constants[i]`: written before the run starts.
    Constant(usize),
    /// An output of node `i`.
    Node(usize),
    /// `outer[i]`: read from the enclosing context when the plan runs as a body.
    Outer(usize),
}

impl fmt::Display for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Writer::RunInput(i) => write!(f, "input_slots[{i}]"),
            Writer::Constant(i) => write!(f, "constants[{i}]"),
            Writer::Node(i) => write!(f, "node {i}"),
            Writer::Outer(i) => write!(f, "outer[{i}]"),
        }
    }
}

/// Everything that can go wrong in the kernel.
#[derive(Debug)]
pub enum KernelError {
    /// A Python exception (raised by a node's callable, or by Python while reading the
    /// arguments). It is re-raised unchanged.
    Python(PyErr),
    /// A constructor argument does not have the expected shape or type.
    Malformed {
        /// Where the bad value is.
        site: Site,
        /// What is wrong with it.
        detail: String,
    },
    /// `n_slots` is negative or larger than the kernel supports.
    SlotCount {
        /// The value given.
        n_slots: i64,
        /// The largest supported value.
        max: u32,
    },
    /// The arrays for a plan this large cannot be allocated (a huge `n_slots`).
    OutOfMemory {
        /// What asked for the memory.
        site: Site,
        /// Bytes requested.
        bytes: usize,
    },
    /// A list is longer than the kernel's compact (`u32`) indices can address.
    TooLarge {
        /// What is too large.
        site: Site,
        /// The kernel's limit.
        max: u32,
    },
    /// A slot index outside `[0, n_slots)` (node inputs may also be `-1`).
    SlotOutOfRange {
        /// Where the index is.
        site: Site,
        /// The index given.
        slot: i64,
        /// The plan's slot count.
        n_slots: u32,
    },
    /// A slot has two writers.
    SlotWrittenTwice {
        /// The slot.
        slot: u32,
        /// The writer seen first.
        first: Writer,
        /// The writer seen second.
        second: Writer,
    },
    /// A node input or an output slot reads a slot that nothing writes.
    UnwrittenSlot {
        /// Where the read is.
        site: Site,
        /// The slot read.
        slot: u32,
    },
    /// A node's op is neither callable nor an op descriptor.
    NotAnOp {
        /// Node index.
        node: usize,
        /// Python type name of the object given.
        type_name: String,
    },
    /// The node graph has a cycle; the nodes are listed in dependency order (each one
    /// feeds the next, and the last feeds the first).
    Cycle {
        /// The nodes on the cycle.
        nodes: Vec<usize>,
    },
    /// `priorities` does not have one entry per node.
    PrioritiesLength {
        /// Entries given.
        got: usize,
        /// Number of nodes.
        expected: usize,
    },
    /// `run()` got the wrong number of inputs.
    InputCount {
        /// Inputs given.
        got: usize,
        /// Number of input slots.
        expected: usize,
    },
    /// A node with several outputs returned something other than a tuple or list.
    OutputNotSequence {
        /// Node index.
        node: usize,
        /// Python type name of what it returned.
        type_name: String,
        /// Number of output slots.
        expected: usize,
    },
    /// A node with several outputs returned a tuple or list of the wrong length.
    OutputArity {
        /// Node index.
        node: usize,
        /// Values returned.
        got: usize,
        /// Number of output slots.
        expected: usize,
    },
    /// A body plan reads a context key its enclosing run did not set.
    MissingContextValue {
        /// The key.
        key: i64,
    },
    /// A node runs in async mode but the run was given no `driver`.
    NoAsyncDriver {
        /// Node index (in its own plan).
        node: usize,
    },
    /// The run was interrupted (`KeyboardInterrupt`, i.e. Ctrl+C): nothing more was
    /// started, async calls were cancelled, running thread-mode calls were waited for or,
    /// after a second interrupt, abandoned.
    Cancelled {
        /// Calls that finished (including those waited for after the interruption).
        finished: u64,
        /// Calls cancelled in flight (async) or dropped before they started.
        cancelled: u64,
        /// Thread-mode calls still running when a second interrupt stopped the wait.
        abandoned: u64,
        /// The `KeyboardInterrupt`.
        cause: PyErr,
    },
    /// A broken kernel invariant (a bug in namu, never the caller's fault).
    Internal(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Python(err) => write!(f, "{err}"),
            KernelError::Malformed { site, detail } => write!(f, "{site}: {detail}"),
            KernelError::SlotCount { n_slots, max } => {
                write!(f, "n_slots must be between 0 and {max}, got {n_slots}")
            }
            KernelError::OutOfMemory { site, bytes } => {
                write!(f, "{site}: cannot allocate {bytes} bytes for the plan's arrays")
            }
            KernelError::TooLarge { site, max } => {
                write!(f, "{site}: too many entries (the kernel's limit is {max})")
            }
            KernelError::SlotOutOfRange { site, slot, n_slots } => {
                write!(f, "{site}: slot {slot} is out of range [0, {n_slots})")?;
                if matches!(site, Site::NodeInput { .. }) {
                    f.write_str(" (use -1 for an absent optional input)")?;
                }
                Ok(())
            }
            KernelError::SlotWrittenTwice { slot, first, second } => {
                write!(f, "slot {slot} is written twice: by {first} and by {second}")
            }
            KernelError::UnwrittenSlot { site, slot } => write!(
                f,
                "{site} reads slot {slot}, which nothing writes \
                 (it is not a run input, a constant, or a node output)"
            ),
            KernelError::NotAnOp { node, type_name } => write!(
                f,
                "node {node}: '{type_name}' object is not callable, nor an op descriptor \
                 (Call, Native, Map, If, Loop, Function, Seq)"
            ),
            KernelError::Cycle { nodes } => {
                f.write_str("the node graph has a cycle: ")?;
                for node in nodes.iter().take(CYCLE_NODES_SHOWN) {
                    write!(f, "node {node} -> ")?;
                }
                if nodes.len() > CYCLE_NODES_SHOWN {
                    write!(f, "... ({} more) -> ", nodes.len() - CYCLE_NODES_SHOWN)?;
                }
                match nodes.first() {
                    Some(first) => write!(f, "node {first}"),
                    None => f.write_str("?"),
                }
            }
            KernelError::PrioritiesLength { got, expected } => {
                write!(f, "priorities has {got} entries, expected one per node ({expected})")
            }
            KernelError::InputCount { got, expected } => {
                write!(f, "run() got {got} inputs, expected {expected} (one per input slot)")
            }
            KernelError::OutputNotSequence { node, type_name, expected } => write!(
                f,
                "node {node} returned a '{type_name}', expected a tuple or list of {expected} values"
            ),
            KernelError::OutputArity { node, got, expected } => {
                write!(f, "node {node} returned {got} values, expected {expected}")
            }
            KernelError::MissingContextValue { key } => {
                write!(f, "the context has no value for key {key}, which a body plan reads")
            }
            KernelError::NoAsyncDriver { node } => {
                write!(f, "node {node} runs in async mode, but run() was given no driver")
            }
            KernelError::Cancelled { finished, cancelled, abandoned, .. } => write!(
                f,
                "run cancelled: {finished} calls finished, {cancelled} cancelled, \
                 {abandoned} abandoned while still running"
            ),
            KernelError::Internal(msg) => {
                write!(f, "internal kernel error (a bug in namu): {msg}")
            }
        }
    }
}

impl std::error::Error for KernelError {}

impl From<PyErr> for KernelError {
    fn from(err: PyErr) -> Self {
        KernelError::Python(err)
    }
}

/// The one mapping from [`KernelError`] to a Python exception.
///
/// [`KernelError::Python`] is returned as is; everything else becomes
/// `namu.errors.KernelError(message)`. Should `namu.errors` fail to import, the result is a
/// `RuntimeError` carrying the same message, with the import error as its `__cause__`.
impl From<KernelError> for PyErr {
    fn from(err: KernelError) -> PyErr {
        match err {
            KernelError::Python(err) => err,
            KernelError::Cancelled { finished, cancelled, abandoned, cause } => {
                Python::attach(|py| {
                    let cancel_err = py
                        .import("namu.errors")
                        .and_then(|m| m.getattr("RunCancelledError"))
                        .and_then(|cls| cls.call1((finished, cancelled, abandoned)));
                    match cancel_err {
                        Ok(exc) => {
                            let err = PyErr::from_value(exc);
                            err.set_cause(py, Some(cause));
                            err
                        }
                        Err(_) => cause,
                    }
                })
            }
            other => Python::attach(|py| {
                let message = other.to_string();
                match namu_kernel_error(py) {
                    Ok(cls) => PyErr::from_type(cls, message),
                    Err(import_err) => {
                        let err = PyRuntimeError::new_err(format!(
                            "{message} (namu.errors.KernelError could not be imported)"
                        ));
                        err.set_cause(py, Some(import_err));
                        err
                    }
                }
            }),
        }
    }
}

/// Looks up `namu.errors.KernelError` (not cached, so a reloaded `namu.errors` is honoured;
/// errors are rare and the lookup is a `sys.modules` hit).
fn namu_kernel_error(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    Ok(py.import("namu.errors")?.getattr("KernelError")?.cast_into::<PyType>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_culprit() {
        let err = KernelError::SlotOutOfRange {
            site: Site::NodeInput { node: 3, position: 1 },
            slot: 9,
            n_slots: 5,
        };
        assert_eq!(
            err.to_string(),
            "node 3 input 1: slot 9 is out of range [0, 5) (use -1 for an absent optional input)"
        );
        let err = KernelError::OutputArity { node: 3, got: 2, expected: 3 };
        assert_eq!(err.to_string(), "node 3 returned 2 values, expected 3");
        let err = KernelError::SlotWrittenTwice {
            slot: 4,
            first: Writer::RunInput(0),
            second: Writer::Node(2),
        };
        assert_eq!(err.to_string(), "slot 4 is written twice: by input_slots[0] and by node 2");
    }

    #[test]
    fn long_cycles_are_abbreviated() {
        let err = KernelError::Cycle { nodes: (0..20).collect() };
        let msg = err.to_string();
        assert!(msg.starts_with("the node graph has a cycle: node 0 -> node 1 -> "));
        assert!(msg.ends_with("node 11 -> ... (8 more) -> node 0"), "{msg}");
        let err = KernelError::Cycle { nodes: vec![7] };
        assert_eq!(err.to_string(), "the node graph has a cycle: node 7 -> node 7");
    }
}
