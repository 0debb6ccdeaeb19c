//! Every published vLLM V1 start-up log of `testdata/vllm-v1/` (a copy of the shared
//! reference set) as a test row: the KV capacity in tokens the estimate predicts against the
//! "GPU KV cache size" the log printed, and the logged start-up failures refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use inferkit_core::hf::HfModel;
use inferkit_core::{
    Cluster, DeviceId, DeviceSlot, Error, EstimateRequest, HostSlot, Layout, ResourceEstimate,
    ResourceEstimator, Result,
};

use super::{ModelInput, VllmEstimator};
use crate::flags::Release;
use crate::flags::VllmVersion;
use crate::params::Params;
use crate::params::settings::LaunchSettings;

/// Largest error in predicted tokens where the log's KV pool is at least 1 GiB.
const TOLERANCE: f64 = 0.03;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/vllm-v1")
}

/// One observation of `observations.jsonl`.
struct Row(Value);

impl Row {
    fn text(&self, key: &str) -> &str {
        self.0[key].as_str().unwrap_or_default()
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.0[key].as_f64()
    }

    fn release(&self) -> Release {
        Release::parse(self.text("version")).expect("every row names a version")
    }

    /// The launch arguments the log states (defaults left to the estimate).
    fn arguments(&self) -> Vec<String> {
        let mut raw = vec![
            ("--max-model-len", self.0["max_model_len"].to_string()),
            ("--gpu-memory-utilization", self.0["gmu"].to_string()),
            ("--tensor-parallel-size", self.0["tp"].to_string()),
        ];
        // The offline `LLM` class (LMCache's example) defaults to 8192 batched tokens where
        // `vllm serve` uses 2048 (`UsageContext.LLM_CLASS` in `_set_default_args`).
        let offline = self.text("notes").contains("Offline LLM()");
        match self.number("mnbt") {
            Some(n) => raw.push(("--max-num-batched-tokens", n.to_string())),
            None if offline => raw.push(("--max-num-batched-tokens", "8192".into())),
            None => {}
        }
        for (key, flag) in [
            ("max_num_seqs", "--max-num-seqs"),
            ("block_size", "--block-size"),
            ("cpu_offload_gb", "--cpu-offload-gb"),
        ] {
            if let Some(n) = self.number(key).filter(|n| *n > 0.0) {
                raw.push((flag, n.to_string()));
            }
        }
        raw.into_iter()
            .flat_map(|(flag, value)| [flag.to_string(), value])
            .collect()
    }

    /// The logged GPUs; a tensor-parallel group "over Ray across two nodes" gets one worker
    /// per GPU.
    fn devices(&self) -> Vec<DeviceSlot> {
        let file = format!("{}-x{}.json", self.text("cluster"), self.0["n_gpu"]);
        let cluster = Cluster::from_json_file(&fixtures().join("clusters").join(file)).unwrap();
        let across_nodes = self.text("notes").contains("across two nodes");
        let worker = &cluster.workers[0];
        worker
            .devices
            .iter()
            .map(|d| DeviceSlot {
                id: DeviceId {
                    worker: if across_nodes {
                        format!("{}-{}", worker.name, d.index)
                    } else {
                        worker.name.clone()
                    },
                    index: d.index,
                },
                vendor: d.vendor.clone(),
                name: d.name.clone(),
                total: d.memory.total,
                allocatable: d.memory.total - d.memory.used,
                remote: across_nodes && d.index > 0,
                compute_capability: d.compute_capability.clone(),
                reserved: None,
            })
            .collect()
    }

    fn estimate(&self) -> Result<ResourceEstimate> {
        let dir = fixtures().join("models").join(self.text("fixture"));
        let model: ModelInput = crate::memory::input::hf_input(&HfModel::open(&dir)?, None)?;
        let release = self.release();
        let table = if release < Release::new(0, 11, 0) {
            VllmVersion::V0_10_1_1
        } else {
            VllmVersion::V0_33_0
        };
        let params = Params::parse(table, &self.arguments())?;
        let launch = LaunchSettings::from_params(&params, &[])?.with_release(release);
        let tp = self.0["tp"].as_u64().unwrap() as u32;
        VllmEstimator::new(model, launch).estimate(&EstimateRequest {
            devices: self.devices(),
            host: HostSlot::default(),
            layout: Layout::Parallel {
                tensor_parallel: tp,
                pipeline_parallel: 1,
            },
        })
    }

    /// The tokens vLLM logged, or derived from the logged GiB with the estimate's block size.
    fn logged_tokens(&self, estimate: &ResourceEstimate) -> u64 {
        if let Some(tokens) = self.0["kv_tokens"].as_u64() {
            return tokens;
        }
        let details = &estimate.details;
        let block_bytes = details["kv_block_bytes"].as_u64().unwrap();
        let block_tokens = details["kv_cache_tokens"].as_u64().unwrap()
            / details["kv_cache_blocks"].as_u64().unwrap().max(1);
        let bytes = self.number("kv_gib").unwrap() * (1u64 << 30) as f64;
        (bytes / block_bytes as f64) as u64 * block_tokens
    }

    /// GPU class and version band of the README's figures.
    fn group(&self) -> String {
        let band = match self.release() {
            r if r < Release::new(0, 11, 0) => "0.10",
            r if r < Release::new(0, 17, 0) => "0.11-0.16",
            r if r < Release::new(0, 21, 0) => "0.17-0.20",
            _ => "0.21+",
        };
        format!("{} / {band}", self.text("gpu"))
    }
}

fn rows() -> Vec<Row> {
    std::fs::read_to_string(fixtures().join("observations.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Row(serde_json::from_str(l).unwrap()))
        .collect()
}

#[test]
fn every_logged_kv_capacity_is_predicted_within_three_percent() {
    let mut errors: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut failures = Vec::new();
    for row in rows() {
        let id = row.text("id");
        let estimate = row.estimate();
        if row.text("notes").starts_with("FAIL") {
            assert!(
                matches!(estimate, Err(Error::DoesNotFit { .. })),
                "{id}: vLLM refused to start, the estimate {estimate:?}"
            );
            continue;
        }
        let estimate = estimate.unwrap_or_else(|e| panic!("{id}: {e}"));
        let predicted = estimate.details["kv_cache_tokens"].as_u64().unwrap();
        let logged = row.logged_tokens(&estimate);
        let error = (predicted as f64 - logged as f64) / logged as f64;
        println!(
            "{id}: predicted {predicted} tokens, logged {logged} ({:+.1}%)",
            error * 100.0
        );
        errors.entry(row.group()).or_default().push(error.abs());
        if row.number("kv_gib").unwrap() >= 1.0 && error.abs() > TOLERANCE {
            failures.push(format!(
                "{id}: {predicted} vs {logged} ({:+.1}%)",
                error * 100.0
            ));
        }
    }
    for (group, mut e) in errors {
        e.sort_by(f64::total_cmp);
        let pick = |q: f64| e[((e.len() - 1) as f64 * q).round() as usize] * 100.0;
        println!(
            "| {group} | {} | {:.1}% | {:.1}% | {:.1}% |",
            e.len(),
            pick(0.5),
            pick(0.9),
            pick(1.0)
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
