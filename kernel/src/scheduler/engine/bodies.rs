//! Nodes with bodies: a fan-out, an `If`, a `Loop`, a function call or a catch region runs child frames,
//! tracked as a [`Sub`] until the node finishes (with its children's outputs) or fails.
//!
//! The node sets the values its body captures into a fork of its frame's context once, and
//! every child forks that in O(1). A fan-out starts its items lazily: one at a time when
//! its body is all inline (so a long fan-out holds one item's intermediates at a time),
//! else up to `max_concurrency`. A child's error fails the node, which kills its other
//! children, unless a fan-out's `on_item_error` hook drops the item.

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::Engine;
use super::frames::Link;
use crate::context::{Key, Values};
use crate::error::KernelError;
use pyo3::exceptions::{PyRecursionError, PyRuntimeError};

use crate::scheduler::ops::{Function, If, Loop, Map, Try};
use crate::scheduler::plan::Plan;

/// A node of some frame that is running child frames.
pub(super) struct Sub<'p, 'py> {
    pub(super) frame: u32,
    pub(super) node: u32,
    /// Live child frames and their generations.
    pub(super) children: Vec<(u32, u32)>,
    kind: SubKind<'p, 'py>,
}

/// What a [`Sub`] does with its children's outputs.
enum SubKind<'p, 'py> {
    /// If branch or function call: the child's outputs are the node's.
    Single,
    /// Fan-out: one child per item, at most `window` live at once.
    Map {
        op: &'p Map,
        body: &'p Plan,
        base: Values,
        items: Vec<Option<Bound<'py, PyAny>>>,
        next: usize,
        live: usize,
        window: usize,
        results: Vec<Option<Bound<'py, PyAny>>>,
        done: usize,
    },
    /// Catch region: the body's outputs are the node's; if the body fails, the handler
    /// runs on the exception (`handling`) and its outputs are the node's.
    Try { handler: &'p Plan, base: Values, handling: bool },
    /// Loop: one child per iteration, one after another.
    Loop { body: &'p Plan, base: Values, trip: Option<i64>, iteration: i64, n_carried: usize },
}

impl<'p, 'py> Engine<'p, 'py> {
    /// Starts `If` node `node` of frame `id`: the branch its condition (input 0) picks.
    pub(super) fn start_if(&mut self, id: u32, node: u32, op: &'p If) -> Result<(), KernelError> {
        let inputs = self.inputs(id, node)?;
        let truth = match inputs[0].is_truthy() {
            Ok(truth) => truth,
            Err(err) => return self.fail_node(id, node, err),
        };
        let branch = if truth { op.then_branch.get() } else { op.else_branch.get() };
        let base = self.capture(id, &op.keys, &inputs[1..]);
        self.start_single(id, node, branch, base, Vec::new())
    }

    /// Starts function-call node `node` of frame `id`: its body on the node's inputs, one
    /// level deeper in the run's nesting of calls (past `recursion_limit`, the node raises
    /// `RecursionError`, as Python does past its recursion limit).
    pub(super) fn start_function(
        &mut self,
        id: u32,
        node: u32,
        op: &'p Function,
    ) -> Result<(), KernelError> {
        let depth = self.frames[id as usize].depth + 1;
        if depth > self.options.recursion_limit {
            let limit = self.options.recursion_limit;
            let err = PyRecursionError::new_err(format!(
                "maximum recursion depth exceeded: more than {limit} sub-workflow calls nested in one another (the run's recursion_limit)"
            ));
            return self.fail_node(id, node, err);
        }
        let Some(body) = op.body() else {
            let err = PyRuntimeError::new_err("a declared function was called before its body was defined");
            return self.fail_node(id, node, err);
        };
        let inputs = self.inputs(id, node)?;
        let base = self.frames[id as usize].ctx.clone();
        let sub = self.new_sub(id, node, SubKind::Single);
        let child = self.spawn_frame(body.get(), base, inputs, Some(Link { sub, index: 0 }))?;
        self.frames[child.0 as usize].depth = depth;
        self.adopt(sub, child);
        Ok(())
    }

    /// Starts catch-region node `node` of frame `id`: its body, in a context holding the
    /// node's captured inputs (the handler, if it runs, reads them there too).
    pub(super) fn start_try(&mut self, id: u32, node: u32, op: &'p Try) -> Result<(), KernelError> {
        let inputs = self.inputs(id, node)?;
        let base = self.capture(id, &op.keys, &inputs);
        let kind = SubKind::Try { handler: op.handler.get(), base: base.clone(), handling: false };
        let sub = self.new_sub(id, node, kind);
        let child = self.spawn_frame(op.body.get(), base, Vec::new(), Some(Link { sub, index: 0 }))?;
        self.adopt(sub, child);
        Ok(())
    }

    /// Runs `body` on `inputs` in context `base` as the one child of node `node` of frame
    /// `id`, whose outputs become the node's.
    fn start_single(
        &mut self,
        id: u32,
        node: u32,
        body: &'p Plan,
        base: Values,
        inputs: Vec<Bound<'py, PyAny>>,
    ) -> Result<(), KernelError> {
        let sub = self.new_sub(id, node, SubKind::Single);
        let child = self.spawn_frame(body, base, inputs, Some(Link { sub, index: 0 }))?;
        self.adopt(sub, child);
        Ok(())
    }

    /// Starts `Loop` node `node` of frame `id`: its first iteration, if any.
    pub(super) fn start_loop(
        &mut self,
        id: u32,
        node: u32,
        op: &'p Loop,
    ) -> Result<(), KernelError> {
        let n_carried = op.n_carried;
        let inputs = self.inputs(id, node)?;
        let trip = if inputs[0].is_none() {
            None
        } else {
            match inputs[0].extract::<i64>() {
                Ok(trip) => Some(trip),
                Err(err) => return self.fail_node(id, node, err),
            }
        };
        let base = self.capture(id, &op.keys, &inputs[2 + n_carried..]);
        let kind = SubKind::Loop { body: op.body.get(), base, trip, iteration: 0, n_carried };
        let sub = self.new_sub(id, node, kind);
        let cond = inputs[1].clone();
        let carried = inputs[2..2 + n_carried].to_vec();
        self.next_iteration(sub, cond, carried)
    }

    /// A fork of frame `id`'s context holding `values` under `keys`.
    fn capture(&self, id: u32, keys: &[i64], values: &[Bound<'py, PyAny>]) -> Values {
        let mut base = self.frames[id as usize].ctx.clone();
        for (&key, value) in keys.iter().zip(values) {
            base.insert_mut(Key::Int(key), value.clone().unbind());
        }
        base
    }

    /// Records that node `node` of frame `frame` runs child frames.
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

    /// Records `child` (a frame and its generation) as a child of `sub`.
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

    /// Starts fan-out node `node` of frame `id` over the items of its input 0.
    pub(super) fn start_map(
        &mut self,
        id: u32,
        node: u32,
        map: &'p Map,
    ) -> Result<(), KernelError> {
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

    /// Starts the next iteration of loop `sub_id` on `cond` and `carried`, or finishes the
    /// node with `carried` when the trip count or the condition says so.
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
    pub(super) fn child_done(
        &mut self,
        child: u32,
        link: Link,
        outputs: Vec<Bound<'py, PyAny>>,
    ) -> Result<(), KernelError> {
        let py = self.py;
        let Some(sub) = self.subs[link.sub as usize].as_mut() else { return Ok(()) };
        sub.children.retain(|&(c, _)| c != child);
        match &mut sub.kind {
            SubKind::Single | SubKind::Try { .. } => self.finish_sub(link.sub, outputs),
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

    /// Child frame `child` of `link` failed with `err`. A catch region whose body failed
    /// runs its handler on the exception; a fan-out with an `on_item_error` hook asks it
    /// whether to drop the item; otherwise the node fails.
    pub(super) fn child_failed(
        &mut self,
        child: u32,
        link: Link,
        err: PyErr,
    ) -> Result<(), KernelError> {
        let py = self.py;
        let Some(sub) = self.subs[link.sub as usize].as_mut() else { return Ok(()) };
        sub.children.retain(|&(c, _)| c != child);
        if let SubKind::Try { handler, base, handling } = &mut sub.kind {
            if !*handling {
                *handling = true;
                let (handler, base) = (*handler, base.clone());
                let exception = err.into_value(py).into_bound(py).into_any();
                let sub_id = link.sub;
                let child = self.spawn_frame(handler, base, vec![exception], Some(Link { sub: sub_id, index: 1 }))?;
                self.adopt(sub_id, child);
                return Ok(());
            }
        }
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
