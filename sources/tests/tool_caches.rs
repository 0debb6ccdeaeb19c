#![cfg(unix)]
//! Models already downloaded by the usual tools plan with no network: fixture caches in the
//! Hugging Face hub layout (refs, snapshots of links into blobs) and ModelScope's layout.

mod support;

use std::path::Path;
use std::time::Duration;

use inferkit_formats::ModelSource;
use inferkit_sources::local_cache::CacheDirs;
use inferkit_sources::{HubEndpoint, ModelRef, Origin, SourceOptions, resolve_cached};
use support::hub::fixture;

const COMMIT: &str = "a09a35458c702b33eeacc393d103063234e8bc28";

fn offline(caches: CacheDirs) -> SourceOptions {
    SourceOptions {
        offline: true,
        caches,
        header_cache: None,
        ref_max_age: Duration::from_secs(600),
        huggingface: HubEndpoint::new("http://127.0.0.1:9"),
        modelscope: HubEndpoint::new("http://127.0.0.1:9"),
        ollama: HubEndpoint::new("http://127.0.0.1:9"),
        http: Default::default(),
    }
}

/// Lays out `files` as `huggingface-cli download` does: content in `blobs/`, the snapshot made
/// of links to it, `refs/main` naming the commit.
fn hf_cache(root: &Path, repo: &str, files: &[(&str, &Path)]) {
    let folder = root.join(format!("models--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(folder.join("refs")).unwrap();
    std::fs::write(folder.join("refs/main"), COMMIT).unwrap();
    let snapshot = folder.join("snapshots").join(COMMIT);
    for (i, (name, source)) in files.iter().enumerate() {
        let blob = folder.join("blobs").join(format!("blob{i}"));
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::copy(source, &blob).unwrap();
        let link = snapshot.join(name);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&blob, &link).unwrap();
    }
}

#[test]
fn hugging_face_hub_cache_with_a_gguf_quant_and_a_safetensors_model() {
    let root = tempfile::tempdir().unwrap();
    let q4 = fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    hf_cache(
        root.path(),
        "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        &[("qwen2.5-0.5b-instruct-q4_k_m.gguf", &q4)],
    );
    let dir = fixture("hf/Llama-3.1-8B-Instruct");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let files: Vec<(&str, std::path::PathBuf)> =
        names.iter().map(|n| (n.as_str(), dir.join(n))).collect();
    let files: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
    hf_cache(root.path(), "meta-llama/Llama-3.1-8B-Instruct", &files);
    let options = offline(CacheDirs {
        huggingface: Some(root.path().into()),
        ..CacheDirs::default()
    });

    let gguf = resolve_cached(
        &ModelRef::parse("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF").unwrap(),
        &options,
    )
    .unwrap()
    .expect("in the cache");
    let snapshot = root
        .path()
        .join("models--Qwen--Qwen2.5-0.5B-Instruct-GGUF/snapshots")
        .join(COMMIT);
    assert_eq!(
        gguf.origin,
        Origin::ToolCache {
            path: snapshot.join("qwen2.5-0.5b-instruct-q4_k_m.gguf")
        }
    );
    assert_eq!(gguf.facts.gguf.unwrap().parameters(), 494_032_768);
    // A downloaded model has a path a launch can use.
    assert!(gguf.facts.path.is_some());

    let hf = resolve_cached(
        &ModelRef::parse(&format!("hf://meta-llama/Llama-3.1-8B-Instruct@{COMMIT}")).unwrap(),
        &options,
    )
    .unwrap()
    .expect("by commit");
    assert_eq!(
        hf.facts.source,
        ModelSource::Huggingface {
            repo_id: "meta-llama/Llama-3.1-8B-Instruct".into(),
            filename: None,
            revision: Some(COMMIT.into()),
        }
    );
    assert_eq!(hf.facts.hf.unwrap().safetensors().unwrap().files.len(), 4);

    // A quantization that was not downloaded is not in the cache: offline says so.
    let err = resolve_cached(
        &ModelRef::parse("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0").unwrap(),
        &options,
    )
    .unwrap_err();
    assert_eq!(err.kind, inferkit_sources::SourceErrorKind::NotCached);
}

#[test]
fn a_partial_snapshot_is_not_taken_for_the_model() {
    let root = tempfile::tempdir().unwrap();
    let dir = fixture("hf/Llama-3.1-8B-Instruct");
    let config = dir.join("config.json");
    let index = dir.join("model.safetensors.index.json");
    let shard = dir.join("model-00001-of-00004.safetensors");
    hf_cache(
        root.path(),
        "meta-llama/Llama-3.1-8B-Instruct",
        &[
            ("config.json", &config),
            ("model.safetensors.index.json", &index),
            ("model-00001-of-00004.safetensors", &shard),
        ],
    );
    let options = SourceOptions {
        offline: false,
        ..offline(CacheDirs {
            huggingface: Some(root.path().into()),
            ..CacheDirs::default()
        })
    };
    let found = resolve_cached(
        &ModelRef::parse("hf://meta-llama/Llama-3.1-8B-Instruct").unwrap(),
        &options,
    )
    .unwrap();
    assert!(
        found.is_none(),
        "three shards missing: read from the hub instead"
    );
}

#[test]
fn modelscope_cache_with_escaped_names() {
    let root = tempfile::tempdir().unwrap();
    let folder = root
        .path()
        .join("models/qwen/Qwen2___5-0___5B-Instruct-GGUF");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"),
        folder.join("qwen2.5-0.5b-instruct-q4_k_m.gguf"),
    )
    .unwrap();
    std::fs::write(
        folder.join("configuration.json"),
        r#"{"framework":"pytorch"}"#,
    )
    .unwrap();
    let options = offline(CacheDirs {
        modelscope: Some(root.path().into()),
        ..CacheDirs::default()
    });
    let found = resolve_cached(
        &ModelRef::parse("ms://qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M").unwrap(),
        &options,
    )
    .unwrap()
    .expect("in the cache");
    assert!(matches!(found.origin, Origin::ToolCache { .. }));
    assert_eq!(found.facts.gguf.unwrap().block_count().unwrap(), 24);
}
