//! Memory of a vox-box model: per-family figures from published measurements, scaled by
//! parameter count (or weight-file size) within a family, derived from parameter count ×
//! bytes per parameter where nothing is published, each with its error band; and the
//! estimator placement calls. The claim holds the band as headroom above the figure.
//!
//! vox-box chooses the precision itself and has no parameter to change it (`vox-box start`
//! takes `--model`, `--device`, `--data-dir`, the hub ids, `--host`, `--port`, `--debug`;
//! gpustack/vox-box `vox_box/cmd/start.py`). Per backend (`vox_box/backends/*`):
//! * faster-whisper: `compute_type="default"` (`"int8"` on macOS), which CTranslate2 resolves
//!   to the precision `model.bin` was converted to (float16 for every Systran conversion),
//!   except that float16 runs as float32 on a CPU (CTranslate2 `src/dispatch.h`: "FP16 … is
//!   only supported on GPU");
//! * Dia: `compute_dtype="float16"` on a GPU, `"float32"` on CPU;
//! * Bark (`BarkModel.from_pretrained(..).to(device)`), CosyVoice (`CosyVoice(model_dir)`,
//!   `fp16=False`) and FunASR (`AutoModel(..)`): PyTorch's default, float32, everywhere.

use std::collections::BTreeMap;

use inferkit_core::units::{GIB, MIB, gib};
use inferkit_core::{
    Components, DeviceEstimate, Error, ErrorBand, EstimateRequest, FigureBasis, HostSlot, Layout,
    ResourceEstimate, ResourceEstimator, Result, details_map,
};
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::family::Family;
use crate::platform::check_gpu;
use crate::select::Recognition;

const MB: u64 = 1_000_000;
const M: u64 = 1_000_000;

// faster-whisper's README benchmark (SYSTRAN/faster-whisper, "Benchmark"; 13 minutes of audio,
// beam size 5). Its "MB" are read as MiB, the larger reading.
/// Large-v2 on a Tesla V100S, float16: peak GPU memory.
const LARGE_V2_GPU_FP16: u64 = 4_755 * MIB;
/// Large-v2 on a Tesla V100S, int8: peak GPU memory.
#[cfg(test)] // checks the overhead derived from the other row
const LARGE_V2_GPU_INT8: u64 = 3_091 * MIB;
/// Large-v2 on a Tesla V100S, float16: peak host memory.
const LARGE_V2_HOST_FP16: u64 = 3_244 * MIB;
/// Small on a Xeon Gold 6226R (8 threads), float32: peak memory.
const SMALL_CPU_FP32: u64 = 1_675 * MIB;
/// Small on the same CPU, int8: peak memory.
#[cfg(test)] // checks the overhead derived from the other row
const SMALL_CPU_INT8: u64 = 995 * MIB;

/// Whisper large (v1–v3) and small parameter counts (openai/whisper README).
const WHISPER_LARGE_PARAMETERS: u64 = 1_550 * M;
const WHISPER_SMALL_PARAMETERS: u64 = 244 * M;
/// Systran's large-v2 `model.bin` (float16), the file the GPU benchmark loaded.
const LARGE_V2_MODEL_BIN: u64 = 3_090 * MB;

/// faster-whisper on a GPU beyond its weights: the large-v2 benchmark less its `model.bin`.
/// The int8 row checks it: 1,550 M int8 weights plus this is within 7 % of 3,091 MB.
const WHISPER_GPU_OVERHEAD: u64 = LARGE_V2_GPU_FP16 - LARGE_V2_MODEL_BIN;
/// Host memory of the GPU run beyond `model.bin` (read whole into host memory to load it).
const WHISPER_HOST_OVERHEAD: u64 = LARGE_V2_HOST_FP16 - LARGE_V2_MODEL_BIN;
/// faster-whisper on a CPU beyond its weights: the small float32 run less 244 M × 4 bytes.
/// The int8 row checks it: 244 M int8 weights plus this is within 3 % of 995 MB.
const WHISPER_CPU_OVERHEAD: u64 = SMALL_CPU_FP32 - WHISPER_SMALL_PARAMETERS * 4;

