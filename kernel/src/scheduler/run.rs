//! The run loop: executes a [`Graph`] over Python values.

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::dispatch::{ArgBuffer, unpack_outputs};
use crate::error::KernelError;
use crate::scheduler::graph::{ABSENT, Graph, try_filled};
use crate::scheduler::ready::Scheduler;

/// Runs `graph` once and returns the values of its output slots.
///
/// All state is local to this call (the graph, callables and constants are only read), so
/// runs may nest (a callable may run a plan) and may overlap on several threads.
///
/// A slot's value is dropped as soon as the last node reading it has run, unless the slot
/// is returned; a written value nobody reads is dropped at once. On any error the run stops
/// and every value it holds is dropped with the local slot array.
pub fn execute<'py>(
    py: Python<'py>,
    graph: &Graph,
    callables: &[Py<PyAny>],
    error_handlers: &[Option<Py<PyAny>>],
    constants: &[Py<PyAny>],
    inputs: Vec<Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyList>, KernelError> {
    if inputs.len() != graph.input_slots.len() {
        return Err(KernelError::InputCount {
            got: inputs.len(),
            expected: graph.input_slots.len(),
        });
    }
    let mut slots: Vec<Option<Bound<'py, PyAny>>> = try_filled(graph.n_slots(), None)?;
    for (&slot, value) in graph.input_slots.iter().zip(inputs) {
        if graph.keep[slot as usize] {
            slots[slot as usize] = Some(value);
        }
    }
    for (&slot, value) in graph.constant_slots.iter().zip(constants) {
        if graph.keep[slot as usize] {
            slots[slot as usize] = Some(value.bind(py).clone());
        }
    }
    let mut remaining_uses = graph.uses.clone();
    let none = py.None().into_bound(py);
    let mut args = ArgBuffer::new(graph.max_arity);
    let mut scheduler = Scheduler::new(graph);

    while let Some(node) = scheduler.pop() {
        let callable = callables
            .get(node)
            .ok_or_else(|| KernelError::Internal(format!("node {node} has no callable")))?;
        let slots_ref = &slots;
        let called = args.call(
            callable.bind(py),
            graph.args.row(node).iter().map(|&slot| {
                if slot == ABSENT {
                    return Ok(&none);
                }
                slots_ref[slot as usize].as_ref().ok_or_else(|| {
                    KernelError::Internal(format!("node {node} ran before slot {slot} was written"))
                })
            }),
        );
        let result = match called {
            Ok(result) => result,
            Err(KernelError::Python(err)) => {
                return Err(KernelError::Python(handle_error(py, error_handlers.get(node), err)));
            }
            Err(other) => return Err(other),
        };

        // Release inputs this node was the last reader of.
        for &slot in graph.reads.row(node) {
            let left = &mut remaining_uses[slot as usize];
            *left -= 1;
            if *left == 0 && !graph.is_output[slot as usize] {
                slots[slot as usize] = None;
            }
        }

        let outputs = graph.outputs.row(node);
        unpack_outputs(node, result, outputs.len(), |i, value| {
            let slot = outputs[i] as usize;
            if graph.keep[slot] {
                slots[slot] = Some(value);
            }
        })?;
        scheduler.complete(node);
    }

    let mut values = Vec::with_capacity(graph.output_slots.len());
    for &slot in &graph.output_slots {
        let value = slots[slot as usize].clone().ok_or_else(|| {
            KernelError::Internal(format!("output slot {slot} was never written"))
        })?;
        values.push(value);
    }
    Ok(PyList::new(py, values)?)
}

/// The exception to raise for `err`, raised by a node whose error handler is `handler`:
/// for an `Exception` (not a bare `BaseException` such as `KeyboardInterrupt`), the handler
/// is called with the exception and returns the one to raise; if the handler itself
/// fails, its own exception is raised.
fn handle_error(py: Python<'_>, handler: Option<&Option<Py<PyAny>>>, err: PyErr) -> PyErr {
    let Some(Some(handler)) = handler else {
        return err;
    };
    if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
        return err;
    }
    match handler.bind(py).call1((err.value(py),)) {
        Ok(replacement) => PyErr::from_value(replacement),
        Err(handler_err) => handler_err,
    }
}
