//! The MODEL argument, in one place: every subcommand turns it into a [`ModelSpec`] here, and
//! reads files only through [`local_path`] and [`facts`].
//!
//! Today the argument is a path on this machine: a GGUF file (any shard of a split model, or
//! a header-only GGUF) or a model directory. A relative path is made absolute, because the
//! launched processes run in their own run directory.

use std::path::Path;

use inferkit::{Error, ModelFacts, ModelSpec, Result};

/// Turns the MODEL argument into the spec the subcommands start from (every option left to
/// inferkit). The path must exist, so that a typo is reported as such rather than as a
/// format error.
pub fn resolve(argument: &str) -> Result<ModelSpec> {
    let spec = ModelSpec::local(argument);
    let path = local_path(&spec)?;
    std::fs::metadata(path).map_err(|e| Error::io(path, &e))?;
    Ok(spec)
}

/// The files of the model on this machine.
pub fn local_path(spec: &ModelSpec) -> Result<&Path> {
    spec.source.local_path().ok_or_else(|| {
        Error::Unsupported(format!(
            "model `{}` is not on this machine",
            spec.source.display_name()
        ))
    })
}

/// What the model's files say (headers only), for the subcommands that plan.
pub fn facts(spec: &ModelSpec) -> Result<ModelFacts> {
    ModelFacts::read(&spec.source)
}
