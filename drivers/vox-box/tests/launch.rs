//! Command lines of `vox-box start` (insta snapshots) and the checks before a launch.

mod support;

use inferkit_core::{
    Assignment, Backend, DeviceSlot, Error, FitRequest, LaunchSpec, ModelFacts, ModelSpec,
    PlacementMode, Subordinate, Vendor,
};
use inferkit_vox_box::VoxBox;
use support::*;

/// The assignment placement would produce for `devices` (one GPU, or none for CPU).
fn assign(
    vox: &VoxBox,
    facts: &ModelFacts,
    spec: &ModelSpec,
    devices: Vec<DeviceSlot>,
) -> Assignment {
    let estimate = vox
        .prepare(facts, spec)
        .unwrap()
        .estimator()
        .fit(&FitRequest {
            devices: devices.clone(),
            host: host(32 * GIB),
            allow_cpu_offload: false,
        })
        .unwrap();
    Assignment {
        mode: if devices.is_empty() {
            PlacementMode::CpuOnly
        } else {
            PlacementMode::SingleDevice
        },
        worker: "gpu-worker".into(),
        address: "10.0.0.5".into(),
        devices,
        host: host(32 * GIB),
        estimate,
        port: 40123,
        subordinates: Vec::new(),
    }
}

/// The command line, environment and health check of the only process.
fn render(specs: &[LaunchSpec]) -> String {
    assert_eq!(specs.len(), 1, "vox-box runs one process");
    let spec = &specs[0];
    let mut text = spec.command_line();
    for (key, value) in &spec.env {
        text.push_str(&format!("\nenv {key}={value}"));
    }
    let health = spec.health.as_ref().unwrap();
    text.push_str(&format!(
        "\nhealth :{}{}",
        health.port,
        health.path.as_deref().unwrap_or("")
    ));
    text
}

fn launch(vox: &VoxBox, facts: &ModelFacts, spec: &ModelSpec, devices: Vec<DeviceSlot>) -> String {
    let assignment = assign(vox, facts, spec, devices);
    render(
        &vox.prepare(facts, spec)
            .and_then(|p| p.launch(&assignment))
            .unwrap(),
    )
}

#[test]
fn faster_whisper_on_gpu_2() {
    let vox = VoxBox::new();
    let (facts, spec) = local("faster-whisper-large-v3");
    insta::assert_snapshot!(launch(
        &vox,
        &facts,
        &spec,
        vec![gpu(2, Vendor::Nvidia, 20 * GIB)]
    ));
}

#[test]
fn dia_on_gpu_1_ignores_a_user_cuda_visible_devices() {
    let vox = VoxBox::new();
    let (facts, mut spec) = local("Dia-1.6B");
    spec.env.insert("CUDA_VISIBLE_DEVICES".into(), "3".into());
    spec.env.insert("HF_HUB_OFFLINE".into(), "1".into());
    let warnings = vox.prepare(&facts, &spec).unwrap().warnings().to_vec();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    insta::assert_snapshot!(launch(
        &vox,
        &facts,
        &spec,
        vec![gpu(1, Vendor::Nvidia, 20 * GIB)]
    ));
}

#[test]
fn cosyvoice2_on_cpu_with_debug_and_own_data_dir() {
    let vox = VoxBox::new()
        .with_data_dir("/var/lib/gpustack")
        .with_program("/opt/gpustack/bin/vox-box_v0.0.21");
    let (facts, mut spec) = local("CosyVoice2-0.5B");
    spec.backend_parameters = vec!["--debug".into()];
    insta::assert_snapshot!(launch(&vox, &facts, &spec, vec![]));
}

/// A parameter list is read as every driver reads one: what argparse gets is the entries
/// trimmed, without the blank ones.
#[test]
fn padded_and_blank_entries_launch_as_the_flag_alone() {
    let vox = VoxBox::new();
    let (facts, mut spec) = local("CosyVoice2-0.5B");
    spec.backend_parameters = vec!["--debug".into()];
    let plain = launch(&vox, &facts, &spec, vec![]);
    spec.backend_parameters = vec![" --debug\t".into(), String::new(), "  ".into()];
    assert_eq!(launch(&vox, &facts, &spec, vec![]), plain);
}

#[test]
fn remote_repositories_are_downloaded_by_vox_box() {
    let vox = VoxBox::new();
    let (facts, spec) = remote(huggingface("Systran/faster-whisper-small"));
    insta::assert_snapshot!(
        "huggingface_on_gpu_0",
        launch(&vox, &facts, &spec, vec![gpu(0, Vendor::Nvidia, 20 * GIB)])
    );
    let (facts, spec) = remote(model_scope("iic/CosyVoice-300M-SFT"));
    insta::assert_snapshot!("model_scope_on_cpu", launch(&vox, &facts, &spec, vec![]));
}

#[test]
fn unknown_and_platform_owned_flags_are_refused() {
    let vox = VoxBox::new();
    let (facts, mut spec) = local("bark-small");
    for (params, name, reason) in [
        (vec!["--debgu"], "--debgu", "did you mean --debug"),
        (
            vec!["--port", "9000"],
            "--port",
            "--port is set by the platform",
        ),
        (
            vec!["--device=cuda:1"],
            "--device",
            "--device is set by the platform",
        ),
        (
            vec!["--model-dir", "/x"],
            "--model-dir",
            "did you mean --model",
        ),
        (
            vec!["--data-dir /x"],
            "--data-dir",
            "--data-dir is set by the platform",
        ),
    ] {
        spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
        match vox.prepare(&facts, &spec).map(|_| ()) {
            Err(Error::InvalidParameter { name: n, reason: r }) => {
                assert_eq!(n, name);
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("{params:?}: {other:?}"),
        }
    }
}

#[test]
fn distributed_and_multi_gpu_requests_are_refused() {
    let vox = VoxBox::new();
    let (facts, mut spec) = local("faster-whisper-tiny.en");
    spec.distributed_inference_across_workers = Some(true);
    assert!(matches!(
        vox.capabilities().check_spec(vox.id(), &spec),
        Err(Error::InvalidParameter { .. })
    ));
    spec.distributed_inference_across_workers = None;
    spec.device_selector = vec!["w:cuda:0".parse().unwrap(), "w:cuda:1".parse().unwrap()];
    let err = vox.prepare(&facts, &spec).err().unwrap();
    assert!(err.to_string().contains("single NVIDIA GPU"), "{err}");

    spec.device_selector.clear();
    let mut assignment = assign(&vox, &facts, &spec, vec![gpu(0, Vendor::Nvidia, 20 * GIB)]);
    assignment.subordinates.push(Subordinate {
        worker: "w2".into(),
        address: "10.0.0.6".into(),
        devices: vec![0],
        port: 40124,
    });
    assert!(matches!(
        vox.prepare(&facts, &spec)
            .and_then(|p| p.launch(&assignment)),
        Err(Error::Unsupported { .. })
    ));
    assignment.subordinates.clear();
    assignment.mode = PlacementMode::MultiDevice;
    assignment.devices.push(gpu(1, Vendor::Nvidia, 20 * GIB));
    assert!(matches!(
        vox.prepare(&facts, &spec)
            .and_then(|p| p.launch(&assignment)),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn an_unrecognised_model_cannot_be_launched() {
    let vox = VoxBox::new();
    let (facts, spec) = local("Qwen2.5-0.5B-Instruct");
    let err = vox.prepare(&facts, &spec).err().unwrap();
    assert!(
        err.to_string()
            .starts_with("unsupported: not a vox-box speech model"),
        "{err}"
    );
}
