//! What the model files say: [`ModelFacts`], read once per plan and shared by every backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::read_text_file;
use crate::gguf::GgufModel;
use crate::hf::HfModel;
use crate::source::ModelSource;
use crate::{Error, Result};

/// The on-disk format of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
    /// Names of the regular files relative to the directory (top level, and one level down
    /// where listed unchecked), sorted.
    pub files: Vec<String>,
    /// Content of the top-level `*.json`, `*.yaml` and `*.yml` files up to 1 MiB, by name.
    pub texts: BTreeMap<String, String>,
    /// Sizes in bytes of the top-level files, by name (speech backends size a model by its
    /// main weight file, as GPUStack's vox-box selector does).
    #[serde(default)]
    pub sizes: BTreeMap<String, u64>,
}

impl DirectoryFacts {
    /// Lists `dir` and reads its small configuration files.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut facts = DirectoryFacts::default();
        for entry in read_dir_sorted(dir)? {
            let name = entry_name(&entry);
            // Follow symlinks: Hugging Face cache snapshots are trees of links into blobs/.
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            if meta.is_dir() {
                for sub in read_dir_sorted(&path)? {
                    facts.files.push(format!("{name}/{}", entry_name(&sub)));
                }
                continue;
            }
            // A FIFO, socket or device is no model file, and reading one (a projector candidate
            // named `mmproj-*.gguf`) would block or never end: such entries are not listed.
            if !meta.is_file() {
                continue;
            }
            if is_config_text(&name) && meta.len() <= MAX_TEXT_FILE {
                let text = read_text_file(&path, MAX_TEXT_FILE)?;
                facts.texts.insert(name.clone(), text);
            }
            facts.sizes.insert(name.clone(), meta.len());
            facts.files.push(name);
        }
        facts.files.sort();
        Ok(facts)
    }

    /// Whether the directory has a file of this relative name.
    pub fn has_file(&self, name: &str) -> bool {
        self.files
            .binary_search_by(|f| f.as_str().cmp(name))
            .is_ok()
    }

    /// The GGUF model file of a directory holding exactly one GGUF model (its first shard when
    /// split), ignoring projector (`*mmproj*`) files. `None` when there is none or several.
    fn single_gguf_model(&self) -> Option<&str> {
        let mut models = self
            .files
            .iter()
            .filter(|f| !f.contains('/') && f.ends_with(".gguf") && !f.contains("mmproj"))
            .filter(|f| match crate::gguf::parse_split_name(Path::new(f)) {
                Some(split) => split.number == 1,
                None => true,
            });
        let first = models.next()?;
        models.next().is_none().then_some(first.as_str())
    }

    /// Parses a kept JSON file.
    pub fn json(&self, name: &str) -> Option<serde_json::Value> {
        serde_json::from_str(self.texts.get(name)?).ok()
    }
}

/// Whether the directory has a `config.json` (kept in [`DirectoryFacts::texts`]) that looks like
/// a transformers config (it names `architectures` or a `model_type`), as opposed to another
/// tool's config file.
fn is_hf_config(directory: &DirectoryFacts) -> bool {
    directory.json("config.json").is_some_and(|config| {
        config.get("architectures").is_some() || config.get("model_type").is_some()
    })
}

fn is_config_text(name: &str) -> bool {
    [".json", ".yaml", ".yml"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn entry_name(entry: &std::fs::DirEntry) -> String {
    entry.file_name().to_string_lossy().into_owned()
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// What the model files say, read once and handed to every backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// The parsed GGUF header (all shards), for GGUF models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf: Option<GgufModel>,
    /// The parsed `config.json` and safetensors headers, for Hugging Face directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf: Option<HfModel>,
}

impl ModelFacts {
    /// Facts of a model of `format` from `source` with nothing read (set the fields to add what
    /// is known): what a caller that reads the files itself starts from.
    pub fn new(source: ModelSource, format: ModelFormat) -> Self {
        ModelFacts {
            source,
            format,
            path: None,
            directory: None,
            gguf: None,
            hf: None,
        }
    }

    /// Reads what the files of `source` say. Local GGUF files (or a directory holding one GGUF
    /// model) are parsed header-only; directories are listed with their small config files.
    /// Remote sources yield facts with no files.
    pub fn read(source: &ModelSource) -> Result<ModelFacts> {
        let Some(path) = source.local_path() else {
            return Ok(ModelFacts {
                source: source.clone(),
                format: ModelFormat::Remote,
                path: None,
                directory: None,
                gguf: None,
                hf: None,
            });
        };
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            Self::read_directory(source, path)
        } else {
            Self::read_gguf(source, path)
        }
    }

    fn read_gguf(source: &ModelSource, file: &Path) -> Result<ModelFacts> {
        let gguf = GgufModel::open(file)?;
        let dir = file
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(Self::gguf_facts(
            source,
            file,
            gguf,
            DirectoryFacts::read(dir)?,
        ))
    }

    fn read_directory(source: &ModelSource, dir: &Path) -> Result<ModelFacts> {
        let directory = DirectoryFacts::read(dir)?;
        if let Some(file) = directory.single_gguf_model() {
            let file = dir.join(file);
            let gguf = GgufModel::open(&file)?;
            return Ok(Self::gguf_facts(source, &file, gguf, directory));
        }
        // A directory with a config.json is a Hugging Face model only when that config parses
        // as one; speech models (CosyVoice, Dia) carry config files of other shapes.
        let hf = if is_hf_config(&directory) {
            Some(HfModel::open(dir)?)
        } else {
            None
        };
        let format = match hf {
            Some(_) => ModelFormat::Safetensors,
            None => ModelFormat::Directory,
        };
        Ok(ModelFacts {
            source: source.clone(),
            format,
            path: Some(dir.to_path_buf()),
            directory: Some(directory),
            gguf: None,
            hf,
        })
    }

    fn gguf_facts(
        source: &ModelSource,
        file: &Path,
        gguf: GgufModel,
        directory: DirectoryFacts,
    ) -> ModelFacts {
        ModelFacts {
            source: source.clone(),
            format: ModelFormat::Gguf,
            path: Some(file.to_path_buf()),
            directory: Some(directory),
            gguf: Some(gguf),
            hf: None,
        }
    }

    /// The Hugging Face model, or [`Error::Unsupported`] saying the model has no `config.json`.
    pub fn require_hf(&self) -> Result<&HfModel> {
        self.hf.as_ref().ok_or_else(|| {
            Error::unsupported(format!(
                "{} is not a Hugging Face model directory (no config.json)",
                self.source.display_name()
            ))
        })
    }

    /// The GGUF header, or [`Error::Unsupported`] saying the model is not a GGUF file.
    pub fn require_gguf(&self) -> Result<&GgufModel> {
        self.gguf.as_ref().ok_or_else(|| {
            Error::unsupported(format!(
                "{} is not a GGUF model",
                self.source.display_name()
            ))
        })
    }
}
