//! Inventories described in JSON instead of probed: a whole cluster, or one worker.
//!
//! The format is the cluster JSON of [`inferkit_core::inventory`]. [`load_cluster`] also accepts a
//! single worker object, which is what `probe --json` prints, so a probe's output can be fed to
//! planning unchanged.

use std::path::Path;

use async_trait::async_trait;

use inferkit_core::inventory::{Cluster, MAX_CLUSTER_FILE, WorkerInventory};
use inferkit_core::{Error, Result};
use inferkit_formats::files::{json_error, read_text_file};

use super::DeviceProbe;

/// Reads a cluster from a JSON file holding either `{"workers": [...]}` or one worker object.
pub fn load_cluster(path: &Path) -> Result<Cluster> {
    let text = read_text_file(path, MAX_CLUSTER_FILE)?;
    parse_cluster(&text, path)
}

/// Parses [`load_cluster`]'s formats from text; `origin` names the source in errors.
pub fn parse_cluster(text: &str, origin: &Path) -> Result<Cluster> {
    if is_single_worker(text) {
        let worker = parse_worker(text, origin)?;
        return Ok(Cluster {
            workers: vec![worker],
        });
    }
    Cluster::from_json_str(text, origin)
}

/// Parses one worker object.
fn parse_worker(text: &str, origin: &Path) -> Result<WorkerInventory> {
    serde_json::from_str(text).map_err(|e| json_error(text, origin, &e))
}

/// A top-level object without `workers` but with a worker's `name` is a single worker. Text
/// that is not a JSON object is left to the cluster parser, which reports where it breaks.
///
/// Only the top-level keys are looked at: the values are skipped without being built (a
/// `serde_json::Value` of a large cluster costs ten times its text).
fn is_single_worker(text: &str) -> bool {
    /// The two top-level keys that tell the formats apart; every other key is skipped.
    #[derive(serde::Deserialize)]
    struct TopLevel {
        workers: Option<serde::de::IgnoredAny>,
        name: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<TopLevel>(text) {
        Ok(top) => top.workers.is_none() && top.name.is_some(),
        Err(_) => false,
    }
}

/// A probe that returns a fixed worker: a machine described rather than probed (tests, remote
/// workers whose inventory arrived as JSON, dry runs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StaticProbe {
    worker: WorkerInventory,
}

impl StaticProbe {
    /// A probe returning `worker`.
    pub fn new(worker: WorkerInventory) -> Self {
        StaticProbe { worker }
    }

    /// A probe returning the worker in a JSON file ([`load_cluster`]'s formats); a cluster file
    /// must then hold exactly one worker.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let mut cluster = load_cluster(path)?;
        match cluster.workers.len() {
            1 => Ok(Self::new(cluster.workers.remove(0))),
            n => Err(Error::parse(
                path,
                0,
                format!("expected one worker, found {n}; pick one with Cluster::worker"),
            )),
        }
    }
}

#[async_trait]
impl DeviceProbe for StaticProbe {
    fn name(&self) -> &'static str {
        "static"
    }

    async fn probe(&self) -> Result<WorkerInventory> {
        Ok(self.worker.clone())
    }
}
