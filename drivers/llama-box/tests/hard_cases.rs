//! The rows of `hard-cases.md` (users' deployment failures collected from public trackers) that
//! concern llama-box, each replayed on real GGUF headers through the driver's public API: the
//! estimate is made from the flags that will be launched, and the launch from the estimate.

use std::path::{Path, PathBuf};

use inferkit_core::gguf::GgufModel;
use inferkit_core::{
    Assignment, Backend, Category, DeviceId, DeviceSlot, DirectoryFacts, Error, EstimateRequest,
    FitRequest, HostSlot, Layout, ModelFacts, ModelFormat, ModelSource, ModelSpec, PlacementMode,
    ResourceEstimate, ResourceEstimator, Subordinate, Vendor,
};
use inferkit_llama_box::llamacpp::{LlamaSettings, TensorOverride};
use inferkit_llama_box::{Invocation, LlamaBox, LlamaBoxEstimator, TextDetails};
use serde_json::Value;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn gguf(name: &str) -> GgufModel {
    GgufModel::open(fixtures().join("gguf").join(name)).expect("fixture parses")
}

fn facts(name: &str) -> ModelFacts {
    facts_at(&format!("gguf/{name}"))
}

/// Facts of a model header at `path` under the shared fixtures.
fn facts_at(path: &str) -> ModelFacts {
    let path = fixtures().join(path);
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
    let mut spec = ModelSpec::local(facts.path.clone().expect("local path"));
    spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
    spec
}

fn device(worker: &str, index: u32, remote: bool, allocatable: u64) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: worker.into(),
            index,
        },
        vendor: Vendor::Nvidia,
        name: "NVIDIA L4".into(),
        total: 24 * GIB,
        allocatable,
        remote,
        compute_capability: Some("8.9".into()),
        reserved: None,
    }
}

fn host() -> HostSlot {
    HostSlot {
        worker: "w1".into(),
        total: 64 * GIB,
        allocatable: 60 * GIB,
        os: None,
    }
}

/// The fit of `facts` launched with GPUStack's defaults plus `params`, on `devices`.
fn fit(facts: &ModelFacts, params: &[&str], devices: Vec<DeviceSlot>) -> ResourceEstimate {
    let backend = LlamaBox::new();
    let spec = spec(facts, params);
    let prepared = backend.prepare(facts, &spec).expect("prepared");
    let estimator = prepared.estimator();
    estimator
        .fit(&FitRequest {
            devices,
            host: host(),
            allow_cpu_offload: true,
        })
        .expect("fits")
}

fn offload_of(estimate: &ResourceEstimate) -> u32 {
    match estimate.layout {
        Layout::Layers { offload_layers, .. } => offload_layers,
        Layout::Single => u32::MAX,
        _ => 0,
    }
}

/// Hard case 4 (gpustack#2412, gguf-parser-go#2): embedding and reranker models were sized like
/// causal LMs. llama-box v0.0.171 runs a non-causal model with one micro-batch of its whole
/// context, capped at the training context (its `embedding.patch`), keeps no KV cache and
/// allocates no logits; GPUStack launches it with `--ctx-size 8192 --parallel 1`.
#[test]
fn hard_case_4_embedding_model_under_gpustack_defaults() {
    let facts = facts("bge-small-en-v1.5-F16.header.gguf");
    let estimate = fit(&facts, &[], vec![device("w1", 0, false, 20 * GIB)]);
    // --ctx-size 8192 is capped at the model's 512 tokens; the micro-batch is that context.
    assert_eq!(estimate.details["n_ctx"], 512);
    assert_eq!(estimate.details["n_ubatch"], 512);
    assert_eq!(estimate.details["n_batch"], 512);
    let gpu = &estimate.devices[0].components;
    assert_eq!(gpu.kv, 0);
    assert_eq!(estimate.host.kv, 0);
    // One sequence's pooled embedding (384 f32), no 30522-entry logits row.
    assert_eq!(estimate.host.output, 384 * 4);
    // Weights of 12 layers (~44 MiB of the 64 MiB file: token embeddings stay on the host),
    // a KQ of 512 x 512 x 12 heads in f32 (12 MiB), and the CUDA context.
    assert!(gpu.weights > 40 * MIB && gpu.weights < 50 * MIB, "{gpu:?}");
    assert!(gpu.compute > 12 * MIB && gpu.compute < 40 * MIB, "{gpu:?}");
    assert!(
        estimate.devices[0].claim < 340 * MIB,
        "{:?}",
        estimate.devices[0]
    );
}

