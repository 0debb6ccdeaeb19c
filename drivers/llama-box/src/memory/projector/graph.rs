//! The graph clip.cpp reserves its compute buffer with: one warm-up image through the
//! projector type's builder (`tools/mtmd/models/*.cpp`, `clip_graph::build_vit`,
//! `build_attn`, `build_ffn`, `build_norm` in `clip.cpp`), op by op, so that the replayed
//! allocator sees the tensors ggml-alloc sees: new tensors for matmuls, norms, copies, GLUs
//! and casts; in-place results for adds, muls, unary activations, RMS norms, RoPE and
//! soft-max (`ggml_op_can_inplace`); views for reshapes and permutes.

use super::super::alloc::{Graph, TensorId};
use super::super::graph::CPU_ALIGNMENT;
use super::tower::{Norm, ProjectorKind, Tower};

const F32: u64 = 4;
const F16: u64 = 2;
const I32: u64 = 4;

/// The compute reservation for one warm-up image.
pub(super) fn compute(tower: &Tower, flash_attn: bool) -> u64 {
    let side = tower.patches_per_side();
    let mut b = Builder {
        g: Graph::default(),
        t: tower,
        flash_attn,
        side,
        patches: side * side,
        window_f16: None,
        last_block: false,
        final_weight: FinalWeight::None,
    };
    let out = match tower.kind {
        ProjectorKind::Qwen2Vl | ProjectorKind::Qwen25Vl | ProjectorKind::Qwen3Vl => b.qwen(),
        ProjectorKind::Gemma3 | ProjectorKind::Idefics3 => b.siglip(),
        ProjectorKind::Pixtral => b.pixtral(),
        ProjectorKind::InternVl => b.internvl(),
        ProjectorKind::Llama4 => b.llama4(),
        ProjectorKind::KimiVl => b.kimivl(),
        ProjectorKind::MiniCpmV => b.minicpmv(),
        ProjectorKind::Mlp
        | ProjectorKind::MlpNorm
        | ProjectorKind::Ldp
        | ProjectorKind::LdpV2
        | ProjectorKind::GlmEdge => b.llava(),
        ProjectorKind::Ultravox | ProjectorKind::Qwen2Audio | ProjectorKind::Voxtral => b.whisper(),
        ProjectorKind::Other => b.generic(),
    };
    b.g.mark_output(out);
    b.g.peak(1, CPU_ALIGNMENT)[0]
}

/// Positions added to Q and K in every layer.
#[derive(Clone, Copy)]
enum Rope {
    None,
    /// Qwen's M-RoPE: one `ggml_rope_multi` on Q and on K.
    Multi(TensorId),
    /// `build_rope_2d`: two chained `ggml_rope_ext` on Q and on K.
    TwoD(TensorId, TensorId),
}

/// Sizes of one attention.
#[derive(Clone, Copy)]
struct Attention {
    width: u64,
    heads: u64,
    queries: u64,
    keys: u64,
}

/// A weight copy the output op reads as its first source. Every layer's Q, K and V are put
/// in the graph as `build_attn` orders them (`ggml_build_forward_order`), so the final
/// `ggml_build_forward_expand` reaches this copy right after the last layer's V, before that
/// layer's attention, and that is where ggml-alloc places it.
#[derive(Clone, Copy)]
enum FinalWeight {
    None,
    /// Bytes of the copy, still to emit.
    Pending(u64),
    Emitted(TensorId),
}

/// The attention mask of a layer.
#[derive(Clone, Copy)]
enum Mask {
    None,
    /// Qwen2.5-VL's window mask (an F32 input), used by the layers that do not attend fully.
    Window(TensorId),
}

struct Builder<'a> {
    g: Graph,
    t: &'a Tower,
    flash_attn: bool,
    /// Patches per side of the warm-up image.
    side: u64,
    patches: u64,
    /// The F16 copy of the window mask, once made.
    window_f16: Option<TensorId>,
    /// Whether the block being built is the ViT's last.
    last_block: bool,
    /// A copy of a weight that the output op reads first (Gemma 3's transposed input
    /// projection).
    final_weight: FinalWeight,
}

