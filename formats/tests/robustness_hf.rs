//! Hugging Face directories whose shards are each valid but together declare more than
//! `u64::MAX` bytes: the weight summary saturates instead of overflowing (a panic in debug
//! builds, a wrapped, too small model size in release builds).

use std::path::Path;

use inferkit_formats::hf::{Dtype, HfModel};
use serde_json::json;

/// A header-only safetensors file holding one F16 tensor of 2^59 elements (2^60 bytes: the
/// size in bits must fit `u64`).
fn huge_shard(dir: &Path, file: &str, tensor: &str) {
    let elements: u64 = 1 << 59;
    let header = json!({ tensor: {"dtype": "F16", "shape": [elements], "data_offsets": [0u64, elements * 2]} });
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    std::fs::write(dir.join(file), bytes).unwrap();
}

#[test]
fn shards_summing_past_u64_saturate() {
    let dir = tempfile::tempdir().unwrap();
    // The config of a real model; only the weights are hostile.
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/hf/Llama-3.1-8B-Instruct/config.json");
    std::fs::copy(config, dir.path().join("config.json")).unwrap();
    // Sixteen shards of 2^60 bytes: 2^64 bytes in all, one more than `u64` holds.
    let shards: Vec<String> = (1..=16)
        .map(|i| format!("model-{i:05}-of-00016.safetensors"))
        .collect();
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let tensor = format!("layers.{i}.weight");
        huge_shard(dir.path(), shard, &tensor);
        weight_map.insert(tensor, json!(shard));
    }
    let index = json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let model = HfModel::open(dir.path()).unwrap();
    let summary = &model.safetensors().unwrap().summary;
    assert_eq!(summary.tensor_count, 16);
    assert_eq!(summary.total_bytes, u64::MAX);
    assert_eq!(summary.bytes_by_dtype[&Dtype::F16], u64::MAX);
    assert_eq!(summary.parameters, 1 << 63);
    assert_eq!(summary.bytes_by_file[&shards[0]], 1 << 60);
}
