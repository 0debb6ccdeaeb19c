//! Multimodal projector (mmproj, llama.cpp's `clip`) memory: weights, and the compute buffer
//! `clip_init` reserves for one warm-up image (`tools/mtmd/clip.cpp`), replayed with the
//! same allocator as the text model over the vision transformer's graph.
//!
//! The graph is the generic pre-norm ViT of `clip_graph::build_vit`: patch embedding
//! (im2col + matmul, twice for Qwen2-VL's temporal patches), class token and learned
//! positions, `n_layer` blocks (layer norm, Q/K/V with biases, attention without a mask,
//! output projection, layer norm, GELU FFN), the post norm, the token merge of the projector
//! type, and the `mm.*` projection matmuls.

use inferkit_core::gguf::GgufModel;
use inferkit_core::{Error, Result};

use super::alloc::{Graph, TensorId};
use super::graph::CPU_ALIGNMENT;

const F32: u64 = 4;
const F16: u64 = 2;

/// Projector sizes, precomputed for both flash-attention settings.
#[derive(Debug, Clone)]
pub(crate) struct Projector {
    /// Weight bytes (each tensor padded to the buffer alignment).
    pub weights: u64,
    /// Compute reservation with and without flash attention.
    pub compute_fa: u64,
    pub compute_no_fa: u64,
}

/// The vision tower's shape.
struct Vit {
    n_embd: u64,
    n_ff: u64,
    n_head: u64,
    n_layer: u64,
    patch: u64,
    /// Warm-up image side in pixels.
    image: u64,
    class_token: bool,
    temporal_patches: bool,
    /// Bytes per element of the patch kernel (im2col takes the kernel's type).
    kernel_type: u64,
    /// Rotary positions on Q and K (Qwen2-VL's M-RoPE), which take new tensors.
    rope: bool,
    pre_norm: bool,
    post_norm: bool,
    /// Patches merged into one projector token (Qwen2-VL 2×2, Idefics3 scale²).
    merge: u64,
    /// Output widths of the projection matmuls, in order.
    projection: Vec<u64>,
}

impl Projector {
    pub fn new(model: &GgufModel) -> Result<Projector> {
        let vit = Vit::read(model)?;
        let weights = model
            .tensors()
            .iter()
            .map(|t| t.bytes.div_ceil(CPU_ALIGNMENT) * CPU_ALIGNMENT)
            .sum();
        Ok(Projector {
            weights,
            compute_fa: vit.compute(true),
            compute_no_fa: vit.compute(false),
        })
    }

    /// The compute reservation for the given flash-attention setting.
    pub fn compute(&self, flash_attn: bool) -> u64 {
        if flash_attn {
            self.compute_fa
        } else {
            self.compute_no_fa
        }
    }
}

/// Projector types whose warm-up image is not `clip.vision.image_size`: Qwen2/2.5-VL warm up
/// with a fixed 1288×1288 image (`clip.cpp`, `warmup_image_size`).
fn warmup_image(projector_type: &str, image_size: u64) -> u64 {
    match projector_type {
        "qwen2vl_merger" | "qwen2.5vl_merger" | "qwen3vl_merger" => 1288,
        _ => image_size,
    }
}