/// Hard case 4 with the model of the report: BAAI/bge-reranker-v2-m3 in F16 (XLM-RoBERTa,
/// 567.75 M parameters, training context 8192). gguf-parser claimed 13.8 GiB.
#[test]
fn hard_case_4_reranker_sizes_follow_the_launched_context() {
    let facts = facts("bge-reranker-v2-m3-F16.header.gguf");
    let invocation = Invocation::new(&facts, &spec(&facts, &[])).expect("invocation");
    assert_eq!(invocation.categories, [Category::Reranker]);
    assert!(invocation.args.has("--rerank") && invocation.args.has("--embeddings"));
    assert_eq!(invocation.settings.n_parallel, 1);
    let big = device("w1", 0, false, 20 * GIB);
    let default = fit(&facts, &[], vec![big.clone()]);
    // The detected reranker category adds --rerank; llama-box keeps the whole 8192-token
    // context in one micro-batch, and without flash attention (llama-box's default) the KQ
    // scores of 16 heads take 8192² × 16 × 4 B = 4 GiB.
    assert_eq!(default.details["n_ubatch"], 8192);
    let claim = default.devices[0].claim;
    let kq = 8192 * 8192 * 16 * 4;
    assert!(default.devices[0].components.compute > kq, "{claim}");
    assert!(claim < 13 * GIB, "{claim}");
    // Weights on the GPU: the 24 layers and the classifier (~577 MiB); the 250002-token
    // embedding table (488 MiB) stays on the host.
    let weights = default.devices[0].components.weights;
    assert!((560 * MIB..600 * MIB).contains(&weights), "{weights}");
    assert!(default.host.weights > 488 * MIB);
    // The score output: one 1024-wide f32 row, no logits.
    assert_eq!(default.host.output, 1024 * 4);
    // The context the model is served with decides the claim: at 512 tokens it is the
    // ≈ 926 MiB the report measured.
    let short = fit(&facts, &["--ctx-size", "512"], vec![big.clone()]);
    let claim = short.devices[0].claim;
    assert!((800 * MIB..1000 * MIB).contains(&claim), "{}", claim / MIB);
    // Flash attention never materialises the scores.
    let flash = fit(&facts, &["--flash-attn"], vec![big]);
    assert!(
        flash.devices[0].claim < 2 * GIB,
        "{}",
        flash.devices[0].claim / MIB
    );
}

