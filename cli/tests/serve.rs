//! `plan` and `serve` on a shared host: secrets never printed, `serve --dry-run` refusing what
//! the real run refuses, and stdout write errors in every subcommand.

use std::path::Path;
use std::process::Stdio;

mod support;

use support::{QWEN, inferkit, run, text};

const QWEN_72B: &str = "tests/fixtures/hf/Qwen2.5-72B-Instruct";
const H100X8: &str = "examples/clusters/h100x8.json";

/// `plan --json` of Qwen2.5-0.5B (llama-box) on one H100, written to `dir/plan.json`.
fn write_plan(dir: &Path) -> std::path::PathBuf {
    let out = run(&["plan", QWEN, "--cluster", H100X8, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = dir.join("plan.json");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn a_secret_parameter_is_a_placeholder_in_every_plan_output() {
    for json in [true, false] {
        let mut args = vec!["plan", QWEN_72B, "--cluster", H100X8];
        if json {
            args.push("--json");
        }
        args.extend(["--", "--api-key", "sk-X"]);
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let printed = text(&out.stdout) + &text(&out.stderr);
        assert!(!printed.contains("sk-X"), "the key is printed: {printed}");
        // vLLM reads its key from VLLM_API_KEY: it travels there, off the command line.
        assert!(printed.contains("${VLLM_API_KEY}"), "{printed}");
        assert!(!printed.contains("--api-key"), "{printed}");
        assert!(!printed.contains("/proc/PID/cmdline"), "{printed}");
    }
}

#[test]
fn the_dry_run_refuses_what_the_real_run_refuses_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_plan(dir.path());
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let main = &mut plan["processes"][0];
    main["env"]["HF_TOKEN"] = "hf_literal".into();
    std::fs::write(&path, plan.to_string()).unwrap();
    let run_dir = dir.path().join("run");
    let run_dir = run_dir.to_str().unwrap();
    let plan_path = path.to_str().unwrap();

    let shown = run(&["serve", plan_path, "--run-dir", run_dir, "--dry-run"]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let printed = text(&shown.stdout);
    assert!(printed.contains("env HF_TOKEN='${HF_TOKEN}'"), "{printed}");
    assert!(!printed.contains("hf_literal"), "{printed}");

    plan["processes"][0]["files"] =
        serde_json::json!([{"path": "../escape.json", "content": "{}"}]);
    std::fs::write(&path, plan.to_string()).unwrap();
    let refused = run(&["serve", plan_path, "--run-dir", run_dir, "--dry-run"]);
    assert_eq!(refused.status.code(), Some(1));
    let error = text(&refused.stderr);
    assert!(error.contains("escape.json"), "{error}");
    assert!(!dir.path().join("escape.json").exists());

    let linked = dir.path().join("linked");
    std::os::unix::fs::symlink(dir.path(), &linked).unwrap();
    let refused = run(&[
        "serve",
        plan_path,
        "--run-dir",
        linked.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("symbolic link"),
        "{}",
        text(&refused.stderr)
    );
}

/// A process reading a file written at run time (MindIE's rank table on Kubernetes) is not
/// started, nor shown as startable, while the file is missing from the run directory.
#[test]
fn serve_refuses_a_plan_whose_run_time_file_is_missing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = write_plan(dir.path());
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    plan["processes"][0]["run_time_files"] =
        serde_json::json!([{"path": "ranktable.json", "written_by": "Ascend Operator"}]);
    std::fs::write(&path, plan.to_string()).unwrap();
    let run_dir = dir.path().join("run");
    let args = [
        "serve",
        path.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
    ];
    for dry_run in [true, false] {
        let mut args = args.to_vec();
        if dry_run {
            args.push("--dry-run");
        }
        let refused = run(&args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        let error = text(&refused.stderr);
        assert!(
            error.contains("ranktable.json is written at run time by Ascend Operator"),
            "{error}"
        );
        assert!(!run_dir.exists(), "{args:?}");
    }
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(run_dir.join("ranktable.json"), "{}").unwrap();
    let mut dry_run = args.to_vec();
    dry_run.push("--dry-run");
    let shown = run(&dry_run);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
}

#[test]
fn stdout_write_errors_in_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path());
    let plan = plan.to_str().unwrap();
    let commands: [&[&str]; 6] = [
        &["inspect", QWEN],
        &["estimate", QWEN, "--cluster", H100X8],
        &["plan", QWEN, "--cluster", H100X8, "--json"],
        &["probe", "--json"],
        &[
            "serve",
            plan,
            "--run-dir",
            "/nonexistent/inferkit-run",
            "--dry-run",
        ],
        &["completions", "bash"],
    ];
    for args in commands {
        let full = std::fs::File::create("/dev/full").unwrap();
        let out = inferkit().args(args).stdout(full).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: cannot write to stdout"),
            "{args:?}: {stderr}"
        );

        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = inferkit()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}
