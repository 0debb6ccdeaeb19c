//! Command lines of `vllm serve` (and Ray) for real models, as insta snapshots.

mod common;

use common::*;
use inferkit_core::{Backend, Error};
use inferkit_vllm::Vllm;

#[test]
fn single_gpu_llama_3_1_8b() {
    let spec = spec("hf", "Llama-3.1-8B-Instruct", &[]);
    let specs = launch(&spec, &[h100("w1", 3)]).unwrap();
    insta::assert_snapshot!(render(&specs));
}

#[test]
fn tensor_parallel_2_4_8() {
    let spec = spec("hf", "Qwen2.5-72B-Instruct", &[]);
    for n in [2u32, 4, 8] {
        let devices: Vec<_> = (0..n).map(|i| h100("w1", i)).collect();
        let specs = launch(&spec, &devices).unwrap();
        insta::assert_snapshot!(format!("tp{n}"), render(&specs));
    }
}

#[test]
fn pipeline_parallel_over_two_workers_with_ray() {
    let spec = spec("hf", "Qwen2.5-72B-Instruct", &[]);
    let devices = [h100("w1", 0), h100("w1", 1), h100("w2", 4), h100("w2", 5)];
    let specs = launch(&spec, &devices).unwrap();
    insta::assert_snapshot!(render(&specs));
}

/// Upstream vLLM builds its own placement group: GPUStack's variable is written only for
/// GPUStack's build, on request.
#[test]
fn gpustack_placement_bundles_only_when_asked_for() {
    let spec = spec("hf", "Qwen2.5-72B-Instruct", &[]);
    let devices = [h100("w1", 0), h100("w1", 1), h100("w2", 4), h100("w2", 5)];
    let assignment = assignment(&spec, &devices).unwrap();
    let facts = facts(&spec);
    let launch_with = |backend: Vllm| backend.prepare(&facts, &spec)?.launch(&assignment);
    let upstream = launch_with(Vllm::new()).unwrap();
    let main = upstream.last().unwrap();
    assert!(
        !main
            .env
            .contains_key("GPUSTACK_RAY_PLACEMENT_GROUP_BUNDLES")
    );
    assert_eq!(main.env["VLLM_HOST_IP"], "10.0.0.1");
    let gpustack = launch_with(Vllm::new().with_gpustack_placement_bundles()).unwrap();
    let main = gpustack.last().unwrap();
    assert_eq!(
        main.env["GPUSTACK_RAY_PLACEMENT_GROUP_BUNDLES"],
        r#"[{"GPU": 1, "node:10.0.0.1": 0.001}, {"GPU": 1, "node:10.0.0.1": 0.001}, {"GPU": 1, "node:10.0.0.2": 0.001}, {"GPU": 1, "node:10.0.0.2": 0.001}]"#
    );
    assert_eq!(main.env["VLLM_RAY_BUNDLE_INDICES"], "0, 1, 2, 3");
}

/// Ray names nodes by IP: a worker whose address fell back to its name is refused, naming
/// the field to fill, instead of starting a Ray node that never joins.
#[test]
fn a_worker_without_an_address_is_refused_across_workers() {
    let spec = spec("hf", "Qwen2.5-72B-Instruct", &[]);
    let devices = [h100("w1", 0), h100("w1", 1), h100("w2", 4), h100("w2", 5)];
    let mut assignment = assignment(&spec, &devices).unwrap();
    assignment.subordinates[0].address = "w2".to_string();
    let err = launch_assignment(&spec, &assignment).unwrap_err();
    let Error::InvalidParameter { name, reason } = err else {
        panic!("expected a parameter error: {err:?}");
    };
    assert_eq!(name, "address");
    assert!(reason.contains("worker w2 has no `address`"), "{reason}");
    assignment.subordinates[0].address = "gpu-host-2.example".to_string();
    let err = launch_assignment(&spec, &assignment).unwrap_err();
    assert!(err.to_string().contains("not an IP address"), "{err}");
}

#[test]
fn user_overrides_come_before_platform_flags() {
    let spec = spec(
        "hf",
        "Llama-3.1-8B-Instruct",
        &[
            " --max_model_len=8192",
            "--enable-prefix",
            "--gpu-memory-utilization 0.8",
            "-tp",
            "2",
        ],
    );
    let specs = launch(&spec, &[rtx4090("w1", 0), rtx4090("w1", 1)]).unwrap();
    insta::assert_snapshot!(render(&specs));
}

#[test]
fn rejected_flag_names_the_nearest_valid_one() {
    let spec = spec(
        "hf",
        "Llama-3.1-8B-Instruct",
        &["--max-model-length", "8192"],
    );
    let err = launch(&spec, &[h100("w1", 0)]).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter { .. }));
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn both_target_versions_for_an_embedding_model() {
    for version in ["0.10.1.1", "0.33.0"] {
        let mut spec = spec(
            "hf",
            "bge-m3",
            &["--task", "embed", "--disable-log-requests"],
        );
        spec.backend_version = Some(version.to_string());
        let specs = launch(&spec, &[rtx4090("w1", 0)]).unwrap();
        insta::assert_snapshot!(format!("bge_m3_{version}"), render(&specs));
    }
}

