//! Weight bytes per GPU from safetensors headers, sharded the way vLLM loads them.

use crate::memory::shape::TextShape;
use crate::memory::stage_layers;

/// How a tensor is spread over the tensor-parallel ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sharding {
    /// Split evenly over TP (column/row-parallel linears, vocabulary-parallel embedding).
    Split,
    /// Split over at most this many ranks (K/V projections once TP exceeds the KV heads).
    SplitAtMost(u64),
    /// Whole on every rank (norms, biases of row-parallel layers, MoE routers, MLA's
    /// down-projections).
    Replicated,
}

/// Where a tensor lives in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Decoder layer `n`.
    Layer(u64),
    /// The first stage (embedding, vision tower, projector).
    First,
    /// The last stage (final norm, LM head).
    Last,
    /// Not loaded by vLLM for serving (multi-token-prediction layers past `num_hidden_layers`).
    Skipped,
}

/// Substrings of replicated tensors inside decoder layers (vLLM `ReplicatedLinear` users and
/// MoE routers).
const REPLICATED_PARTS: &[&str] = &[
    "q_a_proj",
    "kv_a_proj_with_mqa",
    "q_a_layernorm",
    "kv_a_layernorm",
    ".mlp.gate.",
    ".block_sparse_moe.gate.",
    ".router.",
    "e_score_correction_bias",
    // GGUF names of the same tensors.
    "ffn_gate_inp",
    "attn_kv_a_mqa",
    "attn_q_a",
    "exp_probs_b",
];

/// Substrings of the vision tower and projector, which vLLM keeps on the first stage.
const VISION_PARTS: &[&str] = &[
    "visual.",
    "vision_tower",
    "vision_model",
    "vision_encoder",
    "multi_modal_projector",
    "mm_projector",
    "mlp1.",
];

/// One tensor, classified once.
#[derive(Debug, Clone, Copy)]
struct Record {
    place: Place,
    sharding: Sharding,
    bytes: u64,
    embedding: bool,
}

/// The tensors of a checkpoint, classified for sharding; built once per estimator.
#[derive(Debug, Clone)]
pub(crate) struct TensorTable {
    records: Vec<Record>,
    has_lm_head: bool,
    layer_count: u64,
}

impl TensorTable {
    /// Classifies tensors given as (name, shape, bytes).
    pub(crate) fn new<'t>(
        shape: &TextShape,
        tensors: impl Iterator<Item = (&'t str, &'t [u64], u64)>,
    ) -> Self {
        let mut has_lm_head = false;
        let records = tensors
            .map(|(name, dims, bytes)| {
                has_lm_head |= is_lm_head(name);
                Record {
                    place: place_of(name, shape.layer_count()),
                    sharding: sharding_of(name, dims, shape),
                    bytes,
                    embedding: is_embedding(name),
                }
            })
            .collect();
        TensorTable {
            records,
            has_lm_head,
            layer_count: shape.layer_count(),
        }
    }

    /// Bytes one rank of `stage` loads.
    pub(crate) fn rank_bytes(&self, tp: u64, pp: u64, stage: u64) -> u64 {
        let tp = tp.max(1);
        let last = pp.max(1) - 1;
        let layers = stage_layers(self.layer_count, pp, stage);
        let mut total = 0u64;
        let mut embedding = 0u64;
        for r in &self.records {
            let share = r.bytes / divisor(r.sharding, tp);
            if r.embedding {
                embedding = share;
            }
            let here = match r.place {
                Place::Layer(n) => layers.contains(&n),
                Place::First => stage == 0,
                Place::Last => stage == last,
                Place::Skipped => false,
            };
            if here {
                total = total.saturating_add(share);
            }
        }
        // A tied LM head reuses the embedding, which the last stage must then hold as well.
        if !self.has_lm_head && stage == last && last > 0 {
            total = total.saturating_add(embedding);
        }
        total
    }
}

fn divisor(sharding: Sharding, tp: u64) -> u64 {
    match sharding {
        Sharding::Split => tp,
        Sharding::SplitAtMost(n) => tp.min(n.max(1)),
        Sharding::Replicated => 1,
    }
}

fn is_lm_head(name: &str) -> bool {
    name.contains("lm_head") || name == "output.weight"
}

