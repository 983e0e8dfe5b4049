//! Running a ready node by its op: inline calls, native ops and fused chains right here,
//! in a tight loop; the rest hands out a call ([`super::calls`]) or starts child frames
//! ([`super::bodies`]). Then storing a node's result and waking its consumers.

use pyo3::prelude::*;

use super::frames::{Event, Frame};
use super::ready::ReadyEntry;
use super::{Engine, SIGNAL_CHECK_EVERY};
use crate::dispatch::unpack_outputs;
use crate::error::KernelError;
use crate::scheduler::graph::ABSENT;
use crate::scheduler::ops::{Call, Mode, SeqStep, StepOp};
use crate::scheduler::plan::{Op, SeqOp};

impl<'p, 'py> Engine<'p, 'py> {
    /// Runs a node popped from the ready queue (nothing, if its frame was freed since).
    pub(super) fn run_node(
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
            Op::Call(Call { callable, mode: Mode::Inline }) => {
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
            Op::Call(Call { callable, mode: Mode::Thread }) => {
                self.start_thread(id, generation, node, callable)
            }
            Op::Call(Call { mode: Mode::Async, .. }) => self.queue_async(id, generation, node),
            Op::Native(op) => {
                let inputs = self.inputs(id, node)?;
                let refs: Vec<&Bound<'py, PyAny>> = inputs.iter().collect();
                match op.eval(self.py, &refs) {
                    Ok(value) => self.store_result(id, node, value),
                    Err(KernelError::Python(err)) => self.fail_node(id, node, err),
                    Err(other) => Err(other),
                }
            }
            Op::Map(map) => self.start_map(id, node, map.get()),
            Op::If(branch) => self.start_if(id, node, branch.get()),
            Op::Loop(body) => self.start_loop(id, node, body.get()),
            Op::Function(function) => self.start_function(id, node, function.get()),
            Op::Try(region) => self.start_try(id, node, region.get()),
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
            let SeqStep { op, args, error_handler } = step.op.get();
            let args = args.iter().map(|&i| {
                values.get(i as usize).and_then(Option::as_ref).ok_or_else(|| {
                    KernelError::Internal(format!(
                        "seq node {node} read value {i} after its release"
                    ))
                })
            });
            let result = match op {
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
                    if matches!(op, StepOp::Call(_)) {
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
                        error_handler.as_ref().or(plan.error_handlers[node as usize].as_ref());
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
    pub(super) fn call(
        &mut self,
        id: u32,
        node: u32,
        callable: &Py<PyAny>,
    ) -> Result<Bound<'py, PyAny>, KernelError> {
        let frame = &self.frames[id as usize];
        self.args.call(callable.bind(self.py), node_args(frame, &self.none, node))
    }

    /// Node `node`'s inputs (`None` for absent ones), as new references.
    pub(super) fn inputs(&self, id: u32, node: u32) -> Result<Vec<Bound<'py, PyAny>>, KernelError> {
        node_args(&self.frames[id as usize], &self.none, node).map(|arg| arg.cloned()).collect()
    }

    /// Stores a node's single result over its outputs and marks it finished.
    pub(super) fn store_result(
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
    pub(super) fn store_values(
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
        let (ready, generation, order) = (&mut self.ready, frame.generation, &frame.order);
        graph.wake_consumers(node, &mut frame.missing, |consumer| {
            ready.push(ReadyEntry::new(graph, order, consumer, id, generation));
        });
        frame.pending -= 1;
        if frame.pending == 0 {
            self.events.push_back(Event::Done(id, frame.generation));
        }
        Ok(())
    }
}

/// The values of node `node`'s positional arguments in `frame` (`none` for an absent input).
#[inline]
fn node_args<'a, 'py>(
    frame: &'a Frame<'_, 'py>,
    none: &'a Bound<'py, PyAny>,
    node: u32,
) -> impl Iterator<Item = Result<&'a Bound<'py, PyAny>, KernelError>> {
    frame.plan.graph.args.row(node as usize).iter().map(move |&slot| {
        if slot == ABSENT {
            return Ok(none);
        }
        frame.slots[slot as usize].as_ref().ok_or_else(|| {
            KernelError::Internal(format!("node {node} ran before slot {slot} was written"))
        })
    })
}
