//! The `vox-box start` process of an assignment.
//!
//! Argument order follows GPUStack 0.7.1 (`worker/backends/vox_box.py`): `start --model PATH
//! --data-dir DIR`, the user's parameters, `--device cuda:N` on a GPU, then `--host` and
//! `--port` last.
//!
//! GPU index: `--device cuda:N` carries the worker's device index and `CUDA_VISIBLE_DEVICES`
//! is left to vox-box. Pinning `CUDA_VISIBLE_DEVICES=N` with `cuda:0` does not work here:
//! vox-box's CosyVoice backend, and its faster-whisper setup, overwrite `CUDA_VISIBLE_DEVICES`
//! with the index of `--device` (`backends/tts/cosyvoice.py`, `utils/model.py`), which would
//! turn the pin into physical GPU 0. With the real index every family lands on GPU N:
//! CosyVoice and faster-whisper set `CUDA_VISIBLE_DEVICES=N` themselves, FunASR, Bark and Dia
//! hand `cuda:N` to PyTorch. Two variables make this hold whatever the model's path is called:
//! `IS_FASTER_WHISPER` (true for faster-whisper, whose CTranslate2 backend drops the index
//! and relies on vox-box's pin; false for the others, so that a path that happens to match
//! vox-box's `faster.*whisper` guess does not hide GPU N from PyTorch), and
//! `CUDA_DEVICE_ORDER=PCI_BUS_ID`, so that CUDA numbers GPUs like NVML and nvidia-smi, where
//! the inventory's indices come from.

use std::collections::BTreeMap;

use inferkit_core::{
    Assignment, Error, HealthCheck, LaunchSpec, ModelFacts, ModelSource, ModelSpec, PlacementMode,
    ProcessRole, Result,
};

use crate::family::Family;
use crate::flags::parse_parameters;
use crate::select::Recognition;

/// vox-box's readiness endpoint (`server/routers.py`: `GET /health` answers
/// `{"status": "ok"}`). vox-box loads the model before it binds the port, so the endpoint only
/// answers once the model is loaded.
const HEALTH_PATH: &str = "/health";

/// Environment keys the launch owns on a GPU.
pub(crate) const OWNED_ENV: [&str; 3] = [
    "CUDA_DEVICE_ORDER",
    "IS_FASTER_WHISPER",
    "CUDA_VISIBLE_DEVICES",
];

/// Where the process runs and how it is started.
pub(crate) struct Launcher<'a> {
    /// Program to run.
    pub program: &'a str,
    /// `--data-dir` of vox-box.
    pub data_dir: &'a str,
}

impl Launcher<'_> {
    /// The main (only) process of `assignment`.
    pub(crate) fn main_process(
        &self,
        facts: &ModelFacts,
        spec: &ModelSpec,
        recognition: &Recognition,
        assignment: &Assignment,
    ) -> Result<LaunchSpec> {
        let gpu = gpu_index(assignment)?;
        // As GPUStack passes them, but read as every driver reads a parameter list (entries
        // trimmed, blank ones dropped, `--flag value` in one entry split), so that argparse
        // reads what was checked. (GPUStack's `{data_dir}` placeholder has nothing to fill:
        // every flag of vox-box 0.0.21 that takes a value is the platform's.)
        let params = parse_parameters(&spec.backend_parameters)?;

        let mut args = vec!["start".to_string()];
        args.extend(model_source(facts, spec)?);
        args.extend(["--data-dir".into(), self.data_dir.into()]);
        args.extend(params);
        if let Some(index) = gpu {
            args.extend(["--device".into(), format!("cuda:{index}")]);
        }
        args.extend([
            "--host".into(),
            "0.0.0.0".into(),
            "--port".into(),
            assignment.port.to_string(),
        ]);

        let mut env: BTreeMap<String, String> = spec.env.clone();
        if gpu.is_some() {
            env.remove("CUDA_VISIBLE_DEVICES");
            env.insert("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into());
            let faster_whisper = recognition.family == Family::FasterWhisper;
            env.insert("IS_FASTER_WHISPER".into(), faster_whisper.to_string());
        }
        let mut process = LaunchSpec::new(
            assignment.worker.clone(),
            ProcessRole::Main,
            self.program.to_string(),
            args,
        );
        process.env = env;
        process.health = Some(HealthCheck {
            port: assignment.port,
            path: Some(HEALTH_PATH.into()),
        });
        Ok(process)
    }
}

/// The GPU of a single-device assignment, `None` for CPU; anything else is refused.
fn gpu_index(assignment: &Assignment) -> Result<Option<u32>> {
    if !assignment.subordinates.is_empty() {
        return Err(Error::unsupported(
            "Distributed inference across workers is not supported for the vox-box backend",
        ));
    }
    match (assignment.mode, assignment.devices.as_slice()) {
        (PlacementMode::CpuOnly, []) => Ok(None),
        (PlacementMode::SingleDevice, [device]) if !device.remote => Ok(Some(device.id.index)),
        (mode, devices) => Err(Error::unsupported(format!(
            "vox-box runs on one local NVIDIA GPU or on CPU; got {mode:?} over {} devices",
            devices.len()
        ))),
    }
}

/// `--model PATH` for a local model; a repository id for a remote one (vox-box downloads it
/// into `<data-dir>/cache`).
fn model_source(facts: &ModelFacts, spec: &ModelSpec) -> Result<[String; 2]> {
    let path = match (&facts.path, &spec.source) {
        (Some(path), _) | (None, ModelSource::LocalPath { path }) => path,
        (
            None,
            ModelSource::Huggingface {
                repo_id,
                revision: Some(revision),
                ..
            },
        )
        | (
            None,
            ModelSource::ModelScope {
                model_id: repo_id,
                revision: Some(revision),
                ..
            },
        ) => {
            return Err(Error::unsupported(format!(
                "vox-box downloads the default branch of {repo_id} only (it has no revision \
                 option), not revision {revision}: download that revision and plan its folder"
            )));
        }
        (None, ModelSource::Huggingface { repo_id, .. }) => {
            return Ok(["--huggingface-repo-id".into(), repo_id.clone()]);
        }
        (None, ModelSource::ModelScope { model_id, .. }) => {
            return Ok(["--model-scope-model-id".into(), model_id.clone()]);
        }
        (None, source @ (ModelSource::Ollama { .. } | ModelSource::Url { .. })) => {
            return Err(Error::unsupported(format!(
                "vox-box downloads from Hugging Face and ModelScope only, not {}",
                source.display_name()
            )));
        }
    };
    let path = path.to_str().ok_or_else(|| {
        Error::invalid_parameter(
            "model path",
            format!("{} is not valid UTF-8", path.display()),
        )
    })?;
    Ok(["--model".into(), path.into()])
}
