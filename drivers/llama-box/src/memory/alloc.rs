//! A replay of ggml's graph allocator (`ggml/src/ggml-alloc.c`, `ggml_gallocr`): the compute
//! buffer llama.cpp reserves is the high-water mark of this allocator over the worst-case
//! graph, so replaying its rules (best-fit free blocks, in-place reuse of a parent's memory,
//! freeing a tensor after its last consumer) gives the buffer size, fragmentation included.

/// Index of a tensor in a [`Graph`].
pub(crate) type TensorId = usize;

/// One tensor of a compute graph. Weights and KV-cache tensors live in other buffers and are
/// not part of the graph at all (the allocator skips them as "external").
#[derive(Debug, Clone)]
struct Tensor {
    bytes: u64,
    /// The non-view tensor whose memory this one views.
    view_src: Option<TensorId>,
    srcs: Vec<TensorId>,
    /// Parents whose memory this op may take over (`ggml_op_can_inplace` and same layout).
    inplace_parents: Vec<TensorId>,
    input: bool,
    output: bool,
    /// Result lives in a buffer outside the graph (a `set_rows` into the KV cache).
    external: bool,
    buffer: usize,
}

/// A compute graph in execution order, as `ggml_build_forward_expand` would order it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Graph {
    tensors: Vec<Tensor>,
    /// Leafs (inputs) in discovery order, allocated before any node.
    leafs: Vec<TensorId>,
    /// Nodes in execution order.
    nodes: Vec<TensorId>,
}

impl Graph {
    /// A graph input (a leaf with `GGML_TENSOR_FLAG_INPUT`) in `buffer`.
    pub fn input(&mut self, bytes: u64, buffer: usize) -> TensorId {
        let id = self.push(bytes, None, Vec::new(), Vec::new(), buffer);
        self.tensors[id].input = true;
        self.leafs.push(id);
        id
    }

    /// An input that stays allocated for the whole graph (pipeline-parallel copies are flagged
    /// input and output so that the allocator never reuses them).
    pub fn pinned_input(&mut self, bytes: u64, buffer: usize) -> TensorId {
        let id = self.input(bytes, buffer);
        self.tensors[id].output = true;
        id
    }

    /// An op producing a new tensor of `bytes`.
    pub fn op(&mut self, bytes: u64, srcs: &[TensorId], buffer: usize) -> TensorId {
        self.node(bytes, srcs, Vec::new(), buffer)
    }

    /// An in-place-capable op (`ggml_op_can_inplace`) whose output has the layout of its first
    /// `same_layout` sources.
    pub fn inplace(&mut self, srcs: &[TensorId], same_layout: usize, buffer: usize) -> TensorId {
        let bytes = self.tensors[srcs[0]].bytes;
        self.inplace_sized(bytes, srcs, same_layout, buffer)
    }

    /// [`Graph::inplace`] with an output of `bytes`, smaller than its first source when the op
    /// reads the leading view of a larger tensor (the parent's tail is freed on reuse).
    pub fn inplace_sized(
        &mut self,
        bytes: u64,
        srcs: &[TensorId],
        same_layout: usize,
        buffer: usize,
    ) -> TensorId {
        let parents = srcs[..same_layout.min(srcs.len())].to_vec();
        self.node(bytes, srcs, parents, buffer)
    }

    /// An op that ggml-alloc may run in place on one of `parents` (some of `srcs`, in the order
    /// it tries them), producing `bytes`.
    pub fn inplace_on(
        &mut self,
        bytes: u64,
        srcs: &[TensorId],
        parents: &[TensorId],
        buffer: usize,
    ) -> TensorId {
        self.node(bytes, srcs, parents.to_vec(), buffer)
    }

    /// Whether a tensor is a view of another.
    pub fn is_view(&self, id: TensorId) -> bool {
        self.tensors[id].view_src.is_some()
    }

    /// A view (reshape, permute, transpose, view) of `of`.
    pub fn view(&mut self, of: TensorId) -> TensorId {
        let root = self.tensors[of].view_src.unwrap_or(of);
        let buffer = self.tensors[of].buffer;
        let bytes = self.tensors[of].bytes;
        let id = self.push(bytes, Some(root), vec![of], Vec::new(), buffer);
        self.nodes.push(id);
        id
    }

    /// A view of `bytes` (a strided view spans what `ggml_nbytes` counts: what a copy of it
    /// takes) of `of`.
    pub fn view_sized(&mut self, of: TensorId, bytes: u64) -> TensorId {
        let id = self.view(of);
        self.tensors[id].bytes = bytes;
        id
    }

    /// An op writing into memory outside the graph (`set_rows` into the KV cache): it keeps
    /// its sources alive until it runs but takes no compute memory.
    pub fn store(&mut self, srcs: &[TensorId], buffer: usize) -> TensorId {
        let id = self.node(0, srcs, Vec::new(), buffer);
        self.tensors[id].external = true;
        id
    }

