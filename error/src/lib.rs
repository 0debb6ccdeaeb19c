//! The one error type of inferkit.
//!
//! Every crate of the workspace (drivers included) returns [`Error`]. Its variants are kinds a
//! caller can act on: fix the file, fix a parameter, pick other hardware, or report a probe
//! failure. Errors are plain data (serialisable and cloneable) so that a plan service can ship
//! them to its clients unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod kind;
mod rejection;

pub use kind::ErrorKind;
pub use rejection::{Candidate, DeviceRef, PlacementMode, Rejection};

/// Result alias used throughout inferkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in inferkit.
///
/// Serialised, an error is an object whose `kind` is [`Error::kind`] and whose other fields are
/// the variant's; the operating system's error of [`Error::Io`] travels as its `message`.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Error {
    /// A model or inventory file is malformed, truncated or hostile.
    #[error("{}: at offset {offset}: {what}", file.display())]
    Parse {
        /// The file being read.
        file: PathBuf,
        /// Byte offset (or, for text formats, line-based position encoded as byte offset) where
        /// the problem was found.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// Reading or writing a file failed at the operating-system level.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error (shared, so that the error stays cheap to clone).
        #[source]
        #[serde(rename = "message", with = "io_message")]
        source: Arc<std::io::Error>,
    },
    /// The model, setting or hardware is valid but not supported by the chosen backend.
    #[error("unsupported: {reason}")]
    Unsupported {
        /// What is not supported and why, in a sentence.
        reason: String,
    },
    /// A user-supplied parameter (backend flag, option, selector) is invalid.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter as the user wrote it (for example `--cache-type-v`).
        name: String,
        /// Why it was refused, with the accepted values where they are known.
        reason: String,
    },
    /// The model does not fit the devices it was asked to fit.
    #[error("does not fit: {reason} (needs {needed} bytes, {available} bytes available)")]
    DoesNotFit {
        /// Bytes the model needs on the tightest device or set of devices.
        needed: u64,
        /// Bytes available there.
        available: u64,
        /// A sentence explaining which term did not fit where.
        reason: String,
    },
    /// No placement of the model fits the cluster: every option considered, and why each was
    /// refused.
    #[error("{reason}")]
    NoPlacement {
        /// One sentence naming the model, the backend and the largest option refused.
        reason: String,
        /// What the planner did, in order.
        explanation: Vec<String>,
        /// Every option refused, with the numbers that refused it.
        rejected: Vec<Rejection>,
    },
    /// A device probe failed although its driver or tool is present.
    #[error("probe {probe} failed: {reason}")]
    Probe {
        /// The probe (`nvml`, `npu-smi`, `rocm-smi`, `host`, ...).
        probe: String,
        /// What failed.
        reason: String,
    },
    /// Launching or supervising a backend process failed.
    #[error("process {name}: {reason}")]
    Process {
        /// The process role and instance name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// A model could not be found, read or downloaded where its reference points (a hub
    /// repository, a registry, a URL or a cache).
    #[error("{reference}{}: {reason}", file.as_ref().map(|f| format!(": {f}")).unwrap_or_default())]
    Source {
        /// The model reference (`hf://org/name@revision`, `ollama://name:tag`, a URL).
        reference: String,
        /// The file of the repository concerned, when one is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        /// The HTTP status the server answered, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// What went wrong, as a stable snake_case name: `not_found`, `unauthorized`,
        /// `no_matching_file`, `not_a_model`, `not_cached`, `network`, `integrity`, `io`.
        problem: String,
        /// What went wrong, in one line.
        reason: String,
    },
}

impl Error {
    /// Builds a [`Error::Parse`].
    pub fn parse(file: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Self {
        Error::Parse {
            file: file.into(),
            offset,
            what: what.into(),
        }
    }

    /// Builds an [`Error::Io`] from an [`std::io::Error`], which it keeps as its source.
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source: Arc::new(err),
        }
    }

    /// Builds an [`Error::Io`] that inferkit raises itself (a missing shard, a device file it
    /// refuses to read), with an [`std::io::Error`] of this kind and message as its source.
    pub fn io_with(
        path: impl Into<PathBuf>,
        kind: std::io::ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self::io(path, std::io::Error::new(kind, message.into()))
    }

    /// The stable, machine-readable kind of this error (the `kind` field of its JSON form).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse { .. } => ErrorKind::Parse,
            Error::Io { .. } => ErrorKind::Io,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::InvalidParameter { .. } => ErrorKind::InvalidParameter,
            Error::DoesNotFit { .. } => ErrorKind::DoesNotFit,
            Error::NoPlacement { .. } => ErrorKind::NoPlacement,
            Error::Probe { .. } => ErrorKind::Probe,
            Error::Process { .. } => ErrorKind::Process,
            Error::Source { .. } => ErrorKind::Source,
        }
    }

    /// Builds an [`Error::Unsupported`].
    pub fn unsupported(reason: impl Into<String>) -> Self {
        Error::Unsupported {
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::InvalidParameter`].
    pub fn invalid_parameter(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// Two errors are equal when they are of the same variant with equal fields; the sources of
/// [`Error::Io`] compare by their message, the part of them that survives JSON.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        use Error::*;
        match (self, other) {
            (
                Parse { file, offset, what },
                Parse {
                    file: f,
                    offset: o,
                    what: w,
                },
            ) => (file, offset, what) == (f, o, w),
            (Io { path, source }, Io { path: p, source: s }) => {
                path == p && source.to_string() == s.to_string()
            }
            (Unsupported { reason }, Unsupported { reason: r }) => reason == r,
            (InvalidParameter { name, reason }, InvalidParameter { name: n, reason: r }) => {
                (name, reason) == (n, r)
            }
            (
                DoesNotFit {
                    needed,
                    available,
                    reason,
                },
                DoesNotFit {
                    needed: n,
                    available: a,
                    reason: r,
                },
            ) => (needed, available, reason) == (n, a, r),
            (
                NoPlacement {
                    reason,
                    explanation,
                    rejected,
                },
                NoPlacement {
                    reason: r,
                    explanation: e,
                    rejected: j,
                },
            ) => (reason, explanation, rejected) == (r, e, j),
            (
                Probe { probe, reason },
                Probe {
                    probe: p,
                    reason: r,
                },
            ) => (probe, reason) == (p, r),
            (Process { name, reason }, Process { name: n, reason: r }) => (name, reason) == (n, r),
            (
                Source {
                    reference,
                    file,
                    status,
                    problem,
                    reason,
                },
                Source {
                    reference: f,
                    file: fi,
                    status: s,
                    problem: p,
                    reason: r,
                },
            ) => (reference, file, status, problem, reason) == (f, fi, s, p, r),
            _ => false,
        }
    }
}

impl Eq for Error {}

/// [`Error::Io`]'s source as the text of its message, in both directions.
mod io_message {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(source: &Arc<std::io::Error>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(source)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<std::io::Error>, D::Error> {
        let message = String::deserialize(d)?;
        Ok(Arc::new(std::io::Error::other(message)))
    }
}
