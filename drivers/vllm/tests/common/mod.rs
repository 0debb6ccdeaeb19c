//! Shared helpers of the vLLM driver's integration tests: fixtures of real models and GPUs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use inferkit_core::{
    Assignment, Backend, DeviceId, DeviceSlot, FitRequest, HostSlot, LaunchSpec, ModelFacts,
    ModelSpec, PlacementMode, ResourceEstimate, Result, Subordinate, Vendor,
};
use inferkit_vllm::Vllm;

pub const GIB: u64 = 1 << 30;

/// A fixture directory of `tests/fixtures/hf` or a file of `tests/fixtures/gguf`.
pub fn fixture(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(kind)
        .join(name)
}

/// A spec for a fixture model with these backend parameters.
pub fn spec(kind: &str, name: &str, params: &[&str]) -> ModelSpec {
    let mut spec = ModelSpec::local(fixture(kind, name));
    spec.backend_parameters = params.iter().map(|s| s.to_string()).collect();
    spec
}

pub fn facts(spec: &ModelSpec) -> ModelFacts {
    ModelFacts::read(&spec.source).unwrap()
}

/// An H100 80GB as NVML reports it (79.65 GiB), all free.
pub fn h100(worker: &str, index: u32) -> DeviceSlot {
    gpu(worker, index, 85_520_809_984, "NVIDIA H100 80GB HBM3")
}

/// An RTX 4090 as NVML reports it (23.99 GiB), all free.
pub fn rtx4090(worker: &str, index: u32) -> DeviceSlot {
    gpu(worker, index, 25_757_220_864, "NVIDIA GeForce RTX 4090")
}

pub fn gpu(worker: &str, index: u32, total: u64, name: &str) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: worker.to_string(),
            index,
        },
        vendor: Vendor::Nvidia,
        name: name.to_string(),
        total,
        allocatable: total,
        remote: false,
        compute_capability: Some("9.0".to_string()),
        reserved: None,
    }
}

pub fn host(worker: &str) -> HostSlot {
    HostSlot {
        worker: worker.to_string(),
        total: 512 * GIB,
        allocatable: 512 * GIB,
        os: None,
    }
}

/// The driver's fit of `spec` on `devices`.
pub fn fit(spec: &ModelSpec, devices: &[DeviceSlot]) -> Result<ResourceEstimate> {
    let facts = facts(spec);
    let backend = Vllm::new();
    let prepared = backend.prepare(&facts, spec)?;
    prepared.estimator().fit(&FitRequest {
        devices: devices.to_vec(),
        host: host(&devices[0].id.worker),
        allow_cpu_offload: false,
    })
}

/// Port of the main process in [`launch`]; subordinate `i` (from 1) gets `API_PORT + i`, as the
/// planner allots them.
pub const API_PORT: u16 = 40001;

/// Fits and launches: the main worker is the first device's; other workers become Ray
/// subordinates.
pub fn launch(spec: &ModelSpec, devices: &[DeviceSlot]) -> Result<Vec<LaunchSpec>> {
    launch_assignment(spec, &assignment(spec, devices)?)
}

/// The processes of `assignment` for `spec`.
pub fn launch_assignment(spec: &ModelSpec, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
    let facts = facts(spec);
    let backend = Vllm::new();
    backend.prepare(&facts, spec)?.launch(assignment)
}

/// The driver's warnings about the parameters of `spec`, or why it refuses them.
pub fn warnings(spec: &ModelSpec) -> Result<Vec<String>> {
    let facts = facts(spec);
    let backend = Vllm::new();
    let prepared = backend.prepare(&facts, spec)?;
    Ok(prepared.warnings().to_vec())
}

/// The assignment [`launch`] launches.
pub fn assignment(spec: &ModelSpec, devices: &[DeviceSlot]) -> Result<Assignment> {
    let estimate = fit(spec, devices)?;
    let main = devices[0].id.worker.clone();
    let mut subordinates: Vec<Subordinate> = Vec::new();
    for d in devices.iter().filter(|d| d.id.worker != main) {
        match subordinates.iter_mut().find(|s| s.worker == d.id.worker) {
            Some(s) => s.devices.push(d.id.index),
            None => subordinates.push(Subordinate {
                worker: d.id.worker.clone(),
                address: format!("10.0.0.{}", subordinates.len() + 2),
                devices: vec![d.id.index],
                port: API_PORT + subordinates.len() as u16 + 1,
            }),
        }
    }
    let mode = match (devices.len(), subordinates.is_empty()) {
        (1, _) => PlacementMode::SingleDevice,
        (_, true) => PlacementMode::MultiDevice,
        _ => PlacementMode::MultiWorker,
    };
    Ok(Assignment {
        mode,
        worker: main.clone(),
        address: "10.0.0.1".to_string(),
        devices: devices.to_vec(),
        host: host(&main),
        estimate,
        port: API_PORT,
        subordinates,
    })
}

/// The launch as text for snapshots: one block per process, with the model path shortened.
pub fn render(specs: &[LaunchSpec]) -> String {
    let root = fixture("", "").display().to_string();
    specs
        .iter()
        .map(|s| {
            let env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "[{} on {}]\nenv: {}\n{}\n",
                s.role.as_str(),
                s.worker,
                env.join(" "),
                s.command_line().replace(&root, "$FIXTURES/")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
