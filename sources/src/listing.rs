//! What a repository holds at one commit, and which of its files make up the model: the GGUF
//! file of a quantization tag (as llama.cpp's `-hf org/name:Q4_K_M` picks it) with its split
//! siblings and projectors, or a model folder.

use std::path::Path;

use inferkit_formats::gguf::parse_split_name;
use serde::{Deserialize, Serialize};

use crate::reference::{DEFAULT_QUANT, FileChoice};

/// One file of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFile {
    /// Path inside the repository, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The SHA-256 of the content (hex), when the hub lists it (Hugging Face LFS files,
    /// ModelScope files, Ollama blobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where the file is fetched from, for a model that is no hub's (a URL model's shards);
    /// a hub's files are at the address its own rule gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The files of a repository at one resolved commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoListing {
    /// The commit the revision resolved to (for Ollama, the manifest digest).
    pub commit: String,
    /// Every file, sorted by path.
    pub files: Vec<RepoFile>,
}

impl RepoListing {
    /// The file at `path`.
    pub fn file(&self, path: &str) -> Option<&RepoFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Sorts the files by path (the order [`RepoListing::file`] relies on).
    pub fn sort(&mut self) {
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// The files directly in `dir` (`""` for the top level) and one level below it: what
    /// [`DirectoryFacts`](inferkit_formats::DirectoryFacts) lists for a local directory.
    pub fn under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a RepoFile> + 'a {
        self.files
            .iter()
            .filter(move |f| relative(&f.path, dir).is_some())
    }
}

/// `path` relative to `dir` when it is inside it.
pub(crate) fn relative<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    if dir.is_empty() {
        return Some(path);
    }
    path.strip_prefix(dir)?.strip_prefix('/')
}

/// The parent folder of a repository path (`""` at the top level).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Which files of a repository to read, as [`select`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Selection {
    /// A GGUF model.
    Gguf {
        /// Every shard in order (one file for an unsplit model).
        shards: Vec<String>,
        /// Projector (`*mmproj*.gguf`) files in the model's folder.
        projectors: Vec<String>,
    },
    /// A model folder (`""` for the repository root): a Hugging Face model or a speech model
    /// recognised by its files.
    Folder {
        /// The folder.
        dir: String,
    },
}

impl Selection {
    /// The folder whose listing the model's facts describe.
    pub fn folder(&self) -> &str {
        match self {
            Selection::Gguf { shards, .. } => parent(&shards[0]),
            Selection::Folder { dir } => dir,
        }
    }
}

/// Why [`select`] found nothing; the caller names the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// No file matches the quantization tag; the tags that exist are listed.
    NoQuant {
        /// The tag asked for.
        quant: String,
        /// GGUF model files of the repository (first shards only).
        available: Vec<String>,
    },
    /// No file or folder at the path.
    NoPath(String),
    /// A shard of a split model is missing from the listing.
    MissingShard(String),
    /// The repository holds neither a GGUF file nor a `config.json`.
    NotAModel,
}

impl std::fmt::Display for SelectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelectError::NoQuant { quant, available } if available.is_empty() => {
                write!(f, "no GGUF file matches `{quant}`; the repository has none")
            }
            SelectError::NoQuant { quant, available } => write!(
                f,
                "no GGUF file matches `{quant}`; available: {}",
                available.join(", ")
            ),
            SelectError::NoPath(path) => write!(f, "no file or folder `{path}`"),
            SelectError::MissingShard(path) => {
                write!(
                    f,
                    "shard `{path}` of a split model is not in the repository"
                )
            }
            SelectError::NotAModel => f.write_str(
                "neither a GGUF file nor a config.json with safetensors: not a model repository",
            ),
        }
    }
}

