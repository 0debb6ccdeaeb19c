//! Which files of a selection must be read to know the model, how much of each, and how the
//! [`ModelFacts`] are built from them once they are on disk (in a tool's cache or, header-only,
//! in the fetched-header cache): with the same readers a local path goes through, so a model
//! read from a hub has exactly the facts it would have once downloaded.

use std::collections::BTreeMap;
use std::path::Path;

use inferkit_formats::{DirectoryFacts, ModelFacts, ModelSource};
use serde::{Deserialize, Serialize};

use crate::error::{SourceError, SourceErrorKind};
use crate::listing::{RepoFile, RepoListing, Selection, relative};

/// Largest configuration file read whole, as [`DirectoryFacts::read`] keeps them.
pub(crate) const MAX_TEXT_FILE: u64 = 1 << 20;

/// How much of a file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Portion {
    /// The whole file (a small configuration file).
    Whole,
    /// A GGUF header.
    GgufHeader,
    /// A safetensors header.
    SafetensorsHeader,
    /// Nothing: its name alone matters (`pytorch_model*.bin`, whose presence tells the
    /// reader the weights are pickles).
    Name,
}

/// A file to read and how much of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needed {
    /// The file.
    pub file: RepoFile,
    /// How much of it.
    pub portion: Portion,
}

/// The files the facts of `selection` are read from.
pub fn needed_files(listing: &RepoListing, selection: &Selection) -> Vec<Needed> {
    let folder = selection.folder();
    let top_level = listing
        .under(folder)
        .filter(|f| relative(&f.path, folder).is_some_and(|r| !r.contains('/')));
    let mut needed: Vec<Needed> = top_level
        .filter(|f| is_config_text(&f.path) && f.size <= MAX_TEXT_FILE)
        .map(|f| need(f, Portion::Whole))
        .collect();
    match selection {
        Selection::Gguf { shards, projectors } => {
            for shard in shards {
                if let Some(f) = listing.file(shard) {
                    needed.push(need(f, Portion::GgufHeader));
                }
            }
            needed.extend(
                projectors
                    .iter()
                    .filter_map(|p| listing.file(p))
                    .map(|f| need(f, Portion::GgufHeader)),
            );
        }
        Selection::Folder { .. } => {
            let top: Vec<&RepoFile> = listing
                .under(folder)
                .filter(|f| relative(&f.path, folder).is_some_and(|r| !r.contains('/')))
                .collect();
            needed.extend(
                top.iter()
                    .filter(|f| f.path.ends_with(".safetensors"))
                    .map(|f| need(f, Portion::SafetensorsHeader)),
            );
            needed.extend(
                top.iter()
                    .filter(|f| {
                        let name = file_name(&f.path);
                        name.starts_with("pytorch_model") && name.ends_with(".bin")
                    })
                    .map(|f| need(f, Portion::Name)),
            );
        }
    }
    needed
}

fn need(file: &RepoFile, portion: Portion) -> Needed {
    Needed {
        file: file.clone(),
        portion,
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_config_text(path: &str) -> bool {
    [".json", ".yaml", ".yml"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// The facts of `selection`, whose files (or their headers) are under `root` laid out as in
/// the repository; `listing` gives the names and sizes of the files that are not.
pub fn facts_from_files(
    root: &Path,
    listing: &RepoListing,
    selection: &Selection,
    source: ModelSource,
    reference: &str,
) -> Result<ModelFacts, SourceError> {
    let folder = selection.folder();
    let main = match selection {
        Selection::Gguf { shards, .. } => root.join(&shards[0]),
        Selection::Folder { dir } => root.join(dir),
    };
    std::fs::create_dir_all(root.join(folder))
        .map_err(|e| SourceError::new(SourceErrorKind::Io, reference, e.to_string()))?;
    let local = ModelSource::LocalPath { path: main };
    let mut facts = ModelFacts::read(&local)
        .map_err(|e| SourceError::new(SourceErrorKind::NotAModel, reference, e.to_string()))?;
    let directory = directory_from_listing(listing, folder, &root.join(folder), reference)?;
    facts.directory = Some(directory);
    facts.source = source;
    facts.path = None;
    Ok(facts)
}

/// [`DirectoryFacts`] of `folder` from the listing: names one level down, sizes of the
/// top-level files, and the text of the small configuration files (read from `on_disk`).
fn directory_from_listing(
    listing: &RepoListing,
    folder: &str,
    on_disk: &Path,
    reference: &str,
) -> Result<DirectoryFacts, SourceError> {
    let mut files = Vec::new();
    let mut texts = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    for file in listing.under(folder) {
        let Some(rel) = relative(&file.path, folder) else {
            continue;
        };
        let mut parts = rel.splitn(3, '/');
        let first = parts.next().unwrap_or(rel);
        match parts.next() {
            Some(second) => files.push(format!("{first}/{second}")),
            None => {
                if is_config_text(rel) && file.size <= MAX_TEXT_FILE {
                    let path = on_disk.join(rel);
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        SourceError::new(SourceErrorKind::Io, reference, e.to_string())
                            .in_file(&file.path)
                    })?;
                    texts.insert(rel.to_string(), text);
                }
                sizes.insert(rel.to_string(), file.size);
                files.push(rel.to_string());
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(DirectoryFacts {
        files,
        texts,
        sizes,
    })
}
