//! [`SourceError`]: one line naming the reference (repository, registry model or URL), the file
//! and what went wrong, with a kind a caller can act on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure a [`SourceError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceErrorKind {
    /// The reference text is malformed.
    BadReference,
    /// The repository, revision, tag or file does not exist.
    NotFound,
    /// The hub refused access: a gated or private repository without (or with a wrong) token.
    Unauthorized,
    /// No file of the repository matches the quantization tag or path asked for.
    NoMatchingFile,
    /// The files are neither GGUF nor a Hugging Face model, or a fetched header is malformed.
    NotAModel,
    /// Offline mode, and a file the model needs is in no cache.
    NotCached,
    /// The server kept failing (429, 5xx, dropped connections) after every retry, or answered
    /// with something unexpected.
    Network,
    /// A downloaded file does not have the SHA-256 the hub lists.
    Integrity,
    /// Reading or writing a local cache failed.
    Io,
}

/// A failure to find, read or download a model, in one line: `reference: file: what`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct SourceError {
    /// What kind of failure.
    pub kind: SourceErrorKind,
    /// The model reference: `hf://org/name@revision`, `ollama://name:tag`, a URL or a path.
    pub reference: String,
    /// The file inside the repository (or cache) concerned, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The HTTP status the server answered, when the failure is its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
}

impl SourceError {
    /// An error about the reference as a whole.
    pub fn new(
        kind: SourceErrorKind,
        reference: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        SourceError {
            kind,
            reference: reference.into(),
            file: None,
            status: None,
            message: message.into(),
        }
    }

    /// The same error, recording the HTTP status that caused it.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The same error, naming the file concerned.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reference)?;
        if let Some(file) = &self.file {
            write!(f, ": {file}")?;
        }
        // Keep the message on one line whatever the server sent.
        let message: String = self
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        write!(f, ": {message}")
    }
}

impl SourceErrorKind {
    /// The stable snake_case name (`not_found`), as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceErrorKind::BadReference => "bad_reference",
            SourceErrorKind::NotFound => "not_found",
            SourceErrorKind::Unauthorized => "unauthorized",
            SourceErrorKind::NoMatchingFile => "no_matching_file",
            SourceErrorKind::NotAModel => "not_a_model",
            SourceErrorKind::NotCached => "not_cached",
            SourceErrorKind::Network => "network",
            SourceErrorKind::Integrity => "integrity",
            SourceErrorKind::Io => "io",
        }
    }
}

impl From<SourceError> for inferkit_formats::Error {
    /// Into inferkit's error: a malformed reference is an invalid `model` parameter; every
    /// other failure keeps its reference, file, HTTP status and kind as an
    /// [`Error::Source`](inferkit_formats::Error::Source).
    fn from(err: SourceError) -> Self {
        match err.kind {
            SourceErrorKind::BadReference => {
                inferkit_formats::Error::invalid_parameter("model", err.to_string())
            }
            kind => inferkit_formats::Error::Source {
                reference: err.reference,
                file: err.file,
                status: err.status,
                problem: kind.as_str().into(),
                reason: err.message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_match_their_serialised_form() {
        for kind in [
            SourceErrorKind::BadReference,
            SourceErrorKind::NotFound,
            SourceErrorKind::Unauthorized,
            SourceErrorKind::NoMatchingFile,
            SourceErrorKind::NotAModel,
            SourceErrorKind::NotCached,
            SourceErrorKind::Network,
            SourceErrorKind::Integrity,
            SourceErrorKind::Io,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn converts_to_a_source_error_naming_reference_file_and_status() {
        let err = SourceError::new(
            SourceErrorKind::Unauthorized,
            "hf://meta-llama/Llama-3.1-8B",
            "access denied (HTTP 401)",
        )
        .in_file("config.json")
        .with_status(401);
        let converted = inferkit_formats::Error::from(err);
        assert_eq!(converted.kind().as_str(), "source");
        assert_eq!(
            converted.to_string(),
            "hf://meta-llama/Llama-3.1-8B: config.json: access denied (HTTP 401)"
        );
        let json = serde_json::to_value(&converted).unwrap();
        assert_eq!(json["kind"], "source");
        assert_eq!(json["problem"], "unauthorized");
        assert_eq!(json["status"], 401);
        assert_eq!(json["file"], "config.json");
    }
}
