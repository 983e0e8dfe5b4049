//! The validated, immutable shape of a plan, held as compact `u32` arrays.
//!
//! Nothing here touches Python: [`Graph::build`] takes plain integers, checks every rule of
//! a plan (slot ranges, one writer per slot, no reads of unwritten slots, no cycles), and
//! precomputes what the run loop needs (CSR adjacency, dependency counts, use counts).

use crate::error::{KernelError, Site, Writer};

/// Marker in a node's argument list for an absent optional input (`-1` in Python).
pub const ABSENT: u32 = u32::MAX;

/// Largest supported slot count: slot indices are `u32` and [`ABSENT`] is reserved.
pub const MAX_SLOTS: u32 = u32::MAX - 1;

/// Largest supported node count (node indices are `u32`).
pub const MAX_NODES: u32 = u32::MAX - 1;

/// Compressed sparse rows: row `r` is `items[offsets[r]..offsets[r + 1]]`.
#[derive(Debug, Clone)]
pub struct Csr {
    offsets: Vec<u32>,
    items: Vec<u32>,
}

impl Csr {
    /// An empty table (no rows).
    fn new() -> Self {
        Csr { offsets: vec![0], items: Vec::new() }
    }

    /// Appends a row. `site` names the list in the error if the table outgrows `u32`.
    fn push_row(&mut self, row: &[u32], site: Site) -> Result<(), KernelError> {
        self.items.extend_from_slice(row);
        let end = u32::try_from(self.items.len())
            .map_err(|_| KernelError::TooLarge { site, max: u32::MAX })?;
        self.offsets.push(end);
        Ok(())
    }

    /// Builds `n_rows` rows from `(row, item)` pairs by a stable counting sort, so each row
    /// keeps the pairs' order. Every `row` must be `< n_rows`.
    fn from_pairs(n_rows: usize, pairs: &[(u32, u32)]) -> Result<Self, KernelError> {
        let mut offsets = try_filled(n_rows.saturating_add(1), 0u32)?;
        for &(row, _) in pairs {
            offsets[row as usize + 1] += 1;
        }
        for r in 0..n_rows {
            offsets[r + 1] += offsets[r];
        }
        let mut fill = try_filled(n_rows, 0u32)?;
        fill.copy_from_slice(&offsets[..n_rows]);
        let mut items = vec![0u32; pairs.len()];
        for &(row, item) in pairs {
            let at = &mut fill[row as usize];
            items[*at as usize] = item;
            *at += 1;
        }
        Ok(Csr { offsets, items })
    }

    /// Row `r` (empty if `r` is out of range).
    #[inline]
    pub fn row(&self, r: usize) -> &[u32] {
        match (self.offsets.get(r), self.offsets.get(r + 1)) {
            (Some(&start), Some(&end)) => &self.items[start as usize..end as usize],
            _ => &[],
        }
    }

    /// Length of the longest row.
    fn max_row_len(&self) -> usize {
        self.offsets.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0)
    }
}

/// A vector of `n` copies of `value`, or [`KernelError::OutOfMemory`] if it cannot be
/// allocated. Used for every per-slot array: `n_slots` comes from the caller and may be
/// huge, and a failed infallible allocation would abort the whole process.
pub fn try_filled<T: Clone>(n: usize, value: T) -> Result<Vec<T>, KernelError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| KernelError::OutOfMemory {
        site: Site::NSlots,
        bytes: n.saturating_mul(size_of::<T>()),
    })?;
    v.resize(n, value);
    Ok(v)
}

/// The slot lists of one node, as given by the caller (not yet validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSlots {
    /// Input slot per positional argument; `-1` for an absent optional input.
    pub inputs: Vec<i64>,
    /// Output slots.
    pub outputs: Vec<i64>,
}

/// A plan's shape as given by the caller (not yet validated).
#[derive(Debug, Clone, Default)]
pub struct GraphSpec {
    /// Number of slots.
    pub n_slots: i64,
    /// Per node, its input and output slots.
    pub nodes: Vec<NodeSlots>,
    /// Slots written from `run()`'s inputs, in order.
    pub input_slots: Vec<i64>,
    /// Slots returned by `run()`, in order.
    pub output_slots: Vec<i64>,
    /// Slots written by constants, in the order of the `constants` argument.
    pub constant_slots: Vec<i64>,
    /// Slots written from the enclosing context when the plan runs as a body.
    pub outer_slots: Vec<i64>,
    /// One priority per node, or `None` for all zero.
    pub priorities: Option<Vec<i64>>,
}

