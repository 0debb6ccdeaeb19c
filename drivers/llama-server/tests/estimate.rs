//! llama-server's memory on real GGUF headers: the default context explained and, when it
//! keeps layers off the GPUs, the largest one that does not; and agreement with llama-box,
//! whose llama.cpp memory model this driver shares, where the two servers run the same
//! settings.

use std::path::Path;

use inferkit_core::testkit::{gpu, host};
use std::sync::Arc;

use inferkit_core::plan::{PlanOptions, plan_with_facts};
use inferkit_core::{
    Backend, Cluster, DeviceSlot, Error, FitRequest, Layout, ModelFacts, ModelSpec, Registry,
    ResourceEstimate, ResourceEstimator,
};
use inferkit_llama_box::LlamaBox;
use inferkit_llama_server::LlamaServer;

fn model(name: &str, params: &[&str]) -> (ModelFacts, ModelSpec) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(name);
    let mut spec = ModelSpec::local(path);
    spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
    let facts = ModelFacts::read(&spec.source).expect("fixture reads");
    (facts, spec)
}

/// The estimate of `name` on `devices` as placement returns it when it chooses them: fitted,
/// then annotated.
fn fit(
    backend: &dyn Backend,
    name: &str,
    params: &[&str],
    devices: &[DeviceSlot],
) -> inferkit_core::Result<ResourceEstimate> {
    let (facts, spec) = model(name, params);
    let prepared = backend.prepare(&facts, &spec)?;
    chosen(prepared.estimator(), devices)
}

/// `estimator`'s fit on `devices`, annotated as placement annotates the one it chooses.
fn chosen(
    estimator: &dyn ResourceEstimator,
    devices: &[DeviceSlot],
) -> inferkit_core::Result<ResourceEstimate> {
    let request = FitRequest {
        devices: devices.to_vec(),
        host: host("w1", 64),
        allow_cpu_offload: true,
    };
    let mut estimate = estimator.fit(&request)?;
    estimator.annotate_chosen(&request, &mut estimate)?;
    Ok(estimate)
}

fn offloaded(estimate: &ResourceEstimate) -> u32 {
    match estimate.layout {
        Layout::Layers { offload_layers, .. } => offload_layers,
        Layout::Single => u32::MAX,
        _ => 0,
    }
}

/// The number after "pass `-c " in the notes.
fn offered_context(estimate: &ResourceEstimate) -> Option<u32> {
    estimate.notes.iter().find_map(|note| offer_in(note))
}

/// The number after "pass `-c " in `text`.
fn offer_in(text: &str) -> Option<u32> {
    let rest = text.split("pass `-c ").nth(1)?;
    rest.split('`').next()?.parse().ok()
}

/// One worker with a 6 GiB GPU (an RTX A2000) and 64 GiB of RAM, and a registry of
/// llama-server alone.
fn one_small_gpu() -> (Cluster, Registry) {
    let cluster = Cluster::from_json_str(
        r#"{"workers": [{"name": "w1", "os": "linux", "arch": "amd64", "cpu_cores": 16,
            "ram": {"total": "64GiB", "used": 0},
            "devices": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA RTX A2000",
                         "memory": {"total": "6GiB", "used": 0}, "compute_capability": "8.6"}]}]}"#,
        Path::new("cluster.json"),
    )
    .unwrap();
    let mut registry = Registry::new();
    registry.register(Arc::new(LlamaServer::new()));
    (cluster, registry)
}

#[test]
fn a_128k_default_context_is_explained_and_the_largest_fitting_one_offered() {
    // Llama 3.2 1B: a 131072-token training context, whose f16 KV cache is 4 GiB.
    const MODEL: &str = "llama-3.2-1b-F16.header.gguf";
    let six = [gpu("w1", 0, 6)];
    let default = fit(&LlamaServer::new(), MODEL, &[], &six).unwrap();
    let note = default.notes.join("\n");
    assert!(note.contains("training context, 131072 tokens"), "{note}");
    assert!(note.contains("KV cache takes 4096 MiB"), "{note}");
    let total = 17;
    assert!(
        offloaded(&default) < total,
        "the default keeps layers on the CPU"
    );
    let offered = offered_context(&default).expect("a context is offered");
    assert!(offered.is_multiple_of(256) && offered < 131072, "{offered}");
    // The offer fits with every layer on the GPU, and 256 tokens more do not.
    let at = |ctx: u32| {
        let estimate = fit(&LlamaServer::new(), MODEL, &["-c", &ctx.to_string()], &six).unwrap();
        offloaded(&estimate) >= total
    };
    assert!(at(offered), "{offered} does not fit");
    assert!(!at(offered + 256), "{} fits too", offered + 256);
    // A model that fits with its default context gets the explanation and no offer.
    let fits = fit(&LlamaServer::new(), MODEL, &[], &[gpu("w1", 0, 24)]).unwrap();
    assert!(offered_context(&fits).is_none() && !fits.notes.is_empty());
}

