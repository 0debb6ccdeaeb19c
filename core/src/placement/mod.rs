//! Placement: where on a cluster one instance of a model goes.
//!
//! The search tries GPUStack's modes in its order of preference and stops at the first mode
//! that yields a placement: one device; several devices of one worker (the k largest free
//! devices, k = 2, 3, ...); several workers (a main worker plus remote devices or workers,
//! greedily by free memory); part of the model in host memory; host memory only. The backend's
//! estimator sizes every device group it is shown
//! ([`ResourceEstimator::fit`](crate::ResourceEstimator::fit)); placement never
//! guesses a claim itself.
//!
//! Before any estimate, workers are filtered by the worker selector, the backend's platforms
//! and [`Prepared::check_worker`], devices by the backend's vendors and
//! [`Prepared::check_device`] (hard case 19); every refusal is listed with its reason.
//!
//! At fleet scale the search does not ask the estimator about every device: devices of one
//! class (vendor, product, memory, compute capability) differ only in free memory, so it
//! binary-searches the free memory at which the class stops fitting (about 2 + log2(n) fits),
//! scores every device above it, and then re-fits the best ones exactly. This assumes that a
//! group which fits still fits with more free memory; when an estimator breaks that, the search
//! may miss a fitting group but never accepts an unfitting one. Several devices of one worker
//! are its k largest free devices, k = 2, 3, ... (the first k with a fit wins, as in GPUStack);
//! several workers grow greedily from the worker with the most free memory, one remote device
//! (for a backend with a subordinate process per remote device, at most
//! [`PlacementOptions::max_remote_devices`]) or one whole worker (a subordinate per worker, at
//! most [`PlacementOptions::max_workers`]) at a time. Every accepted candidate passes
//! [`verify_claims`], which recomputes every claim against the cluster from scratch (hard
//! case 1).
//!
//! Candidates of a mode are ranked by more layers on devices (partial offload), fewer devices,
//! the strategy's score (GPUStack's spread or binpack), more free memory, then worker name and
//! device index, so that a plan is reproducible.
//!
//! Allocatable memory is `total − max(used, allocated) − reserve`; see [`resources`].

pub mod resources;
mod score;
mod search;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::backend::{Assignment, Backend, Capabilities, Prepared};
use crate::inventory::{Cluster, WorkerInventory};
use crate::model::ModelSpec;
use crate::units::GIB;
pub(crate) use crate::units::gib;

pub use inferkit_error::{Candidate, DeviceRef, Rejection};
pub use resources::{device_allocatable, host_allocatable, verify_claims};
pub use score::PlacementStrategy;

/// What placement is asked: one model, already bound to its backend, on one cluster.
#[derive(Clone, Copy)]
pub struct PlacementRequest<'a> {
    /// The chosen backend.
    pub backend: &'a dyn Backend,
    /// The model prepared for it: its estimator, bound to the parameters that will be
    /// launched, and its worker and device checks.
    pub prepared: &'a dyn Prepared,
    /// The resolved spec: `cpu_offloading`, `distributed_inference_across_workers` and the
    /// worker selector already carry the backend's defaults.
    pub spec: &'a ModelSpec,
    /// Where to place it.
    pub cluster: &'a Cluster,
    /// Reserves, strategy, ports and search bounds.
    pub options: &'a PlacementOptions,
}

/// How to place: the strategy, what to keep free, the ports, and how far to spread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PlacementOptions {
    /// How to choose among placements that fit (default: spread).
    pub strategy: PlacementStrategy,
    /// Bytes kept free on every device (default 1 GiB: GPUStack's `system_reserved.vram` and
    /// llama.cpp `--fit`'s margin).
    pub device_reserve: u64,
    /// Bytes of host RAM kept free on every worker (default 2 GiB: GPUStack's
    /// `system_reserved.ram`).
    pub ram_reserve: u64,
    /// Port of the main process; subordinate processes take the next ports.
    pub port: u16,
    /// Most devices on other workers one instance may use, for a backend that drives each
    /// remote device by a subordinate process of its own
    /// ([`SubordinateGrouping::PerRemoteDevice`](crate::SubordinateGrouping::PerRemoteDevice);
    /// default 8, GPUStack's `DEFAULT_MAX_RPC_SERVER_COUNT` for llama-box's RPC servers).
    pub max_remote_devices: u32,
    /// Most workers one instance may span when a backend takes whole workers (Ray, MindIE).
    pub max_workers: u32,
}

impl PlacementOptions {
    /// The per-device reserve placement applies for a backend with these capabilities: none
    /// when the backend keeps its own headroom inside the share of each device it takes (the
    /// two margins would stack and refuse models that fit, hard case 8), else
    /// [`device_reserve`](Self::device_reserve).
    pub fn device_reserve_for(&self, caps: &Capabilities) -> u64 {
        if caps.own_device_headroom {
            0
        } else {
            self.device_reserve
        }
    }
}

impl Default for PlacementOptions {
    fn default() -> Self {
        PlacementOptions {
            strategy: PlacementStrategy::Spread,
            device_reserve: GIB,
            ram_reserve: 2 * GIB,
            port: 40000,
            max_remote_devices: 8,
            max_workers: 16,
        }
    }
}

impl std::fmt::Debug for PlacementRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacementRequest")
            .field("backend", &self.backend.id())
            .field("model", &self.spec.name)
            .field("workers", &self.cluster.workers.len())
            .field("options", self.options)
            .finish()
    }
}

/// The chosen placement and the reasoning behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The assignment to launch.
    pub assignment: Assignment,
    /// What the search did, in order, for the user.
    pub explanation: Vec<String>,
    /// Options refused on the way, with reasons.
    pub rejected: Vec<Rejection>,
}

/// Finds the best placement of one instance, or [`Error::NoPlacement`](crate::Error::NoPlacement)
/// listing every option refused and why.
///
/// Traced as the `place` span (debug level): backend, workers, the estimator fits it took
/// (`estimates`), and the mode chosen.
pub fn place(request: &PlacementRequest<'_>) -> Result<Placement> {
    let span = tracing::debug_span!(
        "place",
        backend = request.backend.id(),
        workers = request.cluster.workers.len(),
        estimates = tracing::field::Empty,
        mode = tracing::field::Empty,
        rejected = tracing::field::Empty,
    );
    let _entered = span.enter();
    let fits = std::cell::Cell::new(0);
    let placement = search::Search::new(request, &fits).and_then(search::Search::run);
    span.record("estimates", fits.get());
    if let Ok(placement) = &placement {
        span.record("mode", placement.assignment.mode.as_str());
        span.record("rejected", placement.rejected.len());
    }
    placement
}

/// Whether `worker` carries every label of a worker selector.
pub(crate) fn selector_admits(
    selector: &BTreeMap<String, String>,
    worker: &WorkerInventory,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| worker.label(key) == Some(value.as_str()))
}

/// A worker selector as `key=value,key=value`, for messages.
pub(crate) fn selector_text(selector: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.join(",")
}
