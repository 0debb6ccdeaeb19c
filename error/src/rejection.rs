//! [`Rejection`]: an option the planner refused, carried by [`Error::NoPlacement`](crate::Error::NoPlacement).
//!
//! The refused option is data ([`Candidate`]); its sentence (`w1:0 (NVIDIA GeForce RTX 4090,
//! 21.50 GiB allocatable)`) is made only where it is shown, by `Display`. In JSON a rejection
//! keeps that sentence as `candidate` and carries the typed option as `option`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How many names a [`Candidate::Workers`] or [`Candidate::Devices`] sentence lists before
/// `and N more`.
const MAX_LISTED: usize = 5;

/// How an instance is spread, in GPUStack's order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PlacementMode {
    /// One accelerator.
    SingleDevice,
    /// Several accelerators of one worker.
    MultiDevice,
    /// Accelerators of several workers.
    MultiWorker,
    /// Accelerators plus host memory for the layers that do not fit.
    CpuOffload,
    /// Host memory only.
    CpuOnly,
}

impl PlacementMode {
    /// The snake_case name used in JSON (`single_device`, `cpu_offload`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementMode::SingleDevice => "single_device",
            PlacementMode::MultiDevice => "multi_device",
            PlacementMode::MultiWorker => "multi_worker",
            PlacementMode::CpuOffload => "cpu_offload",
            PlacementMode::CpuOnly => "cpu_only",
        }
    }

    /// The mode as explanations and rejections name it (`several devices of one worker`).
    pub fn describe(self) -> &'static str {
        match self {
            PlacementMode::SingleDevice => "single device",
            PlacementMode::MultiDevice => "several devices of one worker",
            PlacementMode::MultiWorker => "several workers",
            PlacementMode::CpuOffload => "partial CPU offload",
            PlacementMode::CpuOnly => "CPU only",
        }
    }
}

/// One device of a worker, as a rejection names it (`w1:0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeviceRef {
    /// The worker's name.
    pub worker: String,
    /// The device's index on that worker.
    pub index: u32,
}

/// An option placement considered: a mode as a whole, workers or devices it filtered out, or
/// a group of devices (or a worker's host memory) it sized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Candidate {
    /// A whole mode, refused before any device was sized (`CPU offloading is off`).
    Mode {
        /// The mode.
        mode: PlacementMode,
    },
    /// Workers filtered out for one reason (selector, platform, host RAM).
    Workers {
        /// Their names, in cluster order.
        names: Vec<String>,
    },
    /// Devices filtered out for one reason (vendor, the backend's device check).
    Devices {
        /// The devices, in cluster order.
        devices: Vec<DeviceRef>,
    },
    /// One device.
    Device {
        /// Where it is.
        device: DeviceRef,
        /// Its product name.
        name: String,
        /// Bytes placement could give the model there.
        allocatable: u64,
    },
    /// Several devices of one worker.
    WorkerDevices {
        /// The worker.
        worker: String,
        /// The devices' indices.
        indices: Vec<u32>,
        /// Bytes placement could give the model on them, in all.
        allocatable: u64,
    },
    /// A main worker's devices plus devices of other workers.
    AcrossWorkers {
        /// The worker of the main process.
        main: String,
        /// Devices on the other workers.
        remote_devices: u32,
        /// Other workers taking part.
        other_workers: u32,
        /// Devices in all.
        devices: u32,
        /// Bytes placement could give the model on them, in all.
        allocatable: u64,
    },
    /// A worker's host memory alone.
    Host {
        /// The worker.
        worker: String,
        /// Bytes of RAM placement could give the model there.
        ram_allocatable: u64,
    },
}

/// An option placement considered and refused, with the numbers that refused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(into = "RejectionJson", from = "RejectionJson")]
#[non_exhaustive]
pub struct Rejection {
    /// The option refused.
    pub candidate: Candidate,
    /// How many more options like it (same devices, less free memory) were refused with it
    /// without being sized.
    pub alike: u32,
    /// Why it was refused.
    pub reason: String,
}

impl Rejection {
    /// Builds a rejection of one option.
    pub fn new(candidate: Candidate, reason: impl Into<String>) -> Self {
        Rejection {
            candidate,
            alike: 0,
            reason: reason.into(),
        }
    }

    /// The same rejection standing for `alike` more options like it.
    pub fn with_alike(mut self, alike: u32) -> Self {
        self.alike = alike;
        self
    }