fn is_embedding(name: &str) -> bool {
    [
        "embed_tokens",
        ".wte.",
        "tok_embeddings",
        "word_embeddings",
        "token_embd",
    ]
    .iter()
    .any(|p| name.contains(p))
        && !VISION_PARTS.iter().any(|p| name.contains(p))
}

fn place_of(name: &str, layer_count: u64) -> Place {
    if VISION_PARTS.iter().any(|p| name.contains(p)) || is_embedding(name) {
        return Place::First;
    }
    match layer_index(name) {
        Some(n) if n < layer_count => Place::Layer(n),
        Some(_) => Place::Skipped,
        None if is_lm_head(name)
            || name.ends_with("norm.weight")
            || name.ends_with("norm.bias") =>
        {
            Place::Last
        }
        None => Place::First,
    }
}

/// The decoder layer of `model.layers.12.mlp...` (also `.h.12.`, `.blocks.12.`, GGUF's
/// `blk.12.`).
fn layer_index(name: &str) -> Option<u64> {
    let name = format!(".{name}");
    for marker in [".layers.", ".h.", ".blocks.", ".blk."] {
        if let Some(pos) = name.find(marker) {
            let rest = &name[pos + marker.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

fn sharding_of(name: &str, dims: &[u64], shape: &TextShape) -> Sharding {
    if dims.len() <= 1 || REPLICATED_PARTS.iter().any(|p| name.contains(p)) {
        return Sharding::Replicated;
    }
    let kv_projection = ["k_proj", "v_proj", "attn_k.", "attn_v."]
        .iter()
        .any(|p| name.contains(p));
    if kv_projection && shape.mla.is_none() && !VISION_PARTS.iter().any(|p| name.contains(p)) {
        return Sharding::SplitAtMost(shape.kv_heads);
    }
    Sharding::Split
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use inferkit_core::hf::HfModel;

    use super::*;

    fn fixture(name: &str) -> (TensorTable, u64, u64) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/hf")
            .join(name);
        let model = HfModel::open(&dir).unwrap();
        let input = crate::memory::input::hf_input(&model, None).unwrap();
        let weights = model.safetensors().unwrap();
        let replicated: u64 = weights
            .tensors()
            .filter(|t| t.shape.len() == 1)
            .map(|t| t.bytes)
            .sum();
        (
            input.tensors.unwrap(),
            weights.summary.total_bytes,
            replicated,
        )
    }

    #[test]
    fn llama_shards_split_everything_but_the_norms() {
        let (table, total, norms) = fixture("Llama-3.1-8B-Instruct");
        assert_eq!(table.rank_bytes(1, 1, 0), total);
        // TP 2: 8 KV heads split in two; the embedding and LM head are vocabulary-parallel.
        assert_eq!(table.rank_bytes(2, 1, 0), (total - norms) / 2 + norms);
        // TP 16 exceeds the 8 KV heads: K/V projections stay at 1/8 per rank.
        assert!(table.rank_bytes(16, 1, 0) > (total - norms) / 16 + norms);
        // PP 2: the stages hold the whole model between them, embedding first, head last.
        assert_eq!(table.rank_bytes(1, 2, 0) + table.rank_bytes(1, 2, 1), total);
    }

    #[test]
    fn awq_weights_are_counted_as_stored() {
        let (table, total, _) = fixture("Qwen2.5-7B-Instruct-AWQ");
        assert_eq!(table.rank_bytes(1, 1, 0), total);
        // Packed int4 layers: far below the 15 GB of the bf16 model.
        assert!(total < 6_000_000_000, "{total}");
    }

    #[test]
    fn layer_indices_and_places() {
        assert_eq!(layer_index("model.layers.12.mlp.up_proj.weight"), Some(12));
        assert_eq!(layer_index("transformer.h.3.attn.c_attn.weight"), Some(3));
        assert_eq!(
            place_of("model.layers.61.eh_proj.weight", 61),
            Place::Skipped
        );
        assert_eq!(place_of("model.norm.weight", 32), Place::Last);
        assert_eq!(place_of("lm_head.weight", 32), Place::Last);
        assert_eq!(place_of("model.embed_tokens.weight", 32), Place::First);
        assert_eq!(
            place_of("visual.blocks.3.attn.qkv.weight", 28),
            Place::First
        );
        assert_eq!(place_of("blk.7.attn_k.weight", 32), Place::Layer(7));
        assert_eq!(place_of("output.weight", 32), Place::Last);
        assert_eq!(place_of("token_embd.weight", 32), Place::First);
    }
}