impl Vit {
    fn read(model: &GgufModel) -> Result<Vit> {
        let unsupported = |what: &str| {
            Error::unsupported(format!(
                "{}: projector without {what}",
                model.path().display()
            ))
        };
        let vision = model
            .clip_vision()?
            .ok_or_else(|| unsupported("a vision encoder"))?;
        let n_embd = vision
            .embedding_length
            .ok_or_else(|| unsupported("embedding_length"))?;
        let patch = vision
            .patch_size
            .filter(|&p| p > 0)
            .ok_or_else(|| unsupported("patch_size"))?;
        let image_size = vision.image_size.ok_or_else(|| unsupported("image_size"))?;
        let kind = vision.projector_type.clone().unwrap_or_default();
        let has = |name: &str| model.tensor(name).is_some();
        // The FFN width from the tensors (some converters swap up/down names).
        let n_ff = ["v.blk.0.ffn_up.weight", "v.blk.0.ffn_down.weight"]
            .iter()
            .filter_map(|n| model.tensor(n))
            .flat_map(|t| t.dims.iter().copied().take(2))
            .filter(|&d| d != n_embd)
            .max()
            .or(vision.feed_forward_length)
            .unwrap_or(4 * n_embd);
        let scale = model
            .metadata()
            .get_u64("clip.vision.projector.scale_factor")?
            .unwrap_or(1);
        let merge = match kind.as_str() {
            "qwen2vl_merger" | "qwen2.5vl_merger" | "qwen3vl_merger" => 4,
            "idefics3" | "gemma3" | "internvl" | "llama4" => scale * scale,
            _ => 1,
        };
        let mut projection: Vec<(String, u64)> = model
            .tensors()
            .iter()
            .filter(|t| {
                t.name.starts_with("mm.") && t.name.ends_with(".weight") && t.dims.len() >= 2
            })
            .map(|t| (t.name.clone(), t.dims[1]))
            .collect();
        projection.sort();
        Ok(Vit {
            n_embd,
            n_ff,
            n_head: vision.head_count.unwrap_or(1).max(1),
            n_layer: vision.block_count.unwrap_or(0),
            patch,
            image: warmup_image(&kind, image_size),
            class_token: has("v.class_embd"),
            temporal_patches: has("v.patch_embd.weight.1"),
            kernel_type: model.tensor("v.patch_embd.weight").map_or(F16, |t| {
                if t.ggml_type == inferkit_core::gguf::GgmlType::F32 {
                    F32
                } else {
                    F16
                }
            }),
            rope: matches!(
                kind.as_str(),
                "qwen2vl_merger" | "qwen2.5vl_merger" | "qwen3vl_merger"
            ),
            pre_norm: has("v.pre_ln.weight"),
            post_norm: has("v.post_ln.weight"),
            merge: merge.max(1),
            projection: projection.into_iter().map(|(_, d)| d).collect(),
        })
    }

    /// The reservation for one warm-up image.
    fn compute(&self, flash_attn: bool) -> u64 {
        let mut b = VitBuilder {
            g: Graph::default(),
            vit: self,
            flash_attn,
            positions: None,
        };
        b.build();
        b.g.peak(1, CPU_ALIGNMENT)[0]
    }
}

struct VitBuilder<'a> {
    g: Graph,
    vit: &'a Vit,
    flash_attn: bool,
    /// M-RoPE positions input (4 per patch), created on first use.
    positions: Option<TensorId>,
}

