//! Model references as users write them: `hf://ORG/NAME[@REVISION][:QUANT]`,
//! `hf://ORG/NAME[@REVISION]/PATH/IN/REPO`, `ms://...` (same forms), `ollama://NAME[:TAG]`,
//! `http(s)://...`, or a local path.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{SourceError, SourceErrorKind};

/// Where a model is, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelRef {
    /// A file or directory on this machine.
    Local {
        /// The path as given.
        path: PathBuf,
    },
    /// A Hugging Face repository (`hf://`).
    HuggingFace(RepoRef),
    /// A ModelScope repository (`ms://`).
    ModelScope(RepoRef),
    /// A model of an Ollama registry (`ollama://`).
    Ollama(OllamaRef),
    /// A GGUF file at a plain `http://` or `https://` address.
    Url {
        /// The address.
        url: String,
    },
}

/// A repository on a model hub, a revision of it, and which file or files of it make the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    /// `org/name`.
    pub repo: String,
    /// A branch, tag or commit; `None` means the hub's default branch (`main` on Hugging Face,
    /// `master` on ModelScope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Which files: chosen automatically, by quantization tag, or by path.
    #[serde(default)]
    pub file: FileChoice,
}

/// Which files of a repository make up the model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum FileChoice {
    /// The whole repository when it is a Hugging Face model directory; for a GGUF repository
    /// the [`DEFAULT_QUANT`] file, as llama.cpp's `-hf` picks it.
    #[default]
    Auto,
    /// A GGUF quantization tag (`Q4_K_M`), matched case-insensitively against file paths.
    Quant(String),
    /// A path inside the repository: a GGUF file (any shard of a split model) or a folder
    /// holding a model.
    Path(String),
}

/// The quantization picked from a GGUF repository when the reference names none (llama.cpp's
/// `-hf` default).
pub const DEFAULT_QUANT: &str = "Q4_K_M";

/// A model of an Ollama registry: `qwen2.5:7b`, `user/model:tag`, `hf.co/org/repo:Q4_K_M`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OllamaRef {
    /// The registry host when the reference names one (`hf.co`); `None` means the configured
    /// default registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `namespace/name` (`library/` implied for a bare name).
    pub name: String,
    /// The tag, `latest` when none is given.
    pub tag: String,
}

impl ModelRef {
    /// Parses a reference. Anything without one of the `hf://`, `ms://`, `ollama://`, `http://`
    /// or `https://` prefixes is a local path.
    pub fn parse(text: &str) -> Result<ModelRef, SourceError> {
        let bad = |why: &str| SourceError::new(SourceErrorKind::BadReference, text, why);
        if let Some(rest) = text.strip_prefix("hf://") {
            return parse_repo(rest).map(ModelRef::HuggingFace).map_err(bad);
        }
        if let Some(rest) = text.strip_prefix("ms://") {
            return parse_repo(rest).map(ModelRef::ModelScope).map_err(bad);
        }
        if let Some(rest) = text.strip_prefix("ollama://") {
            return parse_ollama(rest).map(ModelRef::Ollama).map_err(bad);
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            let host = text.split_once("://").map_or("", |(_, r)| r);
            if host.is_empty() || host.starts_with('/') {
                return Err(bad("the address has no host"));
            }
            return Ok(ModelRef::Url { url: text.into() });
        }
        if text.is_empty() {
            return Err(bad("empty model reference"));
        }
        Ok(ModelRef::Local { path: text.into() })
    }

    /// Whether reading this model may need the network (it is not a local path).
    pub fn is_remote(&self) -> bool {
        !matches!(self, ModelRef::Local { .. })
    }
}

impl FromStr for ModelRef {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelRef::parse(s)
    }
}

fn parse_repo(text: &str) -> Result<RepoRef, &'static str> {
    let (rest, slashed) = take_slashed_revision(text);
    let mut parts = rest.splitn(3, '/');
    let org = parts.next().unwrap_or_default();
    let name_part = parts
        .next()
        .ok_or("expected ORG/NAME (a repository id has two parts)")?;
    let path = parts.next();
    let (name_rev, quant) = match name_part.split_once(':') {
        Some((name_rev, quant)) => (name_rev, Some(quant)),
        None => (name_part, None),
    };
    let (name, revision) = match name_rev.split_once('@') {
        Some((name, revision)) => (name, Some(revision.replace("%2F", "/").replace("%2f", "/"))),
        None => (name_rev, slashed),
    };
    check_id_part(org)?;
    check_id_part(name)?;
    let malformed = |r: &String| {
        r.contains(char::is_whitespace) || r.split('/').any(|s| s.is_empty() || s == "..")
    };
    if revision.as_ref().is_some_and(malformed) {
        return Err("empty or malformed revision after `@`");
    }
    let file = match (quant, path) {
        (Some(_), Some(_)) => return Err("give either :QUANT or /PATH, not both"),
        (Some(q), None) if q.is_empty() || !q.bytes().all(is_quant_byte) => {
            return Err("a quantization tag is letters, digits, `_` and `-` (Q4_K_M)");
        }
        (Some(q), None) => FileChoice::Quant(q.into()),
        (None, Some(p)) if p.is_empty() || p.split('/').any(|s| s.is_empty() || s == "..") => {
            return Err("malformed path inside the repository");
        }
        (None, Some(p)) => FileChoice::Path(p.into()),
        (None, None) => FileChoice::Auto,
    };
    Ok(RepoRef {
        repo: format!("{org}/{name}"),
        revision,
        file,
    })
}