/// A refused fit states what the default context's KV cache costs, and no offer: placement
/// refuses many device groups, and the offer's search of estimates runs once, for the largest
/// of them, when nothing fits. It offers there what the chosen estimate would offer.
#[test]
fn a_refusal_states_the_default_contexts_cost_and_the_placement_offers_once() {
    const MODEL: &str = "llama-3.2-1b-F16.header.gguf";
    let (facts, mut spec) = model(MODEL, &[]);
    spec.backend = Some("llama-server".into());
    let refused = LlamaServer::new()
        .prepare(&facts, &spec)
        .unwrap()
        .estimator()
        .fit(&FitRequest {
            devices: vec![gpu("w1", 0, 6)],
            host: host("w1", 64),
            allow_cpu_offload: false,
        })
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("training context, 131072 tokens, whose KV cache takes 4096 MiB"),
        "{refused}"
    );
    assert!(!refused.contains("pass `-c "), "{refused}");

    // Offloading off, one 6 GiB GPU: nothing fits, and the refusal offers a context.
    let (cluster, registry) = one_small_gpu();
    spec.cpu_offloading = Some(false);
    let err = plan_with_facts(&registry, &facts, &spec, &cluster, &PlanOptions::default())
        .expect_err("nothing fits without offloading");
    let Error::NoPlacement { reason, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(reason.matches("pass `-c ").count(), 1, "{reason}");
    assert!(reason.contains("KV cache takes 4096 MiB"), "{reason}");
    let offered = offer_in(reason).expect("an offered context");
    // The device the plan sees (allocatable less the reserve) with part of the model in host
    // memory: its chosen estimate offers the same context.
    spec.cpu_offloading = None;
    let plan = plan_with_facts(&registry, &facts, &spec, &cluster, &PlanOptions::default())
        .expect("a plan with part of the model in host memory");
    assert_eq!(offered_context(&plan.estimate), Some(offered), "{reason}");
}

/// The offer costs a search of estimates, so placement asks for it once, on the estimate it
/// chooses, not with every fit: the plan carries it, in its estimate and its explanation, and
/// a fit alone does not.
#[test]
fn the_plan_carries_the_offer_and_a_fit_alone_does_not() {
    const MODEL: &str = "llama-3.2-1b-F16.header.gguf";
    let (cluster, registry) = one_small_gpu();
    let (facts, mut spec) = model(MODEL, &[]);
    spec.backend = Some("llama-server".into());
    let plan = plan_with_facts(&registry, &facts, &spec, &cluster, &PlanOptions::default())
        .expect("a plan with part of the model in host memory");
    let offered = offered_context(&plan.estimate).expect("the plan offers a context");
    let offer = format!("pass `-c {offered}`");
    assert!(
        plan.explanation.iter().any(|line| line.contains(&offer)),
        "{:#?}",
        plan.explanation
    );
    // The note comes before the prompt cache's, as llama.cpp's memory before the server's.
    assert!(plan.estimate.notes.last().unwrap().contains("--cache-ram"));

    let backend = LlamaServer::new();
    let prepared = backend.prepare(&facts, &spec).unwrap();
    let fitted = prepared
        .estimator()
        .fit(&FitRequest {
            devices: vec![gpu("w1", 0, 6)],
            host: host("w1", 64),
            allow_cpu_offload: true,
        })
        .unwrap();
    assert!(
        !fitted.notes.iter().any(|n| n.contains("training context")),
        "{:?}",
        fitted.notes
    );
}

