//! Model-config overrides (`--dtype`, `--rope-scaling`, `--rope-theta`,
//! `--override-generation-config`) as an overlay directory.
//!
//! GPUStack rewrites `config.json` and `generation_config.json` in a temporary copy of the
//! model directory whose other entries are symlinks. The same here, as launch files: the
//! overlay `model/` in the run directory holds the rewritten files and a link for every other
//! entry of the model directory. The user's files are never touched.

use std::path::{Path, PathBuf};

use inferkit_core::hf::HfModel;
use inferkit_core::{DirectoryFacts, Error, LaunchFile, Result};
use serde_json::{Map, Value};

use crate::params::{Params, RunDtype};

/// The overlay directory, relative to the run directory.
pub(crate) const OVERLAY_DIR: &str = "model";

/// The files that carry overrides.
const CONFIG: &str = "config.json";
const GENERATION_CONFIG: &str = "generation_config.json";

/// The overlay for `params` over the model directory, or `None` when nothing is overridden
/// and MindIE loads the model directory itself.
pub(crate) fn build(
    params: &Params,
    dtype: Option<RunDtype>,
    model: &HfModel,
    directory: Option<&DirectoryFacts>,
) -> Result<Option<Vec<LaunchFile>>> {
    let config_changed =
        dtype.is_some() || params.rope_scaling.is_some() || params.rope_theta.is_some();
    let generation = params.override_generation_config.as_ref();
    if !config_changed && generation.is_none() {
        return Ok(None);
    }
    let directory = directory.ok_or_else(|| {
        Error::unsupported(format!(
            "{}: the model directory was not listed, so its config overrides cannot be \
             overlaid",
            model.dir.display()
        ))
    })?;
    let model_dir = absolute(&model.dir)?;
    let mut files = Vec::new();
    let mut rewritten = Vec::new();
    if config_changed {
        let config = model.config_document()?;
        files.push(text(CONFIG, &rewrite_config(params, dtype, config)));
        rewritten.push(CONFIG);
    }
    if let Some(overrides) = generation {
        let base = model.generation_document()?;
        files.push(text(GENERATION_CONFIG, &merged(base.as_ref(), overrides)));
        rewritten.push(GENERATION_CONFIG);
    }
    for entry in top_level_entries(directory) {
        if !rewritten.contains(&entry) {
            files.push(LaunchFile {
                path: Path::new(OVERLAY_DIR).join(entry),
                content: String::new(),
                link_to: Some(model_dir.join(entry)),
            });
        }
    }
    Ok(Some(files))
}

/// `config.json` with `torch_dtype`, `rope_scaling` (merged into what is there, as GPUStack
/// does) and `rope_theta` set.
fn rewrite_config(params: &Params, dtype: Option<RunDtype>, mut config: Value) -> Value {
    let Some(object) = config.as_object_mut() else {
        return config;
    };
    if let Some(dtype) = dtype {
        object.insert("torch_dtype".into(), dtype.torch_name().into());
    }
    if let Some(scaling) = &params.rope_scaling {
        let current = object.get("rope_scaling").filter(|v| v.is_object());
        let merged = merged(current, scaling);
        object.insert("rope_scaling".into(), merged);
    }
    if let Some(theta) = params.rope_theta {
        object.insert("rope_theta".into(), theta.into());
    }
    config
}

/// `base` (an object, or nothing) with the keys of `overrides` replaced.
fn merged(base: Option<&Value>, overrides: &Map<String, Value>) -> Value {
    let mut object = base.and_then(Value::as_object).cloned().unwrap_or_default();
    object.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    Value::Object(object)
}

fn text(name: &str, value: &Value) -> LaunchFile {
    LaunchFile {
        path: Path::new(OVERLAY_DIR).join(name),
        content: pretty(value),
        link_to: None,
    }
}

/// Pretty JSON with a final newline.
pub(crate) fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Names directly in the model directory (files, and the first component of sub-paths).
fn top_level_entries(directory: &DirectoryFacts) -> Vec<&str> {
    let mut names: Vec<&str> = directory
        .files
        .iter()
        .map(|f| f.split('/').next().unwrap_or(f))
        .collect();
    names.dedup();
    names
}

/// The model directory as an absolute path: links and the service config must not depend on
/// the launcher's working directory (the run directory).
pub(crate) fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|e| Error::io(dir, e))
}
