//! `npu-smi` and `rocm-smi` probes end to end: fake tools (shell scripts printing captures)
//! stand in for the vendor tools, so the process runner, the absent-tool and failure paths and
//! the parsers are exercised together.
#![cfg(all(feature = "cli-probes", unix))]

use std::path::{Path, PathBuf};
use std::time::Duration;

use inferkit_core::Error;
use inferkit_probe::DeviceProbe;
use inferkit_probe::ascend::AscendProbe;
use inferkit_probe::rocm::RocmProbe;

#[cfg(target_os = "linux")]
use inferkit_core::testkit::process_is_dead;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/probe/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Writes an executable shell script `name` into `dir`.
///
/// The executable is written by `install`, not by this process: tests run on several threads,
/// and a child forked by one of them between this process opening a file for writing and
/// closing it holds that descriptor until it execs, so running the file at that moment fails
/// with "Text file busy". Only the draft, which is never run, is written here.
fn fake_tool(dir: &Path, name: &str, script: &str) -> PathBuf {
    let draft = dir.join(format!("{name}.draft"));
    std::fs::write(&draft, format!("#!/bin/sh\n{script}\n")).unwrap();
    let path = dir.join(name);
    let status = std::process::Command::new("install")
        .args(["-m", "755"])
        .arg(&draft)
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "install {}", path.display());
    path
}

fn probe_error(error: Error) -> (String, String) {
    match error {
        Error::Probe { probe, reason } => (probe, reason),
        other => panic!("expected a probe error, got {other:?}"),
    }
}

#[tokio::test]
async fn npu_smi_on_an_atlas_800t_a2() {
    if std::env::var_os("ASCEND_RT_VISIBLE_DEVICES").is_some() {
        eprintln!("skipped: ASCEND_RT_VISIBLE_DEVICES is set in this environment");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"if [ "$2" = "-m" ]; then cat "{}"; else cat "{}"; fi"#,
        fixture("npu-smi-info-m-910b-8npu.txt"),
        fixture("npu-smi-info-910b-8npu.txt")
    );
    let tool = fake_tool(dir.path(), "npu-smi", &script);
    let worker = AscendProbe::new()
        .with_program(tool.to_str().unwrap())
        .probe()
        .await
        .unwrap();
    assert_eq!(worker.devices.len(), 8);
    assert_eq!(worker.devices[3].memory.used, 61833 << 20);
}

#[tokio::test]
async fn a_missing_tool_means_no_devices() {
    let missing = "/nonexistent/inferkit-test/npu-smi";
    let worker = AscendProbe::new()
        .with_program(missing)
        .probe()
        .await
        .unwrap();
    assert!(worker.devices.is_empty());
    let worker = RocmProbe::new()
        .with_program("/nonexistent/rocm-smi")
        .probe()
        .await
        .unwrap();
    assert!(worker.devices.is_empty());
}

#[tokio::test]
async fn a_failing_tool_is_an_error_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let tool = fake_tool(
        dir.path(),
        "npu-smi",
        &format!(
            r#"cat "{}" >&2; exit 255"#,
            fixture("npu-smi-info-error.txt")
        ),
    );
    let err = AscendProbe::new()
        .with_program(tool.to_str().unwrap())
        .probe()
        .await
        .unwrap_err();
    let (probe, reason) = probe_error(err);
    assert_eq!(probe, "npu-smi");
    assert!(reason.contains("exited with exit status: 255"), "{reason}");
    assert!(reason.contains("dcmi model initialized failed"), "{reason}");
}

#[tokio::test]
async fn rocm_smi_without_the_amdgpu_driver_means_no_devices() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(r#"cat "{}"; exit 1"#, fixture("rocm-smi-no-driver.txt"));
    let tool = fake_tool(dir.path(), "rocm-smi", &script);
    let worker = RocmProbe::new()
        .with_program(tool.to_str().unwrap())
        .probe()
        .await
        .unwrap();
    assert!(worker.devices.is_empty());
}

#[tokio::test]
async fn rocm_smi_is_called_with_the_documented_arguments() {
    let dir = tempfile::tempdir().unwrap();
    // Prints the capture only when called exactly as documented.
    let script = format!(
        r#"[ "$*" = "{}" ] || {{ echo "unexpected arguments: $*" >&2; exit 2; }}; cat "{}""#,
        inferkit_probe::rocm::ARGS.join(" "),
        fixture("rocm-smi-mi300x-8gpu.json")
    );
    let tool = fake_tool(dir.path(), "rocm-smi", &script);
    let worker = RocmProbe::new()
        .with_program(tool.to_str().unwrap())
        .probe()
        .await
        .unwrap();
    assert_eq!(worker.devices.len(), 8);
}

#[tokio::test]
async fn garbled_output_names_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(r#"cat "{}""#, fixture("rocm-smi-garbled.json"));
    let tool = fake_tool(dir.path(), "rocm-smi", &script);
    let err = RocmProbe::new()
        .with_program(tool.to_str().unwrap())
        .probe()
        .await
        .unwrap_err();
    assert_eq!(probe_error(err).0, "rocm-smi");
}

#[tokio::test]
async fn a_hanging_tool_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let tool = fake_tool(dir.path(), "npu-smi", "exec sleep 30");
    let probe = AscendProbe::new()
        .with_program(tool.to_str().unwrap())
        .with_timeout(Duration::from_millis(200));
    let (probe, reason) = probe_error(probe.probe().await.unwrap_err());
    assert_eq!(probe, "npu-smi");
    assert!(reason.contains("did not finish within 200ms"), "{reason}");
}

#[tokio::test]
async fn a_flooding_tool_is_stopped_at_the_output_cap() {
    let dir = tempfile::tempdir().unwrap();
    // Endless output, as a wedged tool in a loop would print.
    let tool = fake_tool(dir.path(), "rocm-smi", "exec yes 'card0 flood'");
    let probe = RocmProbe::new()
        .with_program(tool.to_str().unwrap())
        .with_timeout(Duration::from_secs(20));
    let (probe, reason) = probe_error(probe.probe().await.unwrap_err());
    assert_eq!(probe, "rocm-smi");
    assert!(
        reason.contains("printed more than 4 MiB on stdout"),
        "{reason}"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_timed_out_tool_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("helper.pid");
    // The tool starts a helper and waits for it, as a tool blocked on its driver daemon would.
    let script = format!("sleep 300 & echo $! > '{}'; wait", pidfile.display());
    let tool = fake_tool(dir.path(), "npu-smi", &script);
    let probe = AscendProbe::new()
        .with_program(tool.to_str().unwrap())
        .with_timeout(Duration::from_millis(500));
    let (_, reason) = probe_error(probe.probe().await.unwrap_err());
    assert!(reason.contains("did not finish within 500ms"), "{reason}");
    let helper: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !process_is_dead(helper) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        process_is_dead(helper),
        "the tool's helper {helper} outlived the timeout"
    );
}