    /// A tensor of `bytes` in `buffer` outside the graph's memory (a view of the KV cache
    /// that another buffer copies): never allocated by the graph.
    pub fn external(&mut self, bytes: u64, buffer: usize) -> TensorId {
        let id = self.push(bytes, None, Vec::new(), Vec::new(), buffer);
        self.tensors[id].external = true;
        id
    }

    /// The dependency `ggml_backend_sched` puts before each split-input copy
    /// (`ggml_view_tensor` of the source, left at `GGML_OP_NONE`): it keeps `src` alive until
    /// the copy and allocates nothing. ggml-alloc does not count `GGML_OP_NONE` nodes as views,
    /// so the source is freed right after the copy when nothing else reads it.
    pub fn dependency(&mut self, src: TensorId, buffer: usize) -> TensorId {
        self.store(&[src], buffer)
    }

    /// A node that is a graph output (never freed, never reused).
    pub fn mark_output(&mut self, id: TensorId) {
        self.tensors[id].output = true;
    }

    /// Bytes of a tensor.
    pub fn bytes(&self, id: TensorId) -> u64 {
        self.tensors[id].bytes
    }

    /// Buffer of a tensor.
    pub fn buffer(&self, id: TensorId) -> usize {
        self.tensors[id].buffer
    }

    fn node(
        &mut self,
        bytes: u64,
        srcs: &[TensorId],
        inplace_parents: Vec<TensorId>,
        buffer: usize,
    ) -> TensorId {
        let id = self.push(bytes, None, srcs.to_vec(), inplace_parents, buffer);
        self.nodes.push(id);
        id
    }

    fn push(
        &mut self,
        bytes: u64,
        view_src: Option<TensorId>,
        srcs: Vec<TensorId>,
        inplace_parents: Vec<TensorId>,
        buffer: usize,
    ) -> TensorId {
        self.tensors.push(Tensor {
            bytes,
            view_src,
            srcs,
            inplace_parents,
            input: false,
            output: false,
            external: false,
            buffer,
        });
        self.tensors.len() - 1
    }

    /// The high-water mark of each of `buffers` buffers after allocating the graph with
    /// `alignment`.
    pub fn peak(&self, buffers: usize, alignment: u64) -> Vec<u64> {
        let mut run = Run::new(self, buffers, alignment);
        run.allocate();
        run.allocators.iter().map(|a| a.max_size).collect()
    }
}

/// ggml's `ggml_dyn_tallocr` for one buffer: free blocks sorted by offset, the last one
/// unbounded.
#[derive(Debug, Clone)]
struct DynAllocator {
    alignment: u64,
    free: Vec<(u64, u64)>,
    max_size: u64,
}

impl DynAllocator {
    fn new(alignment: u64) -> Self {
        DynAllocator {
            alignment,
            free: vec![(0, u64::MAX / 2)],
            max_size: 0,
        }
    }

    fn align(&self, size: u64) -> u64 {
        size.div_ceil(self.alignment) * self.alignment
    }

    /// Best fit among all blocks but the last; else the last block.
    fn alloc(&mut self, size: u64) -> u64 {
        let size = self.align(size);
        let last = self.free.len() - 1;
        let mut best: Option<usize> = None;
        for (i, &(_, block)) in self.free[..last].iter().enumerate() {
            if block >= size && best.is_none_or(|b| block <= self.free[b].1) {
                best = Some(i);
            }
        }
        let index = best.unwrap_or(last);
        let (offset, block) = self.free[index];
        if block == size {
            self.free.remove(index);
        } else {
            self.free[index] = (offset + size, block - size);
        }
        self.max_size = self.max_size.max(offset + size);
        offset
    }

    fn free_bytes(&mut self, offset: u64, size: u64) {
        let size = self.align(size);
        for i in 0..self.free.len() {
            let (block_offset, block_size) = self.free[i];
            if block_offset + block_size == offset {
                self.free[i].1 += size;
                if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0
                {
                    self.free[i].1 += self.free[i + 1].1;
                    self.free.remove(i + 1);
                }
                return;
            }
            if offset + size == block_offset {
                self.free[i] = (offset, block_size + size);
                if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == offset {
                    self.free[i - 1].1 += self.free[i].1;
                    self.free.remove(i);
                }
                return;
            }
        }
        // ggml_dyn_tallocr_insert_block: before the first block at or after `offset`, found
        // by a linear scan (a freed zero-size tensor can leave an empty block inside another,
        // so the list is not always sorted and a binary search would place it elsewhere).
        let at = self
            .free
            .iter()
            .position(|&(o, _)| o >= offset)
            .unwrap_or(self.free.len());
        self.free.insert(at, (offset, size));
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    children: u32,
    views: u32,
    allocated: bool,
    offset: u64,
    buffer: usize,
}

struct Run<'g> {
    graph: &'g Graph,
    state: Vec<State>,
    allocators: Vec<DynAllocator>,
}

impl<'g> Run<'g> {
    fn new(graph: &'g Graph, buffers: usize, alignment: u64) -> Self {
        Run {
            graph,
            state: vec![State::default(); graph.tensors.len()],
            allocators: vec![DynAllocator::new(alignment); buffers.max(1)],
        }
    }

