//! Models read from a (fake, loopback) Hugging Face hub and ModelScope: the facts equal those of
//! the same files on disk; listings paginate; LFS redirects drop the token; gated repositories,
//! throttling, dropped connections, unknown tags and revisions; the header cache and offline
//! mode.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use inferkit_formats::{DirectoryFacts, ModelFacts, ModelSource};
use inferkit_sources::{ModelRef, Origin, Resolver, Secret, SourceErrorKind, SourceOptions};
use support::hub::{FakeHub, Repo, TOKEN, fixture, read_fixture, source_options};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn options(hub: &FakeHub, cache: &Path) -> SourceOptions {
    source_options(&hub.hub.url(), cache)
}

fn with_token(mut options: SourceOptions) -> SourceOptions {
    options.huggingface.token = Some(Secret(TOKEN.into()));
    options.huggingface.token_var = Some("HF_TOKEN".into());
    options
}

async fn resolve(
    options: SourceOptions,
    reference: &str,
) -> Result<inferkit_sources::Resolved, inferkit_sources::SourceError> {
    let resolver = Resolver::new(options).expect("client");
    resolver
        .resolve(&ModelRef::parse(reference).expect("reference"))
        .await
}

/// JSON of `value` without the keys naming local paths (`path`, `dir`, `file` of metadata),
/// which differ between a local read and a read through the cache.
fn without_paths<T: serde::Serialize>(value: &T) -> serde_json::Value {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|k, _| !matches!(k.as_str(), "path" | "dir" | "file"));
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(value).expect("json");
    strip(&mut value);
    value
}

fn local_facts(path: &Path) -> ModelFacts {
    ModelFacts::read(&ModelSource::LocalPath { path: path.into() }).expect("local facts")
}

fn qwen_gguf_repo() -> Repo {
    let mut repo = Repo::new(COMMIT)
        .file("README.md", b"# Qwen GGUF".to_vec())
        .file(
            "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            read_fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"),
        )
        .file(
            "qwen2.5-0.5b-instruct-f16.gguf",
            read_fixture("gguf/qwen2.5-0.5b-instruct-F16.header.gguf"),
        );
    for n in 1..=3 {
        let name = format!("qwen2.5-0.5b-instruct-Q8_0-0000{n}-of-00003.gguf");
        repo = repo.file(&name, read_fixture(&format!("gguf/{name}")));
    }
    repo
}

#[tokio::test]
async fn gguf_by_quant_tag_reads_the_same_header_as_the_local_file() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", qwen_gguf_repo());
    let cache = tempfile::tempdir().unwrap();
    let resolved = resolve(
        options(&hub, cache.path()),
        "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF",
    )
    .await
    .expect("resolved");
    assert_eq!(resolved.origin, Origin::Network);
    assert_eq!(
        resolved.facts.source,
        ModelSource::Huggingface {
            repo_id: "Qwen/Qwen2.5-0.5B-Instruct-GGUF".into(),
            filename: Some("qwen2.5-0.5b-instruct-q4_k_m.gguf".into()),
            revision: None,
        }
    );
    assert_eq!(resolved.facts.path, None);
    let local = local_facts(&fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"));
    let (remote, local) = (resolved.facts.gguf.unwrap(), local.gguf.unwrap());
    assert_eq!(remote.parameters(), 494_032_768);
    assert_eq!(without_paths(&remote), without_paths(&local));
    // Only the header travelled: the fixture is the header, so at most the file itself.
    let remote_dir = resolved.facts.directory.unwrap();
    assert_eq!(
        remote_dir.sizes["qwen2.5-0.5b-instruct-f16.gguf"],
        3_704_736
    );
    assert!(remote_dir.has_file("README.md"));

    // A split model by tag: every shard, in order.
    let resolved = resolve(
        options(&hub, cache.path()),
        "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:q8_0",
    )
    .await
    .expect("split");
    let remote = resolved.facts.gguf.unwrap();
    let local = local_facts(&fixture(
        "gguf/qwen2.5-0.5b-instruct-Q8_0-00001-of-00003.gguf",
    ));
    assert_eq!(remote.shards().len(), 3);
    assert_eq!(without_paths(&remote), without_paths(&local.gguf.unwrap()));
    let remote_files = resolved.remote.unwrap().files;
    assert_eq!(remote_files.len(), 3);
    assert!(
        remote_files
            .iter()
            .all(|f| f.sha256.as_deref().is_some_and(|s| s.len() == 64))
    );
}

