//! [`ErrorKind`]: what kind of [`Error`](crate::Error) occurred, as a stable name.

use serde::{Deserialize, Serialize};

/// The kind of an [`Error`](crate::Error): what a caller can act on, under a name that stays
/// the same across releases (its snake_case form is the `kind` field of the error's JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A model or inventory file is malformed: fix the file.
    Parse,
    /// The operating system refused a read or write: fix the path or its permissions.
    Io,
    /// The chosen backend does not support the model, setting or hardware.
    Unsupported,
    /// A user-supplied parameter is invalid: fix the parameter.
    InvalidParameter,
    /// The model does not fit the devices it was asked to fit.
    DoesNotFit,
    /// No placement fits the cluster.
    NoPlacement,
    /// A device probe failed.
    Probe,
    /// Launching or supervising a process failed.
    Process,
    /// A model reference could not be resolved, read or downloaded (hub, registry, URL or
    /// cache): the reference, file and HTTP status say where.
    Source,
}

impl ErrorKind {
    /// The stable snake_case name (`invalid_parameter`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Parse => "parse",
            ErrorKind::Io => "io",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidParameter => "invalid_parameter",
            ErrorKind::DoesNotFit => "does_not_fit",
            ErrorKind::NoPlacement => "no_placement",
            ErrorKind::Probe => "probe",
            ErrorKind::Process => "process",
            ErrorKind::Source => "source",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
