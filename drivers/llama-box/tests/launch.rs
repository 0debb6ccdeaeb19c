//! Launch translation of llama-box: snapshots of the generated processes for real GGUF headers,
//! the invariants every generated command line must hold, and the refusals.

use std::path::{Path, PathBuf};

use inferkit_core::gguf::GgufModel;
use inferkit_core::testkit::render_processes;
use inferkit_core::{
    Assignment, Backend, Category, Claim, Components, DeviceEstimate, DeviceId, DeviceSlot,
    DirectoryFacts, Error, HostSlot, LaunchArgument, LaunchSpec, Layout, ModelFacts, ModelFormat,
    ModelSource, ModelSpec, PlacementMode, ProcessRole, ResourceEstimate, Subordinate, Vendor,
};
use inferkit_llama_box::llamacpp::{Args, Syntax};
use inferkit_llama_box::{Invocation, LlamaBox, llama_box_settings};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn fixture(name: &str) -> PathBuf {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf");
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    [shared.join(name), own.join(name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("fixture {name} is missing"))
}

/// Facts of a fixture header presented as `model_path` on a worker, in a directory holding
/// `siblings` besides the model.
fn facts(fixture_name: &str, model_path: &str, siblings: &[&str]) -> ModelFacts {
    let gguf = GgufModel::open(fixture(fixture_name)).expect("fixture parses");
    let model_path = PathBuf::from(model_path);
    let file_name = model_path.file_name().unwrap().to_string_lossy();
    let mut listing = DirectoryFacts {
        files: std::iter::once(file_name.into_owned())
            .chain(siblings.iter().map(|s| s.to_string()))
            .collect(),
        ..DirectoryFacts::default()
    };
    listing.files.sort();
    {
        let mut model_facts = ModelFacts::new(
            ModelSource::LocalPath {
                path: model_path.clone(),
            },
            ModelFormat::Gguf,
        );
        model_facts.path = Some(model_path);
        model_facts.directory = Some(listing);
        model_facts.gguf = Some(gguf);
        model_facts
    }
}

fn spec_for(facts: &ModelFacts, params: &[&str]) -> ModelSpec {
    let mut spec = ModelSpec::local(facts.path.clone().unwrap());
    spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
    spec
}

fn device(worker: &str, index: u32, remote: bool) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: worker.into(),
            index,
        },
        vendor: Vendor::Nvidia,
        name: "NVIDIA GeForce RTX 4090".into(),
        total: 24 * GIB,
        allocatable: 22 * GIB,
        remote,
        compute_capability: Some("8.9".into()),
        reserved: None,
    }
}

/// An estimate with `(layers, claim)` per device, in device order.
fn estimate(layout: Layout, devices: &[DeviceSlot], per_device: &[(u32, u64)]) -> ResourceEstimate {
    let devices = devices
        .iter()
        .zip(per_device)
        .enumerate()
        .map(|(i, (slot, (layers, claim)))| {
            let mut device_estimate = DeviceEstimate::new(
                slot.id.clone(),
                if slot.remote {
                    format!("rpc{i}")
                } else {
                    format!("gpu{i}")
                },
                Components {
                    weights: *claim,
                    ..Components::default()
                },
                *claim,
            );
            device_estimate.layers = *layers;
            device_estimate
        })
        .collect();
    ResourceEstimate::new(layout, devices)
}

fn assignment(
    mode: PlacementMode,
    devices: Vec<DeviceSlot>,
    estimate: ResourceEstimate,
    subordinates: Vec<Subordinate>,
) -> Assignment {
    Assignment {
        mode,
        worker: "w1".into(),
        address: "10.0.0.1".into(),
        devices,
        host: HostSlot {
            worker: "w1".into(),
            total: 64 * GIB,
            allocatable: 60 * GIB,
            os: None,
        },
        estimate,
        port: 40001,
        subordinates,
    }
}

