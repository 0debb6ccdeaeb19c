//! SD3's MMDiT compute buffer: the graph stable-diffusion.cpp builds for one denoising step
//! (`src/mmdit.hpp` and `ggml_ext_attention_ext` in `src/ggml_extend.hpp`, as vendored in
//! stable-diffusion-cpp-python 0.4.7), replayed op by op with ggml's allocator in the order
//! `ggml_build_forward_expand` visits it (sources left to right, depth first).
//!
//! Every variant follows from its shapes: depth (hidden 64·depth, one 64-wide head per block),
//! the blocks with MMDiT-X's second, image-only attention (`attn2`), and RMS-normed Q/K (SD3.5).
//! With flash attention, sd.cpp pads the keys to a multiple of 256 and builds their mask as an
//! F32 zero block, an F32 −∞ block and their F32 concatenation, cast to F16: that, and not
//! the score matrix, is the term in tokens² (none when the tokens are already a multiple of
//! 256, as MMDiT-X's image-only attention is at 512² to 1536²).
//!
//! Checked against sd.cpp's own allocation trace (an instrumented `ggml-alloc.c`: every tensor's
//! offset) and its measured buffers: exact to the byte on all 24 SD3 medium, SD3.5 medium and
//! large rows (`tests/fixtures/llamacpp-memory/sdcpp/measurements.jsonl`).

use inferkit_core::gguf::GgufModel;

use super::alloc::{Graph, TensorId};
use super::graph::CPU_ALIGNMENT;

const F32: u64 = 4;
const F16: u64 = 2;

/// Text tokens SD3's MMDiT attends over beside the image: 77 CLIP (L and G side by side) and
/// 77 T5 tokens (`SD3CLIPEmbedder`, one 77-token chunk).
const TEXT_TOKENS: u64 = 154;

/// Width of a head (`MMDiT::MMDiT`: hidden 64·depth, depth heads).
const HEAD_WIDTH: u64 = 64;

/// Latent channels (SD3's 16-channel VAE) and the 2×2 patch the DiT embeds.
const LATENT_CHANNELS: u64 = 16;
const PATCH: u64 = 2;

/// Side of the learned position grid (`pos_embed_max_size`), doubled for MMDiT-X.
const POSITION_GRID: u64 = 192;

/// The shape of an SD3 MMDiT as sd.cpp reads it (`MMDiT::MMDiT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mmdit {
    /// Joint blocks: the highest block index plus one, at least 24.
    pub depth: u64,
    /// Blocks whose image stream has MMDiT-X's second attention (`attn2`): the first ones.
    pub dual_blocks: u64,
    /// Q and K are RMS-normed per head (`attn.ln_q`, SD3.5).
    pub qk_norm: bool,
}

impl Mmdit {
    /// Reads depth, MMDiT-X blocks and Q/K norms from the tensor names, as sd.cpp does.
    pub fn read(model: &GgufModel) -> Mmdit {
        let mut shape = Mmdit {
            depth: 24,
            dual_blocks: 0,
            qk_norm: false,
        };
        for t in model.tensors() {
            let Some(rest) = t.name.split("joint_blocks.").nth(1) else {
                continue;
            };
            let Some(block) = rest.split('.').next().and_then(|b| b.parse::<u64>().ok()) else {
                continue;
            };
            shape.depth = shape.depth.max(block + 1);
            if rest.contains(".attn2.") {
                shape.dual_blocks = shape.dual_blocks.max(block + 1);
            }
            shape.qk_norm |= rest.contains(".attn.ln_q.");
        }
        shape
    }

    /// The DiT's compute buffer for one `width`×`height` image.
    pub fn compute(&self, width: u64, height: u64, flash_attn: bool) -> u64 {
        let (latent_w, latent_h) = (width.div_ceil(8), height.div_ceil(8));
        let (patches_w, patches_h) = (latent_w.div_ceil(PATCH), latent_h.div_ceil(PATCH));
        let mut b = Builder {
            g: Graph::default(),
            shape: *self,
            hidden: HEAD_WIDTH * self.depth,
            image: patches_w * patches_h,
            flash_attn,
            one: 0,
            c: None,
        };
        // sd.cpp's built-in tensors, `one` (F32) and `zero_int` (I32), expanded into every graph.
        b.one = b.g.input(F32, 0);
        b.g.input(4, 0);
        let out = b.forward(latent_w * latent_h, patches_h);
        b.g.mark_output(out);
        b.g.peak(1, CPU_ALIGNMENT)[0]
    }
}

