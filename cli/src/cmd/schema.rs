//! `inferkit schema`: JSON Schemas of the files inferkit reads and writes.

use inferkit::{Cluster, DeploymentPlan, ModelSpec, WorkerInventory};
use schemars::{JsonSchema, Schema, schema_for};

use crate::output::{Failure, Output};

/// Prints the JSON Schema (draft 2020-12) of a file format: a cluster (`--cluster`, also one
/// worker as `probe --json` prints it), a plan (`plan --json`, the input of `serve`) or a
/// model spec (ModelSpec, as applications send it).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which format.
    #[arg(value_enum)]
    pub format: Format,
}

/// The formats with a schema.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// The cluster file of `plan --cluster`: {"workers": [...]} or one worker.
    Cluster,
    /// The DeploymentPlan that `plan --json` prints and `serve` reads.
    Plan,
    /// A model spec: source, backend, parameters, selectors.
    Spec,
}

/// What `plan --cluster` reads: a whole cluster, or one worker as `probe --json` prints it.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only its schema is used; the library parses the file.
enum ClusterFile {
    Cluster(Cluster),
    Worker(Box<WorkerInventory>),
}

/// The schema of `format`.
pub fn schema(format: Format) -> Schema {
    match format {
        Format::Cluster => schema_for!(ClusterFile),
        Format::Plan => schema_for!(DeploymentPlan),
        Format::Spec => schema_for!(ModelSpec),
    }
}

/// Runs `schema`.
pub fn run(args: &Args, out: &mut Output) -> Result<(), Failure> {
    out.json(&schema(args.format))
}