#[tokio::test]
async fn safetensors_repository_reads_config_index_and_every_header() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let dir = fixture("hf/Llama-3.1-8B-Instruct");
    hub.add(
        "meta-llama/Llama-3.1-8B-Instruct",
        Repo::new(COMMIT)
            .folder(&dir, "")
            .file("original/consolidated.00.pth", vec![0; 100])
            .file("LICENSE", b"license".to_vec()),
    );
    hub.set_page_size(2); // five pages of listing
    let cache = tempfile::tempdir().unwrap();
    let resolved = resolve(
        options(&hub, cache.path()),
        "hf://meta-llama/Llama-3.1-8B-Instruct",
    )
    .await
    .expect("resolved");
    let tree_pages = hub
        .hub
        .requests_log()
        .iter()
        .filter(|r| r.target.contains("/tree/"))
        .count();
    assert_eq!(tree_pages, 5);
    let local = local_facts(&dir);
    assert_eq!(resolved.facts.format, local.format);
    assert_eq!(without_paths(&resolved.facts.hf), without_paths(&local.hf));
    let weights = resolved.facts.hf.as_ref().unwrap().safetensors().unwrap();
    assert_eq!(weights.files.len(), 4);
    // The listing is the repository's, as a download would leave it.
    let directory = resolved.facts.directory.unwrap();
    assert!(directory.has_file("original/consolidated.00.pth"));
    let mut expected = DirectoryFacts::read(&dir).unwrap();
    expected
        .files
        .extend(["LICENSE".into(), "original/consolidated.00.pth".into()]);
    expected.files.sort();
    expected.sizes.insert("LICENSE".into(), 7);
    assert_eq!(directory, expected);
}

#[tokio::test]
async fn lfs_redirects_to_another_host_never_carry_the_token() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let mut repo = qwen_gguf_repo();
    repo.gated = true;
    hub.add("Qwen/Gated-GGUF", repo);
    let cache = tempfile::tempdir().unwrap();
    let resolved = resolve(
        with_token(options(&hub, cache.path())),
        "hf://Qwen/Gated-GGUF:Q4_K_M",
    )
    .await
    .expect("resolved with the token");
    assert!(resolved.facts.gguf.is_some());
    let hub_log = hub.hub.requests_log();
    let resolves: Vec<_> = hub_log
        .iter()
        .filter(|r| r.target.contains("/resolve/"))
        .collect();
    assert!(!resolves.is_empty());
    assert!(resolves.iter().all(|r| r.header("authorization").is_some()));
    let cdn_log = hub.cdn.requests_log();
    assert!(!cdn_log.is_empty(), "LFS files come from the CDN host");
    assert!(
        cdn_log.iter().all(|r| r.header("authorization").is_none()),
        "{cdn_log:?}"
    );
}

#[tokio::test]
async fn gated_repository_without_a_token_is_a_one_line_error_naming_repo_and_file() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let mut repo = qwen_gguf_repo();
    repo.gated = true;
    hub.add("Qwen/Gated-GGUF", repo);
    let cache = tempfile::tempdir().unwrap();
    let err = resolve(options(&hub, cache.path()), "hf://Qwen/Gated-GGUF:Q4_K_M")
        .await
        .expect_err("gated");
    assert_eq!(err.kind, SourceErrorKind::Unauthorized);
    let text = err.to_string();
    assert!(text.starts_with("hf://Qwen/Gated-GGUF:Q4_K_M: "), "{text}");
    assert!(text.contains("qwen2.5-0.5b-instruct-q4_k_m.gguf"), "{text}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn throttling_is_retried_after_the_servers_delay_and_5xx_after_a_back_off() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add(
        "meta-llama/Llama-3.1-8B-Instruct",
        Repo::new(COMMIT).folder(&fixture("hf/Llama-3.1-8B-Instruct"), ""),
    );
    hub.faults().throttle.insert("config.json".into(), (1, 1));
    hub.faults()
        .unavailable
        .insert("generation_config.json".into());
    let cache = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let resolved = resolve(
        options(&hub, cache.path()),
        "hf://meta-llama/Llama-3.1-8B-Instruct",
    )
    .await
    .expect("resolved after retries");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    assert!(resolved.facts.hf.unwrap().generation.is_some());

    // Throttled beyond the retries: a network error saying so.
    hub.faults()
        .throttle
        .insert("generation_config.json".into(), (10, 0));
    let cache = tempfile::tempdir().unwrap();
    let err = resolve(
        options(&hub, cache.path()),
        "hf://meta-llama/Llama-3.1-8B-Instruct",
    )
    .await
    .expect_err("throttled");
    assert_eq!(err.kind, SourceErrorKind::Network);
    assert_eq!(err.file.as_deref(), Some("generation_config.json"));
    assert!(err.message.contains("HTTP 429 after 5 attempts"), "{err}");
}