fn launch(facts: &ModelFacts, spec: &ModelSpec, assignment: &Assignment) -> Vec<LaunchSpec> {
    // The launch alone: the projector files of these cases are not on disk for the estimator.
    Invocation::new(facts, spec)
        .and_then(|invocation| invocation.launch(facts, spec, assignment))
        .expect("launch translation succeeds")
}

/// A scenario: facts, spec and assignment, named for its snapshot.
struct Case {
    name: &'static str,
    facts: ModelFacts,
    spec: ModelSpec,
    assignment: Assignment,
}

fn single_gpu() -> Case {
    let facts = facts(
        "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        "/models/qwen2.5-0.5b-instruct-Q4_K_M.gguf",
        &[],
    );
    let devices = vec![device("w1", 1, false)];
    let est = estimate(Layout::Single, &devices, &[(25, 900 * MIB)]);
    Case {
        name: "single_gpu",
        spec: spec_for(&facts, &[]),
        assignment: assignment(PlacementMode::SingleDevice, devices, est, vec![]),
        facts,
    }
}

fn two_gpus() -> Case {
    let facts = facts(
        "llama-3.2-1b-F16.header.gguf",
        "/models/llama-3.2-1b-F16.gguf",
        &[],
    );
    let devices = vec![device("w1", 2, false), device("w1", 0, false)];
    let layout = Layout::Layers {
        offload_layers: 17,
        total_layers: 17,
        split: vec![20 * GIB, 16 * GIB],
    };
    let est = estimate(layout, &devices, &[(9, 2100 * MIB), (8, 1900 * MIB)]);
    Case {
        name: "two_gpus_tensor_split",
        spec: spec_for(&facts, &[]),
        assignment: assignment(PlacementMode::MultiDevice, devices, est, vec![]),
        facts,
    }
}

fn partial_offload() -> Case {
    let facts = facts(
        "llama-3.2-1b-Q4_K_M.header.gguf",
        "/models/llama-3.2-1b-Q4_K_M.gguf",
        &[],
    );
    let devices = vec![device("w1", 0, false)];
    let layout = Layout::Layers {
        offload_layers: 10,
        total_layers: 17,
        split: vec![],
    };
    let est = estimate(layout, &devices, &[(10, 500 * MIB)]);
    Case {
        name: "partial_offload",
        spec: spec_for(&facts, &[]),
        assignment: assignment(PlacementMode::CpuOffload, devices, est, vec![]),
        facts,
    }
}

fn cpu_only() -> Case {
    let facts = facts(
        "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        "/models/qwen2.5-0.5b-instruct-Q4_K_M.gguf",
        &[],
    );
    let est = estimate(Layout::CpuOnly, &[], &[]);
    Case {
        name: "cpu_only",
        spec: spec_for(&facts, &[]),
        assignment: assignment(PlacementMode::CpuOnly, vec![], est, vec![]),
        facts,
    }
}

fn rpc_two_workers() -> Case {
    let facts = facts(
        "llama-3.2-1b-Q8_0.header.gguf",
        "/models/llama-3.2-1b-Q8_0.gguf",
        &[],
    );
    let devices = vec![
        device("w2", 0, true),
        device("w2", 1, true),
        device("w1", 0, false),
    ];
    let layout = Layout::Layers {
        offload_layers: 17,
        total_layers: 17,
        split: vec![],
    };
    let est = estimate(
        layout,
        &devices,
        &[(6, 700 * MIB), (6, 700 * MIB), (5, 800 * MIB)],
    );
    let subordinates = (0..2)
        .map(|i| Subordinate {
            worker: "w2".into(),
            address: "10.0.0.2".into(),
            devices: vec![i],
            port: 50052 + i as u16,
        })
        .collect();
    Case {
        name: "rpc_two_workers",
        spec: spec_for(&facts, &[]),
        assignment: assignment(PlacementMode::MultiWorker, devices, est, subordinates),
        facts,
    }
}