/// A block's adaLN modulation (`adaLN_modulation.1` over `silu(c)`), emitted when a chunk is
/// first read, as the graph visits it.
#[derive(Clone, Copy)]
struct Modulation {
    chunks: u64,
    m: Option<TensorId>,
}

/// A stream's fused QKV projection made contiguous (`split_qkv`): Q, K and V are views of it.
#[derive(Clone, Copy)]
struct Qkv {
    cont: TensorId,
    tokens: u64,
}

/// One stream of a block (text or image) up to its QKV.
#[derive(Clone, Copy)]
struct Stream {
    /// The stream's input, added back after attention and MLP.
    input: TensorId,
    /// `norm1`'s output (MMDiT-X modulates it again for the second attention).
    norm: TensorId,
    modulation: Modulation,
    qkv: Qkv,
}

/// The text stream's input to a block: the context embedder's output (first block), or the
/// previous block's text stream after its attention, whose output projection and MLP the
/// graph only reaches when this block reads the context.
#[derive(Clone, Copy)]
enum Context {
    Embedder(TensorId),
    Pending {
        attn: TensorId,
        residual: TensorId,
        modulation: Modulation,
    },
}

/// Where an attention reads Q, K and V from.
#[derive(Clone, Copy)]
enum Streams {
    /// The joint attention over text and image concatenated; `first` is the concatenation the
    /// graph reaches first (Q with flash attention, V without), already emitted.
    Joint {
        text: Qkv,
        image: Qkv,
        first: (u64, TensorId),
    },
    /// MMDiT-X's image-only attention.
    Image(Qkv),
}

struct Builder {
    g: Graph,
    shape: Mmdit,
    hidden: u64,
    /// Image tokens (2×2 latent patches).
    image: u64,
    flash_attn: bool,
    /// sd.cpp's built-in one-element tensor (`ggml_runner_build_in_tensor:one`).
    one: TensorId,
    /// The conditioning vector (timestep and pooled text embeddings), once emitted.
    c: Option<TensorId>,
}

impl Builder {
    fn op(&mut self, bytes: u64, srcs: &[TensorId]) -> TensorId {
        self.g.op(bytes, srcs, 0)
    }

    /// An op of `bytes` that ggml-alloc may run in place on one of `candidates` (the sources
    /// with its layout). A view never hands its memory on: ggml-alloc never marks a view
    /// `allocated` in its hash table, so `ggml_gallocr_is_own` refuses it (sd.cpp's allocation
    /// trace agrees), and every linear's output is one (its bias is added in place).
    fn inplace(&mut self, bytes: u64, srcs: &[TensorId], candidates: &[TensorId]) -> TensorId {
        let parents: Vec<TensorId> = candidates
            .iter()
            .copied()
            .filter(|&t| !self.g.is_view(t))
            .collect();
        self.g.inplace_on(bytes, srcs, &parents, 0)
    }

    /// `ggml_add` of two tensors of the same shape.
    fn add(&mut self, a: TensorId, b: TensorId) -> TensorId {
        let bytes = self.g.bytes(a);
        self.inplace(bytes, &[a, b], &[a, b])
    }

    /// `ggml_mul` or `ggml_add` of `x` and a broadcast row (a modulation chunk).
    fn broadcast(&mut self, x: TensorId, row: TensorId) -> TensorId {
        let bytes = self.g.bytes(x);
        self.inplace(bytes, &[x, row], &[x])
    }

    /// A reshape, permute or view at offset 0, or an `_inplace` op (a view of its source).
    fn view(&mut self, x: TensorId) -> TensorId {
        self.g.view(x)
    }