// Dia's README (nari-labs/dia, "Hardware and Inference Speed", RTX 4090): "~10GB" of VRAM in
// float16 and bfloat16, "~13GB" in float32. Read as GiB.
/// Dia-1.6B in float16: GPU memory.
const DIA_GPU_FP16: u64 = 10 * GIB;
/// Dia-1.6B in float32: GPU memory.
#[cfg(test)] // checks the overhead derived from the other row
const DIA_GPU_FP32: u64 = 13 * GIB;
/// Dia's one published size (README: "Dia is a 1.6B parameter text to speech model").
const DIA_PARAMETERS: u64 = 1_600 * M;
/// Dia beyond its weights (the Descript audio codec, the decoder caches of both guidance
/// passes): the float16 figure less 1.6 B × 2 bytes. The float32 row checks it: 1.6 B × 4
/// bytes plus this is within 1 % of 13 GB.
const DIA_OVERHEAD: u64 = DIA_GPU_FP16 - DIA_PARAMETERS * 2;

// Bark's README (suno-ai/bark, "How much VRAM do I need?"): the full version "requires around
// 12GB of VRAM", the small models "should fit into 8GB VRAM". Read as GiB; both are float32,
// as transformers' `BarkModel` loads them.
/// suno/bark: `pytorch_model.bin` bytes and GPU memory.
const BARK_FULL: (u64, u64) = (4_490 * MB, 12 * GIB);
/// suno/bark-small: `pytorch_model.bin` bytes and GPU memory.
const BARK_SMALL: (u64, u64) = (1_680 * MB, 8 * GIB);

// The one published memory figure of a PyTorch speech model served the way vox-box serves
// FunASR (modelscope/FunASR issue #728: paraformer-large, float32, no VAD model): 3,256 MiB
// of GPU memory after loading, 3,488 MiB after transcribing 43 s of audio.
/// paraformer-large after 43 s of audio: GPU memory.
const PARAFORMER_GPU: u64 = 3_488 * MIB;
/// paraformer-large's parameters (FunASR README, model zoo: 220 M).
const PARAFORMER_PARAMETERS: u64 = 220 * M;
/// A PyTorch speech model on a GPU beyond its float32 weights (CUDA context, cuDNN and cuBLAS
/// workspaces, the caching allocator's slack, activations of one request).
const TORCH_GPU_OVERHEAD: u64 = PARAFORMER_GPU - PARAFORMER_PARAMETERS * 4;

/// The only published sizes of CosyVoice (300 M) and CosyVoice2 (0.5 B), for a directory not
/// named after one.
const COSYVOICE_PARAMETERS: u64 = 300 * M;
const COSYVOICE2_PARAMETERS: u64 = 500 * M;

/// What a vox-box estimate reports beside the bytes, each under its JSON key in
/// `estimate.details` (read back with
/// [`ResourceEstimate::details_as`](inferkit_core::ResourceEstimate::details_as)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VoxBoxDetails {
    /// The vox-box framework that runs the model.
    pub family: Family,
    /// Its name in the supported-model table, when it is one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Precision the weights are held in (`float16`, `float32`, `int8`).
    pub compute_type: String,
    /// Where the figure comes from.
    pub basis: String,
    /// How far off the figure may be, and what it rests on.
    pub error_band: ErrorBand,
    /// Size of the weight file the estimate is keyed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_bytes: Option<u64>,
}

/// One memory figure: expected peak bytes, what they rest on and how far off they may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figure {
    /// Expected peak bytes.
    pub bytes: u64,
    /// Of those, the weights as held in memory.
    pub weights: u64,
    /// Precision the weights are held in (`float16`, `float32`, `int8`).
    pub compute_type: String,
    /// How far off the figure may be, and what it rests on.
    pub band: ErrorBand,
    /// Where the figure comes from, for the user.
    pub source: String,
}