fn embedding() -> Case {
    let facts = facts(
        "bge-small-en-v1.5-F16.header.gguf",
        "/models/bge-small-en-v1.5-F16.gguf",
        &[],
    );
    let devices = vec![device("w1", 0, false)];
    let est = estimate(Layout::Single, &devices, &[(13, 120 * MIB)]);
    Case {
        name: "embedding",
        spec: spec_for(&facts, &[]),
        assignment: assignment(PlacementMode::SingleDevice, devices, est, vec![]),
        facts,
    }
}

fn reranker() -> Case {
    // No reranker header is in the fixtures: a BERT model the user declares a reranker.
    let facts = facts(
        "bge-small-en-v1.5-Q8_0.header.gguf",
        "/models/bge-reranker-small-Q8_0.gguf",
        &[],
    );
    let mut spec = spec_for(&facts, &[]);
    spec.categories = vec![Category::Reranker];
    let devices = vec![device("w1", 0, false)];
    let est = estimate(Layout::Single, &devices, &[(13, 80 * MIB)]);
    Case {
        name: "reranker",
        spec,
        assignment: assignment(PlacementMode::SingleDevice, devices, est, vec![]),
        facts,
    }
}

fn vlm_with_mmproj() -> Case {
    let facts = facts(
        "vlm/qwen2-vl-2b/qwen2-1.5b-text-stub-F16.header.gguf",
        "/models/qwen2-vl-2b/Qwen2-VL-2B-Instruct-F16.gguf",
        &[
            "mmproj-Qwen2-VL-2B-Instruct-f16.gguf",
            "mmproj-Qwen2-VL-2B-Instruct-f32.gguf",
            "README.md",
        ],
    );
    let devices = vec![device("w1", 0, false)];
    let est = estimate(Layout::Single, &devices, &[(29, 4200 * MIB)]);
    Case {
        name: "vlm_with_mmproj",
        spec: spec_for(&facts, &[]),
        assignment: assignment(PlacementMode::SingleDevice, devices, est, vec![]),
        facts,
    }
}

fn image() -> Case {
    let facts = facts(
        "sd15.q4_0.header.gguf",
        "/models/stable-diffusion-v1-5-Q4_0.gguf",
        &[],
    );
    let devices = vec![device("w1", 3, false)];
    let est = estimate(Layout::Single, &devices, &[(0, 2600 * MIB)]);
    Case {
        name: "image",
        spec: spec_for(&facts, &[]),
        assignment: assignment(PlacementMode::SingleDevice, devices, est, vec![]),
        facts,
    }
}

fn user_overrides() -> Case {
    let facts = facts(
        "qwen2.5-0.5b-instruct-Q8_0.header.gguf",
        "/models/qwen2.5-0.5b-instruct-Q8_0.gguf",
        &[],
    );
    let params = [
        "--ctx-size=16384",
        "-np 2",
        "--flash-attn",
        "on",
        "-ctk",
        "q8_0",
        "-ctv=q8_0",
        "--mmap",
        " --jinja",
        "--override-tensor",
        "token_embd=CPU",
    ];
    let mut spec = spec_for(&facts, &params);
    spec.env.insert("GGML_CUDA_NO_PINNED".into(), "1".into());
    let devices = vec![device("w1", 0, false)];
    let mut est = estimate(Layout::Single, &devices, &[(25, 1100 * MIB)]);
    est.launch_parameters = vec![LaunchArgument::new("--ubatch-size", ["256"])];
    Case {
        name: "user_parameters_override_defaults",
        spec,
        assignment: assignment(PlacementMode::SingleDevice, devices, est, vec![]),
        facts,
    }
}

fn all_cases() -> Vec<Case> {
    vec![
        single_gpu(),
        two_gpus(),
        partial_offload(),
        cpu_only(),
        rpc_two_workers(),
        embedding(),
        reranker(),
        vlm_with_mmproj(),
        image(),
        user_overrides(),
    ]
}

#[test]
fn launch_snapshots() {
    for case in all_cases() {
        let specs = launch(&case.facts, &case.spec, &case.assignment);
        insta::assert_snapshot!(case.name, render_processes(&specs));
    }
}