    /// A permute made contiguous.
    fn cont(&mut self, x: TensorId, bytes: u64) -> TensorId {
        let reshaped = self.view(x);
        let permuted = self.view(reshaped);
        self.op(bytes, &[permuted])
    }

    /// A hidden-wide activation over `tokens`.
    fn activation(&self, tokens: u64) -> u64 {
        self.hidden * tokens * F32
    }

    /// `ggml_ext_linear` with its bias (every MMDiT linear has one, added by
    /// `ggml_add_inplace`: a view of the product), `rows` wide.
    fn linear(&mut self, x: TensorId, rows: u64, tokens: u64) -> TensorId {
        let y = self.op(rows * tokens * F32, &[x]);
        self.view(y)
    }

    /// The conditioning vector `c`: timestep and pooled text (2048 wide) embeddings, each
    /// through a 2-layer MLP with SiLU in place, added; the graph reaches it through the first
    /// modulation.
    fn conditioning(&mut self) -> TensorId {
        if let Some(c) = self.c {
            return c;
        }
        let hidden = self.hidden;
        let t = self.g.input(F32, 0);
        let frequencies = self.op(256 * F32, &[t]);
        let te = self.linear(frequencies, hidden, 1);
        let te = self.view(te);
        let te = self.linear(te, hidden, 1);
        let y = self.g.input(2048 * F32, 0);
        let ye = self.linear(y, hidden, 1);
        let ye = self.view(ye);
        let ye = self.linear(ye, hidden, 1);
        let c = self.add(te, ye);
        self.c = Some(c);
        c
    }

    /// The next chunk of a modulation (`ggml_ext_chunk` makes each contiguous), reshaped.
    fn chunk(&mut self, modulation: &mut Modulation) -> TensorId {
        let m = match modulation.m {
            Some(m) => m,
            None => {
                let c = self.conditioning();
                let silu = self.op(self.hidden * F32, &[c]);
                let m = self.linear(silu, modulation.chunks * self.hidden, 1);
                modulation.m = Some(m);
                m
            }
        };
        let view = self.view(m);
        let chunk = self.op(self.hidden * F32, &[view]);
        self.view(chunk)
    }

    /// `modulate`: `x + x·scale`, then `+ shift`.
    fn modulate(&mut self, x: TensorId, modulation: &mut Modulation) -> TensorId {
        let scale = self.chunk(modulation);
        let scaled = self.broadcast(x, scale);
        let sum = self.add(x, scaled);
        let shift = self.chunk(modulation);
        self.broadcast(sum, shift)
    }

    /// `DismantledBlock::pre_attention` for one stream: norm (no affine), modulation, fused
    /// QKV projection, made contiguous by `split_qkv`.
    fn stream(&mut self, input: TensorId, tokens: u64, chunks: u64) -> Stream {
        let mut modulation = Modulation { chunks, m: None };
        let norm = self.op(self.activation(tokens), &[input]);
        let modulated = self.modulate(norm, &mut modulation);
        let qkv = self.qkv(modulated, tokens);
        Stream {
            input,
            norm,
            modulation,
            qkv,
        }
    }

    fn qkv(&mut self, x: TensorId, tokens: u64) -> Qkv {
        let fused = self.linear(x, 3 * self.hidden, tokens);
        let cont = self.cont(fused, 3 * self.activation(tokens));
        Qkv { cont, tokens }
    }

    /// Q (0), K (1) or V (2) of a stream: a view of its QKV, with Q and K RMS-normed per head
    /// when the model has `ln_q`/`ln_k` (a new tensor: its source is a view), the norm's weight
    /// multiplied in place.
    fn part(&mut self, qkv: Qkv, which: u64) -> TensorId {
        let view = self.g.view(qkv.cont);
        if !self.shape.qk_norm || which == 2 {
            return view;
        }
        let heads = self.view(view);
        let normed = self.inplace(self.activation(qkv.tokens), &[heads], &[heads]);
        let weighted = self.view(normed);
        self.view(weighted)
    }