    fn is_view(&self, id: TensorId) -> bool {
        self.graph.tensors[id].view_src.is_some()
    }

    /// `ggml_gallocr_alloc_graph_impl`.
    fn allocate(&mut self) {
        let graph = self.graph;
        // Leafs come in the order the graph's nodes first read them (`ggml_build_forward_expand`
        // meets them on its way to the nodes). One that no node reads follows the leaf created
        // before it: `build_inp_embd`'s embeddings input, which `ggml_build_forward_select`
        // expands right after the token ids it stands beside. The pinned copies of pipeline
        // parallelism, which no node reads either, come first (`ggml_backend_sched_split_graph`
        // puts them before the graph's leafs).
        let read: std::collections::HashSet<TensorId> = graph
            .nodes
            .iter()
            .flat_map(|&n| graph.tensors[n].srcs.iter().copied())
            .collect();
        let mut followers: std::collections::HashMap<TensorId, Vec<TensorId>> =
            std::collections::HashMap::new();
        let mut last_read = None;
        for &leaf in &graph.leafs {
            if read.contains(&leaf) {
                last_read = Some(leaf);
            } else if let (Some(before), false) = (last_read, graph.tensors[leaf].output) {
                followers.entry(before).or_default().push(leaf);
            } else {
                self.allocate_tensor(leaf);
            }
        }
        for &node in &graph.nodes {
            if let Some(src) = graph.tensors[node].view_src {
                self.state[src].views += 1;
            }
            for &src in &graph.tensors[node].srcs {
                self.state[src].children += 1;
                if graph.tensors[src].input {
                    self.allocate_tensor(src);
                    for &leaf in followers.get(&src).into_iter().flatten() {
                        self.allocate_tensor(leaf);
                    }
                }
            }
        }
        for &node in &graph.nodes {
            self.allocate_tensor(node);
            for &parent in &graph.tensors[node].srcs {
                self.release_parent(parent);
            }
        }
    }

    fn release_parent(&mut self, parent: TensorId) {
        let state = &mut self.state[parent];
        state.children = state.children.saturating_sub(1);
        if state.children > 0 || state.views > 0 {
            return;
        }
        match self.graph.tensors[parent].view_src {
            Some(src) => {
                let src_state = &mut self.state[src];
                src_state.views = src_state.views.saturating_sub(1);
                if src_state.views == 0 && src_state.children == 0 && src_state.allocated {
                    self.free_tensor(src);
                }
            }
            None if self.state[parent].allocated => self.free_tensor(parent),
            None => {}
        }
    }

    /// `ggml_gallocr_allocate_node`.
    fn allocate_tensor(&mut self, id: TensorId) {
        if self.state[id].allocated || self.is_view(id) || self.graph.tensors[id].external {
            return;
        }
        self.state[id].allocated = true;
        let tensor = &self.graph.tensors[id];
        for &parent in &tensor.inplace_parents {
            if self.can_lend(parent) {
                let (offset, buffer) = (self.state[parent].offset, self.state[parent].buffer);
                self.state[parent].allocated = false;
                self.state[id].offset = offset;
                self.state[id].buffer = buffer;
                let extra = self.graph.tensors[parent].bytes;
                let allocator = &mut self.allocators[buffer];
                let (old, new) = (allocator.align(extra), allocator.align(tensor.bytes));
                if old > new {
                    allocator.free_bytes(offset + new, old - new);
                }
                return;
            }
        }
        let buffer = tensor.buffer;
        self.state[id].buffer = buffer;
        self.state[id].offset = self.allocators[buffer].alloc(tensor.bytes);
    }

    /// Whether `parent` can hand its memory to an in-place consumer. A view never does:
    /// ggml-alloc asks `ggml_gallocr_is_own(parent)`, and a view's hash node is never marked
    /// allocated (`ggml_gallocr_allocate_node` skips views), so its "reusing view parent"
    /// branch is never taken at 0c1e57098 (no such line in any allocator trace of
    /// `tools/measure/llamacpp/alloc_trace.sh`, run through `measure_rpc.py --trace`).
    fn can_lend(&self, parent: TensorId) -> bool {
        let p = &self.graph.tensors[parent];
        let state = &self.state[parent];
        p.view_src.is_none()
            && !p.output
            && !p.input
            && state.allocated
            && state.children == 1
            && state.views == 0
    }

    fn free_tensor(&mut self, id: TensorId) {
        if self.graph.tensors[id].output {
            return;
        }
        let state = self.state[id];
        self.allocators[state.buffer].free_bytes(state.offset, self.graph.tensors[id].bytes);
        self.state[id].allocated = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_ops_reuse_memory_and_freed_holes_are_refilled() {
        let mut g = Graph::default();
        let x = g.input(1024, 0);
        let a = g.op(4096, &[x], 0); // 4 KiB
        let b = g.inplace(&[a], 1, 0); // reuses a
        let c = g.op(4096, &[b], 0); // a/b freed after this
        let d = g.op(2048, &[c], 0); // fits in b's hole
        g.mark_output(d);
        assert_eq!(g.peak(1, 32), vec![1024 + 4096 + 4096]);
    }
}