#[test]
fn every_generated_argv_passes_the_flag_table() {
    for case in all_cases() {
        for spec in launch(&case.facts, &case.spec, &case.assignment) {
            let parsed = Args::parse(&spec.args, Syntax::Argv)
                .unwrap_or_else(|e| panic!("{}: {:?} is refused: {e}", case.name, spec.args));
            assert_eq!(parsed.to_argv(), spec.args, "{}", case.name);
            assert!(
                parsed.warnings.is_empty(),
                "{}: {:?}",
                case.name,
                parsed.warnings
            );
            assert!(
                spec.args.iter().all(|a| !a.starts_with("--origin")),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn the_estimate_reads_the_launched_argv() {
    for case in all_cases() {
        let invocation = Invocation::new(&case.facts, &case.spec).expect("valid case");
        let specs = launch(&case.facts, &case.spec, &case.assignment);
        let main = specs.iter().find(|s| s.role == ProcessRole::Main).unwrap();
        let launched = llama_box_settings(&Args::parse(&main.args, Syntax::Argv).unwrap()).unwrap();
        let mut estimated = invocation.settings.clone();
        // The placement's own flags are what the layout of the estimate request says.
        estimated.gpu_layers = launched.gpu_layers;
        estimated.tensor_split = launched.tensor_split.clone();
        estimated.rpc_servers = launched.rpc_servers.clone();
        if case.assignment.estimate.launch_parameters.is_empty() {
            assert_eq!(estimated, launched, "{}", case.name);
        } else {
            assert_eq!(launched.n_ubatch, 256, "launch parameters reach the argv");
        }
    }
}

#[test]
fn a_projector_raises_a_small_context_as_llama_box_does() {
    let mut case = vlm_with_mmproj();
    case.spec.backend_parameters = vec!["-c".into(), "1024".into()];
    let invocation = Invocation::new(&case.facts, &case.spec).unwrap();
    assert_eq!(invocation.settings.ctx_size, 2048);
    let specs = launch(&case.facts, &case.spec, &case.assignment);
    let argv = Args::parse(&specs[0].args, Syntax::Argv).unwrap();
    assert_eq!(
        argv.last("--ctx-size").and_then(|a| a.value()),
        Some("1024")
    );
    assert_eq!(llama_box_settings(&argv).unwrap().ctx_size, 2048);
}

#[test]
fn the_tensor_split_reproduces_the_estimated_layers() {
    let case = rpc_two_workers();
    let specs = launch(&case.facts, &case.spec, &case.assignment);
    let main = specs.last().unwrap();
    let at = main
        .args
        .iter()
        .position(|a| a == "--tensor-split")
        .unwrap();
    assert_eq!(main.args[at + 1], "6,6,5");
    // llama.cpp: layer i of the n offloaded goes to the first device whose cumulative share
    // (as f32) exceeds i / n.
    let split = [6.0f32, 6.0, 5.0];
    let sum: f32 = split.iter().sum();
    let cumulative: Vec<f32> = split
        .iter()
        .scan(0.0, |acc, v| {
            *acc += v;
            Some(*acc / sum)
        })
        .collect();
    let mut per_device = [0u32; 3];
    for layer in 0..17 {
        let share = layer as f32 / 17.0;
        per_device[cumulative.partition_point(|c| *c <= share)] += 1;
    }
    assert_eq!(per_device, [6, 6, 5]);
}

#[test]
fn rpc_servers_pin_their_device_and_come_first() {
    let case = rpc_two_workers();
    let specs = launch(&case.facts, &case.spec, &case.assignment);
    let roles: Vec<ProcessRole> = specs.iter().map(|s| s.role.clone()).collect();
    assert_eq!(
        roles,
        [
            ProcessRole::subordinate(inferkit_llama_box::llamacpp::RPC_SERVER),
            ProcessRole::subordinate(inferkit_llama_box::llamacpp::RPC_SERVER),
            ProcessRole::Main
        ]
    );
    assert_eq!(specs[1].env["CUDA_VISIBLE_DEVICES"], "1");
    assert_eq!(specs[1].worker, "w2");
    assert_eq!(specs[2].env["CUDA_VISIBLE_DEVICES"], "0");
}

#[test]
fn a_main_process_without_local_gpus_uses_only_the_rpc_devices() {
    let mut case = rpc_two_workers();
    case.assignment.devices.pop();
    case.assignment.estimate.devices.pop();
    case.assignment.estimate.devices[1].layers = 11;
    let specs = launch(&case.facts, &case.spec, &case.assignment);
    let main = &specs.last().unwrap().args;
    let position = |flag: &str| main.iter().position(|a| a == flag).unwrap();
    assert_eq!(
        main[position("--device") + 1],
        "RPC[10.0.0.2:50052],RPC[10.0.0.2:50053]"
    );
    assert!(
        position("--rpc") < position("--device"),
        "--rpc registers the devices first"
    );
    assert_eq!(main[position("--tensor-split") + 1], "6,11");
}

#[test]
fn each_vendor_gets_its_visibility_variable() {
    let expected = [
        (Vendor::Amd, Some("ROCR_VISIBLE_DEVICES")),
        (Vendor::Ascend, Some("ASCEND_RT_VISIBLE_DEVICES")),
        (Vendor::Other("Hygon".into()), Some("HIP_VISIBLE_DEVICES")),
        (
            Vendor::Other("Cambricon".into()),
            Some("MLU_VISIBLE_DEVICES"),
        ),
        (
            Vendor::Other("Iluvatar".into()),
            Some("CUDA_VISIBLE_DEVICES"),
        ),
        (Vendor::Apple, None),
    ];
    for (vendor, variable) in expected {
        let mut case = single_gpu();
        case.assignment.devices[0].vendor = vendor.clone();
        let env = &launch(&case.facts, &case.spec, &case.assignment)[0].env;
        let found: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(found, variable.into_iter().collect::<Vec<_>>(), "{vendor}");
    }
}

#[test]
fn cpu_only_with_selected_gpus_is_refused() {
    let mut case = single_gpu();
    case.spec.device_selector = vec!["w1:cuda:1".parse().unwrap()];
    case.spec.backend_parameters = vec!["--gpu-layers=0".into()];
    let err = refusal(&case).to_string();
    assert!(
        err.contains("Cannot set --gpu-layers to 0 and manually select GPUs"),
        "{err}"
    );
}

fn refusal(case: &Case) -> Error {
    LlamaBox::new()
        .prepare(&case.facts, &case.spec)
        .and_then(|p| p.launch(&case.assignment))
        .expect_err("refused")
}

#[test]
fn platform_flags_cannot_be_overridden() {
    for params in [
        &["--port", "8080"][..],
        &["-m", "/other.gguf"],
        &["--rpc", "h:1"],
        &["--host=::"],
    ] {
        let mut case = single_gpu();
        case.spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
        match refusal(&case) {
            Error::InvalidParameter { name, reason } => {
                assert_eq!(name, params[0].split('=').next().unwrap());
                assert!(reason.contains("platform"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    let mut case = two_gpus();
    case.spec.device_selector = vec!["w1:cuda:0".parse().unwrap()];
    case.spec.backend_parameters = vec!["-ts".into(), "1,1".into()];
    assert!(
        refusal(&case)
            .to_string()
            .contains("tensor-split and gpu-selector")
    );
}

#[test]
fn user_gpu_layers_must_match_the_placement() {
    let mut case = partial_offload();
    case.spec.backend_parameters = vec!["-ngl".into(), "12".into()];
    let err = refusal(&case);
    assert!(err.to_string().contains("placement offloads 10"), "{err}");
    case.spec.backend_parameters = vec!["-ngl".into(), "10".into()];
    assert!(
        LlamaBox::new()
            .prepare(&case.facts, &case.spec)
            .and_then(|p| p.launch(&case.assignment))
            .is_ok()
    );
}

#[test]
fn inconsistent_assignments_are_refused() {
    let mut case = rpc_two_workers();
    case.assignment.subordinates.pop();
    assert!(
        refusal(&case)
            .to_string()
            .contains("one RPC server per remote device")
    );
    let mut case = rpc_two_workers();
    case.assignment.devices.rotate_left(2);
    assert!(
        refusal(&case)
            .to_string()
            .contains("RPC devices before local")
    );
    let mut case = two_gpus();
    for device in &mut case.assignment.devices {
        device.vendor = Vendor::Ascend;
    }
    assert!(refusal(&case).to_string().contains("ascending index order"));
    case.assignment.devices.swap(0, 1);
    let specs = launch(&case.facts, &case.spec, &case.assignment);
    assert_eq!(specs[0].env["ASCEND_RT_VISIBLE_DEVICES"], "0,2");
    let mut case = single_gpu();
    case.assignment.estimate.layout = Layout::Parallel {
        tensor_parallel: 2,
        pipeline_parallel: 1,
    };
    assert!(matches!(refusal(&case), Error::Unsupported { .. }));
}

#[test]
fn selection_detects_categories_and_refuses_projectors() {
    let backend = LlamaBox::new();
    let expected = [
        (
            "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
            Some(Category::Llm),
        ),
        (
            "bge-small-en-v1.5-F16.header.gguf",
            Some(Category::Embedding),
        ),
        ("sd15.q4_0.header.gguf", Some(Category::Image)),
        ("vlm/qwen2-vl-2b/mmproj-qwen2-vl-2b-f16.gguf", None),
    ];
    for (name, category) in expected {
        let facts = facts(name, &format!("/models/{name}"), &[]);
        let selection = backend.select(&facts, &spec_for(&facts, &[]));
        match category {
            Some(category) => {
                assert_eq!(
                    selection.claim,
                    Claim::Prefers,
                    "{name}: {}",
                    selection.reason
                );
                assert_eq!(selection.categories, [category], "{name}");
            }
            None => {
                assert_eq!(selection.claim, Claim::Refuses, "{name}");
                assert!(
                    selection.reason.starts_with("Not a supported model."),
                    "{}",
                    selection.reason
                );
            }
        }
    }
}

#[test]
fn a_projector_is_refused_even_with_user_categories() {
    let mut case = single_gpu();
    case.facts = facts(
        "vlm/llava-1.5-7b/mmproj-llava-1.5-7b-f16.gguf",
        "/models/mmproj-f16.gguf",
        &[],
    );
    case.spec.categories = vec![Category::Llm];
    match refusal(&case) {
        Error::Unsupported { reason } => assert!(reason.starts_with("Not a supported model.")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn validation_reports_warnings_and_errors() {
    let backend = LlamaBox::new();
    let facts = single_gpu().facts;
    let spec = spec_for(&facts, &["-c", "1024", "-c", "2048", "--lora", "a.gguf"]);
    let warnings = backend
        .prepare(&facts, &spec)
        .map(|p| p.warnings().to_vec())
        .unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let mut spec = spec_for(&facts, &["-c", "4096"]);
    spec.backend_version = Some("v0.0.171".into());
    assert!(
        backend
            .prepare(&facts, &spec)
            .map(|p| p.warnings().to_vec())
            .unwrap()
            .is_empty()
    );
    spec.backend_version = Some("v0.0.140".into());
    assert!(
        backend
            .prepare(&facts, &spec)
            .map(|p| p.warnings().to_vec())
            .unwrap()[0]
            .contains("v0.0.171")
    );
    let spec = spec_for(&facts, &["--n-gpu-layer", "3"]);
    match backend
        .prepare(&facts, &spec)
        .map(|p| p.warnings().to_vec())
    {
        Err(Error::InvalidParameter { name, reason }) => {
            assert_eq!(name, "--n-gpu-layer");
            assert!(reason.contains("--n-gpu-layers"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