    /// The refused option in a sentence (`w1:0 (NVIDIA GeForce RTX 4090, 21.50 GiB
    /// allocatable)`, `... and 3 alike with less free memory`).
    pub fn describe_candidate(&self) -> String {
        match self.alike {
            0 => self.candidate.to_string(),
            n => format!("{} and {n} alike with less free memory", self.candidate),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.describe_candidate(), self.reason)
    }
}

impl fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.worker, self.index)
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Candidate::Mode { mode } => f.write_str(mode.describe()),
            Candidate::Workers { names } => write_list(f, names),
            Candidate::Devices { devices } => write_list(f, devices),
            Candidate::Device {
                device,
                name,
                allocatable,
            } => write!(f, "{device} ({name}, {} allocatable)", gib(*allocatable)),
            Candidate::WorkerDevices {
                worker,
                indices,
                allocatable,
            } => {
                let count = match indices.len() {
                    n if n > MAX_INDICES_LISTED => format!("{n} devices, "),
                    _ => String::new(),
                };
                write!(
                    f,
                    "{worker} devices {} ({count}{} allocatable in all)",
                    index_list(indices.clone()),
                    gib(*allocatable)
                )
            }
            Candidate::AcrossWorkers {
                main,
                remote_devices,
                other_workers,
                devices,
                allocatable,
            } => write!(
                f,
                "{main} + {remote_devices} remote devices on {other_workers} other workers \
                 ({devices} devices, {} allocatable in all)",
                gib(*allocatable)
            ),
            Candidate::Host {
                worker,
                ram_allocatable,
            } => write!(
                f,
                "{worker} CPU only ({} RAM allocatable)",
                gib(*ram_allocatable)
            ),
        }
    }
}

/// Most device indices a group lists one by one (a whole 8- or 16-GPU node).
const MAX_INDICES_LISTED: usize = 16;

/// Most runs of consecutive indices a wide group lists before "and N more runs".
const MAX_RUNS_LISTED: usize = 8;

/// The device indices of a group on one worker: up to [`MAX_INDICES_LISTED`] as they are
/// (`0,1,2,3`); more as sorted runs (`0-511,768-1023`), at most [`MAX_RUNS_LISTED`], so that a
/// refusal on a wide worker stays one readable line.
fn index_list(mut indices: Vec<u32>) -> String {
    let join = |parts: Vec<String>| parts.join(",");
    if indices.len() <= MAX_INDICES_LISTED {
        return join(indices.iter().map(u32::to_string).collect());
    }
    indices.sort_unstable();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for index in indices {
        match runs.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(index) => *end = index,
            _ => runs.push((index, index)),
        }
    }
    let shown = join(
        runs.iter()
            .take(MAX_RUNS_LISTED)
            .map(|&(start, end)| {
                if start == end {
                    start.to_string()
                } else {
                    format!("{start}-{end}")
                }
            })
            .collect(),
    );
    match runs.len().saturating_sub(MAX_RUNS_LISTED) {
        0 => shown,
        n => format!("{shown} and {n} more runs"),
    }
}

/// `a, b, c, d, e and 12 more`.
fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().take(MAX_LISTED).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    match items.len().saturating_sub(MAX_LISTED) {
        0 => Ok(()),
        more => write!(f, " and {more} more"),
    }
}

/// Bytes as GiB with two decimals, the unit every placement message uses.
fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The JSON form: the sentence as `candidate` (what readers of earlier plans know), the typed
/// option beside it.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
struct RejectionJson {
    candidate: String,
    option: Candidate,
    #[serde(default, skip_serializing_if = "is_zero")]
    alike: u32,
    reason: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<Rejection> for RejectionJson {
    fn from(rejection: Rejection) -> Self {
        RejectionJson {
            candidate: rejection.describe_candidate(),
            option: rejection.candidate,
            alike: rejection.alike,
            reason: rejection.reason,
        }
    }
}

impl From<RejectionJson> for Rejection {
    fn from(json: RejectionJson) -> Self {
        Rejection {
            candidate: json.option,
            alike: json.alike,
            reason: json.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::index_list;

    #[test]
    fn a_node_lists_its_devices_one_by_one() {
        assert_eq!(index_list(vec![3, 1, 2]), "3,1,2");
        let node: Vec<String> = (0..16).map(|i| i.to_string()).collect();
        assert_eq!(index_list((0..16).collect()), node.join(","));
    }

    #[test]
    fn a_wide_group_lists_runs() {
        assert_eq!(index_list((0..1024).rev().collect()), "0-1023");
        let gaps: Vec<u32> = (0..40).filter(|i| i % 4 != 3).chain([100]).collect();
        assert_eq!(
            index_list(gaps),
            "0-2,4-6,8-10,12-14,16-18,20-22,24-26,28-30 and 3 more runs"
        );
    }
}