#[tokio::test]
async fn a_connection_dropped_mid_header_resumes_where_it_stopped() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", qwen_gguf_repo());
    let file = "qwen2.5-0.5b-instruct-q4_k_m.gguf";
    hub.faults().drop_after.insert(file.into(), 30_000);
    let cache = tempfile::tempdir().unwrap();
    let resolved = resolve(
        options(&hub, cache.path()),
        "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
    )
    .await
    .expect("resumed");
    let local = local_facts(&fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"));
    assert_eq!(
        without_paths(&resolved.facts.gguf),
        without_paths(&local.gguf)
    );
    let ranges: Vec<String> = hub
        .cdn
        .requests_log()
        .iter()
        .filter_map(|r| r.header("range").map(String::from))
        .collect();
    // The first 64 KiB, cut after 30 000 bytes and continued from the first byte missing,
    // then the estimated rest of the header.
    assert_eq!(ranges[0], "bytes=0-65535");
    assert_eq!(ranges[1], "bytes=30000-65535");
    assert!(ranges[2].starts_with("bytes=65536-"), "{ranges:?}");
}

#[tokio::test]
async fn a_pull_request_revision_goes_to_the_hub_url_encoded() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add(
        "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        qwen_gguf_repo().revision("refs/pr/7"),
    );
    let cache = tempfile::tempdir().unwrap();
    let reference = "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF@refs/pr/7:Q4_K_M";
    let resolved = resolve(options(&hub, cache.path()), reference)
        .await
        .expect("resolved");
    assert_eq!(resolved.remote.expect("remote").commit, COMMIT);
    let targets: Vec<String> = hub
        .hub
        .requests_log()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert!(
        targets
            .iter()
            .any(|t| t.ends_with("/revision/refs%2Fpr%2F7")),
        "{targets:?}"
    );
    // The second time, from the header cache under the same revision.
    let again = resolve(options(&hub, cache.path()), reference)
        .await
        .expect("cached");
    assert_eq!(again.origin, Origin::HeaderCache);
}

#[tokio::test]
async fn unknown_tags_revisions_and_repositories_say_what_exists() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", qwen_gguf_repo());
    hub.add(
        "someone/notes",
        Repo::new(COMMIT).file("README.md", b"hi".to_vec()),
    );
    hub.add(
        "someone/broken",
        Repo::new(COMMIT).file("model-Q4_K_M.gguf", b"not a gguf file at all".to_vec()),
    );
    let cache = tempfile::tempdir().unwrap();
    let opts = || options(&hub, cache.path());

    let err = resolve(opts(), "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q5_K_M")
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NoMatchingFile);
    assert!(err.message.contains("available: qwen2.5-0.5b-instruct-Q8_0-00001-of-00003.gguf, qwen2.5-0.5b-instruct-f16.gguf, qwen2.5-0.5b-instruct-q4_k_m.gguf"), "{err}");

    let err = resolve(opts(), "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF@v9")
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotFound);
    assert!(err.to_string().contains("revision `v9` not found"), "{err}");

    let err = resolve(opts(), "hf://nobody/nothing").await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Unauthorized);

    let err = resolve(opts(), "hf://someone/broken").await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotAModel);
    assert_eq!(err.file.as_deref(), Some("model-Q4_K_M.gguf"));

    let resolved = resolve(opts(), "hf://someone/notes")
        .await
        .expect("a folder");
    assert_eq!(
        resolved.facts.format,
        inferkit_formats::ModelFormat::Directory
    );
}