impl VitBuilder<'_> {
    fn patches(&self) -> u64 {
        let side = self.vit.image / self.vit.patch;
        side * side
    }

    fn positions(&self) -> u64 {
        self.patches() + u64::from(self.vit.class_token)
    }

    fn op(&mut self, bytes: u64, srcs: &[TensorId]) -> TensorId {
        self.g.op(bytes, srcs, 0)
    }

    fn inplace(&mut self, src: TensorId) -> TensorId {
        self.g.inplace(&[src], 1, 0)
    }

    /// `ggml_conv_2d`: im2col (f16), matmul, then the permute made contiguous.
    fn patch_embedding(&mut self, image: TensorId) -> TensorId {
        let v = self.vit;
        let n = self.patches();
        let cols = self.op(3 * v.patch * v.patch * n * v.kernel_type, &[image]);
        let mm = self.op(v.n_embd * n * F32, &[cols]);
        let permuted = self.g.view(mm, false);
        self.op(v.n_embd * n * F32, &[permuted])
    }

    /// Layer norm with weight and bias (`ggml_norm` is not in-place).
    fn layer_norm(&mut self, x: TensorId) -> TensorId {
        let bytes = self.g.bytes(x);
        let n = self.op(bytes, &[x]);
        let n = self.inplace(n);
        self.inplace(n)
    }

    fn linear(&mut self, x: TensorId, rows: u64) -> TensorId {
        let t = self.positions();
        let y = self.op(rows * t * F32, &[x]);
        self.inplace(y)
    }

    fn build(&mut self) {
        let v = self.vit;
        let (e, t) = (v.n_embd, self.positions());
        let image = self.g.input(v.image * v.image * 3 * F32, 0);
        let mut cur = self.patch_embedding(image);
        if v.temporal_patches {
            let second = self.patch_embedding(image);
            cur = self.g.inplace(&[cur, second], 2, 0);
        }
        // [n_patches, n_embd] -> [n_embd, n_patches], made contiguous.
        let transposed = self.g.view(cur, false);
        cur = self.op(e * self.patches() * F32, &[transposed]);
        if v.class_token {
            cur = self.op(e * t * F32, &[cur]);
        }
        cur = self.inplace(cur);
        if v.pre_norm {
            cur = self.layer_norm(cur);
        }
        for _ in 0..v.n_layer {
            cur = self.block(cur);
        }
        if v.post_norm {
            cur = self.layer_norm(cur);
        }
        self.project(cur);
    }

    fn block(&mut self, inp: TensorId) -> TensorId {
        let v = self.vit;
        let (e, t, h) = (v.n_embd, self.positions(), v.n_head);
        let cur = self.layer_norm(inp);
        let q = self.linear(cur, e);
        let q = self.rope(q);
        let k = self.linear(cur, e);
        let k = self.rope(k);
        let vv = self.linear(cur, e);
        let q = self.g.view(q, false);
        let k = self.g.view(k, false);
        let vv = self.g.view(vv, false);
        let attn = if self.flash_attn {
            let kc = self.op(e * t * F16, &[k]);
            let vc = self.op(e * t * F16, &[vv]);
            let out = self.op(e * t * F32, &[q, kc, vc]);
            self.g.view(out, true)
        } else {
            let vc = self.op(e * t * F32, &[vv]);
            let kq = self.op(t * t * h * F32, &[k, q]);
            let kq = self.inplace(kq);
            let kqv = self.op(e * t * F32, &[vc, kq]);
            let permuted = self.g.view(kqv, false);
            self.op(e * t * F32, &[permuted])
        };
        let out = self.linear(attn, e);
        let cur = self.g.inplace(&[out, inp], 2, 0);
        let normed = self.layer_norm(cur);
        let up = self.linear(normed, v.n_ff);
        let act = self.inplace(up);
        let down = self.linear(act, e);
        // `ggml_add(inpL, cur)`: the residual is the first candidate for in-place reuse.
        self.g.inplace(&[cur, down], 2, 0)
    }

    /// RoPE on a reshaped view; it allocates a new tensor.
    fn rope(&mut self, x: TensorId) -> TensorId {
        if !self.vit.rope {
            return x;
        }
        let view = self.g.view(x, true);
        let bytes = self.g.bytes(x);
        let positions = self.positions_input();
        self.op(bytes, &[view, positions])
    }

    fn positions_input(&mut self) -> TensorId {
        if let Some(p) = self.positions {
            return p;
        }
        let p = self.g.input(4 * self.positions() * 4, 0);
        self.positions = Some(p);
        p
    }

    /// Token merge (a contiguous copy of the reshaped patches) and the projection matmuls
    /// with in-place bias and activation between them.
    fn project(&mut self, x: TensorId) {
        let v = self.vit;
        let tokens = self.patches() / v.merge;
        let mut cur = x;
        if v.merge > 1 || v.class_token {
            let view = self.g.view(cur, false);
            cur = self.op(v.n_embd * v.merge * tokens * F32, &[view]);
        }
        for &rows in &v.projection {
            let y = self.op(rows * tokens * F32, &[cur]);
            cur = self.inplace(y);
            cur = self.inplace(cur);
        }
        self.g.mark_output(cur);
    }
}
