//! `namu._kernel.Plan`: the Python-facing executable graph.

use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::dispatch::type_name;
use crate::error::{KernelError, Site};
use crate::scheduler::graph::{Graph, GraphSpec, NodeSlots};
use crate::scheduler::run::execute;

/// An executable graph held as compact arrays.
///
/// Slots are registers holding one Python object each. A slot is written by exactly one run
/// input, constant, or node output. Nodes run once their inputs are available, highest
/// priority first, ties to the lowest node index. The plan is immutable: runs share nothing
/// but the plan, so they may nest and may run on several threads at once.
#[pyclass(frozen, module = "namu._kernel", name = "Plan")]
pub struct Plan {
    graph: Graph,
    /// Per node, its callable.
    callables: Vec<Py<PyAny>>,
    /// Per constant, its value; the slot is `graph.constant_slots[i]`. Runs store clones.
    constants: Vec<Py<PyAny>>,
    /// Per node, an optional error handler: when the node's callable raises an
    /// `Exception`, the handler is called with it and the exception it returns is raised.
    error_handlers: Vec<Option<Py<PyAny>>>,
}

#[pymethods]
impl Plan {
    /// Reads the arguments (attached to the interpreter), then validates and builds the
    /// graph detached from it, as that is pure Rust work linear in the plan's size.
    #[new]
    #[allow(clippy::too_many_arguments)] // the Python constructor's keyword arguments
    #[pyo3(signature = (n_slots, nodes, input_slots, output_slots, constants = None, priorities = None, error_handlers = None))]
    fn new(
        py: Python<'_>,
        n_slots: &Bound<'_, PyAny>,
        nodes: &Bound<'_, PyAny>,
        input_slots: &Bound<'_, PyAny>,
        output_slots: &Bound<'_, PyAny>,
        constants: Option<&Bound<'_, PyAny>>,
        priorities: Option<&Bound<'_, PyAny>>,
        error_handlers: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self, KernelError> {
        let mut spec = GraphSpec { n_slots: int(n_slots, Site::NSlots)?, ..GraphSpec::default() };
        let mut callables = Vec::new();
        for (node, entry) in items(nodes, Site::Nodes)?.into_iter().enumerate() {
            let site = Site::Node(node);
            let [callable, inputs, outputs] =
                fields::<3>(&entry, site, "a (callable, input_slots, output_slots) tuple")?;
            if !callable.is_callable() {
                return Err(KernelError::NotCallable { node, type_name: type_name(&callable) });
            }
            let inputs = ints(&inputs, site, |position| Site::NodeInput { node, position })?;
            let outputs = ints(&outputs, site, |position| Site::NodeOutput { node, position })?;
            callables.push(callable.unbind());
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
        if let Some(priorities) = priorities {
            spec.priorities = Some(ints(priorities, Site::Priorities, Site::Priority)?);
        }
        let mut handlers: Vec<Option<Py<PyAny>>> = (0..callables.len()).map(|_| None).collect();
        if let Some(given) = error_handlers {
            let given = items(given, Site::ErrorHandlers)?;
            if given.len() != callables.len() {
                return Err(KernelError::Malformed {
                    site: Site::ErrorHandlers,
                    detail: format!(
                        "expected one per node ({}), got {}",
                        callables.len(),
                        given.len()
                    ),
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
        let graph = py.detach(|| Graph::build(&spec))?;
        Ok(Plan { graph, callables, constants: constant_values, error_handlers: handlers })
    }

    /// Runs the plan once on `inputs` and returns the values of the output slots.
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Bound<'py, PyAny>>,
    ) -> Result<Bound<'py, PyList>, KernelError> {
        execute(py, &self.graph, &self.callables, &self.error_handlers, &self.constants, inputs)
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

    fn __repr__(&self) -> String {
        format!(
            "<namu._kernel.Plan: {} nodes, {} slots>",
            self.graph.n_nodes(),
            self.graph.n_slots()
        )
    }

    /// Lets the cycle collector see the callables and constants, so a plan whose callable
    /// refers back to the plan can be collected. (A frozen class has no `__clear__`; the
    /// collector breaks such cycles by clearing the functions and cells instead.)
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for callable in &self.callables {
            visit.call(callable)?;
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