#[tokio::test]
async fn the_second_plan_reads_the_header_cache_and_offline_names_what_is_missing() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", qwen_gguf_repo());
    let cache = tempfile::tempdir().unwrap();
    let reference = "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M";
    let first = resolve(options(&hub, cache.path()), reference)
        .await
        .unwrap();
    hub.reset();
    let second = resolve(options(&hub, cache.path()), reference)
        .await
        .unwrap();
    assert_eq!(second.origin, Origin::HeaderCache);
    assert_eq!(hub.requests(), 0);
    assert_eq!(without_paths(&first.facts), without_paths(&second.facts));

    // Offline: the cached model plans, and another tag names the file it lacks.
    let offline = SourceOptions {
        offline: true,
        ..options(&hub, cache.path())
    };
    let cached = resolve(offline.clone(), reference).await.unwrap();
    assert_eq!(cached.origin, Origin::HeaderCache);
    let err = resolve(offline.clone(), "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:F16")
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotCached);
    assert_eq!(err.file.as_deref(), Some("qwen2.5-0.5b-instruct-f16.gguf"));
    let err = resolve(offline, "hf://Qwen/Other").await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::NotCached);
    assert!(err.message.contains("listing"), "{err}");
    assert_eq!(hub.requests(), 0);

    // A stale ref asks the hub again (one listing), but the files stay cached.
    let stale = SourceOptions {
        ref_max_age: Duration::ZERO,
        ..options(&hub, cache.path())
    };
    let again = resolve(stale, reference).await.unwrap();
    assert_eq!(again.origin, Origin::Network);
    assert!(
        hub.hub
            .requests_log()
            .iter()
            .all(|r| r.target.starts_with("/api/"))
    );
}

#[tokio::test]
async fn modelscope_lists_and_reads_files_through_its_endpoints() {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add("qwen/Qwen2.5-0.5B-Instruct-GGUF", qwen_gguf_repo());
    let cache = tempfile::tempdir().unwrap();
    let resolved = resolve(
        options(&hub, cache.path()),
        "ms://qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
    )
    .await
    .expect("resolved");
    assert_eq!(
        resolved.facts.source,
        ModelSource::ModelScope {
            model_id: "qwen/Qwen2.5-0.5B-Instruct-GGUF".into(),
            file_path: Some("qwen2.5-0.5b-instruct-q4_k_m.gguf".into()),
            revision: None,
        }
    );
    let local = local_facts(&fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"));
    assert_eq!(
        without_paths(&resolved.facts.gguf),
        without_paths(&local.gguf)
    );
    assert!(
        hub.hub
            .requests_log()
            .iter()
            .any(|r| r.target.contains("/repo/files?Revision=master"))
    );
}

/// The round trips a cold read waits for, one after another, as the servers see them (a
/// figure the machine's load does not change): the listing, the hub's redirect to its CDN,
/// the first 64 KiB, and for a header longer than that one range to its estimated end; every
/// file of the model at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_cold_read_waits_for_at_most_four_round_trips() {
    let hub = FakeHub::start(Duration::from_millis(200)).await;
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", qwen_gguf_repo());
    hub.add(
        "meta-llama/Llama-3.1-8B-Instruct",
        Repo::new(COMMIT).folder(&fixture("hf/Llama-3.1-8B-Instruct"), ""),
    );
    for (reference, round_trips) in [
        // A 3.7 MB header (a 152k-token vocabulary).
        ("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M", 4),
        // Three shards, each header within the first 64 KiB.
        ("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0", 3),
        // config.json and the index straight from the hub, four safetensors headers.
        ("hf://meta-llama/Llama-3.1-8B-Instruct", 3),
    ] {
        let cache = tempfile::tempdir().unwrap();
        hub.reset();
        resolve(options(&hub, cache.path()), reference)
            .await
            .expect("resolved");
        assert_eq!(hub.round_trips(), round_trips, "{reference}");
    }
}