impl Builder<'_> {
    // ----- ggml ops, as the allocator sees them -----

    fn input(&mut self, bytes: u64) -> TensorId {
        self.g.input(bytes, 0)
    }

    fn op(&mut self, bytes: u64, srcs: &[TensorId]) -> TensorId {
        self.g.op(bytes, srcs, 0)
    }

    /// A unary op or an op with a weight as second operand: in place on `x` when it can.
    fn inplace(&mut self, x: TensorId) -> TensorId {
        self.g.inplace(&[x], 1, 0)
    }

    /// `ggml_add(a, b)` of two graph tensors of the same shape.
    fn add(&mut self, a: TensorId, b: TensorId) -> TensorId {
        self.g.inplace(&[a, b], 2, 0)
    }

    /// A reshape, permute or transpose.
    fn view(&mut self, x: TensorId) -> TensorId {
        self.g.view(x)
    }

    /// A permute or transpose made contiguous: a new tensor of the same size.
    fn cont(&mut self, x: TensorId) -> TensorId {
        let bytes = self.g.bytes(x);
        let v = self.view(x);
        self.op(bytes, &[v])
    }

    fn matmul(&mut self, x: TensorId, rows: u64, tokens: u64) -> TensorId {
        self.op(rows * tokens * F32, &[x])
    }

    /// `build_mm` plus the bias when the file has one.
    fn linear(&mut self, x: TensorId, rows: u64, tokens: u64, bias: bool) -> TensorId {
        let y = self.matmul(x, rows, tokens);
        if bias { self.inplace(y) } else { y }
    }

    /// `build_norm`: the norm, then weight and bias in place.
    fn norm(&mut self, x: TensorId, kind: Norm, bias: bool) -> TensorId {
        let n = match kind {
            Norm::Layer => {
                let bytes = self.g.bytes(x);
                self.op(bytes, &[x])
            }
            Norm::Rms => self.inplace(x),
        };
        let n = self.inplace(n);
        if bias { self.inplace(n) } else { n }
    }

    /// The tower's own norm `name` (`pre_ln`, `post_ln`) when the file has it.
    fn own_norm(&mut self, x: TensorId, name: &str, kind: Norm) -> TensorId {
        if !self.t.has_own(&format!("{name}.weight")) {
            return x;
        }
        let bias = self.t.has_own(&format!("{name}.bias"));
        self.norm(x, kind, bias)
    }

    fn layer_norm(&mut self, x: TensorId, suffix: &str) -> TensorId {
        let bias = self.t.block_has(&format!("{suffix}.bias"));
        self.norm(x, self.t.norm, bias)
    }

    /// `ggml_conv_2d` with the patch kernel: im2col (F16), matmul, permute made contiguous.
    fn conv_patches(&mut self, image: TensorId) -> TensorId {
        let (p, n, e) = (self.t.patch, self.patches, self.t.n_embd);
        let cols = self.op(3 * p * p * n * F16, &[image]);
        let mm = self.op(e * n * F32, &[cols]);
        let permuted = self.view(mm);
        self.op(e * n * F32, &[permuted])
    }

    /// `ggml_conv_2d_dw` with a 3×3 kernel over `channels` planes into `out` positions: an
    /// F16 im2col of the reshaped input, then the matmul.
    fn conv_depthwise(&mut self, x: TensorId, channels: u64, out: u64) -> TensorId {
        let planes = self.view(x);
        let cols = self.op(9 * out * channels * F16, &[planes]);
        let cols = self.view(cols);
        let y = self.op(out * channels * F32, &[cols]);
        self.view(y)
    }

    /// `ggml_conv_1d_ph` with Whisper's 3-wide kernel over `channels` rows into `out` frames,
    /// then the bias and GELU in place.
    fn conv1d_gelu(&mut self, x: TensorId, channels: u64, out: u64) -> TensorId {
        let cols = self.op(3 * channels * out * F16, &[x]);
        let cols = self.view(cols);
        let y = self.op(self.t.n_embd * out * F32, &[cols]);
        let y = self.view(y);
        let y = self.inplace(y);
        self.inplace(y)
    }

    fn image(&mut self) -> TensorId {
        let side = self.t.image_side();
        self.input(side * side * 3 * F32)
    }

    /// `clip_graph::build_inp`: patches as `[n_embd, n_patches]`, plus the patch bias.
    fn build_inp(&mut self) -> TensorId {
        let image = self.image();
        let conv = self.conv_patches(image);
        let reshaped = self.view(conv);
        let transposed = self.view(reshaped);
        let e = self.t.n_embd;
        let cur = self.op(e * self.patches * F32, &[transposed]);
        if self.t.has("v.patch_embd.bias") {
            self.inplace(cur)
        } else {
            cur
        }
    }

    /// `ggml_concat` of the class token after the patches.
    fn class_token(&mut self, x: TensorId) -> TensorId {
        let e = self.t.n_embd;
        self.op(e * (self.patches + 1) * F32, &[x])
    }

    /// `resize_position_embeddings`: the learned grid interpolated to the image's grid when
    /// their sides differ (a new tensor), else the weight itself (`None`).
    fn resized_positions(&mut self) -> Option<TensorId> {
        let grid = self.t.dim("v.position_embd.weight", 1)?;
        let per_side = (grid as f64).sqrt() as u64;
        if per_side == self.side {
            return None;
        }
        let e = self.t.n_embd;
        let interpolated = self.op(e * self.patches * F32, &[]);
        let permuted = self.view(interpolated);
        Some(self.op(e * self.patches * F32, &[permuted]))
    }

    // ----- the shared transformer -----

    /// `clip_graph::build_vit` over `inp` (`n_pos` tokens).
    fn vit(
        &mut self,
        inp: TensorId,
        n_pos: u64,
        learned: Option<TensorId>,
        rope: Rope,
    ) -> TensorId {
        let mut cur = inp;
        if let Some(pos) = learned {
            cur = self.add(cur, pos);
        } else if self.t.has_own("position_embd.weight") {
            // The learned grid (a weight) added in place.
            cur = self.inplace(cur);
        }
        let mut inp_l = self.view(cur);
        inp_l = self.own_norm(inp_l, "pre_ln", self.t.norm);
        for layer in 0..self.t.n_layer {
            self.last_block = layer + 1 == self.t.n_layer;
            inp_l = self.block(inp_l, n_pos, rope, Mask::None);
        }
        self.last_block = false;
        if matches!(
            self.t.kind,
            ProjectorKind::Qwen2Audio | ProjectorKind::Voxtral
        ) {
            // `audio_has_avgpool`: transposed, pooled by 2, transposed back.
            let frames = self.cont(inp_l);
            let pooled = self.op(self.t.n_embd * (n_pos / 2) * F32, &[frames]);
            inp_l = self.cont(pooled);
        }
        inp_l = self.own_norm(inp_l, "post_ln", self.t.norm);
        self.view(inp_l)
    }

    /// One pre-norm transformer layer.
    fn block(&mut self, inp_l: TensorId, n_pos: u64, rope: Rope, mask: Mask) -> TensorId {
        let e = self.t.n_embd;
        let cur = self.layer_norm(inp_l, "ln1");
        // `build_attn` orders Q, K and V (each with its RoPE) before the attention.
        let (q, k, v) = if self.t.block_has("attn_qkv.weight") {
            let bias = self.t.block_has("attn_qkv.bias");
            let qkv = self.linear(cur, 3 * e, n_pos, bias);
            let q = self.g.view(qkv);
            let q = self.rope(q, rope, e * n_pos * F32);
            let k = self.g.view(qkv);
            let k = self.rope(k, rope, e * n_pos * F32);
            (q, k, self.g.view(qkv))
        } else {
            let mut qkv = [0; 3];
            for (i, name) in ["attn_q", "attn_k", "attn_v"].into_iter().enumerate() {
                let bias = self.t.block_has(&format!("{name}.bias"));
                let y = self.linear(cur, e, n_pos, bias);
                let y = self.view(y);
                qkv[i] = if i < 2 {
                    self.rope(y, rope, e * n_pos * F32)
                } else {
                    y
                };
            }
            (qkv[0], qkv[1], qkv[2])
        };
        if let (true, FinalWeight::Pending(bytes)) = (self.last_block, self.final_weight) {
            self.final_weight = FinalWeight::Emitted(self.op(bytes, &[]));
        }
        let attn = self.attention(q, k, v, n_pos, mask);
        let out_bias = self.t.block_has("attn_out.bias");
        let mut cur = self.linear(attn, e, n_pos, out_bias);
        if self.t.block_has("ls1.weight") {
            cur = self.inplace(cur);
        }
        let cur = self.add(cur, inp_l);
        let normed = self.layer_norm(cur, "ln2");
        let mut ffn = self.ffn(normed, n_pos);
        if self.t.block_has("ls2.weight") {
            ffn = self.inplace(ffn);
        }
        // `ggml_add(inpL, cur)`: the residual is the first candidate for in-place reuse.
        self.add(cur, ffn)
    }

    /// RoPE on the reshaped Q or K. ggml may run RoPE in place, but on these views the
    /// measured reservations show a new tensor (replayed in place, Qwen2-VL comes out one
    /// activation short); the second rotation of `build_rope_2d` takes its input in place.
    /// `bytes` is the rotated tensor's size (a third of a fused QKV view's).
    fn rope(&mut self, x: TensorId, rope: Rope, bytes: u64) -> TensorId {
        match rope {
            Rope::None => x,
            Rope::Multi(positions) => self.op(bytes, &[x, positions]),
            Rope::TwoD(a, b) => {
                let first = self.op(bytes, &[x, a]);
                self.g.inplace(&[first, b], 1, 0)
            }
        }
    }

    /// `clip_graph::build_attn` without the output projection, over the tower's heads.
    fn attention(&mut self, q: TensorId, k: TensorId, v: TensorId, t: u64, mask: Mask) -> TensorId {
        let shape = Attention {
            width: self.t.n_embd,
            heads: self.t.n_head,
            queries: t,
            keys: t,
        };
        self.attend(q, k, v, shape, mask)
    }

    /// `build_attn`: flash attention over F16 copies of K and V, else the score matrix, its
    /// in-place soft-max and the weighted sum made contiguous.
    fn attend(
        &mut self,
        q: TensorId,
        k: TensorId,
        v: TensorId,
        a: Attention,
        mask: Mask,
    ) -> TensorId {
        let (e, h, tq, tk) = (a.width, a.heads, a.queries, a.keys);
        let q = self.view(q);
        let k = self.view(k);
        let v = self.view(v);
        if self.flash_attn {
            let kc = self.op(e * tk * F16, &[k]);
            let vc = self.op(e * tk * F16, &[v]);
            let out = match mask {
                Mask::None => self.op(e * tq * F32, &[q, kc, vc]),
                Mask::Window(m) => {
                    // The builder's F16 copy of the mask is made where the first windowed
                    // layer needs it; `build_attn` copies it again for each layer.
                    let shared = match self.window_f16 {
                        Some(shared) => shared,
                        None => {
                            let shared = self.op(tq * tk * F16, &[m]);
                            self.window_f16 = Some(shared);
                            shared
                        }
                    };
                    let m16 = self.op(tq * tk * F16, &[shared]);
                    self.op(e * tq * F32, &[q, kc, vc, m16])
                }
            };
            return self.view(out);
        }
        let vc = self.op(e * tk * F32, &[v]);
        let kq = self.op(h * tq * tk * F32, &[k, q]);
        let kq = match mask {
            Mask::None => self.inplace(kq),
            Mask::Window(m) => self.g.inplace(&[kq, m], 1, 0),
        };
        let kqv = self.op(e * tq * F32, &[vc, kq]);
        let permuted = self.view(kqv);
        self.op(e * tq * F32, &[permuted])
    }

    /// `clip_graph::build_ffn` with the layer's tensors: up (+bias), gate (+bias) and a GLU
    /// (a new tensor) or the activation in place, down (+bias).
    fn ffn(&mut self, x: TensorId, t: u64) -> TensorId {
        let (e, f) = (self.t.n_embd, self.t.n_ff);
        let up_bias = self.t.block_has("ffn_up.bias");
        // The graph runs in the order the output reaches its sources: the GLU's first source
        // (the gate) before the up projection.
        let act = if self.t.block_has("ffn_gate.weight") {
            let gate_bias = self.t.block_has("ffn_gate.bias");
            let gate = self.linear(x, f, t, gate_bias);
            let up = self.linear(x, f, t, up_bias);
            self.op(f * t * F32, &[gate, up])
        } else {
            let up = self.linear(x, f, t, up_bias);
            self.inplace(up)
        };
        let down_bias = self.t.block_has("ffn_down.bias");
        self.linear(act, e, t, down_bias)
    }

    /// A two-layer GELU MLP over `tokens` (`build_ffn` without gate), widths from the tensors.
    fn mlp(&mut self, x: TensorId, tokens: u64, first: &str, second: &str) -> TensorId {
        let rows = self.t.dim(&format!("{first}.weight"), 1).unwrap_or(0);
        let bias = self.t.has(&format!("{first}.bias"));
        let y = self.linear(x, rows, tokens, bias);
        let y = self.inplace(y);
        let rows = self.t.dim(&format!("{second}.weight"), 1).unwrap_or(0);
        let bias = self.t.has(&format!("{second}.bias"));
        self.linear(y, rows, tokens, bias)
    }

    /// `build_patch_merge_permute` (pixel unshuffle): two contiguous copies.
    fn unshuffle(&mut self, x: TensorId, scale: u64) -> TensorId {
        let e = self.t.n_embd;
        let padded = self.side.div_ceil(scale) * scale;
        let bytes = e * padded * padded * F32;
        let mut cur = self.view(x);
        if padded != self.side {
            cur = self.op(bytes, &[cur]);
        }
        let cur = self.view(cur);
        let cur = self.op(bytes, &[cur]);
        let cur = self.view(cur);
        self.op(bytes, &[cur])
    }

    // ----- the builders per projector type -----

    /// `clip_graph_llava::build` (`mlp`, `mlp_norm`, `ldp`, `ldpv2`, `adapter`).
    fn llava(&mut self) -> TensorId {
        let e = self.t.n_embd;
        let class = self.t.has("v.class_embd");
        let n_pos = self.patches + u64::from(class);
        let mut inp = self.build_inp();
        if class {
            inp = self.class_token(inp);
        }
        let positions = self.input(n_pos * I32);
        let rows = self.op(e * n_pos * F32, &[positions]);
        let mut cur = self.add(inp, rows);
        cur = self.own_norm(cur, "pre_ln", Norm::Layer);
        for _ in 0..self.t.n_layer {
            cur = self.block(cur, n_pos, Rope::None, Mask::None);
        }
        cur = self.own_norm(cur, "post_ln", Norm::Layer);
        if self.t.kind == ProjectorKind::GlmEdge {
            return self.glm_edge(cur);
        }
        let cur = self.view(cur);
        let patches = self.input(self.patches * I32);
        let n = self.patches;
        let mut cur = self.op(e * n * F32, &[cur, patches]);
        match self.t.kind {
            ProjectorKind::Ldp => return self.ldp(cur),
            ProjectorKind::LdpV2 => return self.ldpv2(cur),
            _ => {}
        }
        if self.t.kind == ProjectorKind::MlpNorm {
            let mid = self.t.dim("mm.0.weight", 1).unwrap_or(0);
            cur = self.linear(cur, mid, n, true);
            cur = self.norm(cur, Norm::Layer, true);
            cur = self.inplace(cur);
            let out = self.t.dim("mm.3.weight", 1).unwrap_or(0);
            cur = self.linear(cur, out, n, true);
            return self.norm(cur, Norm::Layer, true);
        }
        let widths = self.t.numbered_projection();
        for (i, rows) in widths.into_iter().enumerate() {
            if i > 0 {
                cur = self.inplace(cur);
            }
            cur = self.linear(cur, rows, n, true);
        }
        cur
    }

    /// The two-layer GELU MLP of the MobileVLM projectors, `mm.model.mlp.<first>` and
    /// `.<second>`, over the gathered patches.
    fn mobilevlm_mlp(&mut self, x: TensorId, first: u8, second: u8) -> TensorId {
        let n = self.patches;
        let mid = self.t.dim(&format!("mm.model.mlp.{first}.weight"), 1);
        let y = self.linear(x, mid.unwrap_or(0), n, true);
        let y = self.inplace(y);
        let out = self.t.dim(&format!("mm.model.mlp.{second}.weight"), 1);
        self.linear(y, out.unwrap_or(0), n, true)
    }

    /// The `ldp` projector (MobileVLM): the MLP, then two MobileNetV3 blocks on the patch grid,
    /// the first with a residual, the second with stride 2.
    fn ldp(&mut self, x: TensorId) -> TensorId {
        let y = self.mobilevlm_mlp(x, 1, 3);
        let width = self.g.bytes(y) / (self.patches * F32);
        let grid = self.cont(y);
        let first = self.mobile_block(grid, 1, width, self.patches);
        let first = self.cont(first);
        let first = self.add(grid, first);
        let half = self.side.div_ceil(2);
        let second = self.mobile_block(first, 2, width, half * half);
        self.view(second)
    }

    /// One MobileNetV3 block (`mm.model.mb_block.<index>`): depthwise convolution, layer norm,
    /// hardswish, squeeze-excitation over the average-pooled channels, pointwise convolution,
    /// layer norm. `out` is the number of positions the convolution leaves.
    fn mobile_block(&mut self, x: TensorId, index: u8, width: u64, out: u64) -> TensorId {
        let conv = self.conv_depthwise(x, width, out);
        let cur = self.cont(conv);
        let cur = self.norm(cur, Norm::Layer, true);
        let cur = self.cont(cur);
        let activated = self.inplace(cur);
        let pooled = self.op(width * F32, &[activated]);
        let pooled = self.view(pooled);
        let prefix = format!("mm.model.mb_block.{index}.block.1");
        let squeezed = self.t.dim(&format!("{prefix}.fc1.weight"), 1);
        let se = self.linear(pooled, squeezed.unwrap_or(0), 1, true);
        let se = self.inplace(se);
        let se = self.linear(se, width, 1, true);
        let se = self.inplace(se);
        let se = self.view(se);
        let cur = self.g.inplace(&[activated, se], 1, 0);
        let cur = self.view(cur);
        let cur = self.cont(cur);
        let cur = self.matmul(cur, width, out);
        let cur = self.view(cur);
        self.norm(cur, Norm::Layer, true)
    }

    /// The `ldpv2` projector (MobileVLM V2): the MLP, 2×2 average pooling on the patch grid,
    /// and the positional convolution (PEG) added to its input.
    fn ldpv2(&mut self, x: TensorId) -> TensorId {
        let y = self.mobilevlm_mlp(x, 0, 2);
        let width = self.g.bytes(y) / (self.patches * F32);
        let grid = self.cont(y);
        let half = self.side / 2;
        let pooled = self.op(width * half * half * F32, &[grid]);
        let peg = self.conv_depthwise(pooled, width, half * half);
        let peg = self.cont(peg);
        let peg = self.inplace(peg);
        let skip = self.cont(pooled);
        let peg = self.add(peg, skip);
        self.view(peg)
    }

    /// The `adapter` projector (GLM-Edge-V): a 2×2 stride-2 convolution to the text width, a
    /// GLU (linear, layer norm, GELU, gate and up, down), then the BOI and EOI rows.
    fn glm_edge(&mut self, x: TensorId) -> TensorId {
        let (e, tokens) = (self.t.n_embd, self.patches / 4);
        let width = self.t.dim("adapter.conv.weight", 3).unwrap_or(0);
        let grid = self.cont(x);
        let cols = self.op(4 * e * tokens * F16, &[grid]);
        let cols = self.view(cols);
        let conv = self.op(width * tokens * F32, &[cols]);
        let conv = self.cont(conv);
        let cur = self.view(conv);
        let cur = self.cont(cur);
        let cur = self.inplace(cur);
        let cur = self.matmul(cur, width, tokens);
        let cur = self.norm(cur, Norm::Layer, true);
        // `ggml_gelu_inplace` returns a view of its input.
        let cur = self.view(cur);
        let ff = self.t.dim("adapter.linear.gate.weight", 1).unwrap_or(0);
        let gate = self.matmul(cur, ff, tokens);
        let up = self.matmul(cur, ff, tokens);
        let act = self.op(ff * tokens * F32, &[gate, up]);
        let out = self.matmul(act, width, tokens);
        let with_boi = self.op(width * (tokens + 1) * F32, &[out]);
        self.op(width * (tokens + 2) * F32, &[with_boi])
    }

    /// `clip_graph_whisper_enc::build` (`ultravox`, `qwen2a`, `voxtral`): two convolutions
    /// over the warm-up mel frames (the second halves them), the transformer with learned
    /// positions, average pooling for Qwen2-Audio and Voxtral, frames stacked into tokens, and
    /// the type's projector.
    fn whisper(&mut self) -> TensorId {
        let (e, frames, mel) = (self.t.n_embd, self.t.audio_frames(), self.t.n_mel);
        let n_pos = frames / 2;
        let inp = self.input(frames * mel * F32);
        let cur = self.conv1d_gelu(inp, mel, frames);
        let cur = self.conv1d_gelu(cur, e, n_pos);
        let cur = self.cont(cur);
        let mut cur = self.vit(cur, n_pos, None, Rope::None);
        let mut tokens = match self.t.kind {
            ProjectorKind::Qwen2Audio | ProjectorKind::Voxtral => n_pos / 2,
            _ => n_pos,
        };
        if matches!(
            self.t.kind,
            ProjectorKind::Ultravox | ProjectorKind::Voxtral
        ) {
            // `build_stack`: padded with zeros to whole stacks, viewed as wider rows.
            let stack = self.t.stack_factor;
            let stacked = tokens.div_ceil(stack);
            if tokens % stack != 0 {
                let flat = self.view(cur);
                cur = self.op(e * stack * stacked * F32, &[flat]);
            }
            cur = self.view(cur);
            tokens = stacked;
        }
        match self.t.kind {
            ProjectorKind::Ultravox => {
                let cur = self.norm(cur, Norm::Rms, false);
                let doubled = self.t.dim("mm.a.mlp.1.weight", 1).unwrap_or(0);
                let cur = self.matmul(cur, doubled, tokens);
                let cur = self.op(doubled / 2 * tokens * F32, &[cur]);
                let cur = self.norm(cur, Norm::Rms, false);
                let out = self.t.dim("mm.a.mlp.2.weight", 1).unwrap_or(0);
                self.matmul(cur, out, tokens)
            }
            ProjectorKind::Qwen2Audio => {
                let out = self.t.dim("mm.a.fc.weight", 1).unwrap_or(0);
                self.linear(cur, out, tokens, true)
            }
            _ => {
                let mid = self.t.dim("mm.a.mlp.1.weight", 1).unwrap_or(0);
                let cur = self.matmul(cur, mid, tokens);
                let cur = self.inplace(cur);
                let out = self.t.dim("mm.a.mlp.2.weight", 1).unwrap_or(0);
                self.matmul(cur, out, tokens)
            }
        }
    }

    /// `clip_graph_qwen2vl::build` and `clip_graph_qwen3vl::build`.
    fn qwen(&mut self) -> TensorId {
        let (e, n) = (self.t.n_embd, self.patches);
        let inp = self.qwen_patch_embeddings();
        let positions = self.input(4 * n * I32);
        let mut cur = inp;
        cur = self.own_norm(cur, "pre_ln", self.t.norm);
        let window = self.t.kind == ProjectorKind::Qwen25Vl && self.t.window_pattern > 0;
        let mut mask = Mask::None;
        if window {
            let inv_index = self.input(n / 4 * I32);
            let m = self.input(n * n * F32);
            mask = Mask::Window(m);
            let v = self.view(cur);
            let rows = self.op(e * n * F32, &[v, inv_index]);
            cur = self.view(rows);
        }
        let merge = self.t.n_merge * self.t.n_merge;
        let merged = n / merge;
        let out = self.t.dim("mm.2.weight", 1).unwrap_or(0);
        // Layer outputs feeding the deepstack mergers: the graph reaches those branches
        // only after the main path (the final concat's second source), so the outputs stay
        // allocated until then.
        let mut taps = Vec::new();
        for il in 0..self.t.n_layer {
            let full = !window || (il + 1) % self.t.window_pattern == 0;
            let layer_mask = if full { Mask::None } else { mask };
            cur = self.block(cur, n, Rope::Multi(positions), layer_mask);
            if self.t.deepstack.contains(&il) {
                taps.push((il, cur));
            }
        }
        cur = self.own_norm(cur, "post_ln", self.t.norm);
        let cur = self.view(cur);
        let mut emb = self.mlp(cur, merged, "mm.0", "mm.2");
        if window {
            let index = self.input(merged * I32);
            let v = self.view(emb);
            let rows = self.op(out * merged * F32, &[v, index]);
            emb = self.view(rows);
        }
        if let Some((features, width)) = self.deepstack_features(&taps, merged, out) {
            emb = self.op((out + width) * merged * F32, &[emb, features]);
        }
        emb
    }

    /// Qwen-VL's patch embeddings: the two temporal patch convolutions summed, regrouped 2×2
    /// (two contiguous copies); Qwen3-VL adds its bias and its learned position grid
    /// (interpolated when its side differs), regrouped like the patches.
    fn qwen_patch_embeddings(&mut self) -> TensorId {
        let (e, n) = (self.t.n_embd, self.patches);
        let image = self.image();
        let c0 = self.conv_patches(image);
        let c1 = self.conv_patches(image);
        let mut inp = self.add(c0, c1);
        // The 2×2 spatial regrouping: two contiguous copies.
        for _ in 0..2 {
            let v = self.view(inp);
            inp = self.op(e * n * F32, &[v]);
        }
        if self.t.kind == ProjectorKind::Qwen3Vl {
            if self.t.has("v.patch_embd.bias") {
                inp = self.inplace(inp);
            }
            // The learned grid (interpolated when its side differs), regrouped 2×2 like the
            // patches: two contiguous copies.
            let grid = match self.resized_positions() {
                Some(resized) => self.op(e * n * F32, &[resized]),
                None => self.op(e * n * F32, &[]),
            };
            let regrouped = self.view(grid);
            let pos = self.op(e * n * F32, &[regrouped]);
            inp = self.add(inp, pos);
        }
        inp
    }

    /// Qwen3-VL's deepstack features: each tapped layer's output (`taps`, by layer) normed
    /// and through its merger MLP (`out` wide per merged token), concatenated in layer
    /// order; with the features' width. None without taps.
    fn deepstack_features(
        &mut self,
        taps: &[(u64, TensorId)],
        merged: u64,
        out: u64,
    ) -> Option<(TensorId, u64)> {
        let mut deepstack: Option<(TensorId, u64)> = None;
        for &(il, tap) in taps {
            let feat = self.view(tap);
            let feat = self.norm(feat, Norm::Layer, true);
            let fc1 = format!("v.deepstack.{il}.fc1");
            let feat = self.mlp(feat, merged, &fc1, &format!("v.deepstack.{il}.fc2"));
            deepstack = Some(match deepstack {
                None => (feat, out),
                Some((acc, width)) => (
                    self.op((width + out) * merged * F32, &[acc, feat]),
                    width + out,
                ),
            });
        }
        deepstack
    }

    /// `clip_graph_siglip::build` (`gemma3`, `idefics3`).
    fn siglip(&mut self) -> TensorId {
        let e = self.t.n_embd;
        if self.t.kind == ProjectorKind::Gemma3 {
            self.final_weight = FinalWeight::Pending(self.projection_copy());
        }
        let inp = self.build_inp();
        let cur = self.vit(inp, self.patches, None, Rope::None);
        let scale = self.t.n_merge;
        let tokens = self.patches / (scale * scale);
        if self.t.kind == ProjectorKind::Idefics3 {
            let cur = self.unshuffle(cur, scale);
            let out = self.t.dim("mm.model.fc.weight", 1).unwrap_or(0);
            return self.matmul(cur, out, tokens);
        }
        // Gemma 3: average pooling, RMS norm, then the transposed input projection (its copy
        // emitted where the graph reaches it, see [`FinalWeight`]).
        let transposed = self.view(cur);
        let grid = self.op(e * self.patches * F32, &[transposed]);
        let pooled = self.op(e * tokens * F32, &[grid]);
        let transposed = self.view(pooled);
        let cur = self.op(e * tokens * F32, &[transposed]);
        let cur = self.norm(cur, Norm::Rms, false);
        let out = self.t.dim("mm.input_projection.weight", 0).unwrap_or(0);
        let weight = match self.final_weight {
            FinalWeight::Emitted(weight) => weight,
            // A tower without layers: the copy comes first.
            FinalWeight::Pending(_) | FinalWeight::None => {
                let bytes = self.projection_copy();
                self.op(bytes, &[])
            }
        };
        self.op(out * tokens * F32, &[cur, weight])
    }

    /// Bytes of Gemma 3's transposed input projection copied into the compute buffer.
    fn projection_copy(&self) -> u64 {
        let name = "mm.input_projection.weight";
        let out = self.t.dim(name, 0).unwrap_or(0);
        let element = if self.t.is_f32(name) { F32 } else { F16 };
        self.t.n_embd * out * element
    }

    /// `clip_graph_pixtral::build`.
    fn pixtral(&mut self) -> TensorId {
        let (e, n) = (self.t.n_embd, self.patches);
        let pos_h = self.input(n * I32);
        let pos_w = self.input(n * I32);
        let inp = self.build_inp();
        let mut cur = self.vit(inp, n, None, Rope::TwoD(pos_h, pos_w));
        let m = self.t.n_merge;
        let mut tokens = n;
        if self.t.has("mm.patch_merger.weight") {
            cur = self.norm(cur, Norm::Rms, false);
            let grid = self.view(cur);
            let grid = self.op(e * n * F32, &[grid]);
            let cols = self.op(e * n * F32, &[grid]);
            let cols = self.view(cols);
            tokens = n / (m * m);
            cur = self.matmul(cols, e, tokens);
        }
        cur = self.mlp(cur, tokens, "mm.1", "mm.2");
        if self.t.has("v.token_embd.img_break") {
            let out = self.t.dim("mm.2.weight", 1).unwrap_or(0);
            let rows = self.side / m;
            let grid = self.view(cur);
            // A fresh tensor (a leaf, allocated before any node), cleared and set to the token.
            let breaks = self.input(out * rows * F32);
            let breaks = self.inplace(breaks);
            let breaks = self.inplace(breaks);
            let joined = self.op(out * (tokens + rows) * F32, &[grid, breaks]);
            cur = self.g.view(joined);
        }
        cur
    }

    /// `clip_graph_internvl::build`.
    fn internvl(&mut self) -> TensorId {
        let (e, n) = (self.t.n_embd, self.patches);
        let inp = self.build_inp();
        let class = self.op(e * F32, &[]);
        let inp = self.op(e * (n + 1) * F32, &[inp, class]);
        let cur = self.vit(inp, n + 1, None, Rope::None);
        let without_class = self.view(cur);
        let cur = self.op(e * n * F32, &[without_class]);
        let cur = self.view(cur);
        let cur = self.op(e * n * F32, &[cur]);
        let cur = self.view(cur);
        let cur = self.op(e * n * F32, &[cur]);
        let cur = self.norm(cur, Norm::Layer, true);
        let tokens = n / (self.t.n_merge * self.t.n_merge);
        self.mlp(cur, tokens, "mm.model.mlp.1", "mm.model.mlp.3")
    }

    /// `clip_graph_llama4::build`.
    fn llama4(&mut self) -> TensorId {
        let (e, n, p) = (self.t.n_embd, self.patches, self.t.patch);
        let pos_h = self.input((n + 1) * I32);
        let pos_w = self.input((n + 1) * I32);
        let image = self.image();
        // The unfold convolution: im2col in the image's type (F32), then the matmul.
        let cols = self.op(3 * p * p * n * F32, &[image]);
        let patches = self.matmul(cols, e, n);
        let patches = self.view(patches);
        let inp = self.class_token(patches);
        let cur = self.vit(inp, n + 1, None, Rope::TwoD(pos_w, pos_h));
        let cur = self.view(cur);
        let cur = self.view(cur);
        let cur = self.op(e * n * F32, &[cur]);
        let cur = self.op(e * n * F32, &[cur]);
        let s = self.t.n_merge;
        let tokens = n / (s * s);
        let mid = self.t.dim("mm.model.mlp.1.weight", 1).unwrap_or(0);
        let cur = self.matmul(cur, mid, tokens);
        let cur = self.inplace(cur);
        let out = self.t.dim("mm.model.mlp.2.weight", 1).unwrap_or(0);
        let cur = self.matmul(cur, out, tokens);
        let cur = self.inplace(cur);
        let proj = self.t.dim("mm.model.fc.weight", 1).unwrap_or(0);
        self.matmul(cur, proj, tokens)
    }

    /// `clip_graph_kimivl::build`.
    fn kimivl(&mut self) -> TensorId {
        let n = self.patches;
        let pos_h = self.input(n * I32);
        let pos_w = self.input(n * I32);
        // `ggml_add(inp, learned)` reaches the patches before the positions: the graph runs
        // the patch embedding first, then the interpolation.
        let inp = self.build_inp();
        let learned = self.resized_positions();
        let cur = self.vit(inp, n, learned, Rope::TwoD(pos_w, pos_h));
        let s = self.t.n_merge;
        let cur = self.unshuffle(cur, s);
        let cur = self.view(cur);
        let cur = self.norm(cur, Norm::Layer, true);
        let cur = self.view(cur);
        self.mlp(cur, n / (s * s), "mm.1", "mm.2")
    }

    /// `clip_graph_minicpmv::build`: SigLIP with gathered learned positions, then the
    /// resampler: learned queries attend over the projected patches plus 2D sin/cos positions
    /// (128-wide heads).
    fn minicpmv(&mut self) -> TensorId {
        let (e, n) = (self.t.n_embd, self.patches);
        let p = self.t.dim("resampler.proj.weight", 0).unwrap_or(0);
        let queries = self.t.queries;
        let omega = self.input(p / 4 * F32);
        let pos_h = self.input(n * F32);
        let pos_w = self.input(n * F32);
        let positions = self.input(n * I32);
        let learned = self.op(e * n * F32, &[positions]);
        let inp = self.build_inp();
        let embeddings = self.vit(inp, n, Some(learned), Rope::None);
        let v = self.matmul(embeddings, p, n);
        let q = self.op(p * queries * F32, &[]);
        let q = self.inplace(q);
        let q = self.inplace(q);
        let v = self.norm(v, Norm::Layer, true);
        // Sinusoidal positions: a repeated omega times each axis, sin and cos concatenated.
        let omega_b = self.op(p / 4 * n * F32, &[omega]);
        let mut halves = [0; 2];
        for (half, axis) in halves.iter_mut().zip([pos_w, pos_h]) {
            let theta = self.g.inplace(&[omega_b, axis], 1, 0);
            let sin = self.inplace(theta);
            let cos = self.inplace(theta);
            *half = self.op(p / 2 * n * F32, &[sin, cos]);
        }
        let pos = self.op(p * n * F32, &[halves[0], halves[1]]);
        let k = self.add(v, pos);
        let big_q = self.linear(q, p, queries, true);
        let big_k = self.linear(k, p, n, true);
        let big_v = self.linear(v, p, n, true);
        let shape = Attention {
            width: p,
            heads: p / 128,
            queries,
            keys: n,
        };
        let attn = self.attend(big_q, big_k, big_v, shape, Mask::None);
        let out = self.linear(attn, p, queries, true);
        let out = self.norm(out, Norm::Layer, true);
        self.matmul(out, p, queries)
    }

    /// Any other type: `build_vit` and the numbered `mm.*` matmuls with in-place bias and
    /// activation between them.
    fn generic(&mut self) -> TensorId {
        let class = self.t.has("v.class_embd");
        let n_pos = self.patches + u64::from(class);
        let mut inp = self.build_inp();
        if class {
            inp = self.class_token(inp);
        }
        let mut cur = self.vit(inp, n_pos, None, Rope::None);
        let merge = self.t.n_merge * self.t.n_merge;
        let tokens = self.patches / merge;
        if merge > 1 || class {
            let v = self.view(cur);
            cur = self.op(self.t.n_embd * self.patches * F32, &[v]);
        }
        for rows in self.t.numbered_projection() {
            cur = self.linear(cur, rows, tokens, true);
            cur = self.inplace(cur);
        }
        cur
    }
}
