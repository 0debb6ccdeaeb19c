//! # inferkit-vox-box
//!
//! The inferkit driver for [vox-box](https://github.com/gpustack/vox-box) 0.0.19–0.0.21, the
//! speech server GPUStack uses for speech-to-text (faster-whisper, FunASR) and text-to-speech
//! (CosyVoice, Bark, Dia).
//!
//! * Recognition ([`recognise`]): vox-box's own rules, by files and configuration keys, in its
//!   order; from a repository id alone through the supported-model table. A faster-whisper
//!   model is claimed even when the user named no backend or category (GPUStack 0.7.1 sent
//!   such a model to vLLM).
//! * Memory ([`requirement`], [`VoxBoxEstimator`]): per-family figures from published
//!   benchmarks (faster-whisper, Dia, Bark, FunASR) at the precision vox-box runs on each
//!   device, scaled by size within a family, derived from parameter counts for CosyVoice; each
//!   with an error band the claim holds as headroom.
//! * Placement rules ([`VoxBox::capabilities`], [`check_platform`], [`check_gpu`],
//!   [`check_device`]): one NVIDIA GPU with CUDA 12, or CPU; never split.
//! * Launch ([`Prepared::launch`] of a [`VoxBox`]
//!   deployment): `vox-box start` with user parameters checked against the 0.0.21 flag table.
//!
//! ```
//! use inferkit_core::{Backend, Category, Claim, ModelFacts, ModelSource, ModelSpec};
//! use inferkit_vox_box::VoxBox;
//!
//! // A faster-whisper model known only by its id, with no backend or category given.
//! let mut spec = ModelSpec::local("faster-whisper-large-v3");
//! spec.source = ModelSource::Huggingface {
//!     repo_id: "Systran/faster-whisper-large-v3".into(),
//!     filename: None,
//!     revision: None,
//! };
//! let facts = ModelFacts::read(&spec.source)?; // remote: nothing is read
//! let selection = VoxBox::new().select(&facts, &spec);
//! assert_eq!(selection.claim, Claim::Prefers);
//! assert_eq!(selection.categories, [Category::SpeechToText]);
//! # Ok::<(), inferkit_core::Error>(())
//! ```
#![warn(missing_docs)]

mod catalog;
mod family;
mod flags;
mod launch;
mod memory;
mod platform;
mod select;

use std::sync::LazyLock;

use inferkit_core::{
    Arch, Assignment, Backend, Capabilities, Category, Claim, Device, Error, LaunchSpec,
    ModelFacts, ModelFormat, ModelSpec, Os, Platform, Prepared, ResourceEstimator, Result,
    Selection, Unfit, Vendor, WorkerInventory,
};
use serde::{Deserialize, Serialize};

pub use family::{Family, Task};
pub use memory::{Requirement, VoxBoxDetails, VoxBoxEstimator, requirement};
pub use platform::{
    backend_platforms, check_device, check_gpu, check_platform, supported_platforms,
};
pub use select::{Recognition, Unrecognised, recognise};

use launch::{Launcher, OWNED_ENV};

/// vox-box's own data directory on Linux and macOS (`vox_box/cmd/start.py`, `get_data_dir`).
const DEFAULT_DATA_DIR: &str = "/var/lib/vox-box";

/// The vox-box backend driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoxBox {
    /// Program to run: `vox-box` from `PATH`, or a versioned binary's path.
    pub program: String,
    /// Directory vox-box keeps its cache and downloads in (`--data-dir`).
    pub data_dir: String,
}

impl Default for VoxBox {
    fn default() -> Self {
        VoxBox {
            program: "vox-box".into(),
            data_dir: DEFAULT_DATA_DIR.into(),
        }
    }
}

impl VoxBox {
    /// The driver with `vox-box` from `PATH` and vox-box's default data directory.
    pub fn new() -> Self {
        VoxBox::default()
    }

    /// The same driver with another data directory (GPUStack passes its worker's).
    pub fn with_data_dir(mut self, data_dir: impl Into<String>) -> Self {
        self.data_dir = data_dir.into();
        self
    }

    /// The same driver running another program (a versioned `vox-box_<version>` binary).
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.program = program.into();
        self
    }

    fn launcher(&self) -> Launcher<'_> {
        Launcher {
            program: &self.program,
            data_dir: &self.data_dir,
        }
    }
}

