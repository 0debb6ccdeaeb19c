//! The command line as people and scripts use it: help and usage errors, completions, what-if
//! hardware, human sizes, the plan's human output, and what happens when stdout goes away.

use std::process::Stdio;

use serde_json::Value;

mod support;

use support::{QWEN, inferkit, json_of, run, text};

const SUBCOMMANDS: [&str; 6] = [
    "inspect",
    "estimate",
    "plan",
    "probe",
    "serve",
    "completions",
];

#[test]
fn help_goes_to_stdout_with_status_0_everywhere() {
    let top = run(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    for subcommand in SUBCOMMANDS {
        assert!(text(&top.stdout).contains(subcommand), "{subcommand}");
        let help = run(&[subcommand, "--help"]);
        assert_eq!(help.status.code(), Some(0), "{subcommand}");
        assert!(
            text(&help.stdout).contains("Usage: inferkit"),
            "{subcommand}"
        );
        assert!(help.stderr.is_empty(), "{subcommand}");
    }
}

#[test]
fn every_flag_is_documented_in_help() {
    let help = text(&run(&["plan", "--help"]).stdout);
    for flag in [
        "--cluster",
        "--gpu ",
        "--gpus",
        "--workers",
        "--ram",
        "--backend ",
        "--backend-version",
        "--strategy",
        "--distributed",
        "--json",
        "--verbose",
        "BACKEND_PARAMS",
    ] {
        assert!(help.contains(flag), "plan --help lacks {flag}");
    }
}

#[test]
fn usage_errors_exit_with_status_2() {
    for args in [
        &["plan"][..],
        &["plan", QWEN, "--no-such-flag"],
        &["plan", QWEN, "--gpus", "8"],
        &["plan", QWEN, "--strategy", "random"],
        &["plan", QWEN, "--cluster", "a.json", "--gpu", "H100"],
        &["completions", "tcsh"],
        &["frobnicate"],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn version_and_completions() {
    let version = run(&["--version"]);
    assert_eq!(
        text(&version.stdout).trim(),
        format!("inferkit {}", env!("CARGO_PKG_VERSION"))
    );
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        assert!(script.status.success(), "{shell}");
        let script = text(&script.stdout);
        assert!(
            script.contains("inferkit") && script.contains("--cluster"),
            "{shell}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = inferkit()
        .args([
            "plan",
            QWEN,
            "--cluster",
            "examples/clusters/h100x8.json",
            "--json",
        ])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn other_write_errors_are_one_line_and_status_1() {
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = inferkit()
        .args(["inspect", QWEN])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write to stdout"),
        "{stderr}"
    );
}

#[test]
fn what_if_hardware_comes_from_the_catalog() {
    let out = run(&[
        "plan",
        "tests/fixtures/hf/Qwen2.5-72B-Instruct",
        "--gpu",
        "H100 80GB",
        "--gpus",
        "8",
        "--workers",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = json_of(&out);
    assert_eq!(plan["backend"], "vllm");
    let worker = &plan["placement"]["workers"][0];
    assert!(worker["name"].as_str().unwrap().starts_with("node-"));
    assert_eq!(worker["devices"][0]["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(worker["devices"][0]["total"], 85_520_809_984u64);

    let unknown = run(&["plan", QWEN, "--gpu", "H300", "--json"]);
    assert_eq!(unknown.status.code(), Some(1));
    let error = json_of(&unknown);
    assert!(
        error["error"].as_str().unwrap().contains("MI300X"),
        "{error}"
    );
}

#[test]
fn cluster_files_take_human_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.json");
    std::fs::write(
        &file,
        r#"{"workers": [{"name": "w1", "ram": {"total": "64GiB", "used": "8 GB"},
            "devices": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA GeForce RTX 4090",
                         "memory": {"total": "24564MiB", "used": 0}}],
            "allocations": [{"name": "x", "devices": {"0": "2GiB"}, "ram": "1GiB"}]}]}"#,
    )
    .unwrap();
    let out = run(&["plan", QWEN, "--cluster", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let device = &json_of(&out)["placement"]["workers"][0]["devices"][0];
    assert_eq!(device["total"], 24564u64 << 20);
    // total − allocated − the 1 GiB reserve
    assert_eq!(device["allocatable"], (24564u64 << 20) - (3 << 30));

    std::fs::write(&file, r#"{"name": "w1", "ram": {"total": "64 parsecs"}}"#).unwrap();
    let bad = run(&["plan", QWEN, "--cluster", file.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("64 parsecs"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn estimate_says_why_nothing_went_on_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.json");
    std::fs::write(&file, r#"{"name": "cpu-box", "ram": {"total": "32GiB"}}"#).unwrap();
    let out = run(&[
        "estimate",
        "--cluster",
        file.to_str().unwrap(),
        QWEN,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = json_of(&out);
    assert_eq!(report["devices"].as_array().unwrap().len(), 1);
    assert!(
        report["host_only"]
            .as_str()
            .unwrap()
            .contains("lists no GPU")
    );

    let on_gpu = run(&["estimate", "--gpu", "4090", QWEN, "--json"]);
    let report = json_of(&on_gpu);
    assert_eq!(report["devices"][1]["name"], "gpu0");
    assert!(report["devices"][1]["weights"].as_u64().unwrap() > 0);
    assert!(report.get("host_only").is_none());
}

#[test]
fn estimate_names_the_warm_up_input_that_sizes_the_projector() {
    let vlm = "tests/fixtures/gguf/vlm";
    for (dir, text_model, mmproj, says) in [
        (
            "llava-1.5-7b",
            "llama-2-7b-text-stub-F16.header.gguf",
            "mmproj-llava-1.5-7b-f16.gguf",
            "warm-up with a 336x336 image (clip.vision.image_size)",
        ),
        (
            "ultravox-v0.5-llama-3.2-1b",
            "llama-3.2-1b-text-stub-F16.header.gguf",
            "mmproj-ultravox-v0.5-llama-3.2-1b-f16.gguf",
            "warm-up with 3000 mel frames of audio",
        ),
    ] {
        let text_model = format!("{vlm}/{dir}/{text_model}");
        let mmproj = format!("{vlm}/{dir}/{mmproj}");
        let args = [
            "estimate",
            "--gpu",
            "4090",
            &text_model,
            "--mmproj",
            &mmproj,
        ];
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let human = text(&out.stdout);
        assert!(human.contains("projector on gpu0: weights"), "{human}");
        assert!(human.contains(says), "{human}");

        let report = json_of(&run(&[&args[..], &["--json"]].concat()));
        let projector = &report["projector"];
        assert!(projector["compute"].as_u64().unwrap() > 0);
        let warmup = if dir.starts_with("ultravox") {
            &projector["warmup_audio"]["frames"]
        } else {
            &projector["warmup_image"]["side"]
        };
        assert!(warmup.as_u64().unwrap() > 0, "{projector}");
    }
}

#[test]
fn plan_human_output_explains_devices_capacity_and_choices() {
    let out = run(&["plan", QWEN, "--cluster", "examples/clusters/h100x8.json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    for expected in [
        "on llama-box (llm)",
        "context 8192 tokens, 4 parallel slots of 2048 tokens each",
        "weights       KV  compute    other    claim",
        "NVIDIA H100 80GB HBM3",
        "bar: # in use before this plan",
        "score (spread, 0-100, higher wins)",
        "CUDA_VISIBLE_DEVICES=",
        "llama-box --host 0.0.0.0",
        "- not vllm (",
    ] {
        assert!(human.contains(expected), "lacks {expected:?}:\n{human}");
    }

    let vllm = run(&[
        "plan",
        "tests/fixtures/hf/Qwen2.5-72B-Instruct",
        "--cluster",
        "examples/clusters/h100x8.json",
    ]);
    let human = text(&vllm.stdout);
    assert!(human.contains("requests at the full"), "{human}");
    assert!(human.contains("KV cache "), "{human}");
}

#[test]
fn warnings_a_person_needs() {
    // A context beyond the model's 32768-token training context.
    let long = run(&[
        "plan",
        QWEN,
        "--gpu",
        "4090",
        "--",
        "--ctx-size",
        "65536",
        "-np",
        "1",
    ]);
    assert!(long.status.success(), "{}", text(&long.stderr));
    let stderr = text(&long.stderr);
    assert!(
        stderr.contains("beyond the model's training context of 32768 tokens"),
        "{stderr}"
    );
    let usual = run(&["plan", QWEN, "--gpu", "4090"]);
    assert!(
        !text(&usual.stderr).contains("warning"),
        "{}",
        text(&usual.stderr)
    );

    // A tensor split that leaves the second GPU without a layer.
    let split = run(&[
        "estimate", "--gpu", "4090", "--gpus", "2", QWEN, "-ts", "1,0", "--json",
    ]);
    let report = json_of(&split);
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("device gpu1 (node-1:1) receives no layer")),
        "{warnings:?}"
    );

    // A relative path among the backend parameters is made absolute for the run directory.
    let template = run(&[
        "plan",
        QWEN,
        "--gpu",
        "4090",
        "--json",
        "--",
        "--jinja",
        "--chat-template-file",
        "README.md",
    ]);
    assert!(template.status.success(), "{}", text(&template.stderr));
    let plan = json_of(&template);
    let args: Vec<&str> = plan["processes"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--chat-template-file")
        .unwrap();
    assert!(
        std::path::Path::new(args[at + 1]).is_absolute() && args[at + 1].ends_with("/README.md"),
        "{args:?}"
    );
}

#[test]
fn logs_and_spans_follow_verbose_and_rust_log() {
    let args = [
        "plan",
        QWEN,
        "--cluster",
        "examples/clusters/mixed-4090-3090.json",
    ];
    let quiet = run(&args);
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet.stderr));

    let debug = inferkit().arg("-vv").args(args).output().unwrap();
    let stderr = text(&debug.stderr);
    for span in ["select{", "prepare{", "place{", "estimates=", "time.busy="] {
        assert!(stderr.contains(span), "-vv lacks {span}:\n{stderr}");
    }

    let info = inferkit()
        .env("RUST_LOG", "inferkit_core=info")
        .args(args)
        .output()
        .unwrap();
    let stderr = text(&info.stderr);
    assert!(stderr.contains("INFO plan{"), "{stderr}");
    assert!(!stderr.contains("place{"), "{stderr}");
}

/// Issue 17: a flag the target vLLM version dropped is said in the first lines (on stderr,
/// before the plan), not only among the explanation lines at the end.
#[test]
fn dropped_vllm_flags_are_warned_about_first() {
    let out = run(&[
        "plan",
        "tests/fixtures/hf/Llama-3.1-8B-Instruct",
        "--cluster",
        "examples/clusters/h100x8.json",
        "--backend-version",
        "0.33.0",
        "--",
        "--swap-space",
        "4",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("warning: dropped --swap-space")),
        "{stderr}"
    );
}

#[test]
fn plan_writes_kubernetes_manifests_and_says_what_it_dropped() {
    let out = run(&[
        "plan",
        QWEN,
        "--gpu",
        "4090",
        "--format",
        "kubernetes",
        "--image",
        "llama-box=gpustack/llama-box:v0.0.140",
        "--namespace",
        "inference",
        "--toleration",
        "nvidia.com/gpu:NoSchedule",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.starts_with("---\napiVersion: apps/v1\nkind: Deployment\n"),
        "{yaml}"
    );
    assert!(yaml.contains("kind: Service"), "{yaml}");
    assert!(yaml.contains("namespace: inference"), "{yaml}");
    assert!(yaml.contains("nvidia.com/gpu: '1'"), "{yaml}");
    assert!(yaml.contains("operator: Exists"), "{yaml}");
    assert!(text(&out.stderr).contains("note: devices are requested by count"));

    let no_image = run(&["plan", QWEN, "--gpu", "4090", "--format", "kubernetes"]);
    assert_eq!(no_image.status.code(), Some(1));
    assert!(text(&no_image.stderr).contains("--image llama-box=IMAGE"));
}

const QWEN_72B: &str = "tests/fixtures/hf/Qwen2.5-72B-Instruct";
const ASCEND_2X8: &str = "examples/clusters/ascend-910b.json";
const MINDIE_IMAGE: &str = "ascend-mindie=swr.cn-south-1.myhuaweicloud.com/ascendhub/mindie:2.0.RC1-800I-A2-py311-openeuler24.03-lts";

/// A JSON schema file of the kube crate's fixtures (`kube/tests/fixtures/schemas`), compiled;
/// `$ref`s into Kubernetes' definitions resolve.
fn schema(file: &str) -> (boon::Schemas, boon::SchemaIndex) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kube/tests/fixtures/schemas");
    let read = |path: std::path::PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource(
            "https://kubernetes.io/api/_definitions.json",
            read(dir.join("k8s-v1.37/_definitions.json")),
        )
        .unwrap();
    let url = format!("https://inferkit.invalid/{file}");
    compiler.add_resource(&url, read(dir.join(file))).unwrap();
    let index = compiler.compile(&url, &mut schemas).unwrap();
    (schemas, index)
}

/// MindIE across two nodes from the command line: with `--format kubernetes` Ascend Operator
/// writes the rank table, so the plan needs no NPU addresses and comes out as an AscendJob of
/// a Master and a Worker; without it the refusal says how to get that plan. Qwen2.5-72B
/// (135 GiB of weights) with `--npu-memory-fraction 0.25` does not fit one node's 8 x 16 GiB.
#[test]
fn mindie_across_two_nodes_is_an_ascend_job_only_for_kubernetes() {
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", QWEN_72B, "--cluster", ASCEND_2X8, "--backend"];
        args.extend(["ascend-mindie", "--image", MINDIE_IMAGE]);
        args.extend(extra);
        args.extend(["--", "--npu-memory-fraction", "0.25"]);
        run(&args)
    };
    let out = plan(&["--distributed", "--format", "kubernetes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "AscendJob",
            "Service"
        ]
    );
    let job = &objects[3];
    let (schemas, index) = schema("ascendjob-v1.json");
    if let Err(error) = schemas.validate(job, index) {
        panic!("the AscendJob does not match its CRD: {error:#}");
    }
    let (schemas, index) = schema("k8s-v1.37/podtemplatespec-v1.json");
    for (replica, count) in [("Master", 1), ("Worker", 1)] {
        let spec = &job["spec"]["replicaSpecs"][replica];
        assert_eq!(spec["replicas"], count, "{replica}");
        if let Err(error) = schemas.validate(&spec["template"], index) {
            panic!("the {replica} template is no PodTemplateSpec: {error:#}");
        }
        let container = &spec["template"]["spec"]["containers"][0];
        assert_eq!(
            container["resources"]["requests"]["huawei.com/Ascend910"],
            "8"
        );
        let env = container["env"].as_array().unwrap();
        let value = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| &e["value"]);
        let operators = "/user/serverid/devindex/config/hccl.json";
        assert_eq!(value("RANK_TABLE_FILE").unwrap(), operators, "{replica}");
        assert_eq!(value("WORLD_SIZE").unwrap(), "16", "{replica}");
    }
    assert_eq!(
        objects[2]["metadata"]["name"],
        "rings-config-qwen2-5-72b-instruct"
    );
    // The plan carries no rank table of its own: nothing names one, nor an NPU's address.
    assert!(
        !yaml.contains("ranktable.json") && !yaml.contains("device_ip"),
        "{yaml}"
    );
    let notes = text(&out.stderr);
    assert!(
        notes.contains("note: an AscendJob of 1 Master and 1 Worker pod(s)"),
        "{notes}"
    );

    // Without --format kubernetes MindIE stays on one node, and says how to span two.
    let hint = "ascend-mindie runs this across 2 workers with --distributed --format kubernetes";
    for extra in [&["--distributed"][..], &[], &["--format", "json"]] {
        let refused = plan(extra);
        assert_eq!(refused.status.code(), Some(1), "{extra:?}");
        let stderr = text(&refused.stderr);
        assert!(stderr.contains(hint), "{extra:?}: {stderr}");
        assert!(stderr.contains("`inferkit serve` runs ascend-mindie on one node only"));
    }
    // Where one node holds it, --distributed is refused with the way to one node.
    let refused = run(&[
        "plan",
        QWEN_72B,
        "--cluster",
        ASCEND_2X8,
        "--backend",
        "ascend-mindie",
        "--distributed",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains(
            "ascend-mindie runs this on one node: leave out --distributed (ascend-mindie spans \
             workers only with --format kubernetes"
        ),
        "{}",
        text(&refused.stderr)
    );
}

/// Names from a cluster file reach the terminal escaped: a worker or device named with escape
/// sequences (retitle the window, clear the screen, colour) prints `\x1b`, not ESC. The JSON
/// output keeps the names as they are (JSON escapes control characters itself).
#[test]
fn terminal_escapes_in_names_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster.json");
    let device = serde_json::json!({"index": 0, "vendor": "nvidia",
        "name": "H100\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m", "memory": {"total": 80u64 << 30}});
    let cluster_json = serde_json::json!({"workers": [{"name": "w\u{1b}[31mred",
        "ram": {"total": 512u64 << 30}, "devices": [device]}]});
    std::fs::write(&cluster, cluster_json.to_string()).unwrap();
    let cluster = cluster.to_str().unwrap();
    let human = run(&["plan", QWEN, "--cluster", cluster]);
    assert!(human.status.success(), "{}", text(&human.stderr));
    let printed = text(&human.stdout);
    assert!(
        !printed.contains(['\u{1b}', '\u{7}', '\u{9b}']),
        "{printed:?}"
    );
    assert!(printed.contains(r"worker w\x1b[31mred"), "{printed}");
    assert!(
        printed.contains(r"H100\x1b]0;pwned\x07\x1b[2J\u{9b}31m"),
        "{printed}"
    );
    // A refusal on stderr names the worker too.
    let refused = run(&["plan", QWEN, "--cluster", cluster, "--", "-c", "2000000000"]);
    let reasons = text(&refused.stderr);
    assert!(
        !reasons.contains('\u{1b}') && reasons.contains(r"w\x1b[31mred"),
        "{reasons}"
    );
    let json = json_of(&run(&["plan", QWEN, "--cluster", cluster, "--json"]));
    assert_eq!(json["placement"]["workers"][0]["name"], "w\u{1b}[31mred");
}

/// The README's path: `kubectl get nodes -o json` → `probe --kubernetes` → `plan --cluster ...
/// --format kubernetes`, on a real capture (probe/tests/fixtures/kubernetes).
#[test]
fn kubectl_nodes_to_manifests() {
    let nodes = "probe/tests/fixtures/kubernetes/nodes-rke2-nvidia-a16.json";
    let probed = run(&["probe", "--kubernetes", nodes]);
    assert_eq!(probed.status.code(), Some(0), "{}", text(&probed.stderr));
    let cluster = json_of(&probed);
    assert_eq!(cluster["workers"][0]["name"], "nori");
    assert!(text(&probed.stderr).contains("interchangeable"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.json");
    std::fs::write(&file, &probed.stdout).unwrap();
    let out = run(&[
        "plan",
        QWEN,
        "--cluster",
        file.to_str().unwrap(),
        "--format",
        "kubernetes",
        "--image",
        "llama-box=gpustack/llama-box:v0.0.140",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("kubernetes.io/hostname: nori"), "{yaml}");
    assert!(yaml.contains("nvidia.com/gpu: '1'"), "{yaml}");

    let cordoned = run(&[
        "probe",
        "--kubernetes",
        "probe/tests/fixtures/kubernetes/nodes-aks-cpu-one-cordoned.json",
    ]);
    assert_eq!(cordoned.status.code(), Some(0));
    assert_eq!(json_of(&cordoned)["workers"].as_array().unwrap().len(), 2);
    assert!(
        text(&cordoned.stderr)
            .contains("node aks-agentpool-30520393-vmss000002 left out: cordoned")
    );
}

/// GPUStack's placement-group variables only with `--gpustack-ray-bundles`: upstream vLLM
/// does not read them.
#[test]
fn gpustack_ray_bundles_are_opt_in() {
    let node = |name: &str, address: &str| {
        let devices: Vec<Value> = (0..8)
            .map(|i| {
                serde_json::json!({"index": i, "vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3",
                    "memory": {"total": 85_899_345_920u64, "used": 0}, "compute_capability": "9.0"})
            })
            .collect();
        serde_json::json!({"name": name, "address": address, "os": "linux", "arch": "amd64",
            "cpu_cores": 64, "ram": {"total": 1_099_511_627_776u64, "used": 0},
            "devices": devices})
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("two-nodes.json");
    let workers =
        serde_json::json!({"workers": [node("gpu-a", "10.0.0.1"), node("gpu-b", "10.0.0.2")]});
    std::fs::write(&cluster, workers.to_string()).unwrap();
    let cluster = cluster.display().to_string();
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "tests/fixtures/hf/DeepSeek-V3",
            "--cluster",
            &cluster,
            "--json",
        ];
        args.extend(extra);
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        json_of(&out)
    };
    let bundles = |plan: &Value| {
        plan["processes"].as_array().unwrap().iter().any(|p| {
            p["env"]
                .get("GPUSTACK_RAY_PLACEMENT_GROUP_BUNDLES")
                .is_some()
        })
    };
    let upstream = plan(&[]);
    assert_eq!(upstream["backend"], "vllm");
    assert!(!bundles(&upstream), "{upstream:#}");
    assert!(bundles(&plan(&["--gpustack-ray-bundles"])));
    assert!(text(&run(&["plan", "--help"]).stdout).contains("--gpustack-ray-bundles"));
}
