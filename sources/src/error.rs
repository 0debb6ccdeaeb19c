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
            message: message.into(),
        }
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

impl From<SourceError> for inferkit_formats::Error {
    /// Into inferkit's error: a malformed header keeps its parse error; everything else is an
    /// unsupported model source with the one-line message.
    fn from(err: SourceError) -> Self {
        match err.kind {
            SourceErrorKind::BadReference => {
                inferkit_formats::Error::invalid_parameter("model", err.to_string())
            }
            _ => inferkit_formats::Error::unsupported(err.to_string()),
        }
    }
}