/// Decides which files make up the model.
///
/// - [`FileChoice::Path`]: that GGUF file (with its split siblings), or that folder.
/// - [`FileChoice::Quant`]: the GGUF file whose path contains the tag, compared
///   case-insensitively and bounded by non-alphanumeric characters (so `Q4_K` does not take
///   `Q4_K_M` and `Q4_XS` does not take `IQ4_XS`); the first such model by path.
/// - [`FileChoice::Auto`]: the repository root when it has a `config.json` or no GGUF file;
///   else the [`DEFAULT_QUANT`] file, else the only GGUF model of the repository.
pub fn select(listing: &RepoListing, choice: &FileChoice) -> Result<Selection, SelectError> {
    match choice {
        FileChoice::Path(path) if path.ends_with(".gguf") => {
            if listing.file(path).is_none() {
                return Err(SelectError::NoPath(path.clone()));
            }
            gguf_selection(listing, path)
        }
        FileChoice::Path(path) => {
            let dir = path.trim_end_matches('/');
            if listing.under(dir).next().is_none() {
                return Err(SelectError::NoPath(path.clone()));
            }
            Ok(Selection::Folder { dir: dir.into() })
        }
        FileChoice::Quant(quant) => by_quant(listing, quant),
        FileChoice::Auto => {
            let models = gguf_models(listing);
            if listing.file("config.json").is_some() || models.is_empty() {
                return Ok(Selection::Folder { dir: String::new() });
            }
            match by_quant(listing, DEFAULT_QUANT) {
                Err(SelectError::NoQuant { .. }) if models.len() == 1 => {
                    gguf_selection(listing, models[0])
                }
                other => other,
            }
        }
    }
}

/// GGUF model files (first shards of split models; projectors left out), by path.
fn gguf_models(listing: &RepoListing) -> Vec<&str> {
    listing
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.ends_with(".gguf") && !is_projector(p))
        .filter(|p| parse_split_name(Path::new(p)).is_none_or(|s| s.number == 1))
        .collect()
}