impl Figure {
    /// The figure plus its band (what a device estimate's claim becomes, and the host RAM
    /// placement holds).
    pub fn claim(&self) -> u64 {
        self.band.headroom_over(self.bytes)
    }

    /// The figure by component: the weights, and the rest of the process as overhead.
    fn components(&self) -> Components {
        Components {
            weights: self.weights.min(self.bytes),
            overhead: self.bytes - self.weights.min(self.bytes),
            ..Components::default()
        }
    }
}

/// Memory one model needs, on one NVIDIA GPU or on CPU alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// GPU memory when it runs on a GPU.
    pub gpu: Figure,
    /// Host RAM when it runs on a GPU.
    pub gpu_host: Figure,
    /// Host RAM when it runs on CPU alone.
    pub cpu: Figure,
    /// Host RAM on CPU alone on macOS, where it differs from [`Requirement::cpu`]: vox-box runs
    /// faster-whisper with `compute_type="int8"` there, whatever `model.bin` holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_macos: Option<Figure>,
    /// Bytes of the weight file(s) the figures were scaled by, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_bytes: Option<u64>,
}

/// Builds a figure of `weights` plus `overhead` bytes.
fn figure(
    weights: u64,
    overhead: u64,
    compute_type: &str,
    (percent, basis): (u32, FigureBasis),
    source: String,
) -> Figure {
    Figure {
        bytes: weights.saturating_add(overhead),
        weights,
        compute_type: compute_type.into(),
        band: ErrorBand::new(percent, basis),
        source,
    }
}

/// The memory a recognised model needs. Never zero: a model without a published figure gets a
/// derived one or a guess, labelled as such.
pub fn requirement(recognition: &Recognition) -> Result<Requirement> {
    let parameters = recognition
        .model
        .as_deref()
        .and_then(catalog::by_name)
        .and_then(|known| known.parameters);
    let weights = recognition.weight_bytes;
    let requirement = match recognition.family {
        Family::FasterWhisper => faster_whisper(weights, parameters),
        Family::Bark => bark(weights),
        Family::Dia => dia(parameters),
        Family::CosyVoice => cosyvoice(parameters, recognition.variant.as_deref()),
        Family::FunAsr => funasr(weights),
    };
    Ok(requirement)
}

/// Precision of a CTranslate2 `model.bin` from its bytes per parameter: 1 (int8), 2 (float16)
/// or 4 (float32). Without a parameter count, float16: how Systran and GPUStack publish them.
fn ctranslate2_precision(file: u64, parameters: Option<u64>) -> u64 {
    match parameters {
        Some(p) if p > 0 && file <= p.saturating_mul(3) / 2 => 1,
        Some(p) if p > 0 && file > p.saturating_mul(3) => 4,
        _ => 2,
    }
}

fn precision_name(bytes_per_parameter: u64) -> &'static str {
    match bytes_per_parameter {
        1 => "int8",
        2 => "float16",
        _ => "float32",
    }
}

/// `y` at `x` on the line through two measured points; clamped below the first point (a
/// smaller model is not credited with less than the smallest measurement), extended above
/// the second.
fn along(x: u64, (x0, y0): (u64, u64), (x1, y1): (u64, u64)) -> u64 {
    let x = x.max(x0);
    let rise = u128::from(y1 - y0) * u128::from(x - x0) / u128::from(x1 - x0);
    u64::try_from(u128::from(y0) + rise).unwrap_or(u64::MAX)
}

