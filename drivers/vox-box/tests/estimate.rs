//! Memory estimates per family and size, and the single-GPU / CPU placement rules.

mod support;

use inferkit_core::{
    Backend, Error, EstimateRequest, FigureBasis, FitRequest, Layout, ModelFacts, ModelSource,
    Vendor,
};
use inferkit_vox_box::{Family, Requirement, VoxBox, VoxBoxDetails, recognise, requirement};
use support::*;

const MIB: u64 = 1 << 20;

/// The figures of a model known by its repository id.
fn figures(source: ModelSource) -> Requirement {
    let (facts, _) = remote(source);
    requirement(&recognise(&facts).unwrap()).unwrap()
}

/// faster-whisper's README: large-v2, float16, beam 5 on a V100S: 4,755 MB (read as MiB) of
/// GPU memory; the model.bin of that run is Systran's 3,090 MB.
const LARGE_V2_GPU_FP16: u64 = 4_755 * MIB;
const WHISPER_GPU_OVERHEAD: u64 = LARGE_V2_GPU_FP16 - 3_090_000_000;

#[test]
fn every_supported_model_gets_its_family_figure_scaled_by_size() {
    // faster-whisper on a GPU: model.bin (float16, kept so by CTranslate2) plus the runtime of
    // the large-v2 benchmark, for every size.
    for (id, model_bin) in [
        ("Systran/faster-whisper-large-v3", 3_090_000_000),
        ("Systran/faster-whisper-large-v2", 3_090_000_000),
        ("Systran/faster-whisper-large-v1", 3_090_000_000),
        ("Systran/faster-whisper-medium", 1_520_000_000),
        ("Systran/faster-whisper-medium.en", 1_530_000_000),
        ("Systran/faster-whisper-small", 484_000_000),
        ("Systran/faster-whisper-small.en", 484_000_000),
        ("Systran/faster-whisper-base", 145_000_000),
        ("Systran/faster-whisper-tiny", 75_000_000),
        ("Systran/faster-whisper-tiny.en", 75_000_000),
        ("Systran/faster-distil-whisper-large-v3", 1_510_000_000),
        ("Systran/faster-distil-whisper-large-v2", 1_510_000_000),
        ("Systran/faster-distil-whisper-medium.en", 789_000_000),
    ] {
        let r = figures(huggingface(id));
        assert_eq!(r.gpu.bytes, model_bin + WHISPER_GPU_OVERHEAD, "{id}");
        assert_eq!(r.gpu.compute_type, "float16", "{id}");
        // On a CPU float16 runs as float32: twice the file, plus the CPU runtime.
        assert_eq!(r.cpu.compute_type, "float32", "{id}");
        assert!(r.cpu.weights > model_bin * 19 / 10, "{id}: {:?}", r.cpu);
    }
    // The sizes the benchmark measured carry the catalog band; the others a wider one.
    let large = figures(huggingface("Systran/faster-whisper-large-v3"));
    assert_eq!(large.gpu.band.basis, FigureBasis::CatalogFigure);
    assert_eq!(large.gpu.band.percent, 10);
    let medium = figures(huggingface("Systran/faster-whisper-medium"));
    assert_eq!(medium.gpu.band.basis, FigureBasis::ScaledCatalogFigure);
    let small = figures(huggingface("Systran/faster-whisper-small"));
    assert_eq!(small.cpu.bytes, 1_675 * MIB);
    assert_eq!(small.cpu.band.basis, FigureBasis::CatalogFigure);

    // CosyVoice: nothing published; 300 M or 0.5 B float32 parameters plus a PyTorch runtime.
    let v1 = figures(huggingface("FunAudioLLM/CosyVoice-300M"));
    for id in [
        "FunAudioLLM/CosyVoice-300M-SFT",
        "FunAudioLLM/CosyVoice-300M-Instruct",
    ] {
        assert_eq!(figures(huggingface(id)), v1, "{id}");
    }
    assert_eq!(figures(model_scope("iic/CosyVoice-300M-25Hz")), v1);
    let v2 = figures(huggingface("FunAudioLLM/CosyVoice2-0.5B"));
    assert_eq!(v2.gpu.bytes - v1.gpu.bytes, 200_000_000 * 4);
    assert_eq!(v1.gpu.band.basis, FigureBasis::Derived);
    assert!(v1.gpu.source.starts_with("no published figure"));

    // Dia's README: ~10 GB in float16; Bark's: 8 GB (small) and 12 GB (full) of VRAM.
    let dia = figures(huggingface("nari-labs/Dia-1.6B"));
    assert_eq!(
        (dia.gpu.bytes, dia.gpu.compute_type.as_str()),
        (10 * GIB, "float16")
    );
    assert_eq!(dia.cpu.compute_type, "float32");
    assert_eq!(figures(huggingface("suno/bark-small")).gpu.bytes, 8 * GIB);
    assert_eq!(figures(huggingface("suno/bark")).gpu.bytes, 12 * GIB);
}

