//! What the model files say: [`ModelFacts`], read once per plan and shared by every backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::ModelSource;
use crate::{Error, Result};

/// The on-disk format of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    /// A GGUF file (single or split).
    Gguf,
    /// A Hugging Face directory with `config.json` and safetensors weights.
    Safetensors,
    /// A directory in another layout (speech models: CTranslate2, CosyVoice, ...).
    Directory,
    /// Known only by a repository id; no files were read.
    Remote,
}

/// Largest text file kept in [`DirectoryFacts::texts`] (config files are far smaller; weights
/// are far larger).
const MAX_TEXT_FILE: u64 = 1 << 20;

/// Files of a model directory: names, and the content of its small configuration files, so
/// that backends can recognise model families without touching the disk again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryFacts {
    /// File names relative to the directory (top level and one level down), sorted.
    pub files: Vec<String>,
    /// Content of the top-level `*.json`, `*.yaml` and `*.yml` files up to 1 MiB, by name.
    pub texts: BTreeMap<String, String>,
}

impl DirectoryFacts {
    /// Lists `dir` and reads its small configuration files.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut facts = DirectoryFacts::default();
        for entry in read_dir_sorted(dir)? {
            let name = entry_name(&entry);
            let meta = entry.metadata().map_err(|e| Error::io(entry.path(), &e))?;
            if meta.is_dir() {
                for sub in read_dir_sorted(&entry.path())? {
                    facts.files.push(format!("{name}/{}", entry_name(&sub)));
                }
                continue;
            }
            if is_config_text(&name) && meta.len() <= MAX_TEXT_FILE {
                let path = entry.path();
                let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, &e))?;
                facts.texts.insert(name.clone(), text);
            }
            facts.files.push(name);
        }
        facts.files.sort();
        Ok(facts)
    }

    /// Whether the directory has a file of this relative name.
    pub fn has_file(&self, name: &str) -> bool {
        self.files.binary_search_by(|f| f.as_str().cmp(name)).is_ok()
    }

    /// Parses a kept JSON file.
    pub fn json(&self, name: &str) -> Option<serde_json::Value> {
        serde_json::from_str(self.texts.get(name)?).ok()
    }
}

fn is_config_text(name: &str) -> bool {
    [".json", ".yaml", ".yml"].iter().any(|ext| name.ends_with(ext))
}

fn entry_name(entry: &std::fs::DirEntry) -> String {
    entry.file_name().to_string_lossy().into_owned()
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, &e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, &e))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// What the model files say, read once and handed to every backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFacts {
    /// Where the model came from.
    pub source: ModelSource,
    /// Its format.
    pub format: ModelFormat,
    /// The model's main path on disk (file or directory), when local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The directory listing (the model directory, or the directory holding a GGUF file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryFacts>,
}