#[test]
fn ascend_310p_runs_eager_in_float16() {
    let spec = spec("hf", "Qwen2-7B-Instruct", &[]);
    let npu = |index| {
        let mut d = gpu("w1", index, 22_906_503_168, "Ascend310P3");
        d.vendor = inferkit_core::Vendor::Ascend;
        d
    };
    let specs = launch(&spec, &[npu(2), npu(1)]).unwrap();
    insta::assert_snapshot!(render(&specs));
}

/// DESIGN invariant: every flag of a generated command is in the target version's table with
/// a value of the right type (the generated flags re-validate as user parameters), and the
/// platform's flags come last.
#[test]
fn generated_flags_exist_in_the_target_table() {
    let cases: [(&str, &[&str], Option<&str>); 4] = [
        ("Qwen2.5-72B-Instruct", &[], Some("0.10.1.1")),
        ("Qwen2.5-72B-Instruct", &[], None),
        ("Llama-3.1-8B-Instruct", &["--task", "generate"], None),
        ("bge-m3", &["--task", "embed"], Some("0.10.1.1")),
    ];
    for (model, params, version) in cases {
        let mut spec = spec("hf", model, params);
        spec.backend_version = version.map(str::to_string);
        let devices: Vec<_> = match model.contains("72B") {
            true => (0..8)
                .map(|i| h100(if i < 4 { "w1" } else { "w2" }, i % 4))
                .collect(),
            false => vec![rtx4090("w1", 0)],
        };
        let specs = launch(&spec, &devices).unwrap();
        let main = specs.last().unwrap();
        let n = main.args.len();
        assert_eq!(main.args[n - 6..n - 4], ["--host", "0.0.0.0"]);
        let mut check = spec.clone();
        check.backend_parameters = main.args[2..n - 6].to_vec();
        warnings(&check).unwrap_or_else(|e| panic!("{model} {version:?}: {e}"));
    }
}

#[test]
fn rdna3_gpus_get_rocm_visible_devices_and_the_gfx_override() {
    let spec = spec("hf", "Qwen2.5-7B-Instruct-AWQ", &[]);
    let mut gpu = gpu("w1", 1, 17_163_091_968, "AMD Radeon RX 7800 XT");
    gpu.vendor = inferkit_core::Vendor::Amd;
    gpu.compute_capability = Some("gfx1101".into());
    let specs = launch(&spec, &[gpu]).unwrap();
    let env = &specs[0].env;
    assert_eq!(env["ROCR_VISIBLE_DEVICES"], "1");
    assert_eq!(env["HSA_OVERRIDE_GFX_VERSION"], "11.0.0");
}

/// The Ray head listens on the first subordinate's port and each Ray worker's node manager on
/// its own, so two instances whose port blocks differ never share a port on any worker; every
/// Ray node is health-checked by TCP so that the launcher waits for it.
#[test]
fn ray_ports_come_from_the_assignment_and_are_health_checked() {
    use inferkit_core::HealthCheck;
    let spec = spec("hf", "Qwen2.5-72B-Instruct", &[]);
    let devices = [h100("w1", 0), h100("w1", 1), h100("w2", 0), h100("w2", 1)];
    let first = assignment(&spec, &devices).unwrap();
    let mut second = first.clone();
    second.port = first.port + 10;
    for sub in &mut second.subordinates {
        sub.port += 10;
    }
    let mut ports_on_w1 = Vec::new();
    for assignment in [&first, &second] {
        let specs = launch_assignment(&spec, assignment).unwrap();
        let head = specs
            .iter()
            .find(|s| s.role.is_subordinate(inferkit_vllm::RAY_HEAD))
            .unwrap();
        let worker = specs
            .iter()
            .find(|s| s.role.is_subordinate(inferkit_vllm::RAY_WORKER))
            .unwrap();
        let head_port = assignment.subordinates[0].port;
        assert_eq!(flag(&head.args, "--port"), Some(head_port.to_string()));
        assert_eq!(
            head.health,
            Some(HealthCheck {
                port: head_port,
                path: None
            })
        );
        assert_eq!(
            flag(&worker.args, "--address"),
            Some(format!("10.0.0.1:{head_port}"))
        );
        assert_eq!(
            flag(&worker.args, "--node-manager-port"),
            Some(assignment.subordinates[0].port.to_string())
        );
        assert_eq!(worker.health.as_ref().map(|h| h.path.clone()), Some(None));
        ports_on_w1.extend([head_port, assignment.port]);
    }
    let mut unique = ports_on_w1.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ports_on_w1.len(), "{ports_on_w1:?}");
}

#[test]
fn a_ray_head_port_equal_to_the_api_port_is_refused() {
    let spec = spec("hf", "Qwen2.5-72B-Instruct", &[]);
    let devices = [h100("w1", 0), h100("w1", 1), h100("w2", 0), h100("w2", 1)];
    let mut assignment = assignment(&spec, &devices).unwrap();
    assignment.subordinates[0].port = assignment.port;
    let err = launch_assignment(&spec, &assignment).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
}

/// The value following `name` in an argv.
fn flag(args: &[String], name: &str) -> Option<String> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}
