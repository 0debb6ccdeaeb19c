//! Inventories described in JSON instead of probed: a whole cluster, or one worker.
//!
//! The format is the cluster JSON of [`inferkit_core::inventory`]. [`load_cluster`] also accepts a
//! single worker object, which is what `probe --json` prints, so a probe's output can be fed to
//! planning unchanged.

use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};

use inferkit_core::inventory::{Cluster, MAX_CLUSTER_FILE, WorkerInventory};
use inferkit_core::{Error, Result, user_json};
use inferkit_formats::files::read_json_file;

use super::DeviceProbe;

/// Reads a cluster from a JSON file holding either `{"workers": [...]}` or one worker object,
/// as it parses it: the file's text is not held whole (a 152 MB fleet file costs the
/// cluster, not that and 152 MB more). A cluster file is read by
/// [`Cluster::read_worker_list`]; one worker object, and a malformed file for its error, by a
/// parser of the whole document.
pub fn load_cluster(path: &Path) -> Result<Cluster> {
    if let Some(cluster) = Cluster::read_worker_list(path)? {
        return Ok(cluster);
    }
    read_json_file(
        path,
        MAX_CLUSTER_FILE,
        |input| ClusterOrWorker.deserialize(input),
        |text, e| user_json::parse_error(text, path, e),
    )
}

/// Parses [`load_cluster`]'s formats from text, in one pass; `origin` names the source in
/// errors.
pub fn parse_cluster(text: &str, origin: &Path) -> Result<Cluster> {
    let mut input = serde_json::Deserializer::from_str(text);
    ClusterOrWorker
        .deserialize(&mut input)
        .and_then(|cluster| input.end().map(|()| cluster))
        .map_err(|e| user_json::parse_error(text, origin, &e))
}

/// Either format, told apart by the first key as the object is read: a cluster's only key is
/// `workers`, a worker object starts with one of its own keys. The rest of the object is then
/// read as that type, so the text is parsed once and no intermediate value is built (telling
/// the formats apart first cost a second pass over a 150 MB fleet file).
struct ClusterOrWorker;

impl<'de> DeserializeSeed<'de> for ClusterOrWorker {
    type Value = Cluster;

    fn deserialize<D: Deserializer<'de>>(self, input: D) -> std::result::Result<Cluster, D::Error> {
        input.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClusterOrWorker {
    type Value = Cluster;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a cluster object (`{\"workers\": [...]}`) or one worker object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Cluster, A::Error> {
        let first: Option<String> = map.next_key()?;
        let is_cluster = first.as_deref().is_none_or(|key| key == "workers");
        let rest = MapAccessDeserializer::new(Resumed { first, map });
        if is_cluster {
            Cluster::deserialize(rest)
        } else {
            let worker = WorkerInventory::deserialize(rest)?;
            Ok(Cluster {
                workers: vec![worker],
            })
        }
    }
}

/// A map whose first key was already read: hands that key out again, then the rest.
struct Resumed<A> {
    first: Option<String>,
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Resumed<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
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
