//! Shared helpers: real model fixtures, Ascend device slots and assignments.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use inferkit_core::{
    Assignment, Backend, DeviceId, DeviceSlot, FitRequest, HostSlot, LaunchSpec, ModelFacts,
    ModelSpec, PlacementMode, Result, Subordinate, Vendor,
};
use inferkit_mindie::MindIe;

/// The workspace's Hugging Face fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hf")
}

/// A spec for a fixture model with these backend parameters.
pub fn spec(model: &str, params: &[&str]) -> ModelSpec {
    let mut spec = ModelSpec::local(fixtures().join(model));
    spec.backend = Some("ascend-mindie".into());
    spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
    spec
}

/// What the files of a spec say.
pub fn facts(spec: &ModelSpec) -> ModelFacts {
    ModelFacts::read(&spec.source).expect("fixture reads")
}

/// An Ascend NPU slot, all of it allocatable. `name` as npu-smi reports the chip.
pub fn npu(worker: &str, index: u32, name: &str, gib: u64) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: worker.into(),
            index,
        },
        vendor: Vendor::Ascend,
        name: name.into(),
        total: gib << 30,
        allocatable: gib << 30,
        remote: false,
        compute_capability: None,
        reserved: None,
    }
}

/// Atlas 800I A2 NPUs (Ascend 910B3, 64 GiB HBM) `indexes` of `worker`.
pub fn a2(worker: &str, indexes: impl IntoIterator<Item = u32>) -> Vec<DeviceSlot> {
    indexes
        .into_iter()
        .map(|i| npu(worker, i, "Ascend910B3", 64))
        .collect()
}

/// Host memory of a worker.
pub fn host(worker: &str) -> HostSlot {
    HostSlot {
        worker: worker.into(),
        total: 1024 << 30,
        allocatable: 1024 << 30,
        os: None,
    }
}

/// The driver's warnings about `spec`, or why it refuses it.
pub fn warnings(backend: &MindIe, spec: &ModelSpec) -> Result<Vec<String>> {
    let facts = facts(spec);
    let prepared = backend.prepare(&facts, spec)?;
    Ok(prepared.warnings().to_vec())
}

/// Fits the model on `devices` (the main worker is the first device's) and builds the
/// assignment the planner would, subordinates on port + 1, + 2, ...
pub fn assign(
    backend: &MindIe,
    spec: &ModelSpec,
    facts: &ModelFacts,
    devices: &[DeviceSlot],
) -> Assignment {
    let main = devices[0].id.worker.clone();
    let estimate = backend
        .prepare(facts, spec)
        .unwrap()
        .estimator()
        .fit(&FitRequest {
            devices: devices.to_vec(),
            host: host(&main),
            allow_cpu_offload: false,
        })
        .unwrap();
    let mut subordinates: Vec<Subordinate> = Vec::new();
    for slot in devices.iter().filter(|d| d.id.worker != main) {
        match subordinates.iter_mut().find(|s| s.worker == slot.id.worker) {
            Some(s) => s.devices.push(slot.id.index),
            None => subordinates.push(Subordinate {
                worker: slot.id.worker.clone(),
                address: address(&slot.id.worker),
                devices: vec![slot.id.index],
                port: 40000 + subordinates.len() as u16 + 1,
            }),
        }
    }
    Assignment {
        mode: match (devices.len(), subordinates.is_empty()) {
            (1, _) => PlacementMode::SingleDevice,
            (_, true) => PlacementMode::MultiDevice,
            _ => PlacementMode::MultiWorker,
        },
        worker: main.clone(),
        address: address(&main),
        devices: devices.to_vec(),
        host: host(&main),
        estimate,
        port: 40000,
        subordinates,
    }
}

/// Worker `a2-N` is at 10.0.0.N.
pub fn address(worker: &str) -> String {
    format!("10.0.0.{}", worker.rsplit('-').next().unwrap_or("1"))
}

/// A launch spec as reviewable text: worker, role, program, env, then every file (links as
/// `-> target`), with the fixture directory shown as `<fixtures>`.
pub fn render(specs: &[LaunchSpec]) -> String {
    let mut out = String::new();
    for spec in specs {
        out += &format!(
            "### {} ({}): {}\n",
            spec.worker,
            spec.role.as_str(),
            spec.command_line()
        );
        if let Some(health) = &spec.health {
            out += &format!(
                "health: {} {}\n",
                health.port,
                health.path.as_deref().unwrap_or("")
            );
        }
        for (k, v) in &spec.env {
            out += &format!("{k}={v}\n");
        }
        for file in &spec.files {
            match &file.link_to {
                Some(target) => {
                    out += &format!("== {} -> {}\n", file.path.display(), target.display())
                }
                None => out += &format!("== {}\n{}", file.path.display(), file.content),
            }
        }
    }
    let root = std::path::absolute(fixtures()).unwrap();
    out.replace(&root.display().to_string(), "<fixtures>")
}
