//! Ollama models (from a registry and from Ollama's own store) and plain URLs of GGUF files.

mod support;

use std::time::Duration;

use inferkit_formats::{ModelFacts, ModelSource};
use inferkit_sources::local_cache::CacheDirs;
use inferkit_sources::{ModelRef, Origin, Resolver, SourceErrorKind, SourceOptions};
use support::hub::source_options as options;
use support::hub::{FakeHub, Repo, fixture, ollama_model, read_fixture, sha256_hex};

const Q4: &str = "gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf";
const MMPROJ: &str = "gguf/vlm/qwen2-vl-2b/mmproj-qwen2-vl-2b-f16.gguf";

async fn resolve(
    options: SourceOptions,
    reference: &str,
) -> Result<inferkit_sources::Resolved, inferkit_sources::SourceError> {
    let resolver = Resolver::new(options).expect("client");
    resolver
        .resolve(&ModelRef::parse(reference).expect("reference"))
        .await
}

fn gguf_json(facts: &ModelFacts) -> serde_json::Value {
    let gguf = facts.gguf.as_ref().expect("a GGUF model");
    serde_json::json!({
        "tensors": gguf.tensors(),
        "metadata": gguf.metadata().iter().map(|e| (e.key.clone(), format!("{:?}", e.value))).collect::<Vec<_>>(),
    })
}

fn local(path: &str) -> ModelFacts {
    ModelFacts::read(&ModelSource::LocalPath {
        path: fixture(path),
    })
    .expect("local")
}

#[tokio::test]
async fn an_ollama_model_reads_its_blobs_headers_through_the_manifest() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add(
        "library/qwen2.5",
        ollama_model("0.5b", read_fixture(Q4), Some(read_fixture(MMPROJ))),
    );
    let cache = tempfile::tempdir().unwrap();
    let resolved = resolve(
        options(&hub.hub.url(), cache.path()),
        "ollama://qwen2.5:0.5b",
    )
    .await
    .expect("resolved");
    assert_eq!(resolved.origin, Origin::Network);
    assert_eq!(
        resolved.facts.source,
        ModelSource::Ollama {
            model: "qwen2.5:0.5b".into()
        }
    );
    assert_eq!(gguf_json(&resolved.facts), gguf_json(&local(Q4)));
    let directory = resolved.facts.directory.unwrap();
    assert!(
        directory
            .files
            .iter()
            .any(|f| f.starts_with("mmproj-sha256-"))
    );
    // The blobs came from the CDN the registry redirected to.
    assert!(hub.cdn.requests() >= 2);

    hub.reset();
    let again = resolve(
        options(&hub.hub.url(), cache.path()),
        "ollama://qwen2.5:0.5b",
    )
    .await
    .unwrap();
    assert_eq!(again.origin, Origin::HeaderCache);
    assert_eq!(hub.requests(), 0);

    let err = resolve(
        options(&hub.hub.url(), cache.path()),
        "ollama://qwen2.5:72b",
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotFound);
    assert!(
        err.message
            .contains("no model `library/qwen2.5` with tag `72b`"),
        "{err}"
    );
}

#[test]
fn ollamas_own_store_plans_with_no_network() {
    let store = tempfile::tempdir().unwrap();
    let model = read_fixture(Q4);
    let blob = store
        .path()
        .join(format!("blobs/sha256-{}", sha256_hex(&model)));
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, &model).unwrap();
    let repo = ollama_model("0.5b", model, None);
    let manifest = store
        .path()
        .join("manifests/registry.ollama.ai/library/qwen2.5/0.5b");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::write(&manifest, &repo.files["manifests/0.5b"]).unwrap();
    let options = SourceOptions {
        offline: true,
        caches: CacheDirs {
            ollama: Some(store.path().into()),
            ..CacheDirs::default()
        },
        header_cache: None,
        ..options("https://registry.ollama.ai", store.path())
    };
    let resolved = inferkit_sources::resolve_cached(
        &ModelRef::parse("ollama://qwen2.5:0.5b").unwrap(),
        &options,
    )
    .unwrap()
    .expect("in the store");
    assert_eq!(resolved.origin, Origin::ToolCache { path: blob.clone() });
    assert_eq!(
        resolved.facts.path,
        Some(blob),
        "llama-box can load the blob itself"
    );
    assert_eq!(gguf_json(&resolved.facts), gguf_json(&local(Q4)));
}

#[tokio::test]
async fn a_url_of_any_shard_reads_the_whole_split_model() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let mut repo = Repo::new("files");
    for n in 1..=3 {
        let name = format!("qwen2.5-0.5b-instruct-Q8_0-0000{n}-of-00003.gguf");
        repo = repo.file(&name, read_fixture(&format!("gguf/{name}")));
    }
    repo = repo.file("single.gguf", read_fixture(Q4));
    hub.add("files/x", repo);
    let cache = tempfile::tempdir().unwrap();
    let url = format!(
        "{}/blob/files/x/qwen2.5-0.5b-instruct-Q8_0-00002-of-00003.gguf",
        hub.cdn.url()
    );
    let resolved = resolve(options(&hub.hub.url(), cache.path()), &url)
        .await
        .expect("split");
    assert_eq!(resolved.facts.source, ModelSource::Url { url: url.clone() });
    let split = local("gguf/qwen2.5-0.5b-instruct-Q8_0-00001-of-00003.gguf");
    assert_eq!(gguf_json(&resolved.facts), gguf_json(&split));

    let url = format!("{}/blob/files/x/single.gguf", hub.cdn.url());
    let resolved = resolve(options(&hub.hub.url(), cache.path()), &url)
        .await
        .expect("single");
    assert_eq!(gguf_json(&resolved.facts), gguf_json(&local(Q4)));
    hub.reset();
    let again = resolve(options(&hub.hub.url(), cache.path()), &url)
        .await
        .unwrap();
    assert_eq!(again.origin, Origin::HeaderCache);
    assert_eq!(hub.requests(), 0);

    let missing = format!("{}/blob/files/x/none.gguf", hub.cdn.url());
    let err = resolve(options(&hub.hub.url(), cache.path()), &missing)
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotFound);
    assert!(err.to_string().starts_with(&missing), "{err}");
}
