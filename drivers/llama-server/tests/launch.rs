//! The processes of real placements: each case prepares a real GGUF header, fits it with the
//! memory model on the case's devices, and snapshots what would be started. Every generated
//! argv is read back against the flag tables.

use std::path::{Path, PathBuf};

use inferkit_core::testkit::{gpu, host, render_processes};
use inferkit_core::{
    Assignment, Backend, DeviceSlot, Error, FitRequest, LaunchSpec, ModelFacts, ModelSpec,
    PlacementMode, Subordinate,
};
use inferkit_llama_server::LlamaServer;
use inferkit_llama_server::{Input, PROGRAM, RPC_PROGRAM, flag_table, parse, rpc_flag_table};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(name)
}

/// The fixture as a deployment named `model` with `params`.
fn model(name: &str, params: &[&str]) -> (ModelFacts, ModelSpec) {
    let mut spec = ModelSpec::local(fixture(name));
    spec.name = "model".into();
    spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
    let facts = ModelFacts::read(&spec.source).expect("fixture reads");
    (facts, spec)
}

fn remote(worker: &str, index: u32) -> DeviceSlot {
    DeviceSlot {
        remote: true,
        ..gpu(worker, index, 24)
    }
}

/// Fits the model on `devices` (worker `w1`) and launches the result; `subordinates` serve
/// the remote devices.
fn plan(
    facts: &ModelFacts,
    spec: &ModelSpec,
    devices: Vec<DeviceSlot>,
    subordinates: Vec<Subordinate>,
) -> Result<Vec<LaunchSpec>, Error> {
    let backend = LlamaServer::new();
    let prepared = backend.prepare(facts, spec)?;
    let estimate = prepared.estimator().fit(&FitRequest {
        devices: devices.clone(),
        host: host("w1", 64),
        allow_cpu_offload: true,
    })?;
    let mode = match (devices.len(), subordinates.is_empty()) {
        (0, _) => PlacementMode::CpuOnly,
        (_, false) => PlacementMode::MultiWorker,
        (1, _) => PlacementMode::SingleDevice,
        _ => PlacementMode::MultiDevice,
    };
    prepared.launch(&Assignment {
        mode,
        worker: "w1".into(),
        address: "10.0.0.1".into(),
        devices,
        host: host("w1", 64),
        estimate,
        port: 40001,
        subordinates,
    })
}

/// [`render_processes`] with model paths relative to the fixtures.
fn render(specs: &[LaunchSpec]) -> String {
    let root = fixture("").display().to_string();
    render_processes(specs).replace(&root, "$FIXTURES/")
}

/// Every argv reads back against its program's table.
fn check_argv(specs: &[LaunchSpec]) {
    for spec in specs {
        let table = match spec.program.as_str() {
            PROGRAM => flag_table(),
            RPC_PROGRAM => rpc_flag_table(),
            other => panic!("unexpected program {other}"),
        };
        parse(table, &spec.args, Input::Argv)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.command_line()));
    }
}

fn snapshot(name: &str, specs: &[LaunchSpec]) {
    check_argv(specs);
    insta::assert_snapshot!(name, render(specs));
}

#[test]
fn one_gpu() {
    let (facts, spec) = model("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf", &[]);
    let specs = plan(&facts, &spec, vec![gpu("w1", 1, 24)], vec![]).unwrap();
    snapshot("one_gpu", &specs);
}

#[test]
fn several_gpus() {
    let (facts, spec) = model("llama-3.2-1b-F16.header.gguf", &["-c", "8192", "-np", "2"]);
    let devices = vec![gpu("w1", 2, 24), gpu("w1", 0, 16)];
    let specs = plan(&facts, &spec, devices, vec![]).unwrap();
    snapshot("several_gpus", &specs);
}

#[test]
fn rpc_across_workers() {
    let (facts, spec) = model("llama-3.2-1b-Q8_0.header.gguf", &["-c", "16384"]);
    let devices = vec![remote("w2", 0), remote("w2", 1), gpu("w1", 0, 24)];
    let subordinates = (0..2)
        .map(|i| Subordinate {
            worker: "w2".into(),
            address: "10.0.0.2".into(),
            devices: vec![i],
            port: 50052 + i as u16,
        })
        .collect();
    let specs = plan(&facts, &spec, devices, subordinates).unwrap();
    assert_eq!(specs.len(), 3);
    assert!(specs[..2].iter().all(|s| {
        s.role
            .is_subordinate(inferkit_llama_box::llamacpp::RPC_SERVER)
    }));
    snapshot("rpc_across_workers", &specs);
}

#[test]
fn cpu_only() {
    let (facts, spec) = model("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf", &["-c", "4096"]);
    let specs = plan(&facts, &spec, vec![], vec![]).unwrap();
    snapshot("cpu_only", &specs);
}

#[test]
fn vision_model_with_its_projector() {
    let (facts, spec) = model("vlm/qwen2-vl-2b/qwen2-1.5b-text-stub-F16.header.gguf", &[]);
    let specs = plan(&facts, &spec, vec![gpu("w1", 0, 24)], vec![]).unwrap();
    let argv = &specs[0].args;
    let mmproj = argv
        .iter()
        .position(|a| a == "--mmproj")
        .expect("projector");
    assert!(argv[mmproj + 1].ends_with("mmproj-qwen2-vl-2b-f16.gguf"));
    snapshot("vision_model_with_projector", &specs);
}

#[test]
fn the_api_key_goes_to_the_environment_not_argv() {
    let (facts, spec) = model(
        "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        &["--api-key", "sk-secret", "-c", "4096"],
    );
    let specs = plan(&facts, &spec, vec![gpu("w1", 0, 24)], vec![]).unwrap();
    assert!(!specs[0].args.iter().any(|a| a.contains("sk-secret")));
    assert_eq!(specs[0].env["LLAMA_API_KEY"], "sk-secret");
    // The plan keeps a placeholder the launcher fills from its own environment (core's rule).
    let mut main = specs[0].clone();
    let notes = inferkit_core::secret::redact(&mut main, Some(flag_table()));
    assert_eq!(main.env["LLAMA_API_KEY"], "${LLAMA_API_KEY}");
    assert!(
        notes.iter().any(|n| n.contains("LLAMA_API_KEY")),
        "{notes:?}"
    );
}

#[test]
fn platform_flags_and_unknown_flags_are_refused() {
    for (params, expected) in [
        (&["--port", "9"][..], "set by the platform"),
        (&["--fit", "on"], "set by the platform"),
        (&["-dev", "CUDA1"], "set by the platform"),
        (&["--no-mmap"], "unknown to llama-server"),
        (&["--gpu-layer", "3"], "did you mean `--gpu-layers`?"),
    ] {
        let (facts, spec) = model("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf", params);
        let err = LlamaServer::new()
            .prepare(&facts, &spec)
            .err()
            .unwrap_or_else(|| panic!("{params:?} accepted"));
        assert!(err.to_string().contains(expected), "{params:?}: {err}");
    }
}

#[test]
fn a_users_gpu_layers_must_match_the_placement() {
    let (facts, spec) = model(
        "llama-3.2-1b-Q4_K_M.header.gguf",
        &["-ngl", "5", "-c", "4096"],
    );
    let specs = plan(&facts, &spec, vec![gpu("w1", 0, 24)], vec![]).unwrap();
    let argv = specs[0].args.join(" ");
    assert!(argv.contains("--gpu-layers 5"), "{argv}");
}
