//! The one error type of inferkit.
//!
//! Every crate of the workspace (drivers included) returns [`Error`]. Its variants are kinds a
//! caller can act on: fix the file, fix a parameter, pick other hardware, or report a probe
//! failure. Errors are plain data (serialisable and cloneable) so that a plan service can ship
//! them to its clients unchanged.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod rejection;

pub use rejection::Rejection;

/// Result alias used throughout inferkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in inferkit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
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
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The model, setting or hardware is valid but not supported by the chosen backend.
    #[error("unsupported: {0}")]
    Unsupported(String),
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

    /// Builds an [`Error::Io`] from an [`std::io::Error`].
    pub fn io(path: impl Into<PathBuf>, err: &std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            message: err.to_string(),
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