fn faster_whisper(file: Option<u64>, parameters: Option<u64>) -> Requirement {
    let (file, guessed) = match (file, parameters) {
        (Some(file), _) => (file, false),
        (None, Some(p)) => (p.saturating_mul(2), false),
        // A repository known by owner only: the largest published size.
        (None, None) => (LARGE_V2_MODEL_BIN, true),
    };
    let stored = ctranslate2_precision(file, parameters);
    let parameters = parameters.unwrap_or(file / stored);
    let measured_size = |size: u64| !guessed && parameters == size;
    let band = |measured: bool, scaled: u32| match (guessed, measured) {
        (true, _) => (50, FigureBasis::Guess),
        (false, true) => (10, FigureBasis::CatalogFigure),
        (false, false) => (scaled, FigureBasis::ScaledCatalogFigure),
    };
    let what = if guessed {
        "model.bin size unknown: Whisper large assumed".to_string()
    } else {
        format!("model.bin of {file} bytes ({})", precision_name(stored))
    };
    // On a GPU CTranslate2 keeps the stored precision: the weights are model.bin itself.
    let gpu = figure(
        file,
        WHISPER_GPU_OVERHEAD,
        precision_name(stored),
        band(measured_size(WHISPER_LARGE_PARAMETERS), 15),
        format!(
            "{what} plus the runtime faster-whisper's README measured for large-v2 (4,755 MB \
             float16 on a V100S, less its weights)"
        ),
    );
    let gpu_host = figure(
        file,
        WHISPER_HOST_OVERHEAD,
        precision_name(stored),
        band(measured_size(WHISPER_LARGE_PARAMETERS), 20),
        format!(
            "{what} read into host memory plus the host memory faster-whisper's README \
             measured beside large-v2 (3,244 MB)"
        ),
    );
    // On a CPU float16 runs as float32; int8 stays int8.
    let cpu_bytes_per_parameter = if stored == 1 { 1 } else { 4 };
    let cpu_overhead = along(
        parameters,
        (WHISPER_SMALL_PARAMETERS, WHISPER_CPU_OVERHEAD),
        (WHISPER_LARGE_PARAMETERS, WHISPER_GPU_OVERHEAD),
    );
    let cpu = figure(
        parameters.saturating_mul(cpu_bytes_per_parameter),
        cpu_overhead,
        precision_name(cpu_bytes_per_parameter),
        band(measured_size(WHISPER_SMALL_PARAMETERS), 20),
        format!(
            "{parameters} parameters in {} plus a runtime between the ones faster-whisper's \
             README measured for small on a CPU (1,675 MB float32) and large-v2 on a GPU",
            precision_name(cpu_bytes_per_parameter)
        ),
    );
    // On macOS vox-box asks for int8, which CTranslate2 quantizes any model.bin to at load.
    let cpu_macos = (cpu_bytes_per_parameter != 1).then(|| {
        figure(
            parameters,
            cpu_overhead,
            "int8",
            band(measured_size(WHISPER_SMALL_PARAMETERS), 20),
            format!(
                "{parameters} parameters in int8 (vox-box's compute type on macOS) plus a \
                 runtime between the ones faster-whisper's README measured for small on a CPU \
                 (995 MB int8) and large-v2 on a GPU"
            ),
        )
    });
    Requirement {
        gpu,
        gpu_host,
        cpu,
        cpu_macos,
        weight_bytes: (!guessed).then_some(file),
    }
}

/// Bark in float32 on either device: GPU memory along the line through Bark's two published
/// figures, by `pytorch_model.bin` size.
fn bark(file: Option<u64>) -> Requirement {
    let (file, guessed) = match file {
        Some(file) => (file, false),
        None => (BARK_FULL.0, true),
    };
    let bytes = along(file, BARK_SMALL, BARK_FULL);
    let published = file == BARK_SMALL.0 || file == BARK_FULL.0;
    let band = match (guessed, published) {
        (true, _) => (50, FigureBasis::Guess),
        (false, true) => (15, FigureBasis::CatalogFigure),
        (false, false) => (20, FigureBasis::ScaledCatalogFigure),
    };
    let what = if guessed {
        "pytorch_model.bin size unknown: the full Bark assumed".to_string()
    } else {
        format!("pytorch_model.bin of {file} bytes")
    };
    let gpu = figure(
        file,
        bytes - file.min(bytes),
        "float32",
        band,
        format!("{what}, along Bark's README figures (bark-small 8 GB, bark 12 GB of VRAM)"),
    );
    let cpu = Figure {
        band: ErrorBand::new(
            20,
            if guessed {
                FigureBasis::Guess
            } else {
                FigureBasis::Derived
            },
        ),
        source: format!(
            "{}, held in host RAM (the same float32 weights)",
            gpu.source
        ),
        ..gpu.clone()
    };
    Requirement {
        gpu_host: torch_host(file, "float32", &what),
        gpu,
        cpu,
        cpu_macos: None,
        weight_bytes: (!guessed).then_some(file),
    }
}

