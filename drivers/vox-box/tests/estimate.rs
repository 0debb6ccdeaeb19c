//! Memory estimates per family and size, and the single-GPU / CPU placement rules.

mod support;

use inferkit_core::{
    Backend, Error, EstimateRequest, FitRequest, Layout, ModelFacts, ModelSource, Vendor,
};
use inferkit_vox_box::{VoxBox, recognise, requirement};
use support::*;

const MIB: u64 = 1 << 20;

/// (cuda vram, cuda ram, cpu ram) of a model known by its repository id.
fn figures(source: ModelSource) -> (u64, u64, u64) {
    let (facts, _) = remote(source);
    let r = requirement(&recognise(&facts).unwrap()).unwrap();
    (r.cuda_vram, r.cuda_ram, r.cpu_ram)
}

#[test]
fn every_supported_model_has_its_table_figures() {
    let gib = |g: f64| (g * GIB as f64) as u64;
    let table = [
        // model.bin sizes: large 2.88 GiB, medium 1.42 GiB, distil-large 1.41 GiB,
        // distil-medium.en 753 MiB, small 462 MiB, tiny 72 MiB.
        ("Systran/faster-whisper-large-v3", (gib(10.0), 0, gib(15.0))),
        ("Systran/faster-whisper-large-v2", (gib(10.0), 0, gib(15.0))),
        ("Systran/faster-whisper-large-v1", (gib(10.0), 0, gib(15.0))),
        ("Systran/faster-whisper-medium", (gib(5.0), 0, gib(7.5))),
        ("Systran/faster-whisper-medium.en", (gib(5.0), 0, gib(7.5))),
        ("Systran/faster-whisper-small", (gib(2.0), 0, gib(3.0))),
        ("Systran/faster-whisper-small.en", (gib(2.0), 0, gib(3.0))),
        ("Systran/faster-whisper-tiny", (gib(1.0), 0, gib(1.5))),
        ("Systran/faster-whisper-tiny.en", (gib(1.0), 0, gib(1.5))),
        (
            "Systran/faster-distil-whisper-large-v3",
            (gib(5.0), 0, gib(7.5)),
        ),
        (
            "Systran/faster-distil-whisper-large-v2",
            (gib(5.0), 0, gib(7.5)),
        ),
        (
            "Systran/faster-distil-whisper-medium.en",
            (gib(5.0), 0, gib(7.5)),
        ),
        ("FunAudioLLM/CosyVoice-300M", (gib(3.0), gib(7.0), gib(6.0))),
        (
            "FunAudioLLM/CosyVoice-300M-SFT",
            (gib(3.0), gib(7.0), gib(6.0)),
        ),
        (
            "FunAudioLLM/CosyVoice-300M-Instruct",
            (gib(3.0), gib(7.0), gib(6.0)),
        ),
        (
            "FunAudioLLM/CosyVoice2-0.5B",
            (gib(3.0), gib(7.0), gib(6.0)),
        ),
        ("nari-labs/Dia-1.6B", (gib(10.0), gib(1.0), gib(10.0))),
        ("suno/bark-small", (gib(2.0), 0, gib(3.0))),
        ("suno/bark", (gib(12.0), 0, gib(18.0))),
    ];
    for (id, expected) in table {
        assert_eq!(figures(huggingface(id)), expected, "{id}");
    }
    assert_eq!(
        figures(model_scope("iic/CosyVoice-300M-25Hz")),
        (gib(3.0), gib(7.0), gib(6.0))
    );
}

/// A fixture whose weight file is replaced by a sparse file of `bytes` (no disk used).
fn with_weight_file(fixture: &str, file: &str, bytes: u64) -> (tempfile::TempDir, ModelFacts) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir(fixture)).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    std::fs::File::create(dir.path().join(file))
        .unwrap()
        .set_len(bytes)
        .unwrap();
    let facts = ModelFacts::read(&ModelSource::LocalPath {
        path: dir.path().to_path_buf(),
    })
    .unwrap();
    (dir, facts)
}

#[test]
fn measured_model_bin_picks_the_tier() {
    // The turbo tier (1.6 GiB) exists only through file size: large-v3-turbo's 1.62 GB model.bin.
    for (bytes, vram) in [
        (75_538_270, GIB),
        (1_620_000_000, 6 * GIB),
        (3_087_284_237, 10 * GIB),
    ] {
        let (_dir, facts) = with_weight_file("faster-whisper-tiny.en", "model.bin", bytes);
        let r = recognise(&facts).unwrap();
        assert_eq!(r.weight_bytes, Some(bytes));
        assert_eq!(requirement(&r).unwrap().cuda_vram, vram, "{bytes}");
    }
}

