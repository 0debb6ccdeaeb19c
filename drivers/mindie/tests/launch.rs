//! Snapshots of the generated MindIE service config, overlay, rank table and environment.

mod common;

use common::{a2, assign, facts, npu, render, spec, warnings};
use inferkit_core::{Backend, DeviceId, Error, ProcessRole};
use inferkit_mindie::{MindIe, RANK_TABLE_FILE};

fn launch_text(
    backend: &MindIe,
    model: &str,
    params: &[&str],
    devices: &[inferkit_core::DeviceSlot],
) -> String {
    let spec = spec(model, params);
    let facts = facts(&spec);
    let assignment = assign(backend, &spec, &facts, devices);
    render(
        &backend
            .prepare(&facts, &spec)
            .and_then(|p| p.launch(&assignment))
            .unwrap(),
    )
}

#[test]
fn single_npu_defaults() {
    let text = launch_text(
        &MindIe::new(),
        "Llama-3.1-8B-Instruct",
        &[],
        &a2("a2-1", [0]),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn single_npu_every_parameter() {
    let params = [
        "--trust-remote-code",
        "--npu-memory-fraction=0.8",
        "--max-link-num",
        "300",
        "--token-timeout",
        "120",
        "--e2e-timeout=900",
        "--max-seq-len",
        "16384",
        "--max-input-token-len",
        "12288",
        "--truncation",
        "--cpu-mem-size",
        "16",
        "--cache-block-size",
        "64",
        "--max-batch-size",
        "48",
        "--max-prefill-batch-size",
        "16",
        "--max-preempt-count",
        "8",
        "--max-queue-delay-microseconds",
        "2000",
        "--prefill-time-ms-per-req",
        "200",
        "--prefill-policy-type",
        "2",
        "--decode-time-ms-per-req",
        "40",
        "--decode-policy-type",
        "1",
        "--support-select-batch",
        "--enable-prefix-caching",
        "--enforce-eager",
        "--dtype",
        "half",
        "--rope-theta",
        "1000000",
        "--override-generation-config",
        r#"{"temperature": 0.2, "top_k": 20}"#,
        "--metrics",
        "--log-level",
        "Warning",
    ];
    let text = launch_text(
        &MindIe::new(),
        "Llama-3.1-8B-Instruct",
        &params,
        &a2("a2-1", [3]),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn eight_npus() {
    let text = launch_text(
        &MindIe::new(),
        "Qwen2.5-72B-Instruct",
        &[],
        &a2("a2-1", 0..8),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn two_nodes() {
    let devices: Vec<_> = a2("a2-1", 0..4)
        .into_iter()
        .chain(a2("a2-2", 4..8))
        .collect();
    let backend = devices.iter().fold(MindIe::new(), |b, d| {
        let ip = format!(
            "192.168.{}.{}",
            d.id.worker.trim_start_matches("a2-"),
            d.id.index
        );
        b.with_device_ip(d.id.clone(), ip)
    });
    let text = launch_text(
        &backend,
        "Qwen2.5-72B-Instruct",
        &["--max-seq-len", "4096"],
        &devices,
    );
    insta::assert_snapshot!(text);
}

#[test]
fn ascend_310p_runs_float16_through_an_overlay() {
    let devices = vec![
        npu("duo-1", 0, "Ascend310P3", 24),
        npu("duo-1", 1, "Ascend310P3", 24),
    ];
    let text = launch_text(&MindIe::new(), "Qwen2-7B-Instruct", &[], &devices);
    insta::assert_snapshot!(text);
}

/// Hard case 20: with ASCEND_RT_VISIBLE_DEVICES=6,7 the process sees devices 0 and 1, so
/// `npuDeviceIds` must be `[[0, 1]]` (GPUStack wrote the physical ids: `invalid device=6`).
#[test]
fn visible_devices_are_physical_and_config_ids_logical() {
    let spec = spec("Llama-3.1-8B-Instruct", &[]);
    let facts = facts(&spec);
    let backend = MindIe::new();
    let assignment = assign(&backend, &spec, &facts, &a2("a2-1", [7, 6]));
    let main = backend
        .prepare(&facts, &spec)
        .and_then(|p| p.launch(&assignment))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(main.env["ASCEND_RT_VISIBLE_DEVICES"], "6,7");
    let config: serde_json::Value = serde_json::from_str(&main.files[0].content).unwrap();
    assert_eq!(
        config["BackendConfig"]["npuDeviceIds"],
        serde_json::json!([[0, 1]])
    );
    assert_eq!(
        config["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"],
        2
    );
}

#[test]
fn the_timeouts_gpustack_dropped_are_written() {
    let spec = spec(
        "Llama-3.1-8B-Instruct",
        &["--token-timeout", "30", "--e2e-timeout", "3600"],
    );
    let facts = facts(&spec);
    let backend = MindIe::new();
    let assignment = assign(&backend, &spec, &facts, &a2("a2-1", [0]));
    let main = backend
        .prepare(&facts, &spec)
        .and_then(|p| p.launch(&assignment))
        .unwrap()
        .pop()
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(&main.files[0].content).unwrap();
    assert_eq!(config["ServerConfig"]["tokenTimeout"], 30);
    assert_eq!(config["ServerConfig"]["e2eTimeout"], 3600);
}

#[test]
fn overrides_never_point_at_the_users_files() {
    let spec = spec("Llama-3.1-8B-Instruct", &["--rope-theta", "500000"]);
    let facts = facts(&spec);
    let backend = MindIe::new();
    let assignment = assign(&backend, &spec, &facts, &a2("a2-1", [0]));
    let main = backend
        .prepare(&facts, &spec)
        .and_then(|p| p.launch(&assignment))
        .unwrap()
        .pop()
        .unwrap();
    let config = main
        .files
        .iter()
        .find(|f| f.path.ends_with("model/config.json"))
        .unwrap();
    assert!(config.link_to.is_none());
    let rewritten: serde_json::Value = serde_json::from_str(&config.content).unwrap();
    assert_eq!(rewritten["rope_theta"], 500000.0);
    assert_eq!(
        rewritten["rope_scaling"]["rope_type"], "llama3",
        "the rest is kept"
    );
    // generation_config.json is not overridden, so it is linked like the weights.
    let generation = main
        .files
        .iter()
        .find(|f| f.path.ends_with("model/generation_config.json"))
        .unwrap();
    assert!(
        generation
            .link_to
            .as_ref()
            .unwrap()
            .ends_with("Llama-3.1-8B-Instruct/generation_config.json")
    );
    let service: serde_json::Value = serde_json::from_str(&main.files[0].content).unwrap();
    assert_eq!(
        service["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["modelWeightPath"],
        "model"
    );
}

#[test]
fn platform_owned_env_is_refused() {
    let backend = MindIe::new();
    for (name, value) in [
        ("ASCEND_RT_VISIBLE_DEVICES", "6"),
        ("NPU_MEMORY_FRACTION", "0.5"),
        ("MINDIE_LOG_TO_FILE", "1"),
    ] {
        let mut spec = spec("Llama-3.1-8B-Instruct", &[]);
        spec.env.insert(name.into(), value.into());
        let err = warnings(&backend, &spec).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParameter { name: ref n, .. } if *n == format!("env {name}")),
            "{err}"
        );
        let facts = facts(&spec);
        let mut clean = spec.clone();
        clean.env.clear();
        let assignment = assign(&backend, &clean, &facts, &a2("a2-1", [0]));
        assert!(
            backend
                .prepare(&facts, &spec)
                .and_then(|p| p.launch(&assignment))
                .is_err()
        );
    }
    let mut eager = spec("Llama-3.1-8B-Instruct", &["--enforce-eager"]);
    eager.env.insert("TASK_QUEUE_ENABLE".into(), "2".into());
    assert!(warnings(&backend, &eager).is_err());
    let mut spec = spec("Llama-3.1-8B-Instruct", &[]);
    spec.env.insert("OMP_NUM_THREADS".into(), "4".into());
    let facts = facts(&spec);
    let assignment = assign(&backend, &spec, &facts, &a2("a2-1", [0]));
    let main = backend
        .prepare(&facts, &spec)
        .and_then(|p| p.launch(&assignment))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        main.env["OMP_NUM_THREADS"], "4",
        "defaults yield to the user"
    );
}

#[test]
fn multi_node_needs_every_npu_address() {
    let devices: Vec<_> = a2("a2-1", 0..4)
        .into_iter()
        .chain(a2("a2-2", 0..4))
        .collect();
    let backend = MindIe::new().with_device_ip(
        DeviceId {
            worker: "a2-1".into(),
            index: 0,
        },
        "192.168.1.0",
    );
    let spec = spec("Qwen2.5-72B-Instruct", &[]);
    let facts = facts(&spec);
    let assignment = assign(&backend, &spec, &facts, &devices);
    let err = backend
        .prepare(&facts, &spec)
        .and_then(|p| p.launch(&assignment))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported: MindIE across workers needs the RoCE address of NPU a2-1:1 for its rank table; configure it with MindIe::with_device_ip, or plan for Kubernetes (`inferkit plan --format kubernetes`), where Ascend Operator writes the rank table"
    );
    assert!(!MindIe::new().capabilities().multi_worker);
    assert!(backend.capabilities().multi_worker);
}

/// With the rank table left to run time the two nodes get the same processes as with every
/// NPU's address, less the rank table itself: each still names it in its environment, and
/// lists it as a file something else writes (Ascend Operator).
#[test]
fn a_rank_table_left_to_run_time_is_named_but_not_written() {
    let devices: Vec<_> = a2("a2-1", 0..4)
        .into_iter()
        .chain(a2("a2-2", 0..4))
        .collect();
    let at_run_time = MindIe::new().with_rank_table_at_run_time();
    assert!(at_run_time.capabilities().multi_worker);
    let with_ips = devices.iter().fold(MindIe::new(), |b, d| {
        b.with_device_ip(d.id.clone(), format!("192.168.1.{}", d.id.index))
    });
    let spec = spec("Qwen2.5-72B-Instruct", &[]);
    let facts = facts(&spec);
    let launch = |backend: &MindIe| {
        let assignment = assign(backend, &spec, &facts, &devices);
        backend
            .prepare(&facts, &spec)
            .and_then(|p| p.launch(&assignment))
            .unwrap()
    };
    let (left, planned) = (launch(&at_run_time), launch(&with_ips));
    assert_eq!(left.len(), 2);
    for (left, planned) in left.iter().zip(&planned) {
        assert_eq!(left.env, planned.env, "{}", left.worker);
        assert_eq!(left.env["RANK_TABLE_FILE"], RANK_TABLE_FILE);
        assert_eq!(left.env["RANKTABLEFILE"], RANK_TABLE_FILE);
        let paths: Vec<_> = planned.files.iter().map(|f| f.path.clone()).collect();
        assert!(paths.contains(&RANK_TABLE_FILE.into()), "{paths:?}");
        let kept: Vec<_> = planned
            .files
            .iter()
            .filter(|f| f.path.as_os_str() != RANK_TABLE_FILE)
            .cloned()
            .collect();
        assert_eq!(left.files, kept, "{}", left.worker);
        assert!(planned.run_time_files.is_empty());
        let [table] = left.run_time_files.as_slice() else {
            panic!("{:?}", left.run_time_files);
        };
        assert_eq!(table.path.as_os_str(), RANK_TABLE_FILE);
        assert!(table.written_by.starts_with("Ascend Operator"), "{table:?}");
    }
    // One node needs no rank table, so none is named.
    let one = a2("a2-1", 0..8);
    let assignment = assign(&at_run_time, &spec, &facts, &one);
    let single = at_run_time
        .prepare(&facts, &spec)
        .and_then(|p| p.launch(&assignment))
        .unwrap();
    assert!(single[0].run_time_files.is_empty());
    assert!(!single[0].env.contains_key("RANK_TABLE_FILE"));
}

#[test]
fn subordinates_start_first_without_health_checks() {
    let devices: Vec<_> = a2("a2-1", 0..2)
        .into_iter()
        .chain(a2("a2-2", 0..2))
        .collect();
    let backend = devices.iter().fold(MindIe::new(), |b, d| {
        b.with_device_ip(d.id.clone(), "192.168.0.1")
    });
    let spec = spec("Llama-3.1-8B-Instruct", &[]);
    let facts = facts(&spec);
    let assignment = assign(&backend, &spec, &facts, &devices);
    let specs = backend
        .prepare(&facts, &spec)
        .and_then(|p| p.launch(&assignment))
        .unwrap();
    let roles: Vec<_> = specs
        .iter()
        .map(|s| (s.worker.as_str(), s.role.clone(), s.health.is_some()))
        .collect();
    assert_eq!(
        roles,
        [
            ("a2-2", ProcessRole::subordinate("subordinate"), false),
            ("a2-1", ProcessRole::Main, true)
        ]
    );
    assert_eq!(specs[0].env["WORLD_SIZE"], "4");
    assert_eq!(specs[0].env["MIES_CONTAINER_IP"], "10.0.0.2");
}