/// The hub's revisions that contain `/` (`refs/pr/N` for a pull request, `refs/convert/NAME`
/// for a conversion branch: always three segments) taken out of `ORG/NAME@refs/pr/1[:QUANT]
/// [/PATH]`, so that the rest parses like any reference. `@refs%2Fpr%2F1`, as the hub
/// encodes it in URLs, needs no help.
fn take_slashed_revision(text: &str) -> (std::borrow::Cow<'_, str>, Option<String>) {
    let Some(at) = text.find("@refs/") else {
        return (text.into(), None);
    };
    let mut segments = text[at + 1..].splitn(4, '/');
    let (_refs, kind, last, path) = (
        segments.next(),
        segments.next().unwrap_or_default(),
        segments.next().unwrap_or_default(),
        segments.next(),
    );
    let (id, quant) = match last.split_once(':') {
        Some((id, quant)) => (id, Some(quant)),
        None => (last, None),
    };
    let mut rest = text[..at].to_string();
    if let Some(quant) = quant {
        rest.push(':');
        rest.push_str(quant);
    }
    if let Some(path) = path {
        rest.push('/');
        rest.push_str(path);
    }
    (rest.into(), Some(format!("refs/{kind}/{id}")))
}

/// Hub ids are letters, digits, `-`, `_` and `.`, not starting with `.` (Hugging Face's rule).
fn check_id_part(part: &str) -> Result<(), &'static str> {
    let ok = !part.is_empty()
        && !part.starts_with('.')
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("expected ORG/NAME of letters, digits, `-`, `_` and `.`")
    }
}

fn is_quant_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn parse_ollama(rest: &str) -> Result<OllamaRef, &'static str> {
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, tag),
        _ => (rest, "latest"),
    };
    if tag.is_empty() || !tag.bytes().all(|b| is_quant_byte(b) || b == b'.') {
        return Err("malformed tag after `:`");
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.iter().any(|s| s.is_empty() || *s == "..") {
        return Err("expected NAME, NAMESPACE/NAME or HOST/NAMESPACE/NAME");
    }
    // A first segment with a dot is a host (`hf.co/org/repo`), as in Docker references.
    let (host, names) = match segments.as_slice() {
        [host, rest @ ..] if host.contains('.') && !rest.is_empty() => (Some(*host), rest),
        all => (None, all),
    };
    let name = match names {
        [name] => format!("library/{name}"),
        [namespace, name] => format!("{namespace}/{name}"),
        [_, org, repo] if host.is_some() => format!("{org}/{repo}"),
        _ => return Err("expected NAME, NAMESPACE/NAME or HOST/NAMESPACE/NAME"),
    };
    // Ollama's own library names are lower case; other hosts (Hugging Face) keep theirs.
    let name = match host {
        None => name.to_ascii_lowercase(),
        Some(_) => name,
    };
    Ok(OllamaRef {
        host: host.map(Into::into),
        name,
        tag: tag.into(),
    })
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Local { path } => write!(f, "{}", path.display()),
            ModelRef::HuggingFace(repo) => write!(f, "hf://{repo}"),
            ModelRef::ModelScope(repo) => write!(f, "ms://{repo}"),
            ModelRef::Ollama(model) => write!(f, "ollama://{model}"),
            ModelRef::Url { url } => f.write_str(url),
        }
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repo)?;
        if let Some(revision) = &self.revision {
            write!(f, "@{revision}")?;
        }
        match &self.file {
            FileChoice::Auto => Ok(()),
            FileChoice::Quant(quant) => write!(f, ":{quant}"),
            FileChoice::Path(path) => write!(f, "/{path}"),
        }
    }
}