/// Dia: float16 on a GPU, float32 on CPU, weights by parameter count plus the overhead of
/// Dia's README figure.
fn dia(parameters: Option<u64>) -> Requirement {
    let parameters = parameters.unwrap_or(DIA_PARAMETERS);
    let measured = parameters == DIA_PARAMETERS;
    let gpu = figure(
        parameters * 2,
        DIA_OVERHEAD,
        "float16",
        if measured {
            (15, FigureBasis::CatalogFigure)
        } else {
            (20, FigureBasis::ScaledCatalogFigure)
        },
        format!(
            "{parameters} parameters in float16 plus the rest of Dia's README figure (~10 GB \
             on an RTX 4090)"
        ),
    );
    let cpu = figure(
        parameters * 4,
        DIA_OVERHEAD,
        "float32",
        (20, FigureBasis::Derived),
        format!(
            "{parameters} parameters in float32 plus the same overhead, in host RAM (Dia's \
             README: ~13 GB in float32 on a GPU)"
        ),
    );
    Requirement {
        gpu,
        gpu_host: torch_host(parameters * 4, "float32", "a float32 checkpoint"),
        cpu,
        cpu_macos: None,
        weight_bytes: None,
    }
}

/// CosyVoice and CosyVoice2: nothing published; float32 weights by parameter count plus the
/// PyTorch speech runtime of FunASR's measurement.
fn cosyvoice(parameters: Option<u64>, variant: Option<&str>) -> Requirement {
    let parameters = parameters.unwrap_or(match variant {
        Some("CosyVoice2") => COSYVOICE2_PARAMETERS,
        _ => COSYVOICE_PARAMETERS,
    });
    let weights = parameters * 4;
    let source = format!(
        "no published figure: {parameters} parameters in float32 plus the runtime of a PyTorch \
         speech model FunASR issue #728 measured (paraformer-large: 3,488 MiB less its weights)"
    );
    let gpu = figure(
        weights,
        TORCH_GPU_OVERHEAD,
        "float32",
        (30, FigureBasis::Derived),
        source.clone(),
    );
    let cpu = Figure {
        source: format!("{source}, in host RAM"),
        ..gpu.clone()
    };
    Requirement {
        gpu,
        gpu_host: torch_host(weights, "float32", "float32 checkpoints"),
        cpu,
        cpu_macos: None,
        weight_bytes: None,
    }
}

/// FunASR: its float32 weight files plus the runtime of FunASR's own measurement; without
/// measured weights, that measurement itself, as a guess.
fn funasr(weights: Option<u64>) -> Requirement {
    let (gpu, weight_bytes) = match weights {
        Some(weights) => (
            figure(
                weights,
                TORCH_GPU_OVERHEAD,
                "float32",
                (25, FigureBasis::ScaledCatalogFigure),
                format!(
                    "weight files of {weights} bytes plus the runtime FunASR issue #728 measured \
                     for paraformer-large (3,488 MiB less its weights); memory grows with the \
                     length of one request's audio"
                ),
            ),
            Some(weights),
        ),
        None => (
            figure(
                PARAFORMER_PARAMETERS * 4,
                TORCH_GPU_OVERHEAD,
                "float32",
                (50, FigureBasis::Guess),
                "weight files not measured: a guess, the paraformer-large figure of FunASR \
                 issue #728 (3,488 MiB)"
                    .into(),
            ),
            None,
        ),
    };
    let cpu = Figure {
        source: format!("{}, in host RAM", gpu.source),
        ..gpu.clone()
    };
    Requirement {
        gpu_host: torch_host(gpu.weights, "float32", "weight files"),
        gpu,
        cpu,
        cpu_macos: None,
        weight_bytes,
    }
}