/// Hard case 5 (gpustack#2443): nomic-embed with `--rope-scaling yarn --ubatch-size 8192` was
/// estimated at 954.5 MiB but used 4158 MiB: customised RoPE lifts llama-box's cap at the
/// training context, so the 8192-token context is decoded as one micro-batch.
#[test]
fn hard_case_5_rope_flags_lift_the_context_cap_of_an_embedding_model() {
    let facts = facts("bge-small-en-v1.5-F16.header.gguf");
    let gpu = || vec![device("w1", 0, false, 20 * GIB)];
    let issue = [
        "--rope-scaling",
        "yarn",
        "--rope-freq-scale",
        "0.75",
        "--ctx-size",
        "8192",
        "--ubatch-size",
        "8192",
        "--batch-size",
        "8192",
    ];
    let scaled = fit(&facts, &issue, gpu());
    assert_eq!(scaled.details["n_ctx"], 8192);
    assert_eq!(scaled.details["n_ubatch"], 8192);
    // KQ scores of 12 heads over 8192 × 8192 tokens in f32: 3 GiB.
    let kq = 8192 * 8192 * 12 * 4;
    assert!(scaled.devices[0].components.compute > kq);
    // The same flags without the RoPE change: the context is capped at 512 again, whatever
    // --ubatch-size says.
    let plain = fit(&facts, &issue[4..], gpu());
    assert_eq!(plain.details["n_ubatch"], 512);
    // A RoPE flag equal to the model's own value is no customisation (BERT's trained scaling
    // is linear with scale 1).
    let same = fit(
        &facts,
        &["--rope-scaling", "linear", "--rope-freq-scale", "1"],
        gpu(),
    );
    assert_eq!(same.details["n_ctx"], 512);
    // Each memory flag of the launch is honoured: --ubatch-size alone does not matter for an
    // encoder, --ctx-size under the cap does.
    let small = fit(&facts, &["--ctx-size", "256"], gpu());
    assert_eq!(small.details["n_ubatch"], 256);
    assert!(small.devices[0].components.compute < plain.devices[0].components.compute);
}

/// Hard case 6 (lilbee#761, #767): gguf-parser counted the logits on the device (full offload
/// 65.8 % high), the output layer outside `--gpu-layers` (partial offload 70 % low), and MoE
/// compute 103 MiB low.
#[test]
fn hard_case_6_output_placement_and_moe_compute_follow_llama_cpp() {
    let model = gguf("llama-3.2-1b-Q4_K_M.header.gguf");
    let estimator = LlamaBoxEstimator::new(&model, &LlamaSettings::default()).expect("model");
    let gpu = vec![device("w1", 0, false, 20 * GIB)];
    let estimate_at = |offload: u32| {
        estimator
            .estimate(&EstimateRequest {
                devices: gpu.clone(),
                host: host(),
                layout: Layout::Layers {
                    offload_layers: offload,
                    total_layers: 17,
                    split: Vec::new(),
                },
            })
            .expect("estimate")
    };
    // Full offload: the logits buffer (128256 f32) stays in host memory.
    let full = estimate_at(17);
    assert_eq!(full.host.output, 128_256 * 4);
    assert_eq!(full.devices[0].components.output, 0);
    // --gpu-layers 1 offloads the output layer first: the device holds the tied LM head
    // (a copy of the token embeddings) and no repeating layer, so no KV.
    let one = estimate_at(1);
    let token_embd = model.tensor("token_embd.weight").expect("tensor").bytes;
    assert_eq!(one.devices[0].components.kv, 0);
    assert!(one.devices[0].components.weights >= token_embd);
    assert_eq!(one.devices[0].layers, 1);

    // MoE: a measured llama.cpp run of Qwen1.5-MoE (4 layers) fully offloaded to one RPC device.
    let text =
        std::fs::read_to_string(fixtures().join("llamacpp-memory/measurements-offload.jsonl"))
            .expect("measurements");
    let row: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("row"))
        .find(|r| {
            r["model"] == "qwen1.5-moe-a2.7b-4layer"
                && r["rpc_servers"] == 1
                && r["n_gpu_layers"] == 5
                && r["settings"]["n_seq_max"] == 1
                && r["settings"]["flash_attn"] == "on"
        })
        .expect("a measured MoE row");
    let moe = gguf("qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf");
    let settings = LlamaSettings {
        ctx_size: 4096,
        use_mmap: false,
        ..LlamaSettings::default()
    };
    let estimator = LlamaBoxEstimator::new(&moe, &settings).expect("model");
    let mut rpc = device("rpc", 0, true, 16 * GIB);
    rpc.vendor = Vendor::Other("rpc".into());
    let estimate = estimator
        .estimate(&EstimateRequest {
            devices: vec![rpc],
            host: host(),
            layout: Layout::Single,
        })
        .expect("estimate");
    let measured = row["buffers"]["compute:rpc0"].as_u64().expect("compute");
    let got = estimate.devices[0].components.compute;
    let error = (got as f64 - measured as f64).abs() / measured as f64;
    assert!(error < 0.10, "MoE compute {got} vs measured {measured}");
    assert_eq!(
        estimate.host.output,
        row["buffers"]["output:cpu"].as_u64().expect("output")
    );
}

