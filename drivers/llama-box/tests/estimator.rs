//! The llama-box estimator reads the settings of the command line that will be launched:
//! GPUStack's defaults, the user's parameters, llama-box's own defaults (flash attention off).

use std::path::Path;

use inferkit_core::gguf::GgufModel;
use inferkit_core::{
    Backend, DeviceId, DeviceSlot, DirectoryFacts, Error, FitRequest, HostSlot, Layout, ModelFacts,
    ModelFormat, ModelSource, ModelSpec, ResourceEstimate, Vendor,
};
use inferkit_llama_box::LlamaBox;

const GIB: u64 = 1 << 30;

fn facts(name: &str) -> ModelFacts {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(name);
    {
        let mut model_facts = ModelFacts::new(
            ModelSource::LocalPath { path: path.clone() },
            ModelFormat::Gguf,
        );
        model_facts.gguf = Some(GgufModel::open(&path).expect("fixture parses"));
        model_facts.path = Some(path);
        model_facts.directory = Some(DirectoryFacts::default());
        model_facts
    }
}

fn spec(facts: &ModelFacts, params: &[&str]) -> ModelSpec {
    let mut spec = ModelSpec::local(facts.path.clone().unwrap());
    spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
    spec
}

fn gpu(allocatable: u64) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: "w1".into(),
            index: 0,
        },
        vendor: Vendor::Nvidia,
        name: "NVIDIA L4".into(),
        total: 24 * GIB,
        allocatable,
        remote: false,
        compute_capability: None,
        reserved: None,
    }
}

fn fit(facts: &ModelFacts, params: &[&str], allocatable: u64) -> ResourceEstimate {
    let backend = LlamaBox::new();
    let spec = spec(facts, params);
    let prepared = backend.prepare(facts, &spec).expect("prepared");
    let estimator = prepared.estimator();
    estimator
        .fit(&FitRequest {
            devices: vec![gpu(allocatable)],
            host: HostSlot {
                worker: "w1".into(),
                total: 64 * GIB,
                allocatable: 60 * GIB,
                os: None,
            },
            allow_cpu_offload: true,
        })
        .expect("fits")
}

#[test]
fn the_context_of_the_launch_sizes_the_kv_cache() {
    let facts = facts("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    // GPUStack's default --ctx-size 8192 shared by --parallel 4.
    let default = fit(&facts, &[], 20 * GIB);
    assert_eq!(default.details["n_ctx"], 8192);
    let doubled = fit(&facts, &["--ctx-size=16384"], 20 * GIB);
    assert_eq!(doubled.details["n_ctx"], 16384);
    // Qwen2.5 has no sliding-window layers: KV grows exactly with the context.
    assert_eq!(
        doubled.devices[0].components.kv,
        2 * default.devices[0].components.kv
    );
    // llama-box runs without flash attention unless asked.
    assert_eq!(default.details["flash_attn"], false);
    assert_eq!(
        fit(&facts, &["-fa", "on"], 20 * GIB).details["flash_attn"],
        true
    );
}

#[test]
fn a_quantized_v_cache_needs_flash_attention_on_llama_box() {
    let facts = facts("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let backend = LlamaBox::new();
    let refused = backend
        .prepare(&facts, &spec(&facts, &["-ctv", "q8_0"]))
        .err()
        .expect("refused");
    assert!(
        matches!(refused, Error::InvalidParameter { ref name, .. } if name == "--cache-type-v")
    );
    assert!(
        backend
            .prepare(&facts, &spec(&facts, &["-ctv", "q8_0", "--flash-attn"]))
            .is_ok()
    );
}

#[test]
fn the_users_gpu_layers_fix_the_offload() {
    let facts = facts("llama-3.2-1b-Q4_K_M.header.gguf");
    let free = fit(&facts, &[], 20 * GIB);
    assert!(matches!(
        free.layout,
        Layout::Layers {
            offload_layers: 17,
            ..
        }
    ));
    let fixed = fit(&facts, &["-ngl", "10"], 20 * GIB);
    assert!(matches!(
        fixed.layout,
        Layout::Layers {
            offload_layers: 10,
            ..
        }
    ));
    assert!(fixed.devices[0].claim < free.devices[0].claim);
}

#[test]
fn embedding_models_run_one_sequence() {
    let facts = facts("bge-small-en-v1.5-F16.header.gguf");
    let estimate = fit(&facts, &[], 20 * GIB);
    assert_eq!(estimate.details["kv_streams"], 1);
}

/// End to end: fit, launch, then re-estimate from the launched argv alone (its settings and its
/// `--gpu-layers` / `--tensor-split`): every device gets the same bytes.
#[test]
fn the_launched_argv_reproduces_the_estimate() {
    use inferkit_core::{
        Assignment, EstimateRequest, PlacementMode, ProcessRole, ResourceEstimator,
    };
    use inferkit_llama_box::llamacpp::{Args, Syntax};
    use inferkit_llama_box::{LlamaBoxEstimator, llama_box_settings};

    let facts = facts("llama-3.2-1b-Q8_0.header.gguf");
    let spec = spec(&facts, &["-c", "32768", "-ub", "1024"]);
    let backend = LlamaBox::new();
    let devices = vec![
        gpu(20 * GIB),
        DeviceSlot {
            id: DeviceId {
                worker: "w1".into(),
                index: 1,
            },
            ..gpu(20 * GIB)
        },
    ];
    let host = HostSlot {
        worker: "w1".into(),
        total: 64 * GIB,
        allocatable: 60 * GIB,
        os: None,
    };
    // A partial offload over both GPUs (10 of 17 layers, shares 3:2): the case where the split
    // matters.
    let estimate = backend
        .prepare(&facts, &spec)
        .unwrap()
        .estimator()
        .estimate(&EstimateRequest {
            devices: devices.clone(),
            host: host.clone(),
            layout: Layout::Layers {
                offload_layers: 10,
                total_layers: 17,
                split: vec![3, 2],
            },
        })
        .unwrap();
    let assignment = Assignment {
        mode: PlacementMode::CpuOffload,
        worker: "w1".into(),
        address: "w1".into(),
        devices: devices.clone(),
        host: host.clone(),
        estimate: estimate.clone(),
        port: 40000,
        subordinates: vec![],
    };
    let on_devices: Vec<u32> = estimate.devices.iter().map(|d| d.layers).collect();
    assert_eq!(on_devices, [6, 4]);
    let specs = backend
        .prepare(&facts, &spec)
        .and_then(|p| p.launch(&assignment))
        .unwrap();
    let main = specs.iter().find(|s| s.role == ProcessRole::Main).unwrap();
    let args = Args::parse(&main.args, Syntax::Argv).unwrap();
    let settings = llama_box_settings(&args).unwrap();
    let gguf = facts.gguf.as_ref().unwrap();
    let estimator = LlamaBoxEstimator::new(gguf, &settings).unwrap();
    let offload = settings.gpu_layers.expect("--gpu-layers is launched");
    let relaunched = estimator
        .estimate(&EstimateRequest {
            devices,
            host,
            layout: Layout::Layers {
                offload_layers: offload,
                total_layers: estimator.total_layers(),
                split: settings.tensor_split.iter().map(|s| *s as u64).collect(),
            },
        })
        .unwrap();
    assert!(
        matches!(estimate.layout, Layout::Layers { offload_layers, .. } if offload_layers == offload)
    );
    let components = |e: &ResourceEstimate| {
        e.devices
            .iter()
            .map(|d| (d.layers, d.components))
            .collect::<Vec<_>>()
    };
    assert_eq!(components(&relaunched), components(&estimate));
    assert_eq!(relaunched.host, estimate.host);
}
