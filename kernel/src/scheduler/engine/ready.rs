//! The ready order: the one ready queue of a run, shared by every frame.
//!
//! The queue is a max-heap of [`ReadyEntry`]s: the highest priority pops first, then the
//! node earliest in program order. A node's place in program order is its frame's *order
//! path* followed by its index: the root frame's path is empty, and a child frame's path is
//! its parent's, then the node that started it, then the item (or 0). So with equal
//! priorities the inline loop runs the body of an `If`, `Loop` or fan-out before the later
//! nodes of the enclosing graph, exactly where plain Python would, and side effects happen
//! in program order. Within one frame, equal priorities run in node-index order whenever
//! that order is topological.
//!
//! A node joins the queue when it waits for no input ([`Graph::sources`] when its frame
//! starts, then [`Graph::wake_consumers`] as its producers finish).
//!
//! [`Graph::sources`]: crate::scheduler::graph::Graph::sources
//! [`Graph::wake_consumers`]: crate::scheduler::graph::Graph::wake_consumers

use std::cmp::Ordering;
use std::iter::once;
use std::rc::Rc;

use crate::scheduler::graph::Graph;

/// A ready node of some frame.
pub(super) struct ReadyEntry {
    /// The node's priority (higher pops first).
    priority: i64,
    /// Its frame's order path.
    order: Rc<[u32]>,
    /// The node, in its frame's plan.
    pub(super) node: u32,
    /// The frame.
    pub(super) frame: u32,
    /// The frame's generation when the node became ready: a freed frame's entries are
    /// stale and skipped.
    pub(super) generation: u32,
}

impl ReadyEntry {
    /// Node `node` of `graph`, run by frame `frame` (of generation `generation`, order
    /// path `order`).
    pub(super) fn new(
        graph: &Graph,
        order: &Rc<[u32]>,
        node: u32,
        frame: u32,
        generation: u32,
    ) -> ReadyEntry {
        ReadyEntry {
            priority: graph.priorities[node as usize],
            order: Rc::clone(order),
            node,
            frame,
            generation,
        }
    }

    /// The node's place in program order.
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

#[cfg(test)]
mod tests {
    use std::collections::BinaryHeap;

    use super::*;
    use crate::scheduler::graph::{GraphSpec, NodeSlots};

    /// A graph of `nodes` (input and output slots), slot 0 its run input.
    fn graph(n_slots: i64, nodes: &[(&[i64], &[i64])], priorities: Option<Vec<i64>>) -> Graph {
        let nodes = nodes
            .iter()
            .map(|(inputs, outputs)| NodeSlots {
                inputs: inputs.to_vec(),
                outputs: outputs.to_vec(),
            })
            .collect();
        let spec =
            GraphSpec { n_slots, nodes, input_slots: vec![0], priorities, ..GraphSpec::default() };
        Graph::build(&spec).unwrap()
    }

    /// The order in which one frame of `graph`, all inline, runs its nodes: the run loop's
    /// queue and dependency counting, without Python.
    fn schedule(graph: &Graph) -> Vec<u32> {
        let root: Rc<[u32]> = Rc::from([]);
        let mut ready = BinaryHeap::new();
        let mut missing = graph.missing.clone();
        for node in graph.sources() {
            ready.push(ReadyEntry::new(graph, &root, node, 0, 0));
        }
        let mut order = Vec::new();
        while let Some(entry) = ready.pop() {
            order.push(entry.node);
            graph.wake_consumers(entry.node, &mut missing, |consumer| {
                ready.push(ReadyEntry::new(graph, &root, consumer, 0, 0));
            });
        }
        order
    }

    #[test]
    fn a_diamond_runs_in_index_order() {
        // 0 -> n0 -> 1 ; 1 -> n1 -> 2 ; 1 -> n2 -> 3 ; (2, 3, 2) -> n3 -> 4
        let g = graph(5, &[(&[0], &[1]), (&[1], &[2]), (&[1], &[3]), (&[2, 3, 2], &[4])], None);
        assert_eq!(schedule(&g), vec![0, 1, 2, 3]);
    }

    #[test]
    fn equal_priorities_run_in_index_order_when_it_is_topological() {
        let nodes: Vec<(Vec<i64>, Vec<i64>)> = (0..10).map(|i| (vec![i], vec![i + 1])).collect();
        let nodes: Vec<(&[i64], &[i64])> =
            nodes.iter().map(|(i, o)| (i.as_slice(), o.as_slice())).collect();
        assert_eq!(schedule(&graph(11, &nodes, None)), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn higher_priorities_run_first_then_the_lowest_index() {
        // Four independent nodes, and node 4 depends on node 0.
        let g = graph(
            6,
            &[(&[0], &[1]), (&[0], &[]), (&[0], &[]), (&[0], &[]), (&[1], &[5])],
            Some(vec![0, 5, 1, 5, 9]),
        );
        // Node 4 has the top priority but must wait for node 0.
        assert_eq!(schedule(&g), vec![1, 3, 2, 0, 4]);
    }

    #[test]
    fn producers_run_first_when_index_order_is_not_topological() {
        assert_eq!(schedule(&graph(3, &[(&[1], &[2]), (&[0], &[1])], None)), vec![1, 0]);
    }

    #[test]
    fn a_body_runs_before_the_later_nodes_of_its_parent_frame() {
        // Root frame 0 has nodes 0 and 2 ready; its node 1 started child frame 1 (item 0),
        // whose node 0 is ready: at [1, 0, 0] in program order, it runs between them.
        let g = graph(2, &[(&[0], &[1]), (&[0], &[]), (&[0], &[])], None);
        let root: Rc<[u32]> = Rc::from([]);
        let child: Rc<[u32]> = Rc::from([1, 0]);
        let mut ready = BinaryHeap::new();
        ready.push(ReadyEntry::new(&g, &root, 2, 0, 0));
        ready.push(ReadyEntry::new(&g, &child, 0, 1, 0));
        ready.push(ReadyEntry::new(&g, &root, 0, 0, 0));
        let popped: Vec<(u32, u32)> =
            std::iter::from_fn(|| ready.pop()).map(|e| (e.frame, e.node)).collect();
        assert_eq!(popped, vec![(0, 0), (1, 0), (0, 2)]);
    }

    #[test]
    fn priority_beats_program_order_across_frames() {
        let g = graph(2, &[(&[0], &[1]), (&[0], &[])], Some(vec![0, 7]));
        let (root, child): (Rc<[u32]>, Rc<[u32]>) = (Rc::from([]), Rc::from([0, 4]));
        let mut ready = BinaryHeap::new();
        ready.push(ReadyEntry::new(&g, &root, 0, 0, 0));
        ready.push(ReadyEntry::new(&g, &child, 1, 2, 0));
        assert_eq!(ready.pop().map(|e| (e.frame, e.node)), Some((2, 1)));
    }
}
