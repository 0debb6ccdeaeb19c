#![cfg(unix)]
//! The download step against the loopback hub: the Hugging Face cache layout, several
//! connections per large file, resuming a partial download, a dropped connection, a wrong
//! SHA-256, progress events.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferkit_sources::download::{DownloadOptions, Progress, download};
use inferkit_sources::{
    HttpOptions, HubEndpoint, ModelRef, RemoteModel, Resolver, SourceErrorKind, SourceOptions,
};
use support::hub::{FakeHub, Repo, read_fixture, sha256_hex};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const SHARD1: &str = "qwen2.5-0.5b-instruct-Q8_0-00001-of-00003.gguf";

fn http() -> HttpOptions {
    HttpOptions {
        backoff: Duration::from_millis(10),
        env_proxy: false,
        ..HttpOptions::default()
    }
}

fn repo() -> Repo {
    let mut repo = Repo::new(COMMIT)
        .file("README.md", b"# Qwen".to_vec())
        .file(
            "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            read_fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"),
        );
    for n in 1..=3 {
        let name = format!("qwen2.5-0.5b-instruct-Q8_0-0000{n}-of-00003.gguf");
        repo = repo.file(&name, read_fixture(&format!("gguf/{name}")));
    }
    repo
}

/// The files of `reference` as the resolver plans them.
async fn remote(hub: &FakeHub, reference: &str) -> RemoteModel {
    let cache = tempfile::tempdir().unwrap();
    let options = SourceOptions {
        offline: false,
        caches: Default::default(),
        header_cache: Some(cache.path().into()),
        ref_max_age: Duration::from_secs(60),
        huggingface: HubEndpoint::new(hub.hub.url()),
        modelscope: HubEndpoint::new(hub.hub.url()),
        ollama: HubEndpoint::new(hub.hub.url()),
        http: http(),
    };
    let resolver = Resolver::new(options).unwrap();
    let resolved = resolver
        .resolve(&ModelRef::parse(reference).unwrap())
        .await
        .unwrap();
    resolved.remote.expect("a hub model")
}

fn options(parallel_from: u64) -> DownloadOptions {
    DownloadOptions {
        connections: 3,
        parallel_from,
        files_at_once: 2,
        http: http(),
    }
}

fn events() -> (
    Arc<Mutex<Vec<Progress>>>,
    inferkit_sources::download::ProgressSink,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (
        seen,
        Arc::new(move |e: &Progress| sink.lock().unwrap().push(e.clone())),
    )
}

#[tokio::test]
async fn files_land_in_the_hugging_face_cache_layout_over_several_connections() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", repo());
    let model = remote(&hub, "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M").await;
    hub.reset();
    let cache = tempfile::tempdir().unwrap();
    let (seen, sink) = events();
    let snapshot = download(
        &model,
        Some("main"),
        cache.path(),
        None,
        &options(1024),
        sink,
    )
    .await
    .expect("downloaded");
    let folder = cache
        .path()
        .join("models--Qwen--Qwen2.5-0.5B-Instruct-GGUF");
    assert_eq!(snapshot, folder.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(folder.join("refs/main")).unwrap(),
        COMMIT
    );
    let expected = read_fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let link = snapshot.join("qwen2.5-0.5b-instruct-q4_k_m.gguf");
    assert_eq!(std::fs::read(&link).unwrap(), expected);
    let target = std::fs::read_link(&link).unwrap();
    assert_eq!(target, Path::new("../../blobs").join(sha256_hex(&expected)));
    // Three ranges fetched the 3.7 MB file.
    let ranges = hub
        .cdn
        .requests_log()
        .iter()
        .filter(|r| r.header("range").is_some())
        .count();
    assert_eq!(ranges, 3);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|e| matches!(e, Progress::Advanced { done, size, .. } if done == size))
    );
    assert!(matches!(seen.last(), Some(Progress::Finished { .. })));

    // Again: nothing fetched.
    hub.reset();
    let (_, sink) = events();
    download(&model, None, cache.path(), None, &options(1024), sink)
        .await
        .unwrap();
    assert_eq!(hub.requests(), 0);
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_range_and_a_dropped_connection_retries() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", repo());
    let model = remote(&hub, "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0").await;
    let cache = tempfile::tempdir().unwrap();
    let bytes = read_fixture(&format!("gguf/{SHARD1}"));
    let blobs = cache
        .path()
        .join("models--Qwen--Qwen2.5-0.5B-Instruct-GGUF/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    // A partial file as an earlier run (or huggingface_hub) left it.
    std::fs::write(
        blobs.join(format!("{}.incomplete", sha256_hex(&bytes))),
        &bytes[..1000],
    )
    .unwrap();
    hub.faults().drop_after.insert(
        "qwen2.5-0.5b-instruct-Q8_0-00002-of-00003.gguf".into(),
        2000,
    );
    hub.reset();
    let (_, sink) = events();
    let snapshot = download(&model, None, cache.path(), None, &options(u64::MAX), sink)
        .await
        .expect("downloaded");
    assert_eq!(std::fs::read(snapshot.join(SHARD1)).unwrap(), bytes);
    let log = hub.cdn.requests_log();
    let first_shard: Vec<_> = log.iter().filter(|r| r.target.ends_with(SHARD1)).collect();
    assert_eq!(first_shard.len(), 1);
    assert_eq!(first_shard[0].header("range"), Some("bytes=1000-6495"));
    let second: Vec<_> = log
        .iter()
        .filter(|r| r.target.contains("00002-of"))
        .collect();
    assert_eq!(second.len(), 2, "retried after the drop");
    for n in 1..=3 {
        let name = format!("qwen2.5-0.5b-instruct-Q8_0-0000{n}-of-00003.gguf");
        assert_eq!(
            std::fs::read(snapshot.join(&name)).unwrap(),
            read_fixture(&format!("gguf/{name}"))
        );
    }
    assert!(std::fs::read_dir(&blobs).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains("incomplete")
    }));
}

#[tokio::test]
async fn a_wrong_sha256_removes_the_download_and_names_the_file() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", repo());
    hub.faults()
        .wrong_sha
        .insert("qwen2.5-0.5b-instruct-q4_k_m.gguf".into());
    let model = remote(&hub, "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M").await;
    let cache = tempfile::tempdir().unwrap();
    let (_, sink) = events();
    let err = download(&model, None, cache.path(), None, &options(u64::MAX), sink)
        .await
        .expect_err("corrupt");
    assert_eq!(err.kind, SourceErrorKind::Integrity);
    assert_eq!(
        err.file.as_deref(),
        Some("qwen2.5-0.5b-instruct-q4_k_m.gguf")
    );
    assert!(err.message.contains("SHA-256"), "{err}");
    let folder = cache
        .path()
        .join("models--Qwen--Qwen2.5-0.5B-Instruct-GGUF");
    let blobs: Vec<_> = std::fs::read_dir(folder.join("blobs")).unwrap().collect();
    assert!(blobs.is_empty(), "nothing half-written stays: {blobs:?}");
    assert!(
        !folder
            .join("snapshots")
            .join(COMMIT)
            .join("qwen2.5-0.5b-instruct-q4_k_m.gguf")
            .exists()
    );
}