    /// Q, K or V of an attention: the joint one concatenates the text and image streams'.
    fn read(&mut self, streams: Streams, which: u64) -> TensorId {
        match streams {
            Streams::Image(qkv) => self.part(qkv, which),
            Streams::Joint { first, .. } if first.0 == which => first.1,
            Streams::Joint { text, image, .. } => {
                let t = self.part(text, which);
                let i = self.part(image, which);
                self.op(self.activation(text.tokens + image.tokens), &[t, i])
            }
        }
    }

    /// `ggml_ext_attention_ext` over `tokens` queries and keys: flash attention with keys and
    /// values padded to a multiple of 256, cast to F16, and the padding's mask; or the score
    /// matrix, its scale and soft-max in place. Returns the hidden-wide output.
    fn attention(&mut self, streams: Streams, tokens: u64) -> TensorId {
        let heads = self.shape.depth;
        let width = self.activation(tokens);
        if self.flash_attn {
            let pad = tokens.div_ceil(256) * 256 - tokens;
            let padded = tokens + pad;
            let q = self.read(streams, 0);
            let q = self.cont(q, width);
            let q = self.view(q);
            let k = self.read(streams, 1);
            let k = self.cont(k, width);
            let mut k = self.view(k);
            if pad > 0 {
                k = self.op(self.hidden * padded * F32, &[k]);
            }
            let k = self.op(self.hidden * padded * F16, &[k]);
            let v = self.read(streams, 2);
            let v = self.view(v);
            let v = self.cont(v, width);
            let mut v = self.view(v);
            if pad > 0 {
                v = self.op(self.hidden * padded * F32, &[v]);
            }
            let v = self.op(self.hidden * padded * F16, &[v]);
            let mut srcs = vec![q, k, v];
            if pad > 0 {
                let zero = self.op(F32, &[self.one]);
                let zeros = self.op(tokens * tokens * F32, &[zero]);
                let inf = self.op(F32, &[self.one]);
                let infs = self.op(pad * tokens * F32, &[inf]);
                let mask = self.op(padded * tokens * F32, &[zeros, infs]);
                srcs.push(self.op(padded * tokens * F16, &[mask]));
            }
            let out = self.op(width, &srcs);
            let out = self.view(out);
            return self.view(out);
        }
        let v = self.read(streams, 2);
        let v = self.view(v);
        let v = self.cont(v, width);
        let v = self.view(v);
        let k = self.read(streams, 1);
        let k = self.cont(k, width);
        let k = self.view(k);
        let q = self.read(streams, 0);
        let q = self.cont(q, width);
        let q = self.view(q);
        let scores = self.op(heads * tokens * tokens * F32, &[k, q]);
        let scaled = self.view(scores);
        let softmax = self.view(scaled);
        let out = self.op(width, &[v, softmax]);
        let out = self.cont(out, width);
        self.view(out)
    }

    /// The output projection, gated, added to the stream's residual.
    fn post_attention(
        &mut self,
        attn: TensorId,
        residual: TensorId,
        modulation: &mut Modulation,
        tokens: u64,
    ) -> TensorId {
        let projected = self.linear(attn, self.hidden, tokens);
        let gate = self.chunk(modulation);
        let gated = self.broadcast(projected, gate);
        self.add(residual, gated)
    }

    /// `norm2`, modulation, the 4× GELU MLP, gated, added to `x`.
    fn mlp(&mut self, x: TensorId, modulation: &mut Modulation, tokens: u64) -> TensorId {
        let norm = self.op(self.activation(tokens), &[x]);
        let modulated = self.modulate(norm, modulation);
        let up = self.linear(modulated, 4 * self.hidden, tokens);
        let gelu = self.view(up);
        let down = self.linear(gelu, self.hidden, tokens);
        let gate = self.chunk(modulation);
        let gated = self.broadcast(down, gate);
        self.add(x, gated)
    }