fn is_projector(path: &str) -> bool {
    file_name(path).to_ascii_lowercase().contains("mmproj")
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn by_quant(listing: &RepoListing, quant: &str) -> Result<Selection, SelectError> {
    let models = gguf_models(listing);
    match models.iter().find(|p| contains_tag(p, quant)) {
        Some(path) => gguf_selection(listing, path),
        None => Err(SelectError::NoQuant {
            quant: quant.into(),
            available: models.iter().map(|p| p.to_string()).collect(),
        }),
    }
}

/// Whether `tag` occurs in `path` (ignoring case) with no letter or digit right before or
/// after it.
fn contains_tag(path: &str, tag: &str) -> bool {
    let path = path.to_ascii_lowercase();
    let tag = tag.to_ascii_lowercase();
    let alnum_at = |i: Option<usize>| {
        i.and_then(|i| path.as_bytes().get(i))
            .is_some_and(|b| b.is_ascii_alphanumeric())
    };
    path.match_indices(&tag).any(|(start, _)| {
        let end = start + tag.len();
        let after_underscore = path[end..].starts_with('_')
            && path
                .as_bytes()
                .get(end + 1)
                .is_some_and(u8::is_ascii_alphabetic);
        !alnum_at(start.checked_sub(1)) && !alnum_at(Some(end)) && !after_underscore
    })
}

/// The shards of the model at `path` and the projectors beside it.
fn gguf_selection(listing: &RepoListing, path: &str) -> Result<Selection, SelectError> {
    let shards = match parse_split_name(Path::new(path)) {
        Some(split) => (1..=split.count)
            .map(|n| split.shard_path(n).to_string_lossy().replace('\\', "/"))
            .map(|shard| match listing.file(&shard) {
                Some(_) => Ok(shard),
                None => Err(SelectError::MissingShard(shard)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![path.to_string()],
    };
    let dir = parent(path);
    let projectors = listing
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| parent(p) == dir && p.ends_with(".gguf") && is_projector(p))
        .map(Into::into)
        .collect();
    Ok(Selection::Gguf { shards, projectors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(paths: &[&str]) -> RepoListing {
        let mut listing = RepoListing {
            commit: "c".into(),
            files: paths
                .iter()
                .map(|p| RepoFile {
                    path: p.to_string(),
                    size: 1,
                    sha256: None,
                    url: None,
                })
                .collect(),
        };
        listing.sort();
        listing
    }

    fn shards(sel: Result<Selection, SelectError>) -> Vec<String> {
        match sel.expect("selected") {
            Selection::Gguf { shards, .. } => shards,
            other => panic!("{other:?}"),
        }
    }

    const BARTOWSKI: &[&str] = &[
        "README.md",
        "Llama-3.3-70B-Instruct-IQ4_XS.gguf",
        "Llama-3.3-70B-Instruct-Q4_K_L.gguf",
        "Llama-3.3-70B-Instruct-Q4_K_M.gguf",
        "Llama-3.3-70B-Instruct-Q4_K.gguf",
        "Llama-3.3-70B-Instruct-Q8_0/Llama-3.3-70B-Instruct-Q8_0-00001-of-00002.gguf",
        "Llama-3.3-70B-Instruct-Q8_0/Llama-3.3-70B-Instruct-Q8_0-00002-of-00002.gguf",
        "mmproj-Llama-3.3-70B-Instruct-f16.gguf",
    ];

    #[test]
    fn quant_tags_match_whole_tags_ignoring_case() {
        let repo = listing(BARTOWSKI);
        let pick = |q: &str| shards(select(&repo, &FileChoice::Quant(q.into())));
        assert_eq!(pick("q4_k_m"), ["Llama-3.3-70B-Instruct-Q4_K_M.gguf"]);
        assert_eq!(pick("Q4_K"), ["Llama-3.3-70B-Instruct-Q4_K.gguf"]);
        assert_eq!(pick("IQ4_XS"), ["Llama-3.3-70B-Instruct-IQ4_XS.gguf"]);
        assert_eq!(
            pick("Q8_0"),
            [
                "Llama-3.3-70B-Instruct-Q8_0/Llama-3.3-70B-Instruct-Q8_0-00001-of-00002.gguf",
                "Llama-3.3-70B-Instruct-Q8_0/Llama-3.3-70B-Instruct-Q8_0-00002-of-00002.gguf",
            ]
        );
        // The default tag, and the projector beside the model.
        match select(&repo, &FileChoice::Auto).unwrap() {
            Selection::Gguf { shards, projectors } => {
                assert_eq!(shards, ["Llama-3.3-70B-Instruct-Q4_K_M.gguf"]);
                assert_eq!(projectors, ["mmproj-Llama-3.3-70B-Instruct-f16.gguf"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_tag_lists_what_exists() {
        let repo = listing(BARTOWSKI);
        let err = select(&repo, &FileChoice::Quant("Q5_K_M".into())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no GGUF file matches `Q5_K_M`"), "{text}");
        assert!(
            text.contains("Llama-3.3-70B-Instruct-IQ4_XS.gguf"),
            "{text}"
        );
        assert!(!text.contains("00002-of"), "first shards only: {text}");
        assert!(!text.contains("mmproj"), "{text}");
    }

    #[test]
    fn paths_take_any_shard_and_folders() {
        let repo = listing(BARTOWSKI);
        let second = "Llama-3.3-70B-Instruct-Q8_0/Llama-3.3-70B-Instruct-Q8_0-00002-of-00002.gguf";
        assert_eq!(
            shards(select(&repo, &FileChoice::Path(second.into()))).len(),
            2
        );
        assert_eq!(
            select(
                &repo,
                &FileChoice::Path("Llama-3.3-70B-Instruct-Q8_0".into())
            )
            .unwrap(),
            Selection::Folder {
                dir: "Llama-3.3-70B-Instruct-Q8_0".into()
            }
        );
        assert_eq!(
            select(&repo, &FileChoice::Path("nope.gguf".into())),
            Err(SelectError::NoPath("nope.gguf".into()))
        );
        let broken = listing(&["m-00001-of-00003.gguf", "m-00003-of-00003.gguf"]);
        assert_eq!(
            select(&broken, &FileChoice::Auto),
            Err(SelectError::MissingShard("m-00002-of-00003.gguf".into()))
        );
    }

    #[test]
    fn auto_prefers_a_model_directory_then_the_default_tag_then_the_only_gguf() {
        let hf = listing(&["config.json", "model.safetensors", "extra-Q4_K_M.gguf"]);
        assert_eq!(
            select(&hf, &FileChoice::Auto).unwrap(),
            Selection::Folder { dir: String::new() }
        );
        let only = listing(&["tiny-F16.gguf", "mmproj-tiny-f16.gguf"]);
        assert_eq!(shards(select(&only, &FileChoice::Auto)), ["tiny-F16.gguf"]);
        let many = listing(&["a-F16.gguf", "a-Q8_0.gguf"]);
        assert!(matches!(
            select(&many, &FileChoice::Auto),
            Err(SelectError::NoQuant { .. })
        ));
    }
}