/// Host RAM of a PyTorch model running on a GPU: its checkpoint, read into host memory before
/// it moves, plus faster-whisper's measured host overhead. Nothing published measures these
/// backends' host memory, so it is a guess.
fn torch_host(checkpoint: u64, compute_type: &str, what: &str) -> Figure {
    figure(
        checkpoint,
        WHISPER_HOST_OVERHEAD,
        compute_type,
        (50, FigureBasis::Guess),
        format!(
            "a guess: {what} of {checkpoint} bytes read into host memory, plus the host memory \
             faster-whisper's README measured beside its GPU run"
        ),
    )
}

/// The estimator of one recognised model.
#[derive(Debug, Clone)]
pub struct VoxBoxEstimator {
    recognition: Recognition,
    requirement: Requirement,
}

impl VoxBoxEstimator {
    /// Binds the estimator to a recognised model.
    pub fn new(recognition: Recognition) -> Result<Self> {
        let requirement = requirement(&recognition)?;
        Ok(VoxBoxEstimator {
            recognition,
            requirement,
        })
    }

    /// The figures every estimate is built from.
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }

    fn details(&self, figure: &Figure) -> BTreeMap<String, serde_json::Value> {
        details_map(&VoxBoxDetails {
            family: self.recognition.family,
            model: self.recognition.model.clone(),
            compute_type: figure.compute_type.clone(),
            basis: figure.source.clone(),
            error_band: figure.band,
            weight_bytes: self.requirement.weight_bytes,
        })
    }

    fn cpu_estimate(&self, host: &HostSlot) -> ResourceEstimate {
        let macos = host.os.as_deref() == Some("darwin");
        let cpu = match &self.requirement.cpu_macos {
            Some(int8) if macos => int8,
            _ => &self.requirement.cpu,
        };
        {
            let mut estimate = ResourceEstimate::new(Layout::CpuOnly, Vec::new());
            estimate.host = with_headroom(cpu);
            estimate.details = self.details(cpu);
            estimate.notes = vec![explain("host RAM", cpu)];
            estimate
        }
    }

    fn gpu_estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        let [slot] = request.devices.as_slice() else {
            return Err(Error::unsupported(format!(
                "a single-device layout needs exactly one device, got {}",
                request.devices.len()
            )));
        };
        let mut notes = check_gpu(slot)?;
        let req = &self.requirement;
        notes.push(explain("GPU memory", &req.gpu));
        notes.push(explain("host RAM beside the GPU", &req.gpu_host));
        let mut estimate = ResourceEstimate::new(
            Layout::Single,
            vec![
                DeviceEstimate::new(
                    slot.id.clone(),
                    format!("cuda:{}", slot.id.index),
                    req.gpu.components(),
                    req.gpu.bytes,
                )
                .with_error_band(req.gpu.band),
            ],
        );
        estimate.host = with_headroom(&req.gpu_host);
        estimate.details = self.details(&req.gpu);
        estimate.notes = notes;
        Ok(estimate)
    }
}

/// Host RAM by component, the band's headroom counted as overhead (the host has no separate
/// claim).
fn with_headroom(figure: &Figure) -> Components {
    let mut components = figure.components();
    components.overhead = components
        .overhead
        .saturating_add(figure.claim() - figure.bytes);
    components
}

/// One sentence on a figure: its bytes, band, basis and source.
fn explain(what: &str, figure: &Figure) -> String {
    let basis = figure.band.basis.phrase();
    format!(
        "{what}: {} ± {} % ({basis}; {} weights): {}",
        gib(figure.bytes),
        figure.band.percent,
        figure.compute_type,
        figure.source
    )
}

