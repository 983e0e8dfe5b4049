//! Dependency counting and the ready queue, shared by validation (Kahn's algorithm) and
//! the run loop so both see exactly the same order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::scheduler::graph::Graph;

/// Per-run scheduling state: how many inputs each node still waits for, and the nodes
/// whose inputs are all available.
///
/// The ready queue is a max-heap on `(priority, Reverse(node))`: the highest priority pops
/// first and ties go to the lowest node index. With equal priorities the order is therefore
/// node-index order whenever that order is topological.
pub struct Scheduler<'g> {
    graph: &'g Graph,
    missing: Vec<u32>,
    ready: BinaryHeap<(i64, Reverse<u32>)>,
}

impl<'g> Scheduler<'g> {
    /// A scheduler at the start of a run: every node without node-produced inputs is ready.
    pub fn new(graph: &'g Graph) -> Self {
        let missing = graph.missing.clone();
        let ready: Vec<(i64, Reverse<u32>)> = missing
            .iter()
            .enumerate()
            .filter(|&(_, &m)| m == 0)
            // Lossless: `Graph::build` caps the node count at `MAX_NODES`.
            .map(|(node, _)| (graph.priorities[node], Reverse(node as u32)))
            .collect();
        Scheduler { graph, missing, ready: BinaryHeap::from(ready) }
    }

    /// Takes the next node to run, or `None` when no node is ready.
    #[inline]
    pub fn pop(&mut self) -> Option<usize> {
        self.ready.pop().map(|(_, Reverse(node))| node as usize)
    }

    /// Records that `node` ran and wrote its outputs: each consumer of each output slot
    /// waits for one input fewer, and joins the ready queue when it waits for none.
    /// Call exactly once per node returned by [`Scheduler::pop`].
    #[inline]
    pub fn complete(&mut self, node: usize) {
        let graph = self.graph;
        for &slot in graph.outputs.row(node) {
            for &consumer in graph.consumers.row(slot as usize) {
                let waiting = &mut self.missing[consumer as usize];
                *waiting -= 1;
                if *waiting == 0 {
                    self.ready.push((graph.priorities[consumer as usize], Reverse(consumer)));
                }
            }
        }
    }

    /// Per node, the number of inputs it still waits for (non-zero for nodes never ready).
    pub fn missing(&self) -> &[u32] {
        &self.missing
    }
}
