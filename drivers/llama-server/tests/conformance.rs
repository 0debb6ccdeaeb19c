//! The driver conformance suite of inferkit-core, run on real GGUF headers.

use std::path::Path;

use inferkit_core::testkit::{check_backend, gpu, host};
use inferkit_core::{ModelFacts, ModelSpec};
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

#[test]
fn llm_on_one_gpu_two_gpus_and_cpu() {
    let (facts, spec) = model("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf", &[]);
    let backend = LlamaServer::new();
    let one = [gpu("w1", 0, 24)];
    check_backend(&backend, &facts, &spec, &one, &host("w1", 64));
    let two = [gpu("w1", 0, 24), gpu("w1", 1, 16)];
    check_backend(&backend, &facts, &spec, &two, &host("w1", 64));
    check_backend(&backend, &facts, &spec, &[], &host("w1", 64));
}

#[test]
fn moe_embedding_reranker_and_vision_models() {
    let backend = LlamaServer::new();
    for name in [
        "qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf",
        "bge-small-en-v1.5-Q8_0.header.gguf",
        "bge-reranker-v2-m3-F16.header.gguf",
        "vlm/qwen2-vl-2b/qwen2-1.5b-text-stub-F16.header.gguf",
    ] {
        let (facts, spec) = model(name, &["-c", "4096"]);
        check_backend(
            &backend,
            &facts,
            &spec,
            &[gpu("w1", 0, 24)],
            &host("w1", 64),
        );
    }
}