/// Hard case 12 (gpustack#1312): auto-placement over many small GPUs took half an hour. The
/// model sizes each layer once, when the estimator is built; a fit is a binary search over the
/// offload count, each step a sum over cached per-layer costs, and its layout spreads over
/// every device. (Its speed is measured by `benches/estimate.rs`,
/// `fit_100_layers_sixteen_gpus`.)
#[test]
fn hard_case_12_fit_over_many_devices_uses_every_device() {
    let facts = facts("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let devices: Vec<DeviceSlot> = (0..16).map(|i| device("w1", i, false, GIB)).collect();
    let estimate = fit(&facts, &[], devices.clone());
    assert_eq!(estimate.devices.len(), 16);
    // 24 repeating layers and the output layer, all offloaded, split by free memory.
    assert_eq!(offload_of(&estimate), 25);
    let layers: u32 = estimate.devices.iter().map(|d| d.layers).sum();
    assert_eq!(layers, 25);
    assert!(estimate.devices.iter().all(|d| d.layers > 0));
    for (d, slot) in estimate.devices.iter().zip(&devices) {
        assert!(d.claim <= slot.allocatable, "{d:?}");
    }
}

/// An assignment of `estimate` over `devices`, remote devices served by one RPC server each.
fn assignment(devices: Vec<DeviceSlot>, estimate: ResourceEstimate) -> Assignment {
    let subordinates = devices
        .iter()
        .filter(|d| d.remote)
        .enumerate()
        .map(|(i, d)| Subordinate {
            worker: d.id.worker.clone(),
            address: "10.0.0.2".into(),
            devices: vec![d.id.index],
            port: 50052 + i as u16,
        })
        .collect();
    Assignment {
        mode: PlacementMode::MultiWorker,
        worker: "w1".into(),
        address: "10.0.0.1".into(),
        devices,
        host: host(),
        estimate,
        port: 40001,
        subordinates,
    }
}

/// Hard case 17 (gpustack#2619): the RPC server died on `--origin-rpc-server-main-gpu`, a flag
/// its binary did not know. Every flag of every generated process is in llama-box v0.0.171's
/// table, and an RPC server gets only the RPC server's own flags.
#[test]
fn hard_case_17_rpc_servers_get_only_flags_their_binary_knows() {
    let facts = facts("llama-3.2-1b-Q8_0.header.gguf");
    let devices = vec![
        device("w2", 0, true, 8 * GIB),
        device("w2", 1, true, 8 * GIB),
        device("w1", 0, false, 8 * GIB),
    ];
    let estimate = fit(&facts, &[], devices.clone());
    let specs = LlamaBox::new()
        .prepare(&facts, &spec(&facts, &[]))
        .and_then(|p| p.launch(&assignment(devices, estimate)))
        .expect("launch");
    let servers: Vec<_> = specs
        .iter()
        .filter(|s| {
            s.role
                .is_subordinate(inferkit_llama_box::llamacpp::RPC_SERVER)
        })
        .collect();
    assert_eq!(servers.len(), 2);
    for spec in &specs {
        for flag in spec.args.iter().filter(|a| a.starts_with('-')) {
            let known = inferkit_llama_box::flag_table()
                .lookup(flag)
                .unwrap_or_else(|| panic!("{flag} unknown to llama-box"))
                .spec;
            if spec
                .role
                .is_subordinate(inferkit_llama_box::llamacpp::RPC_SERVER)
            {
                assert_eq!(known.section, "rpc-server", "{flag}");
            }
        }
    }
    assert!(
        specs
            .iter()
            .all(|s| !s.args.iter().any(|a| a.contains("origin")))
    );
}

/// Hard case 18 (gpustack#1471): a KV view in an RPC buffer failed on an older llama.cpp RPC
/// backend. llama.cpp keeps each layer's KV cache with the layer (on RPC devices too), which
/// the estimate follows; `--no-kv-offload`, the workaround that keeps the KV cache and its
/// views on the main host, is honoured by both the estimate and the launch.
#[test]
fn hard_case_18_kv_cache_placement_on_rpc_devices() {
    let facts = facts("llama-3.2-1b-Q8_0.header.gguf");
    let devices = || {
        vec![
            device("w2", 0, true, 8 * GIB),
            device("w1", 0, false, 8 * GIB),
        ]
    };
    let with_layers = fit(&facts, &[], devices());
    assert!(with_layers.devices[0].components.kv > 0);
    assert_eq!(with_layers.host.kv, 0);
    let on_host = fit(&facts, &["--no-kv-offload"], devices());
    assert!(on_host.devices.iter().all(|d| d.components.kv == 0));
    let total_kv: u64 = with_layers.devices.iter().map(|d| d.components.kv).sum();
    assert_eq!(on_host.host.kv, total_kv);
    let specs = LlamaBox::new()
        .prepare(&facts, &spec(&facts, &["--no-kv-offload"]))
        .and_then(|p| p.launch(&assignment(devices(), on_host)))
        .expect("launch");
    let main = specs.last().expect("main process");
    assert!(main.args.iter().any(|a| a == "--no-kv-offload"));
}

/// Hard case 21 (ollama#10765): 3.2 GiB free, a 2.6 GiB model, yet nothing offloaded because
/// the rule demanded the projector and two layers up front. Here a VLM whose full offload does
/// not fit still offloads the layers that do, next to its projector (llama-box v0.0.171 has no
/// flag to keep the projector on the CPU while layers are offloaded), and the estimate says
/// which term blocked the full offload. The text model is Llama-3.2-1B (16 layers) and the
/// projector SmolVLM's, whose 2048-wide output matches it (llama-box drops a projector whose
/// width differs from the text model's).
#[test]
fn hard_case_21_partial_offload_with_a_projector_says_what_blocked() {
    let dir = fixtures().join("gguf/vlm/smolvlm-instruct");
    let model = gguf("llama-3.2-1b-Q4_K_M.header.gguf");
    let settings = LlamaSettings {
        mmproj: Some(
            dir.join("mmproj-smolvlm-instruct-f16.gguf")
                .display()
                .to_string(),
        ),
        ctx_size: 8192,
        ..inferkit_llama_box::llama_box_defaults()
    };
    let estimator = LlamaBoxEstimator::new(&model, &settings).expect("model");
    let request = |allocatable: u64| FitRequest {
        devices: vec![device("w1", 0, false, allocatable)],
        host: host(),
        allow_cpu_offload: true,
    };
    let full = estimator
        .estimate(&EstimateRequest {
            devices: request(20 * GIB).devices,
            host: host(),
            layout: Layout::Single,
        })
        .expect("estimate");
    let needed = full.devices[0].claim;
    let short = needed - 200 * MIB;
    let partial = estimator
        .fit(&request(short))
        .expect("a partial offload fits");
    let offload = offload_of(&partial);
    assert!(
        (1..estimator.total_layers()).contains(&offload),
        "{offload}"
    );
    assert!(partial.devices[0].claim <= short);
    assert_eq!(partial.details["projector"]["device"], "gpu0");
    let note = partial.notes.join("\n");
    assert!(note.contains("gpu0") && note.contains("weights"), "{note}");
    assert!(note.contains("projector"), "{note}");
    // A device smaller than the projector: no layer is offloaded, and the projector follows
    // `--gpu-layers 0` to the host, leaving the device empty.
    let tiny = estimator.fit(&request(200 * MIB)).expect("CPU fits");
    assert_eq!(offload_of(&tiny), 0);
    assert_eq!(tiny.details["projector"]["device"], "cpu");
    let typed: TextDetails = tiny.details_as().expect("text-model details");
    assert_eq!(typed.projector.expect("a projector").device, "cpu");
    assert_eq!(typed.n_ctx, tiny.details["n_ctx"].as_u64().unwrap());
    assert_eq!(tiny.devices[0].claim, 0);
}

/// Hard case 22 (ollama#10417): the estimate offloaded fewer layers than would have fit. A
/// user's explicit `--gpu-layers` is the layout, and is refused when it does not fit instead
/// of being lowered.
#[test]
fn hard_case_22_explicit_gpu_layers_are_honoured() {
    let facts = facts("llama-3.2-1b-Q4_K_M.header.gguf");
    let ten = fit(
        &facts,
        &["--gpu-layers", "10"],
        vec![device("w1", 0, false, 20 * GIB)],
    );
    assert_eq!(offload_of(&ten), 10);
    assert_eq!(ten.devices[0].layers, 10);
    let backend = LlamaBox::new();
    let spec = spec(&facts, &["--gpu-layers", "10"]);
    let prepared = backend.prepare(&facts, &spec).expect("prepared");
    let estimator = prepared.estimator();
    let small = FitRequest {
        devices: vec![device("w1", 0, false, 300 * MIB)],
        host: host(),
        allow_cpu_offload: true,
    };
    assert!(matches!(
        estimator.fit(&small),
        Err(Error::DoesNotFit { .. })
    ));
}

/// Whether `value` is within `percent` % of `measured`.
fn within(value: u64, measured: u64, percent: u64) -> bool {
    value.abs_diff(measured) * 100 <= measured * percent
}

/// Hard case 7 (gpustack#1601): an image model needed ~13 GB at 1024×1024, far above an
/// estimate that ignored the image size. The estimate of an image model is sized by the image
/// flags of the launch (`--image-max-width`, `--image-max-height`, VAE tiling), checked here
/// against stable-diffusion.cpp's measured compute buffers for SD 1.5 Q4_0
/// (`sdcpp/measurements.jsonl`, runs `skip_sd15.q4_0_gguf_{512,1024}_b{1,2}_tile{0,1}_fa0`);
/// the fixtures hold no FLUX header. Images of a batch are generated one after another, so
/// `--image-max-batch` changes no buffer (the b2 runs measured the same as b1).
#[test]
fn hard_case_7_image_size_and_vae_tiling_flags_size_an_image_model() {
    let facts = facts_at("llamacpp-memory/sdcpp/sd15.q4_0.gguf.header");
    let compute = |params: &[&str]| {
        let estimate = fit(&facts, params, vec![device("w1", 0, false, 40 * GIB)]);
        let stages = &estimate.details["diffusion"];
        let bytes = |stage: &str| stages[stage]["compute"].as_u64().expect("compute bytes");
        (bytes("diffusion"), bytes("vae"))
    };
    let size = |side: &'static str| ["--image-max-width", side, "--image-max-height", side];
    let untiled = "--image-no-vae-tiling";

    let (unet_512, vae_512) = compute(&[&size("512")[..], &[untiled]].concat());
    assert!(within(unet_512, 587_098_720, 10), "{unet_512}");
    assert!(within(vae_512, 1_744_896_064, 10), "{vae_512}");
    let (unet_1024, vae_1024) = compute(&[&size("1024")[..], &[untiled]].concat());
    assert!(within(unet_1024, 8_767_072_864, 10), "{unet_1024}");
    assert!(within(vae_1024, 6_979_584_064, 10), "{vae_1024}");
    // GPUStack's launch turns VAE tiling on: the decode is then one 256×256 tile at any size.
    let (_, vae_tiled) = compute(&size("1024"));
    assert!(within(vae_tiled, 436_224_064, 10), "{vae_tiled}");
    let batch = compute(&[&size("1024")[..], &[untiled, "--image-max-batch", "2"]].concat());
    assert_eq!(batch, (unet_1024, vae_1024));
}

/// Hard case 15 (gpustack#3742, #3741): a custom llama.cpp backend refused `--ctx-size=16384`
/// and the GPUStack-private `--enable-hf-xet` and `--huggingface-token`. User parameters are
/// trimmed and split at `=` into llama-box's `--flag value` form, the estimate and the launch
/// read the same normalised argv, and a flag llama-box does not know is refused before launch.
#[test]
fn hard_case_15_parameters_are_normalised_and_private_flags_refused() {
    let facts = facts("llama-3.2-1b-Q8_0.header.gguf");
    let backend = LlamaBox::new();
    let params = ["--ctx-size=16384", " --ubatch-size 256 "];
    let user = spec(&facts, &params);
    assert!(
        backend
            .prepare(&facts, &user)
            .map(|p| p.warnings().to_vec())
            .expect("valid")
            .is_empty()
    );
    let invocation = Invocation::new(&facts, &user).expect("invocation");
    assert_eq!(
        (invocation.settings.ctx_size, invocation.settings.n_ubatch),
        (16384, 256)
    );
    let devices = vec![device("w1", 0, false, 20 * GIB)];
    let estimate = fit(&facts, &params, devices.clone());
    let specs = backend
        .prepare(&facts, &user)
        .and_then(|p| p.launch(&assignment(devices, estimate)))
        .expect("launch");
    let argv = &specs.last().expect("main process").args;
    assert!(
        argv.windows(2).any(|w| w == ["--ctx-size", "16384"]),
        "{argv:?}"
    );
    assert!(
        argv.windows(2).any(|w| w == ["--ubatch-size", "256"]),
        "{argv:?}"
    );
    assert!(
        argv.iter().all(|a| a.trim() == a && !a.contains('=')),
        "{argv:?}"
    );
    for private in ["--enable-hf-xet", "--huggingface-token"] {
        match backend
            .prepare(&facts, &spec(&facts, &[private]))
            .map(|_| ())
        {
            Err(Error::InvalidParameter { name, reason }) => {
                assert_eq!(name, private);
                assert!(reason.contains("unknown to llama-box"), "{reason}");
            }
            other => panic!("{private}: {other:?}"),
        }
    }
}

/// gpustack#2593 (listed with the hard cases): RPC servers also downloaded the model and the
/// instance hung in "Downloading". An RPC server receives the tensors from the main process, so
/// its launch names no model file and writes none; only the main process opens the model.
#[test]
fn rpc_servers_are_given_no_model_file() {
    let facts = facts("llama-3.2-1b-Q8_0.header.gguf");
    let devices = vec![
        device("w2", 0, true, 8 * GIB),
        device("w1", 0, false, 8 * GIB),
    ];
    let estimate = fit(&facts, &[], devices.clone());
    let specs = LlamaBox::new()
        .prepare(&facts, &spec(&facts, &[]))
        .and_then(|p| p.launch(&assignment(devices, estimate)))
        .expect("launch");
    let model = facts.path.as_ref().expect("path").display().to_string();
    let (servers, main): (Vec<_>, Vec<_>) = specs.iter().partition(|s| {
        s.role
            .is_subordinate(inferkit_llama_box::llamacpp::RPC_SERVER)
    });
    assert_eq!((servers.len(), main.len()), (1, 1));
    let server = servers[0];
    assert_eq!(server.worker, "w2");
    assert!(server.files.is_empty());
    assert!(
        !server
            .args
            .iter()
            .any(|a| a == "--model" || a == "-m" || *a == model),
        "{:?}",
        server.args
    );
    assert!(
        main[0]
            .args
            .windows(2)
            .any(|w| w == ["--model", model.as_str()])
    );
}

/// AlexsJones/llmfit#622 (listed with the hard cases): a split GGUF was read from its first
/// shard only, so a 671B model showed as 29.6B. A model named by any of its shards is sized
/// from all of them (the same estimate as the single-file model), and llama-box is launched
/// with the first shard, the only one llama.cpp loads a split model from.
#[test]
fn split_gguf_is_sized_from_every_shard_and_launched_from_the_first() {
    let single = facts("qwen2.5-0.5b-instruct-Q8_0.header.gguf");
    let split = facts("qwen2.5-0.5b-instruct-Q8_0-00002-of-00003.gguf");
    assert_eq!(split.gguf.as_ref().expect("gguf").shards().len(), 3);
    let devices = || vec![device("w1", 0, false, 8 * GIB)];
    let whole = fit(&single, &[], devices());
    let sharded = fit(&split, &[], devices());
    assert_eq!(sharded.devices[0].components, whole.devices[0].components);
    let weights = sharded.devices[0].components.weights;
    assert!(weights >= 525_120_000, "{weights}");
    let specs = LlamaBox::new()
        .prepare(&split, &spec(&split, &[]))
        .and_then(|p| p.launch(&assignment(devices(), sharded)))
        .expect("launch");
    let first = fixtures().join("gguf/qwen2.5-0.5b-instruct-Q8_0-00001-of-00003.gguf");
    let argv = &specs.last().expect("main process").args;
    assert!(
        argv.windows(2)
            .any(|w| w[0] == "--model" && Path::new(&w[1]) == first),
        "{argv:?}"
    );
}

/// llama-server's search for the largest context that keeps every layer on the accelerators
/// asks for the same model at many contexts: `with_ctx_size` gives what building it again
/// with that context gives (the weight table with its override rules, the projector and the
/// tensors are not read again), for every layout and context tried.
#[test]
fn another_context_estimates_as_a_model_built_with_it() {
    let cpu_moe = TensorOverride {
        pattern: r"\.ffn_(up|down|gate)_exps".into(),
        buffer_type: "CPU".into(),
    };
    let mmproj = fixtures().join("gguf/vlm/gemma-3-4b/mmproj-gemma-3-4b-f16.gguf");
    let mmproj = Some(mmproj.to_string_lossy().into_owned());
    let cases = [
        (
            "qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf",
            Vec::new(),
            None,
        ),
        (
            "qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf",
            vec![cpu_moe],
            None,
        ),
        ("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf", Vec::new(), None),
        ("gemma-2-2b-F16.header.gguf", Vec::new(), None),
        (
            "vlm/gemma-3-4b/gemma-3-4b-text-stub-F16.header.gguf",
            Vec::new(),
            mmproj,
        ),
    ];
    let layouts = [
        Layout::CpuOnly,
        Layout::Single,
        Layout::Layers {
            offload_layers: 2,
            total_layers: 5,
            split: Vec::new(),
        },
    ];
    for (name, override_tensors, mmproj) in cases {
        let model = gguf(name);
        let settings = LlamaSettings {
            n_parallel: 2,
            override_tensors,
            mmproj,
            ..LlamaSettings::default()
        };
        let base = LlamaBoxEstimator::new(&model, &settings).expect("model");
        for ctx_size in [256, 4096, 8192, 32768] {
            let rebuilt = LlamaBoxEstimator::new(
                &model,
                &LlamaSettings {
                    ctx_size,
                    ..settings.clone()
                },
            )
            .expect("model");
            let reused = base.with_ctx_size(&model, ctx_size).expect("model");
            assert_eq!(reused.context(), rebuilt.context(), "{name} {ctx_size}");
            for layout in &layouts {
                let request = EstimateRequest {
                    devices: vec![device("w1", 0, false, 20 * GIB)],
                    host: host(),
                    layout: layout.clone(),
                };
                let (reused, rebuilt) = (reused.estimate(&request), rebuilt.estimate(&request));
                assert_eq!(
                    serde_json::to_value(reused.expect("estimate")).unwrap(),
                    serde_json::to_value(rebuilt.expect("estimate")).unwrap(),
                    "{name} {ctx_size} {layout:?}"
                );
            }
        }
    }
}
