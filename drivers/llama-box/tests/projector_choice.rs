//! Projector auto-detection on real directories: each vision model's directory
//! (`fixtures/gguf/vlm/<name>/`) holds its text model and projector, and a model whose directory
//! has no projector gets none.

use std::path::{Path, PathBuf};

use inferkit_core::{Category, ModelFacts, ModelSpec};
use inferkit_llama_box::Invocation;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

fn chosen(model: &str) -> Option<String> {
    let spec = ModelSpec::local(fixtures().join(model));
    let facts = ModelFacts::read(&spec.source).expect("fixture reads");
    let invocation = Invocation::new(&facts, &spec).expect("valid model");
    assert_eq!(invocation.categories, [Category::Llm]);
    let mmproj = invocation.mmproj?;
    assert_eq!(invocation.settings.mmproj.as_deref(), mmproj.to_str());
    Some(mmproj.file_name()?.to_string_lossy().into_owned())
}

#[test]
fn each_text_model_gets_the_projector_of_its_width() {
    assert_eq!(
        chosen("vlm/llava-1.5-7b/llama-2-7b-text-stub-F16.header.gguf").as_deref(),
        Some("mmproj-llava-1.5-7b-f16.gguf")
    );
    assert_eq!(
        chosen("vlm/qwen2-vl-2b/qwen2-1.5b-text-stub-F16.header.gguf").as_deref(),
        Some("mmproj-qwen2-vl-2b-f16.gguf")
    );
    assert_eq!(
        chosen("vlm/smolvlm-instruct/smollm-1.7b-text-stub-F16.header.gguf").as_deref(),
        Some("mmproj-smolvlm-instruct-f16.gguf")
    );
    assert_eq!(chosen("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"), None);
    assert_eq!(chosen("llama-3.2-1b-Q4_K_M.header.gguf"), None);
}

#[test]
fn the_chosen_projector_is_launched_and_estimated() {
    use inferkit_core::testkit::{check_backend, gpu, host};
    let spec =
        ModelSpec::local(fixtures().join("vlm/qwen2-vl-2b/qwen2-1.5b-text-stub-F16.header.gguf"));
    let facts = ModelFacts::read(&spec.source).unwrap();
    let backend = inferkit_llama_box::LlamaBox::new();
    check_backend(
        &backend,
        &facts,
        &spec,
        &[gpu("w1", 0, 24)],
        &host("w1", 64),
    );
    let prepared = inferkit_core::Backend::prepare(&backend, &facts, &spec).unwrap();
    let estimator = prepared.estimator();
    let estimate = estimator
        .fit(&inferkit_core::FitRequest {
            devices: vec![gpu("w1", 0, 24)],
            host: host("w1", 64),
            allow_cpu_offload: false,
        })
        .unwrap();
    assert!(
        estimate.details.contains_key("projector"),
        "{:?}",
        estimate.details.keys()
    );
}
