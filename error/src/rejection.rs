//! [`Rejection`]: an option the planner refused, carried by [`Error::NoPlacement`](crate::Error::NoPlacement).

use serde::{Deserialize, Serialize};

/// An option placement considered and refused, with the numbers that refused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Rejection {
    /// The option (`w1:0 (NVIDIA GeForce RTX 4090, 21.50 GiB allocatable)`).
    pub candidate: String,
    /// Why it was refused.
    pub reason: String,
}

impl Rejection {
    /// Builds a rejection.
    pub fn new(candidate: impl Into<String>, reason: impl Into<String>) -> Self {
        Rejection {
            candidate: candidate.into(),
            reason: reason.into(),
        }
    }
}