/// A validated, acyclic plan shape. Immutable; shared by every run of a plan.
#[derive(Debug, Clone)]
pub struct Graph {
    n_slots: u32,
    /// Per node: the slot of each positional argument, [`ABSENT`] for `None`.
    pub(crate) args: Csr,
    /// Per node: its distinct input slots (no [`ABSENT`]); each is one "use" of the slot.
    pub(crate) reads: Csr,
    /// Per node: its output slots.
    pub(crate) outputs: Csr,
    /// Per slot: the distinct nodes reading it. Filled only for slots written by nodes,
    /// since only those gate readiness.
    pub(crate) consumers: Csr,
    /// Per node: how many of its distinct input slots are written by nodes; the node is
    /// ready once that many have been produced.
    pub(crate) missing: Vec<u32>,
    /// Per slot: how many nodes read it.
    pub(crate) uses: Vec<u32>,
    /// Per slot: whether `run()` returns it (such slots are never released early).
    pub(crate) is_output: Vec<bool>,
    /// Per slot: whether a written value is kept at all (`uses > 0 || is_output`).
    pub(crate) keep: Vec<bool>,
    /// Per node: its priority (higher runs first).
    pub(crate) priorities: Vec<i64>,
    /// Slots written from `run()`'s inputs, in order.
    pub(crate) input_slots: Vec<u32>,
    /// Slots returned by `run()`, in order.
    pub(crate) output_slots: Vec<u32>,
    /// Slots written by constants, in order.
    pub(crate) constant_slots: Vec<u32>,
    /// Slots written from the enclosing context, in order.
    pub(crate) outer_slots: Vec<u32>,
    /// Largest number of positional arguments of any node.
    pub(crate) max_arity: usize,
}