/// A fixture whose weight file is replaced by a sparse file of `bytes` (no disk used), in a
/// directory named like the fixture (so that the model is known by name).
fn with_weight_file(fixture: &str, file: &str, bytes: u64) -> (tempfile::TempDir, ModelFacts) {
    copy_with_weight_file(fixture, fixture, file, bytes)
}

/// [`with_weight_file`] in a directory called `dir_name`.
fn copy_with_weight_file(
    fixture: &str,
    dir_name: &str,
    file: &str,
    bytes: u64,
) -> (tempfile::TempDir, ModelFacts) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(dir_name);
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(fixture_dir(fixture)).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    std::fs::File::create(dir.join(file))
        .unwrap()
        .set_len(bytes)
        .unwrap();
    let facts = ModelFacts::read(&ModelSource::LocalPath { path: dir }).unwrap();
    (temp, facts)
}

#[test]
fn a_measured_model_bin_sets_the_precision_and_the_size() {
    // Whisper large is 1,550 M parameters: 1 byte each is an int8 conversion, 2 float16, 4
    // float32. CTranslate2 keeps each on the GPU; on a CPU float16 becomes float32.
    for (bytes, gpu_type, cpu_type) in [
        (1_550_000_000, "int8", "int8"),
        (3_087_284_237, "float16", "float32"),
        (6_200_000_000, "float32", "float32"),
    ] {
        let (_dir, facts) = with_weight_file("faster-whisper-large-v3", "model.bin", bytes);
        let recognition = recognise(&facts).unwrap();
        assert_eq!(recognition.weight_bytes, Some(bytes));
        let r = requirement(&recognition).unwrap();
        assert_eq!(r.gpu.weights, bytes, "{bytes}");
        assert_eq!(r.gpu.compute_type, gpu_type, "{bytes}");
        assert_eq!(r.cpu.compute_type, cpu_type, "{bytes}");
    }
    // Unnamed, the precision is taken to be float16 (Systran's and GPUStack's conversions).
    let (_dir, facts) = copy_with_weight_file(
        "faster-whisper-tiny.en",
        "my-whisper",
        "model.bin",
        1_620_000_000,
    );
    assert_eq!(recognise(&facts).unwrap().model, None);
    let r = requirement(&recognise(&facts).unwrap()).unwrap();
    assert_eq!(r.gpu.bytes, 1_620_000_000 + WHISPER_GPU_OVERHEAD);
    assert_eq!(r.cpu.weights, 2 * 1_620_000_000);
}

#[test]
fn funasr_is_sized_by_its_weights_and_guessed_without_them() {
    // FunASR issue #728: paraformer-large (220 M float32 parameters) used 3,488 MiB.
    let overhead = 3_488 * MIB - 220_000_000 * 4;
    let (_dir, facts) = with_weight_file("SenseVoiceSmall", "model.pt", 936 * MIB);
    let r = requirement(&recognise(&facts).unwrap()).unwrap();
    assert_eq!(r.gpu.bytes, 936 * MIB + overhead);
    assert_eq!(r.gpu.band.basis, FigureBasis::ScaledCatalogFigure);
    // With placeholder weights there is nothing to scale by: a finite guess, said to be one.
    let (facts, spec) = local("SenseVoiceSmall");
    let vox = VoxBox::new();
    let prepared = vox.prepare(&facts, &spec).unwrap();
    let estimator = prepared.estimator();
    let estimate = estimator
        .estimate(&EstimateRequest {
            devices: vec![gpu(0, Vendor::Nvidia, 20 * GIB)],
            host: host(32 * GIB),
            layout: Layout::Single,
        })
        .unwrap();
    let device = &estimate.devices[0];
    assert_eq!(device.components.total(), 3_488 * MIB);
    assert_eq!(device.error_band.unwrap().basis, FigureBasis::Guess);
    assert_eq!(device.claim, 3_488 * MIB * 3 / 2);
    assert!(
        estimate.notes.iter().any(|n| n.contains("a guess")),
        "{:?}",
        estimate.notes
    );
}