/// Whether the user's categories leave room for a model of `task`, and why not.
fn categories_conflict(spec: &ModelSpec, recognition: &Recognition) -> Option<String> {
    let wanted = recognition.task.category();
    if spec.categories.is_empty() || spec.categories.contains(&wanted) {
        return None;
    }
    Some(format!(
        "the model is a {} {} model but the deployment's categories are [{}]",
        recognition.family,
        wanted.as_str(),
        spec.categories
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

impl Backend for VoxBox {
    fn id(&self) -> &'static str {
        "vox-box"
    }

    fn capabilities(&self) -> &Capabilities {
        static CAPABILITIES: LazyLock<Capabilities> = LazyLock::new(|| {
            let mut caps = Capabilities::default();
            caps.formats = vec![
                ModelFormat::Directory,
                ModelFormat::Safetensors,
                ModelFormat::Remote,
            ];
            caps.vendors = vec![Vendor::Nvidia];
            caps.platforms = backend_platforms();
            caps.categories = vec![Category::SpeechToText, Category::TextToSpeech];
            caps.cpu_only = true;
            caps
        });
        &CAPABILITIES
    }

    fn select(&self, facts: &ModelFacts, spec: &ModelSpec) -> Selection {
        let recognition = match recognise(facts) {
            Ok(recognition) => recognition,
            Err(unrecognised) => {
                return Selection::new(Claim::Refuses, unrecognised.into_error().to_string());
            }
        };
        if let Some(conflict) = categories_conflict(spec, &recognition) {
            return Selection::new(Claim::Refuses, conflict);
        }
        let mut reason = format!(
            "vox-box {} {} model ({})",
            recognition.family,
            recognition.task.category().as_str(),
            recognition.evidence
        );
        if supported_platforms(recognition.family) != backend_platforms() {
            reason.push_str("; runs on Linux amd64 and macOS workers only");
        }
        let mut selection = Selection::new(Claim::Prefers, reason);
        selection.categories = vec![recognition.task.category()];
        selection
    }

    fn prepare<'a>(
        &'a self,
        facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> Result<Box<dyn Prepared + 'a>> {
        if spec.device_selector.len() > 1 {
            return Err(Error::invalid_parameter(
                "gpu_selector",
                "Audio models are restricted to execution on a single NVIDIA GPU.",
            ));
        }
        flags::parse_parameters(&spec.backend_parameters)?;
        let warnings = warnings(spec);
        let recognition = recognise(facts).map_err(Unrecognised::into_error)?;
        Ok(Box::new(PreparedVoxBox {
            backend: self,
            facts,
            spec,
            warnings,
            estimator: VoxBoxEstimator::new(recognition.clone())?,
            recognition,
        }))
    }
}

/// What is accepted but ignored or unchecked: environment variables the launch owns, and a
/// version whose flag table this driver does not have.
fn warnings(spec: &ModelSpec) -> Vec<String> {
    let mut warnings: Vec<String> = OWNED_ENV
        .iter()
        .filter(|key| spec.env.contains_key(**key))
        .map(|key| {
            format!("env {key} is set by the launch on a GPU; the given value is ignored there")
        })
        .collect();
    if let Some(version) = spec.backend_version.as_deref() {
        let version = version.trim_start_matches('v');
        if !["0.0.19", "0.0.20", "0.0.21"].contains(&version) {
            warnings.push(format!(
                "parameters were checked against vox-box {}'s flags, not {version}'s",
                flags::TABLE.version
            ));
        }
    }
    warnings
}

/// A vox-box deployment of one recognised speech model.
struct PreparedVoxBox<'a> {
    backend: &'a VoxBox,
    facts: &'a ModelFacts,
    spec: &'a ModelSpec,
    warnings: Vec<String>,
    recognition: Recognition,
    estimator: VoxBoxEstimator,
}

impl Prepared for PreparedVoxBox<'_> {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn estimator(&self) -> &dyn ResourceEstimator {
        &self.estimator
    }

    fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
        let main = self.backend.launcher().main_process(
            self.facts,
            self.spec,
            &self.recognition,
            assignment,
        )?;
        Ok(vec![main])
    }

    /// CosyVoice and Dia run on Linux amd64 and macOS only; other families everywhere.
    fn check_worker(&self, worker: &WorkerInventory) -> std::result::Result<(), Unfit> {
        let platform = Platform::new(Os::from_label(&worker.os), Arch::from_label(&worker.arch));
        check_platform(self.recognition.family, &platform).map_err(|e| Unfit::Platform {
            reason: e.to_string(),
        })
    }

    fn check_device(
        &self,
        _worker: &WorkerInventory,
        device: &Device,
    ) -> std::result::Result<(), Unfit> {
        platform::check_device(device)
            .map(|_notes| ())
            .map_err(|e| Unfit::Device {
                reason: e.to_string(),
            })
    }
}