impl Graph {
    /// Validates `spec` and builds the run-time arrays.
    ///
    /// Errors name the offending node, list entry and slot: a slot out of range, a slot
    /// written twice, a read of a slot nothing writes, a `priorities` list of the wrong
    /// length, or a cycle (found by Kahn's algorithm; the error lists the nodes on it).
    pub fn build(spec: &GraphSpec) -> Result<Graph, KernelError> {
        let n_slots = u32::try_from(spec.n_slots)
            .ok()
            .filter(|&n| n <= MAX_SLOTS)
            .ok_or(KernelError::SlotCount { n_slots: spec.n_slots, max: MAX_SLOTS })?;
        let n_nodes = spec.nodes.len();
        if n_nodes > MAX_NODES as usize {
            return Err(KernelError::TooLarge { site: Site::Nodes, max: MAX_NODES });
        }
        let priorities = match &spec.priorities {
            None => vec![0; n_nodes],
            Some(p) if p.len() == n_nodes => p.clone(),
            Some(p) => {
                return Err(KernelError::PrioritiesLength { got: p.len(), expected: n_nodes });
            }
        };
        let slot = |site: Site, raw: i64| -> Result<u32, KernelError> {
            u32::try_from(raw).ok().filter(|&s| s < n_slots).ok_or(KernelError::SlotOutOfRange {
                site,
                slot: raw,
                n_slots,
            })
        };

        // Writers: each slot has at most one.
        let mut writer: Vec<Option<Writer>> = try_filled(n_slots as usize, None)?;
        let mut claim = |s: u32, w: Writer| -> Result<(), KernelError> {
            let entry = &mut writer[s as usize];
            match *entry {
                Some(first) => Err(KernelError::SlotWrittenTwice { slot: s, first, second: w }),
                None => {
                    *entry = Some(w);
                    Ok(())
                }
            }
        };
        let mut input_slots = Vec::with_capacity(spec.input_slots.len());
        for (i, &raw) in spec.input_slots.iter().enumerate() {
            let s = slot(Site::InputSlot(i), raw)?;
            claim(s, Writer::RunInput(i))?;
            input_slots.push(s);
        }
        let mut constant_slots = Vec::with_capacity(spec.constant_slots.len());
        for (i, &raw) in spec.constant_slots.iter().enumerate() {
            let s = slot(Site::Constant(i), raw)?;
            claim(s, Writer::Constant(i))?;
            constant_slots.push(s);
        }
        let mut outer_slots = Vec::with_capacity(spec.outer_slots.len());
        for (i, &raw) in spec.outer_slots.iter().enumerate() {
            let s = slot(Site::OuterSlot(i), raw)?;
            claim(s, Writer::Outer(i))?;
            outer_slots.push(s);
        }
        let mut outputs = Csr::new();
        let mut row: Vec<u32> = Vec::new();
        for (node, spec_node) in spec.nodes.iter().enumerate() {
            row.clear();
            for (position, &raw) in spec_node.outputs.iter().enumerate() {
                let s = slot(Site::NodeOutput { node, position }, raw)?;
                claim(s, Writer::Node(node))?;
                row.push(s);
            }
            outputs.push_row(&row, Site::Node(node))?;
        }

        // Reads: every read slot has a writer.
        let mut args = Csr::new();
        let mut reads = Csr::new();
        let mut distinct: Vec<u32> = Vec::new();
        for (node, spec_node) in spec.nodes.iter().enumerate() {
            row.clear();
            distinct.clear();
            for (position, &raw) in spec_node.inputs.iter().enumerate() {
                if raw == -1 {
                    row.push(ABSENT);
                    continue;
                }
                let site = Site::NodeInput { node, position };
                let s = slot(site, raw)?;
                if writer[s as usize].is_none() {
                    return Err(KernelError::UnwrittenSlot { site, slot: s });
                }
                row.push(s);
                distinct.push(s);
            }
            distinct.sort_unstable();
            distinct.dedup();
            args.push_row(&row, Site::Node(node))?;
            reads.push_row(&distinct, Site::Node(node))?;
        }
        let mut is_output = try_filled(n_slots as usize, false)?;
        let mut output_slots = Vec::with_capacity(spec.output_slots.len());
        for (i, &raw) in spec.output_slots.iter().enumerate() {
            let site = Site::OutputSlot(i);
            let s = slot(site, raw)?;
            if writer[s as usize].is_none() {
                return Err(KernelError::UnwrittenSlot { site, slot: s });
            }
            is_output[s as usize] = true;
            output_slots.push(s);
        }

        // Use counts, dependency counts and the slot -> consumers table.
        let mut uses = try_filled(n_slots as usize, 0u32)?;
        let mut missing = vec![0u32; n_nodes];
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for (node, missing) in missing.iter_mut().enumerate() {
            for &s in reads.row(node) {
                // At most one use per node, and node count < u32::MAX: cannot overflow.
                uses[s as usize] += 1;
                if let Some(Writer::Node(_)) = writer[s as usize] {
                    *missing += 1;
                    // Lossless: `n_nodes <= MAX_NODES` was checked above.
                    pairs.push((s, node as u32));
                }
            }
        }
        let consumers = Csr::from_pairs(n_slots as usize, &pairs)?;
        let mut keep = try_filled(n_slots as usize, false)?;
        for ((keep, &uses), &is_output) in keep.iter_mut().zip(&uses).zip(&is_output) {
            *keep = uses > 0 || is_output;
        }
        let max_arity = args.max_row_len();
        let graph = Graph {
            n_slots,
            args,
            reads,
            outputs,
            consumers,
            missing,
            uses,
            is_output,
            keep,
            priorities,
            input_slots,
            output_slots,
            constant_slots,
            outer_slots,
            max_arity,
        };
        graph.check_acyclic(&writer)?;
        Ok(graph)
    }

    /// Number of slots.
    pub fn n_slots(&self) -> usize {
        self.n_slots as usize
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.missing.len()
    }