impl fmt::Display for OllamaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.host {
            write!(f, "{host}/")?;
        }
        let name = self.name.strip_prefix("library/").unwrap_or(&self.name);
        write!(f, "{name}:{}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hf(text: &str) -> RepoRef {
        match ModelRef::parse(text).expect(text) {
            ModelRef::HuggingFace(repo) => repo,
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    #[test]
    fn hub_references_in_every_spelling() {
        let plain = hf("hf://Qwen/Qwen2.5-7B-Instruct");
        assert_eq!(plain.repo, "Qwen/Qwen2.5-7B-Instruct");
        assert_eq!((plain.revision, plain.file), (None, FileChoice::Auto));

        let quant = hf("hf://bartowski/Llama-3.3-70B-Instruct-GGUF@v1.0:q4_k_m");
        assert_eq!(quant.revision.as_deref(), Some("v1.0"));
        assert_eq!(quant.file, FileChoice::Quant("q4_k_m".into()));

        let path =
            hf("hf://unsloth/DeepSeek-R1-GGUF/Q4_K_M/DeepSeek-R1-Q4_K_M-00001-of-00009.gguf");
        assert_eq!(path.revision, None);
        assert_eq!(
            path.file,
            FileChoice::Path("Q4_K_M/DeepSeek-R1-Q4_K_M-00001-of-00009.gguf".into())
        );
        let pr = hf("hf://org/name-GGUF@refs/pr/12:Q8_0");
        assert_eq!(pr.revision.as_deref(), Some("refs/pr/12"));
        assert_eq!(pr.file, FileChoice::Quant("Q8_0".into()));
        let pr = hf("hf://org/name@refs/convert/parquet/sub/model.gguf");
        assert_eq!(pr.revision.as_deref(), Some("refs/convert/parquet"));
        assert_eq!(pr.file, FileChoice::Path("sub/model.gguf".into()));
        assert_eq!(
            hf("hf://org/name@refs%2Fpr%2F3").revision.as_deref(),
            Some("refs/pr/3")
        );
        assert_eq!(
            ModelRef::parse("hf://org/name@refs/pr/12:Q8_0")
                .unwrap()
                .to_string(),
            "hf://org/name@refs/pr/12:Q8_0"
        );
        let ms = ModelRef::parse("ms://qwen/Qwen2.5-0.5B-Instruct-GGUF@master:Q8_0").unwrap();
        assert_eq!(
            ms.to_string(),
            "ms://qwen/Qwen2.5-0.5B-Instruct-GGUF@master:Q8_0"
        );
    }

    #[test]
    fn malformed_hub_references_are_refused_naming_the_text() {
        for bad in [
            "hf://Qwen",
            "hf://Qwen/",
            "hf:///name",
            "hf://org/name@",
            "hf://org/name@refs/pr",
            "hf://org/name@refs%2F..%2Fx",
            "hf://org/name:",
            "hf://org/name:Q4/x.gguf",
            "hf://org/name/../x",
            "hf://org/name//x",
            "hf://org/na me",
            "hf://.org/name",
        ] {
            let err = ModelRef::parse(bad).expect_err(bad);
            assert_eq!(err.kind, SourceErrorKind::BadReference, "{bad}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn ollama_names_take_the_library_namespace_and_latest_tag() {
        let parse = |text: &str| match ModelRef::parse(text).unwrap() {
            ModelRef::Ollama(r) => r,
            other => panic!("{other:?}"),
        };
        let plain = parse("ollama://qwen2.5");
        assert_eq!(
            (plain.name.as_str(), plain.tag.as_str()),
            ("library/qwen2.5", "latest")
        );
        let tagged = parse("ollama://qwen2.5:7b-instruct-q4_K_M");
        assert_eq!(tagged.tag, "7b-instruct-q4_K_M");
        let user = parse("ollama://someone/model:1.5");
        assert_eq!((user.host, user.name.as_str()), (None, "someone/model"));
        let hf = parse("ollama://hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M");
        assert_eq!(hf.host.as_deref(), Some("hf.co"));
        assert_eq!(hf.name, "bartowski/Llama-3.2-1B-Instruct-GGUF");
        assert_eq!(
            hf.to_string(),
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
        );
        assert_eq!(parse("ollama://Qwen2.5").name, "library/qwen2.5");
        assert!(ModelRef::parse("ollama://a/b/c/d").is_err());
    }

    #[test]
    fn urls_and_paths() {
        assert_eq!(
            ModelRef::parse("https://example.com/m.gguf").unwrap(),
            ModelRef::Url {
                url: "https://example.com/m.gguf".into()
            }
        );
        assert!(ModelRef::parse("https:///m.gguf").is_err());
        assert_eq!(
            ModelRef::parse("models/qwen.gguf").unwrap(),
            ModelRef::Local {
                path: "models/qwen.gguf".into()
            }
        );
        assert!(!ModelRef::parse("/m").unwrap().is_remote());
    }
}
