//! Shared helpers: fixture directories laid out like the real model repositories.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;

use inferkit_core::{DeviceId, DeviceSlot, HostSlot, ModelFacts, ModelSource, ModelSpec, Vendor};

pub const GIB: u64 = 1 << 30;

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/vox-box")
        .join(name)
}

/// Facts of a fixture directory, read by core's reader, as if it sat at `/models/<name>` on
/// the worker (so that command lines do not depend on the checkout's location).
pub fn local(name: &str) -> (ModelFacts, ModelSpec) {
    let read = ModelSource::LocalPath {
        path: fixture_dir(name),
    };
    let mut facts = ModelFacts::read(&read).expect("fixture directory is readable");
    let path = PathBuf::from("/models").join(name);
    let spec = ModelSpec::local(&path);
    facts.source = spec.source.clone();
    facts.path = Some(path);
    (facts, spec)
}

/// Facts of a repository known only by its id.
pub fn remote(source: ModelSource) -> (ModelFacts, ModelSpec) {
    let mut spec = ModelSpec::local("/unused");
    spec.name = source
        .display_name()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    spec.source = source.clone();
    let facts = ModelFacts::read(&source).expect("remote facts need no I/O");
    (facts, spec)
}

pub fn huggingface(repo_id: &str) -> ModelSource {
    ModelSource::Huggingface {
        repo_id: repo_id.into(),
        filename: None,
        revision: None,
    }
}

pub fn model_scope(model_id: &str) -> ModelSource {
    ModelSource::ModelScope {
        model_id: model_id.into(),
        file_path: None,
        revision: None,
    }
}

pub fn gpu(index: u32, vendor: Vendor, allocatable: u64) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: "gpu-worker".into(),
            index,
        },
        vendor,
        name: "NVIDIA GeForce RTX 4090".into(),
        total: 24 * GIB,
        allocatable,
        remote: false,
        compute_capability: Some("8.9".into()),
        reserved: None,
    }
}

pub fn host(allocatable: u64) -> HostSlot {
    HostSlot {
        worker: "gpu-worker".into(),
        total: 64 * GIB,
        allocatable,
        os: None,
    }
}