    /// The nodes waiting for no node's output: ready as soon as their frame starts.
    pub fn sources(&self) -> impl Iterator<Item = u32> + '_ {
        // Lossless: `Graph::build` caps the node count at `MAX_NODES`.
        self.missing.iter().enumerate().filter(|&(_, &m)| m == 0).map(|(node, _)| node as u32)
    }

    /// Dependency counting: `node` wrote its outputs, so each consumer of each of them waits
    /// for one input fewer (`missing`, per node, starts as the graph's own counts). Calls
    /// `ready(consumer)` for each consumer that now waits for none. The run loop and the
    /// cycle check both count this way.
    #[inline]
    pub fn wake_consumers(&self, node: u32, missing: &mut [u32], mut ready: impl FnMut(u32)) {
        for &slot in self.outputs.row(node as usize) {
            for &consumer in self.consumers.row(slot as usize) {
                let waiting = &mut missing[consumer as usize];
                *waiting -= 1;
                if *waiting == 0 {
                    ready(consumer);
                }
            }
        }
    }

    /// Kahn's algorithm, counting dependencies as the run loop does
    /// ([`Graph::wake_consumers`]). If some node is never ready, walks back from it through
    /// unscheduled producers until a node repeats, and reports that loop.
    fn check_acyclic(&self, writer: &[Option<Writer>]) -> Result<(), KernelError> {
        let mut missing = self.missing.clone();
        let mut ready: Vec<u32> = self.sources().collect();
        let mut scheduled = 0usize;
        while let Some(node) = ready.pop() {
            scheduled += 1;
            self.wake_consumers(node, &mut missing, |consumer| ready.push(consumer));
        }
        if scheduled == self.n_nodes() {
            return Ok(());
        }
        // Unscheduled nodes are exactly those still missing an input; each has an
        // unscheduled producer, so walking producers must eventually revisit a node.
        let unscheduled = |n: usize| missing.get(n).is_some_and(|&m| m > 0);
        let start = (0..self.n_nodes())
            .find(|&n| unscheduled(n))
            .ok_or_else(|| KernelError::Internal("Kahn left no unscheduled node".into()))?;
        let mut position_on_path = vec![usize::MAX; self.n_nodes()];
        let mut path: Vec<usize> = Vec::new();
        let mut node = start;
        loop {
            if position_on_path[node] != usize::MAX {
                // `path` runs consumer -> producer; report it producer -> consumer.
                let mut cycle = path.split_off(position_on_path[node]);
                cycle.reverse();
                let lowest = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                cycle.rotate_left(lowest);
                return Err(KernelError::Cycle { nodes: cycle });
            }
            position_on_path[node] = path.len();
            path.push(node);
            node = self
                .reads
                .row(node)
                .iter()
                .find_map(|&s| match writer[s as usize] {
                    Some(Writer::Node(w)) if unscheduled(w) => Some(w),
                    _ => None,
                })
                .ok_or_else(|| {
                    KernelError::Internal(format!("node {node} is blocked by no node"))
                })?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(inputs: &[i64], outputs: &[i64]) -> NodeSlots {
        NodeSlots { inputs: inputs.to_vec(), outputs: outputs.to_vec() }
    }

    fn spec(n_slots: i64, nodes: Vec<NodeSlots>, inputs: &[i64], outputs: &[i64]) -> GraphSpec {
        GraphSpec {
            n_slots,
            nodes,
            input_slots: inputs.to_vec(),
            output_slots: outputs.to_vec(),
            ..GraphSpec::default()
        }
    }

    #[test]
    fn csr_from_pairs_groups_rows_stably() {
        let csr = Csr::from_pairs(4, &[(2, 7), (0, 1), (2, 5), (3, 9), (0, 4)]).unwrap();
        assert_eq!(csr.row(0), &[1, 4]);
        assert_eq!(csr.row(1), &[] as &[u32]);
        assert_eq!(csr.row(2), &[7, 5]);
        assert_eq!(csr.row(3), &[9]);
        assert_eq!(csr.row(4), &[] as &[u32]);
        assert_eq!(csr.max_row_len(), 2);
    }

    #[test]
    fn diamond_counts_distinct_dependencies() {
        // 0 -> n0 -> 1 ; 1 -> n1 -> 2 ; 1 -> n2 -> 3 ; (2, 3, 2) -> n3 -> 4
        let g = Graph::build(&spec(
            5,
            vec![node(&[0], &[1]), node(&[1], &[2]), node(&[1], &[3]), node(&[2, 3, 2], &[4])],
            &[0],
            &[4],
        ))
        .unwrap();
        assert_eq!(g.missing, vec![0, 1, 1, 2]);
        assert_eq!(g.uses, vec![1, 2, 1, 1, 0]);
        assert_eq!(g.reads.row(3), &[2, 3]);
        assert_eq!(g.args.row(3), &[2, 3, 2]);
        assert_eq!(g.consumers.row(1), &[1, 2]);
        assert_eq!(g.consumers.row(0), &[] as &[u32], "run inputs gate nothing");
        assert_eq!(g.keep, vec![true, true, true, true, true]);
        assert_eq!(g.max_arity, 3);
    }

    #[test]
    fn absent_inputs_are_not_dependencies() {
        let g = Graph::build(&spec(2, vec![node(&[-1, 0, -1], &[1])], &[0], &[1])).unwrap();
        assert_eq!(g.args.row(0), &[ABSENT, 0, ABSENT]);
        assert_eq!(g.reads.row(0), &[0]);
        assert_eq!(g.missing, vec![0]);
    }

    #[test]
    fn unread_slots_are_not_kept() {
        let g = Graph::build(&spec(4, vec![node(&[0], &[1, 2, 3])], &[0], &[3])).unwrap();
        assert_eq!(g.keep, vec![true, false, false, true]);
    }

    #[test]
    fn cycle_is_reported_with_its_nodes() {
        // n0 feeds n1 (slot 2), n1 feeds n2 (slot 3), n2 feeds n1 (slot 4); n3 hangs off n2.
        let err = Graph::build(&spec(
            6,
            vec![node(&[0], &[1]), node(&[1, 4], &[2]), node(&[2], &[3, 4]), node(&[3], &[5])],
            &[0],
            &[5],
        ))
        .unwrap_err();
        match err {
            KernelError::Cycle { nodes } => assert_eq!(nodes, vec![1, 2]),
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let err = Graph::build(&spec(2, vec![node(&[0, 1], &[1])], &[0], &[])).unwrap_err();
        assert_eq!(err.to_string(), "the node graph has a cycle: node 0 -> node 0");
    }

    #[test]
    fn validation_errors() {
        let cases: Vec<(GraphSpec, &str)> = vec![
            (spec(-1, vec![], &[], &[]), "n_slots must be between 0 and"),
            (spec(1, vec![], &[1], &[]), "input_slots[0]: slot 1 is out of range [0, 1)"),
            (spec(1, vec![], &[-1], &[]), "input_slots[0]: slot -1 is out of range"),
            (
                spec(2, vec![node(&[0], &[0])], &[0], &[]),
                "slot 0 is written twice: by input_slots[0] and by node 0",
            ),
            (
                spec(2, vec![node(&[1], &[])], &[0], &[]),
                "node 0 input 0 reads slot 1, which nothing writes",
            ),
            (spec(2, vec![node(&[-2], &[])], &[0], &[]), "node 0 input 0: slot -2 is out of range"),
            (spec(2, vec![node(&[0], &[2])], &[0], &[]), "node 0 output 0: slot 2 is out of range"),
            (spec(2, vec![], &[0], &[1]), "output_slots[0] reads slot 1, which nothing writes"),
            (spec(2, vec![], &[0], &[-1]), "output_slots[0]: slot -1 is out of range"),
        ];
        for (s, expected) in cases {
            let msg = Graph::build(&s).unwrap_err().to_string();
            assert!(msg.starts_with(expected), "{msg:?} does not start with {expected:?}");
        }
        let mut s = spec(1, vec![node(&[], &[])], &[], &[]);
        s.priorities = Some(vec![]);
        assert_eq!(
            Graph::build(&s).unwrap_err().to_string(),
            "priorities has 0 entries, expected one per node (1)"
        );
        let mut s = spec(1, vec![], &[], &[]);
        s.constant_slots = vec![0, 0];
        assert_eq!(
            Graph::build(&s).unwrap_err().to_string(),
            "slot 0 is written twice: by constants[0] and by constants[1]"
        );
    }

    #[test]
    fn allocation_failure_is_an_error() {
        let err = try_filled(usize::MAX / 2, 0u64).unwrap_err();
        assert!(err.to_string().starts_with("n_slots: cannot allocate"), "{err}");
    }

    #[test]
    fn empty_plan_is_valid() {
        let g = Graph::build(&spec(1, vec![], &[0], &[0, 0])).unwrap();
        assert_eq!(g.n_nodes(), 0);
        assert_eq!(g.n_slots(), 1);
        assert_eq!(g.output_slots, vec![0, 0]);
    }
}