    /// The text stream's input tensor, emitting what the graph reaches through it.
    fn context(&mut self, context: Context) -> TensorId {
        match context {
            Context::Embedder(input) => self.linear(input, self.hidden, TEXT_TOKENS),
            Context::Pending {
                attn,
                residual,
                mut modulation,
            } => {
                let text = self.view(attn);
                let x = self.post_attention(text, residual, &mut modulation, TEXT_TOKENS);
                self.mlp(x, &mut modulation, TEXT_TOKENS)
            }
        }
    }

    /// `block_mixing` for block `index`: the image stream's output, and the text stream's
    /// for the next block (the last block's text stream ends at its QKV, `pre_only`).
    fn block(&mut self, index: u64, x: TensorId, context: Context) -> (TensorId, Context) {
        let last = index + 1 == self.shape.depth;
        let dual = index < self.shape.dual_blocks;
        let tokens = self.image + TEXT_TOKENS;
        // The graph reaches Q, K, V through their concatenations, each reading the text
        // stream first; the first one it reaches emits both streams.
        let first = if self.flash_attn { 0 } else { 2 };
        let input = self.context(context);
        let text = self.stream(input, TEXT_TOKENS, if last { 2 } else { 6 });
        let text_first = self.part(text.qkv, first);
        let mut image = self.stream(x, self.image, if dual { 9 } else { 6 });
        let image_first = self.part(image.qkv, first);
        let cat = self.op(self.activation(tokens), &[text_first, image_first]);
        let streams = Streams::Joint {
            text: text.qkv,
            image: image.qkv,
            first: (first, cat),
        };
        let attn = self.attention(streams, tokens);
        let image_attn = self.g.view(attn);
        let mut x = self.post_attention(image_attn, image.input, &mut image.modulation, self.image);
        if dual {
            let modulated = self.modulate(image.norm, &mut image.modulation);
            let qkv = self.qkv(modulated, self.image);
            let attn2 = self.attention(Streams::Image(qkv), self.image);
            x = self.post_attention(attn2, x, &mut image.modulation, self.image);
        }
        let x = self.mlp(x, &mut image.modulation, self.image);
        let context = Context::Pending {
            attn,
            residual: text.input,
            modulation: text.modulation,
        };
        (x, context)
    }

    /// `MMDiT::forward` over a latent of `latent_pixels` pixels whose patch grid is `patches_h` high.
    fn forward(&mut self, latent_pixels: u64, patches_h: u64) -> TensorId {
        let n = self.image;
        let hidden = self.hidden;
        // Patch embedding: pad, im2col (F16), matmul, the conv's permute made contiguous,
        // bias in place, flattened and made contiguous again.
        let latent = self.g.input(LATENT_CHANNELS * latent_pixels * F32, 0);
        let padded = self.op(LATENT_CHANNELS * latent_pixels * F32, &[latent]);
        let cols = self.op(LATENT_CHANNELS * PATCH * PATCH * n * F16, &[padded]);
        let cols = self.view(cols);
        let conv = self.op(self.activation(n), &[cols]);
        let conv = self.cont(conv, self.activation(n));
        let biased = self.view(conv);
        let patches = self.cont(biased, self.activation(n));
        // `cropped_pos_embed`: the grid's rows for the image made contiguous, then its columns.
        let grid = if self.shape.dual_blocks > 0 {
            2 * POSITION_GRID
        } else {
            POSITION_GRID
        };
        let rows = self.op(hidden * grid * patches_h * F32, &[]);
        let positions = self.cont(rows, self.activation(n));
        let positions = self.view(positions);
        let mut x = self.add(patches, positions);
        let mut context = Context::Embedder(self.g.input(TEXT_TOKENS * 4096 * F32, 0));
        for index in 0..self.shape.depth {
            (x, context) = self.block(index, x, context);
        }
        // Final layer and unpatchify.
        let mut modulation = Modulation { chunks: 2, m: None };
        let norm = self.op(self.activation(n), &[x]);
        let modulated = self.modulate(norm, &mut modulation);
        let out = PATCH * PATCH * LATENT_CHANNELS;
        let projected = self.linear(modulated, out, n);
        self.cont(projected, out * n * F32)
    }
}