/// Why vox-box refuses every split layout.
fn refuse_split(devices: usize) -> Error {
    Error::unsupported(format!(
        "vox-box runs a model on one NVIDIA GPU or on CPU, never split: {devices} devices \
         requested (Audio models are restricted to execution on a single NVIDIA GPU.)"
    ))
}

// `fit` is the trait's default: the natural layout of two or more devices is a split, which
// `estimate` refuses.
impl ResourceEstimator for VoxBoxEstimator {
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        match &request.layout {
            Layout::CpuOnly if request.devices.is_empty() => Ok(self.cpu_estimate(&request.host)),
            Layout::CpuOnly => Err(Error::unsupported("a CPU-only layout takes no devices")),
            Layout::Single => self.gpu_estimate(request),
            _ => Err(refuse_split(request.devices.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recognition(family: Family, model: Option<&str>, weight_bytes: Option<u64>) -> Recognition {
        Recognition {
            family,
            task: family.task(),
            model: model.map(str::to_string),
            variant: None,
            weight_bytes,
            evidence: String::new(),
        }
    }

    fn whisper(model: &str, weight_bytes: Option<u64>) -> Requirement {
        requirement(&recognition(
            Family::FasterWhisper,
            Some(model),
            weight_bytes,
        ))
        .unwrap()
    }

    /// Whether `figure` is within its own band of the published `measured` bytes.
    fn within_band(figure: &Figure, measured: u64) -> bool {
        let band = u128::from(measured) * u128::from(figure.band.percent) / 100;
        u128::from(figure.bytes).abs_diff(u128::from(measured)) <= band
    }

    #[test]
    fn whisper_reproduces_every_row_of_its_benchmark() {
        let large = whisper("faster-whisper-large-v2", Some(LARGE_V2_MODEL_BIN));
        assert_eq!(large.gpu.bytes, LARGE_V2_GPU_FP16);
        assert_eq!(large.gpu.compute_type, "float16");
        assert_eq!(large.gpu_host.bytes, LARGE_V2_HOST_FP16);
        assert_eq!(large.gpu.band.basis, FigureBasis::CatalogFigure);
        // An int8 conversion of large-v2 (1 byte per parameter) runs int8 on the GPU.
        let int8 = whisper("faster-whisper-large-v2", Some(WHISPER_LARGE_PARAMETERS));
        assert_eq!(int8.gpu.compute_type, "int8");
        assert!(within_band(&int8.gpu, LARGE_V2_GPU_INT8), "{:?}", int8.gpu);
        let small = whisper("faster-whisper-small", Some(484 * MB));
        assert_eq!(small.cpu.bytes, SMALL_CPU_FP32);
        assert_eq!(small.cpu.compute_type, "float32");
        let small_int8 = whisper("faster-whisper-small", Some(WHISPER_SMALL_PARAMETERS));
        assert_eq!(small_int8.cpu.compute_type, "int8");
        assert!(
            within_band(&small_int8.cpu, SMALL_CPU_INT8),
            "{:?}",
            small_int8.cpu
        );
    }

    #[test]
    fn on_macos_whisper_runs_int8_on_the_cpu() {
        // A float16 model.bin of small: float32 on a Linux CPU, int8 on macOS (vox-box's
        // compute type there), which the README's int8 CPU row measures.
        let small = whisper("faster-whisper-small", Some(484 * MB));
        let macos = small.cpu_macos.clone().expect("a macOS figure");
        assert_eq!(macos.compute_type, "int8");
        assert!(within_band(&macos, SMALL_CPU_INT8), "{macos:?}");
        let estimator = VoxBoxEstimator {
            recognition: recognition(Family::FasterWhisper, Some("faster-whisper-small"), None),
            requirement: small,
        };
        let on = |os: &str| {
            let host = HostSlot {
                os: Some(os.into()),
                ..HostSlot::default()
            };
            estimator
                .estimate(&EstimateRequest {
                    devices: Vec::new(),
                    host,
                    layout: Layout::CpuOnly,
                })
                .unwrap()
                .host
                .total()
        };
        assert_eq!(on("darwin"), macos.claim());
        assert_eq!(on("linux"), estimator.requirement.cpu.claim());
        // 244 M weights of one byte instead of four: 0.73 GB less.
        let saved = on("linux") - on("darwin");
        assert!(saved > 700 * MB, "{saved}");
        // Already int8: the same on every system.
        let int8 = whisper("faster-whisper-small", Some(WHISPER_SMALL_PARAMETERS));
        assert_eq!(int8.cpu_macos, None);
    }

    #[test]
    fn whisper_scales_with_size_and_guesses_without_one() {
        let tiny = whisper("faster-whisper-tiny", Some(75 * MB));
        assert_eq!(tiny.gpu.bytes, 75 * MB + WHISPER_GPU_OVERHEAD);
        assert_eq!(tiny.gpu.band.basis, FigureBasis::ScaledCatalogFigure);
        // Below small the CPU runtime is held at small's measurement.
        assert_eq!(tiny.cpu.bytes, 39 * M * 4 + WHISPER_CPU_OVERHEAD);
        let medium = whisper("faster-whisper-medium", Some(1_520 * MB));
        assert!(tiny.cpu.bytes < medium.cpu.bytes && medium.cpu.bytes < 8 * GIB);
        let unknown = requirement(&recognition(Family::FasterWhisper, None, None)).unwrap();
        assert_eq!(unknown.gpu.band.basis, FigureBasis::Guess);
        assert_eq!(unknown.gpu.bytes, LARGE_V2_GPU_FP16);
        assert!(unknown.gpu.claim() > unknown.gpu.bytes);
    }

    #[test]
    fn dia_and_bark_reproduce_their_readmes() {
        let dia = requirement(&recognition(Family::Dia, Some("dia-1.6b"), None)).unwrap();
        assert_eq!(dia.gpu.bytes, DIA_GPU_FP16);
        assert!(within_band(&dia.cpu, DIA_GPU_FP32), "{:?}", dia.cpu);
        for (file, vram) in [BARK_SMALL, BARK_FULL] {
            let bark = requirement(&recognition(Family::Bark, None, Some(file))).unwrap();
            assert_eq!(bark.gpu.bytes, vram);
            assert_eq!(bark.gpu.band.basis, FigureBasis::CatalogFigure);
        }
    }

    #[test]
    fn every_family_claims_something_and_says_how_firm_it_is() {
        for family in [
            Family::FasterWhisper,
            Family::Bark,
            Family::Dia,
            Family::CosyVoice,
            Family::FunAsr,
        ] {
            let r = requirement(&recognition(family, None, None)).unwrap();
            for figure in [&r.gpu, &r.gpu_host, &r.cpu] {
                assert!(figure.bytes > GIB / 4, "{family}: {figure:?}");
                assert!(figure.claim() > figure.bytes, "{family}: {figure:?}");
                assert!(!figure.source.is_empty());
            }
        }
        let funasr = requirement(&recognition(Family::FunAsr, None, None)).unwrap();
        assert_eq!(funasr.gpu.band.basis, FigureBasis::Guess);
        assert_eq!(funasr.gpu.bytes, PARAFORMER_GPU);
        let cosyvoice = requirement(&recognition(Family::CosyVoice, None, None)).unwrap();
        assert_eq!(cosyvoice.gpu.band.basis, FigureBasis::Derived);
    }

    #[test]
    fn sizes_past_u64_saturate_instead_of_wrapping() {
        let huge = whisper("faster-whisper-large-v3", Some(u64::MAX - 1));
        assert_eq!(huge.gpu.claim(), u64::MAX);
        let funasr = requirement(&recognition(Family::FunAsr, None, Some(u64::MAX - 1))).unwrap();
        assert_eq!(funasr.cpu.claim(), u64::MAX);
        let bark = requirement(&recognition(Family::Bark, None, Some(u64::MAX))).unwrap();
        assert_eq!(bark.gpu.bytes, u64::MAX);
    }
}