#[test]
fn a_model_bin_above_the_last_tier_is_extrapolated() {
    let (_dir, facts) = with_weight_file("faster-whisper-large-v3", "model.bin", 6_200_000_000);
    let r = requirement(&recognise(&facts).unwrap()).unwrap();
    // 6.2 GB over the 3.1 GiB bound (3328599654 bytes) scales 10 GiB and 15 GiB to 2e10 and
    // 3e10 bytes, rounded up.
    assert_eq!(r.cuda_vram, 20_000_000_003);
    assert_eq!(r.cpu_ram, 30_000_000_004);
    assert!(
        r.basis.contains("above GPUStack 0.7.1's last tier"),
        "{}",
        r.basis
    );
}

#[test]
fn funasr_is_sized_by_its_weights() {
    let (_dir, facts) = with_weight_file("SenseVoiceSmall", "model.pt", 936 * MIB);
    let r = requirement(&recognise(&facts).unwrap()).unwrap();
    assert_eq!(r.cuda_vram, 936 * MIB + GIB);
    assert_eq!(r.cpu_ram, (936 * MIB + GIB) * 3 / 2);
    // With placeholder weights there is nothing to size it by.
    let (facts, spec) = local("SenseVoiceSmall");
    let err = VoxBox::new().prepare(&facts, &spec).err().unwrap();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
}

#[test]
fn single_gpu_claims_vram_and_host_ram() {
    let (facts, spec) = local("Dia-1.6B");
    let vox = VoxBox::new();
    let prepared = vox.prepare(&facts, &spec).unwrap();
    let estimator = prepared.estimator();
    let request = EstimateRequest {
        devices: vec![gpu(3, Vendor::Nvidia, 20 * GIB)],
        host: host(32 * GIB),
        layout: Layout::Single,
    };
    let estimate = estimator.estimate(&request).unwrap();
    assert_eq!(estimate.devices.len(), 1);
    assert_eq!(estimate.devices[0].name, "cuda:3");
    assert_eq!(estimate.devices[0].claim, 10 * GIB);
    assert_eq!(estimate.host.total(), GIB);
    assert!(estimate.notes.iter().any(|n| n.contains("cuDNN 9")));
}

#[test]
fn cpu_only_claims_cpu_ram() {
    let (facts, spec) = local("CosyVoice2-0.5B");
    let vox = VoxBox::new();
    let prepared = vox.prepare(&facts, &spec).unwrap();
    let estimator = prepared.estimator();
    let fit = estimator
        .fit(&FitRequest {
            devices: vec![],
            host: host(8 * GIB),
            allow_cpu_offload: false,
        })
        .unwrap();
    assert_eq!(fit.layout, Layout::CpuOnly);
    assert!(fit.devices.is_empty());
    assert_eq!(fit.host.total(), 6 * GIB);
}

#[test]
fn fit_reports_a_gpu_too_small_and_cpu_ram_too_small() {
    let (facts, spec) = remote(huggingface("Systran/faster-whisper-large-v3"));
    let vox = VoxBox::new();
    let prepared = vox.prepare(&facts, &spec).unwrap();
    let estimator = prepared.estimator();
    let small = FitRequest {
        devices: vec![gpu(0, Vendor::Nvidia, 8 * GIB)],
        host: host(32 * GIB),
        allow_cpu_offload: false,
    };
    match estimator.fit(&small) {
        Err(Error::DoesNotFit {
            needed, available, ..
        }) => assert_eq!((needed, available), (10 * GIB, 8 * GIB)),
        other => panic!("{other:?}"),
    }
    let cpu = FitRequest {
        devices: vec![],
        host: host(12 * GIB),
        allow_cpu_offload: false,
    };
    assert!(
        matches!(estimator.fit(&cpu), Err(Error::DoesNotFit { needed, .. }) if needed == 15 * GIB)
    );
}

#[test]
fn split_layouts_and_other_vendors_are_refused_with_a_reason() {
    let (facts, spec) = local("faster-whisper-large-v3");
    let vox = VoxBox::new();
    let prepared = vox.prepare(&facts, &spec).unwrap();
    let estimator = prepared.estimator();
    let two = vec![
        gpu(0, Vendor::Nvidia, 20 * GIB),
        gpu(1, Vendor::Nvidia, 20 * GIB),
    ];
    let err = estimator
        .fit(&FitRequest {
            devices: two.clone(),
            host: host(32 * GIB),
            allow_cpu_offload: false,
        })
        .unwrap_err();
    assert!(err.to_string().contains("single NVIDIA GPU"), "{err}");
    let parallel = EstimateRequest {
        devices: two,
        host: host(32 * GIB),
        layout: Layout::Parallel {
            tensor_parallel: 2,
            pipeline_parallel: 1,
        },
    };
    assert!(matches!(
        estimator.estimate(&parallel),
        Err(Error::Unsupported(_))
    ));
    let amd = FitRequest {
        devices: vec![gpu(0, Vendor::Amd, 20 * GIB)],
        host: host(32 * GIB),
        allow_cpu_offload: false,
    };
    let err = estimator.fit(&amd).unwrap_err();
    assert!(
        err.to_string().contains("only on NVIDIA GPUs and CPUs"),
        "{err}"
    );
}
