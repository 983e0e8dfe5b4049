//! Frames: starting one (its slots, counts and context), freeing one with every frame its
//! nodes started, and reporting a finished or failed frame to the node that started it.

use std::rc::Rc;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use super::Engine;
use super::ready::ReadyEntry;
use crate::context::{Key, Values};
use crate::error::KernelError;
use crate::scheduler::plan::Plan;

/// A child frame's place in the node that started it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    /// The [`super::Sub`] of the node.
    pub(super) sub: u32,
    /// The item index, for a fan-out item.
    pub(super) index: usize,
}

/// One running instance of a plan.
pub(super) struct Frame<'p, 'py> {
    pub(super) plan: &'p Plan,
    /// Bumped when the frame is freed, so stale queue entries and completions are ignored.
    pub(super) generation: u32,
    pub(super) alive: bool,
    /// Per slot, its value while a reader still needs it.
    pub(super) slots: Vec<Option<Bound<'py, PyAny>>>,
    /// Per node, the inputs it still waits for.
    pub(super) missing: Vec<u32>,
    /// Per slot, the readers that have not run yet.
    pub(super) uses: Vec<u32>,
    /// Nodes not yet finished; the frame is done at zero.
    pub(super) pending: usize,
    /// The context the frame's outer slots were read from, and its nodes' bodies fork.
    pub(super) ctx: Values,
    pub(super) parent: Option<Link>,
    /// The frame's place in program order (see [`super::ready`]).
    pub(super) order: Rc<[u32]>,
    /// Subs of this frame's nodes that are running bodies.
    pub(super) subs: Vec<u32>,
    /// How many function calls this frame runs inside (0 for the root's frames).
    pub(super) depth: u32,
}

/// A frame finished or failed; handled by [`Engine::drain_events`], so that chains of
/// frames finishing at once never recurse. Holds the frame and its generation.
pub(super) enum Event {
    Done(u32, u32),
    Failed(u32, u32, PyErr),
}

impl<'p, 'py> Engine<'p, 'py> {
    /// Starts a frame running `plan` on `inputs` in context `ctx` (a child of `parent`, or
    /// the root); returns its id and generation.
    pub(super) fn spawn_frame(
        &mut self,
        plan: &'p Plan,
        ctx: Values,
        inputs: Vec<Bound<'py, PyAny>>,
        parent: Option<Link>,
    ) -> Result<(u32, u32), KernelError> {
        let py = self.py;
        let graph = &plan.graph;
        let depth = parent
            .and_then(|link| self.subs[link.sub as usize].as_ref())
            .map_or(0, |sub| self.frames[sub.frame as usize].depth);
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
                    depth: 0,
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
        frame.depth = depth;
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
        for node in graph.sources() {
            self.ready.push(ReadyEntry::new(graph, &frame.order, node, id, generation));
        }
        if graph.n_nodes() == 0 {
            self.events.push_back(Event::Done(id, generation));
        }
        Ok((id, generation))
    }

    /// Frees frame `id`, first killing every frame its running nodes started.
    pub(super) fn kill_frame(&mut self, id: u32) {
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

    /// Reports every finished or failed frame to the node that started it (the root's
    /// outputs become the run's result; its error, the run's).
    pub(super) fn drain_events(&mut self) -> Result<(), KernelError> {
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
    pub(super) fn fail_node(&mut self, id: u32, node: u32, err: PyErr) -> Result<(), KernelError> {
        let plan = self.frames[id as usize].plan;
        self.fail_with(id, plan.error_handlers[node as usize].as_ref(), err)
    }

    /// A node of frame `id` raised `err`: the frame fails with the exception `handler`
    /// makes of it (or `err` itself), unless `err` is not an `Exception` (Ctrl+C,
    /// `SystemExit`, cancellation), which stops the whole run.
    pub(super) fn fail_with(
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
}
