//! A plan from `hf://` equals the plan from the same files on disk, byte for byte, apart from
//! the model source: `vllm serve` gets the repository id where the local plan has the path.

mod support;

use std::path::Path;
use std::time::Duration;

use inferkit::{Cluster, ModelSpec, PlanOptions, default_registry, plan, plan_with_facts};
use inferkit_sources::{ModelRef, Resolver, SourceOptions};
use support::hub::{FakeHub, Repo, fixture, source_options};

fn options(hub: &FakeHub, cache: &Path) -> SourceOptions {
    source_options(&hub.hub.url(), cache)
}

fn h100x8() -> Cluster {
    Cluster::from_json_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clusters/h100x8.json"),
    )
    .unwrap()
}

#[tokio::test]
async fn a_hub_model_plans_exactly_like_its_files_on_disk() {
    let dir = fixture("hf/Llama-3.1-8B-Instruct");
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add(
        "meta-llama/Llama-3.1-8B-Instruct",
        Repo::new("0123456789abcdef0123456789abcdef01234567").folder(&dir, ""),
    );
    let cache = tempfile::tempdir().unwrap();
    let resolver = Resolver::new(options(&hub, cache.path())).unwrap();
    let reference = ModelRef::parse("hf://meta-llama/Llama-3.1-8B-Instruct").unwrap();
    let resolved = resolver.resolve(&reference).await.unwrap();

    let cluster = h100x8();
    let plan_options = PlanOptions::default();
    let registry = default_registry();
    let remote_spec = ModelSpec::from_source(resolved.facts.source.clone());
    let remote = plan_with_facts(
        &registry,
        &resolved.facts,
        &remote_spec,
        &cluster,
        &plan_options,
    )
    .expect("a plan from hf://");
    let mut local_spec = ModelSpec::local(&dir);
    local_spec.name = remote_spec.name.clone();
    let local = plan(&registry, &local_spec, &cluster, &plan_options).expect("a plan from disk");

    let remote_json = serde_json::to_string_pretty(&remote).unwrap();
    let local_json = serde_json::to_string_pretty(&local).unwrap().replace(
        &dir.display().to_string(),
        "meta-llama/Llama-3.1-8B-Instruct",
    );
    assert_eq!(remote_json, local_json);
    assert!(remote_json.contains("\"meta-llama/Llama-3.1-8B-Instruct\""));
}

/// A ModelScope repository served by vLLM: `vllm serve` gets the id and the environment
/// switch that makes vLLM fetch it from ModelScope; nothing else differs from the plan from
/// disk.
#[tokio::test]
async fn a_modelscope_model_is_served_by_vllm_from_modelscope() {
    let dir = fixture("hf/Llama-3.1-8B-Instruct");
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add(
        "LLM-Research/Meta-Llama-3.1-8B-Instruct",
        Repo::new("0123456789abcdef0123456789abcdef01234567").folder(&dir, ""),
    );
    let cache = tempfile::tempdir().unwrap();
    let resolver = Resolver::new(options(&hub, cache.path())).unwrap();
    let reference = ModelRef::parse("ms://LLM-Research/Meta-Llama-3.1-8B-Instruct").unwrap();
    let resolved = resolver.resolve(&reference).await.unwrap();
    let spec = ModelSpec::from_source(resolved.facts.source.clone());
    let cluster = h100x8();
    let registry = default_registry();
    let remote = plan_with_facts(
        &registry,
        &resolved.facts,
        &spec,
        &cluster,
        &PlanOptions::default(),
    )
    .expect("a plan from ms://");
    let mut local_spec = ModelSpec::local(&dir);
    local_spec.name = spec.name.clone();
    let local = plan(&registry, &local_spec, &cluster, &PlanOptions::default()).unwrap();

    let main = remote.processes.last().unwrap();
    assert_eq!(main.program, "vllm");
    assert_eq!(
        main.args[..2],
        ["serve", "LLM-Research/Meta-Llama-3.1-8B-Instruct"]
    );
    assert_eq!(main.env["VLLM_USE_MODELSCOPE"], "True");
    let local_main = local.processes.last().unwrap();
    assert_eq!(main.args[2..], local_main.args[2..]);
    assert!(!local_main.env.contains_key("VLLM_USE_MODELSCOPE"));
}

/// A repository read at a named revision is served at it: vLLM gets `--revision` with the
/// commit the revision resolved to on Hugging Face (a branch may move after planning), the
/// revision as named on ModelScope (which names no commit); nothing else differs from the
/// plan of the default branch.
#[tokio::test]
async fn a_named_revision_is_what_vllm_serves() {
    let dir = fixture("hf/Llama-3.1-8B-Instruct");
    let hub = FakeHub::start(Duration::ZERO).await;
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = Repo::new(commit).folder(&dir, "").revision("refs/pr/1");
    hub.add("meta-llama/Llama-3.1-8B-Instruct", repo.clone());
    hub.add("LLM-Research/Meta-Llama-3.1-8B-Instruct", repo);
    let cache = tempfile::tempdir().unwrap();
    let resolver = Resolver::new(options(&hub, cache.path())).unwrap();
    let main_args = |reference: &'static str| {
        let resolver = resolver.clone();
        async move {
            let reference = ModelRef::parse(reference).unwrap();
            let resolved = resolver.resolve(&reference).await.unwrap();
            let spec = ModelSpec::from_source(resolved.facts.source.clone());
            let plan = plan_with_facts(
                &default_registry(),
                &resolved.facts,
                &spec,
                &h100x8(),
                &PlanOptions::default(),
            )
            .unwrap();
            plan.processes.last().unwrap().args.clone()
        }
    };
    let default = main_args("hf://meta-llama/Llama-3.1-8B-Instruct").await;
    assert!(!default.contains(&"--revision".to_string()), "{default:?}");
    let pinned = main_args("hf://meta-llama/Llama-3.1-8B-Instruct@refs/pr/1").await;
    assert_eq!(
        pinned[..4],
        [
            "serve",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--revision",
            commit
        ]
    );
    assert_eq!(pinned[4..], default[2..]);

    let named = main_args("ms://LLM-Research/Meta-Llama-3.1-8B-Instruct@refs/pr/1").await;
    assert_eq!(
        named[..4],
        [
            "serve",
            "LLM-Research/Meta-Llama-3.1-8B-Instruct",
            "--revision",
            "refs/pr/1"
        ]
    );
}
