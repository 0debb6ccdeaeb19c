//! The driver conformance suite of inferkit-core, run on real GGUF headers.

use std::path::Path;

use inferkit_core::testkit::{check_backend, gpu, host};
use inferkit_core::{ModelFacts, ModelSpec};
use inferkit_llama_box::LlamaBox;

fn model(name: &str) -> (ModelFacts, ModelSpec) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(name);
    let spec = ModelSpec::local(path);
    let facts = ModelFacts::read(&spec.source).expect("fixture reads");
    (facts, spec)
}

#[test]
fn llm_on_one_gpu_two_gpus_and_cpu() {
    let (facts, spec) = model("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let backend = LlamaBox::new();
    check_backend(
        &backend,
        &facts,
        &spec,
        &[gpu("w1", 0, 24)],
        &host("w1", 64),
    );
    let two = [gpu("w1", 0, 24), gpu("w1", 1, 16)];
    check_backend(&backend, &facts, &spec, &two, &host("w1", 64));
    check_backend(&backend, &facts, &spec, &[], &host("w1", 64));
}

#[test]
fn moe_and_embedding_models() {
    let backend = LlamaBox::new();
    for name in [
        "qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf",
        "bge-small-en-v1.5-Q8_0.header.gguf",
    ] {
        let (facts, spec) = model(name);
        check_backend(
            &backend,
            &facts,
            &spec,
            &[gpu("w1", 0, 24)],
            &host("w1", 64),
        );
    }
}

#[test]
fn image_model() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd15.q4_0.header.gguf");
    let spec = ModelSpec::local(path);
    let facts = ModelFacts::read(&spec.source).expect("fixture reads");
    check_backend(
        &LlamaBox::new(),
        &facts,
        &spec,
        &[gpu("w1", 0, 24)],
        &host("w1", 64),
    );
}