#[test]
fn an_explicit_context_gets_no_offer() {
    let estimate = fit(
        &LlamaServer::new(),
        "llama-3.2-1b-F16.header.gguf",
        &["-c", "200000"],
        &[gpu("w1", 0, 6)],
    )
    .unwrap();
    assert!(offered_context(&estimate).is_none(), "{:?}", estimate.notes);
}

#[test]
fn placements_agree_with_llama_box_for_the_same_settings() {
    // Both servers with the same llama.cpp settings: llama-box's defaults as GPUStack runs it
    // (no memory map, flash attention off, four slots with a stream each, embeddings output)
    // written as llama-server flags.
    let server = ["-lm", "none", "-fa", "off", "-np", "4", "--embedding"];
    for (name, devices) in [
        (
            "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
            vec![gpu("w1", 0, 24)],
        ),
        (
            "llama-3.2-1b-F16.header.gguf",
            vec![gpu("w1", 0, 24), gpu("w1", 1, 16)],
        ),
        ("llama-3.2-1b-F16.header.gguf", vec![gpu("w1", 0, 2)]),
        ("qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf", vec![]),
    ] {
        for ctx in ["2048", "8192"] {
            let box_ = fit(&LlamaBox::new(), name, &["-c", ctx], &devices).unwrap();
            let params: Vec<&str> = server.iter().copied().chain(["-c", ctx]).collect();
            let srv = fit(&LlamaServer::new(), name, &params, &devices).unwrap();
            assert_eq!(box_.layout, srv.layout, "{name} -c {ctx}");
            assert_eq!(box_.devices, srv.devices, "{name} -c {ctx}");
            assert_eq!(box_.host, srv.host, "{name} -c {ctx}");
        }
    }
}

#[test]
fn the_prompt_cache_is_counted_in_host_memory() {
    const MODEL: &str = "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf";
    let one = [gpu("w1", 0, 24)];
    let with = |params: &[&str]| fit(&LlamaServer::new(), MODEL, params, &one).unwrap();
    let off = with(&["-c", "4096", "--cache-ram", "0"]);
    // llama-server's default, 8192 MiB, and an explicit limit, on top of the same model.
    for (params, cache) in [
        (&["-c", "4096"][..], 8u64 << 30),
        (&["-c", "4096", "-cram", "1024"], 1 << 30),
    ] {
        let on = with(params);
        assert_eq!(on.devices, off.devices, "{params:?}");
        assert_eq!(on.host.total(), off.host.total() + cache, "{params:?}");
        assert_eq!(on.details["prompt_cache_bytes"], cache, "{params:?}");
        assert!(
            on.notes.iter().any(|n| n.contains("--cache-ram")),
            "{params:?}"
        );
    }
    // No size limit: at most a context's worth of prompt tokens, one whole KV cache.
    let unlimited = with(&["-c", "4096", "-cram", "-1"]);
    let kv: u64 = off.host.kv + off.devices.iter().map(|d| d.components.kv).sum::<u64>();
    assert!(kv > 0);
    assert_eq!(unlimited.host.total(), off.host.total() + kv);
    // An embedding model serves no completions, so it caches no prompts.
    let embedding = with(&["-c", "4096", "--embedding"]);
    assert!(!embedding.details.contains_key("prompt_cache_bytes"));
}

#[test]
fn a_host_too_small_for_the_prompt_cache_is_refused_with_the_flag_named() {
    const MODEL: &str = "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf";
    let backend = LlamaServer::new();
    let (facts, spec) = model(MODEL, &["-c", "4096"]);
    let prepared = backend.prepare(&facts, &spec).unwrap();
    let request = |gib| FitRequest {
        devices: vec![gpu("w1", 0, 24)],
        host: host("w1", gib),
        allow_cpu_offload: true,
    };
    let err = prepared
        .estimator()
        .fit(&request(6))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("8192 MiB") && err.contains("--cache-ram"),
        "{err}"
    );
    assert!(prepared.estimator().fit(&request(10)).is_ok());
    let (facts, spec) = model(MODEL, &["-c", "4096", "-cram", "0"]);
    let prepared = backend.prepare(&facts, &spec).unwrap();
    assert!(prepared.estimator().fit(&request(6)).is_ok());
}