#[test]
fn single_gpu_claims_the_figure_plus_its_band() {
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
    let device = &estimate.devices[0];
    assert_eq!(device.name, "cuda:3");
    // Dia's README: ~10 GB in float16 (vox-box's type on a GPU); 15 % band as headroom.
    assert_eq!(device.components.total(), 10 * GIB);
    assert_eq!(device.components.weights, 3_200_000_000);
    assert_eq!(device.claim, 10 * GIB + (10 * GIB * 15).div_ceil(100));
    let band = device.error_band.unwrap();
    assert_eq!((band.percent, band.basis), (15, FigureBasis::CatalogFigure));
    assert_eq!(estimate.details["compute_type"], "float16");
    let details: VoxBoxDetails = estimate.details_as().unwrap();
    assert_eq!((details.family, details.error_band), (Family::Dia, band));
    assert!(estimate.notes.iter().any(|n| n.contains("cuDNN 9")));
    assert!(estimate.notes.iter().any(|n| n.contains("catalog figure")));
    assert!(estimate.host.total() > 6_400_000_000);
}

#[test]
fn cpu_only_claims_the_cpu_figure_plus_its_band() {
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
    // 0.5 B float32 parameters plus FunASR's measured PyTorch runtime, 30 % band (derived).
    let figure = 2_000_000_000 + 3_488 * MIB - 880_000_000;
    assert_eq!(fit.host.total(), figure + (figure * 30).div_ceil(100));
}

/// A GPU slot of `total` bytes with GPUStack's 1 GiB reserve taken off.
fn gpu_of(total: u64) -> inferkit_core::DeviceSlot {
    let mut slot = gpu(0, Vendor::Nvidia, total - GIB);
    slot.total = total;
    slot
}

#[test]
fn large_v3_fits_8_gib_and_refuses_4_gib_with_numbers() {
    let (facts, spec) = remote(huggingface("Systran/faster-whisper-large-v3"));
    let vox = VoxBox::new();
    let prepared = vox.prepare(&facts, &spec).unwrap();
    let estimator = prepared.estimator();
    let on = |total: u64| {
        estimator.fit(&FitRequest {
            devices: vec![gpu_of(total)],
            host: host(32 * GIB),
            allow_cpu_offload: false,
        })
    };
    // 4,755 MiB plus 10 %: 5.11 GiB, inside the 7 GiB an 8 GiB GPU leaves.
    let claim = 4_755 * MIB + (4_755 * MIB).div_ceil(10);
    assert_eq!(on(8 * GIB).unwrap().devices[0].claim, claim);
    match on(4 * GIB) {
        Err(Error::DoesNotFit {
            needed, available, ..
        }) => assert_eq!((needed, available), (claim, 3 * GIB)),
        other => panic!("{other:?}"),
    }
    // On CPU: 1,550 M float32 parameters plus the runtime, 20 % band; 8 GiB of RAM is short.
    let cpu = estimator.fit(&FitRequest {
        devices: vec![],
        host: host(8 * GIB),
        allow_cpu_offload: false,
    });
    assert!(
        matches!(cpu, Err(Error::DoesNotFit { needed, .. }) if needed > 8 * GIB && needed < 10 * GIB),
        "{cpu:?}"
    );
}

#[test]
fn an_int8_conversion_fits_a_gpu_the_float16_one_does_not() {
    let vox = VoxBox::new();
    let six_gib = FitRequest {
        devices: vec![gpu_of(6 * GIB)],
        host: host(32 * GIB),
        allow_cpu_offload: false,
    };
    let (float16, spec) = local("faster-whisper-large-v3");
    let prepared = vox.prepare(&float16, &spec).unwrap();
    let err = prepared.estimator().fit(&six_gib).unwrap_err();
    assert!(matches!(err, Error::DoesNotFit { .. }), "{err}");
    let (_dir, int8) = with_weight_file("faster-whisper-large-v3", "model.bin", 1_550_000_000);
    let prepared = vox.prepare(&int8, &spec).unwrap();
    let fit = prepared.estimator().fit(&six_gib).unwrap();
    assert_eq!(fit.details["compute_type"], "int8");
    assert!(fit.devices[0].claim < 4 * GIB, "{:?}", fit.devices[0]);
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
        Err(Error::Unsupported { .. })
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
