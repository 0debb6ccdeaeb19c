//! Speed of the llama.cpp memory model once parsed: one `estimate` for a 100-layer model (the
//! target is under 50 µs), and a full `fit` (binary search over offloads).
//!
//! The 100-layer model is Llama-3.2-1B's real header with its repeating layer repeated to
//! 100 layers (same tensor shapes and types as blocks 0-15).

use std::path::{Path, PathBuf};

use divan::Bencher;
use inferkit_core::gguf::{GgufHeader, GgufModel, Metadata, MetadataEntry, ReadOptions, Value};
use inferkit_core::{DeviceId, DeviceSlot, FitRequest, HostSlot, Layout, Vendor};
use inferkit_llama_box::llamacpp::LlamaCppModel;
use inferkit_llama_box::llamacpp::LlamaSettings;

const LAYERS: u32 = 100;

fn main() {
    divan::main();
}

/// Llama-3.2-1B's header stretched to [`LAYERS`] repeating layers.
fn hundred_layer_model() -> GgufModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf/llama-3.2-1b-Q4_K_M.header.gguf");
    let bytes = std::fs::read(&path).expect("fixture header");
    let mut header =
        GgufHeader::from_slice(&bytes, &path, &ReadOptions::default()).expect("valid header");
    let entries = header
        .metadata
        .iter()
        .map(|e| match e.key.as_str() {
            "llama.block_count" => MetadataEntry {
                value: Value::U32(LAYERS),
                ..e.clone()
            },
            _ => e.clone(),
        })
        .collect();
    header.metadata = Metadata::new(path.clone(), entries);
    let block0: Vec<_> = header
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("blk.0."))
        .cloned()
        .collect();
    for layer in 16..LAYERS {
        header.tensors.extend(block0.iter().map(|t| {
            let mut copy = t.clone();
            copy.name = t.name.replacen("blk.0.", &format!("blk.{layer}."), 1);
            copy
        }));
    }
    GgufModel::from_headers(vec![(PathBuf::from("llama-100.gguf"), header)]).expect("model")
}

fn gpu(index: u32) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: "bench".into(),
            index,
        },
        vendor: Vendor::Nvidia,
        name: "bench".into(),
        total: 24 << 30,
        allocatable: 22 << 30,
        remote: false,
        compute_capability: None,
        reserved: None,
    }
}

fn host() -> HostSlot {
    HostSlot {
        worker: "bench".into(),
        total: 64 << 30,
        allocatable: 60 << 30,
        os: None,
    }
}

#[divan::bench]
fn estimate_100_layers_two_gpus(bencher: Bencher) {
    let model =
        LlamaCppModel::new(&hundred_layer_model(), &LlamaSettings::default()).expect("model");
    let devices = [gpu(0), gpu(1)];
    let layout = Layout::Layers {
        offload_layers: 60,
        total_layers: model.total_layers(),
        split: vec![1, 1],
    };
    let host = host();
    bencher.bench_local(|| model.estimate(&devices, &host, &layout).expect("estimate"));
}

#[divan::bench]
fn fit_100_layers_one_gpu(bencher: Bencher) {
    let model =
        LlamaCppModel::new(&hundred_layer_model(), &LlamaSettings::default()).expect("model");
    let request = FitRequest {
        devices: vec![DeviceSlot {
            allocatable: 2 << 30,
            ..gpu(0)
        }],
        host: host(),
        allow_cpu_offload: true,
    };
    bencher.bench_local(|| model.fit(&request).expect("fit"));
}

/// Hard case 12: a partial fit over 16 small GPUs (per-layer costs are cached at
/// construction; each step of the search is a sum over them).
#[divan::bench]
fn fit_100_layers_sixteen_gpus(bencher: Bencher) {
    let model =
        LlamaCppModel::new(&hundred_layer_model(), &LlamaSettings::default()).expect("model");
    let request = FitRequest {
        devices: (0..16)
            .map(|i| DeviceSlot {
                allocatable: 400 << 20,
                ..gpu(i)
            })
            .collect(),
        host: host(),
        allow_cpu_offload: true,
    };
    bencher.bench_local(|| model.fit(&request).expect("fit"));
}

#[divan::bench(sample_count = 10)]
fn construct_100_layers(bencher: Bencher) {
    let gguf = hundred_layer_model();
    let settings = LlamaSettings::default();
    bencher.bench_local(|| LlamaCppModel::new(&gguf, &settings).expect("model"));
}
