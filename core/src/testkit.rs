//! The driver conformance suite (feature `testkit`): checks every driver must pass, called from
//! each driver crate's tests with real models of that driver.
//!
//! A driver written outside this repository runs the same suite. This one serves any model in
//! 4 GiB on one GPU:
//!
//! ```
//! use inferkit_core::testkit::{check_backend, gpu, host};
//! use inferkit_core::{
//!     Assignment, Backend, Capabilities, Category, Claim, Components, DeviceEstimate,
//!     ErrorBand, EstimateRequest, FigureBasis, HealthCheck, LaunchSpec, ModelFacts, ModelFormat, ModelSource, ModelSpec,
//!     Os, Platform, Prepared, Arch, ProcessRole, ResourceEstimate, ResourceEstimator, Result, Selection,
//!     Vendor,
//! };
//!
//! struct Tiny(Capabilities);
//!
//! impl Tiny {
//!     fn new() -> Self {
//!         let mut caps = Capabilities::default();
//!         caps.formats = vec![ModelFormat::Remote];
//!         caps.vendors = vec![Vendor::Nvidia];
//!         caps.platforms = vec![Platform::new(Os::Linux, Arch::Amd64)];
//!         caps.categories = vec![Category::Llm];
//!         Tiny(caps)
//!     }
//! }
//!
//! impl Backend for Tiny {
//!     fn id(&self) -> &'static str {
//!         "tiny"
//!     }
//!     fn capabilities(&self) -> &Capabilities {
//!         &self.0
//!     }
//!     fn select(&self, _facts: &ModelFacts, _spec: &ModelSpec) -> Selection {
//!         Selection::new(Claim::Supports, "tiny serves every model")
//!     }
//!     fn prepare<'a>(
//!         &'a self,
//!         _facts: &'a ModelFacts,
//!         spec: &'a ModelSpec,
//!     ) -> Result<Box<dyn Prepared + 'a>> {
//!         Ok(Box::new(TinyModel(spec)))
//!     }
//! }
//!
//! struct TinyModel<'a>(&'a ModelSpec);
//!
//! impl Prepared for TinyModel<'_> {
//!     fn warnings(&self) -> &[String] {
//!         &[]
//!     }
//!     fn estimator(&self) -> &dyn ResourceEstimator {
//!         self
//!     }
//!     fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
//!         let port = assignment.port;
//!         let args = vec!["--model".into(), self.0.name.clone(), "--port".into(), port.to_string()];
//!         let mut process = LaunchSpec::new(assignment.worker.clone(), ProcessRole::Main, "tiny-server", args);
//!         process.health = Some(HealthCheck { port, path: Some("/health".into()) });
//!         Ok(vec![process])
//!     }
//! }
//!
//! impl ResourceEstimator for TinyModel<'_> {
//!     fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
//!         let weights = Components { weights: 4 << 30, ..Components::default() };
//!         // Every device figure says how sure it is: here a guess, held as 10% headroom.
//!         let band = ErrorBand::new(10, FigureBasis::Guess);
//!         let devices = request.devices.iter().map(|slot| {
//!             DeviceEstimate::new(slot.id.clone(), "gpu0", weights, weights.total())
//!                 .with_error_band(band)
//!         });
//!         Ok(ResourceEstimate::new(request.layout.clone(), devices.collect()))
//!     }
//! }
//!
//! let mut spec = ModelSpec::local("tiny");
//! spec.source = ModelSource::Huggingface {
//!     repo_id: "example/tiny".into(),
//!     filename: None,
//!     revision: None,
//! };
//! let facts = ModelFacts::read(&spec.source)?; // remote: nothing is read
//! check_backend(&Tiny::new(), &facts, &spec, &[gpu("w1", 0, 24)], &host("w1", 64));
//! # Ok::<(), inferkit_core::Error>(())
//! ```
//!
//! Each check panics with a message naming the broken invariant: this module is for tests.

use std::collections::BTreeSet;

use crate::backend::{Assignment, Backend, Claim, PlacementMode, Prepared, SubordinateGrouping};
use crate::estimate::{DeviceSlot, FitRequest, HostSlot, ResourceEstimate};
use crate::facts::ModelFacts;
use crate::inventory::{DeviceId, Vendor};
use crate::launch::{LaunchSpec, ProcessRole};
use crate::model::ModelSpec;

/// A device slot of `gib` GiB on `worker`, index `index`, entirely allocatable.
pub fn gpu(worker: &str, index: u32, gib: u64) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: worker.to_string(),
            index,
        },
        vendor: Vendor::Nvidia,
        name: format!("test GPU {gib} GiB"),
        total: gib << 30,
        allocatable: gib << 30,
        remote: false,
        compute_capability: Some("8.9".to_string()),
        reserved: None,
    }
}

/// Host memory of `gib` GiB on `worker`, entirely allocatable.
pub fn host(worker: &str, gib: u64) -> HostSlot {
    HostSlot {
        worker: worker.to_string(),
        total: gib << 30,
        allocatable: gib << 30,
        os: None,
    }
}

/// Whether process `pid` is gone, or a zombie that is not the caller's to reap (an orphan
/// waiting for init): for tests that check a supervisor killed what it started. Reads
/// `/proc/PID/stat`, whose state letter follows the last `)`.
#[cfg(target_os = "linux")]
pub fn process_is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Every process as it would be started, for snapshot tests: `[worker Role] env: K=V ...`, the
/// command line, and `health: PORT/PATH` (`PORT (tcp)` for a port check, `none`), a blank line
/// between processes.
pub fn render_processes(specs: &[LaunchSpec]) -> String {
    specs
        .iter()
        .map(|s| {
            let env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let health = s.health.as_ref().map_or("none".to_string(), |h| {
                format!("{}{}", h.port, h.path.as_deref().unwrap_or(" (tcp)"))
            });
            format!(
                "[{} {}] env: {}\n{}\nhealth: {health}\n",
                s.worker,
                s.role.as_str(),
                env.join(" "),
                s.command_line()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs every conformance check of `backend` on one model placed on `devices` (all on the
/// worker of `host`; empty means CPU only). The backend must claim the model and fit it.
pub fn check_backend(
    backend: &dyn Backend,
    facts: &ModelFacts,
    spec: &ModelSpec,
    devices: &[DeviceSlot],
    host: &HostSlot,
) {
    check_identity(backend);
    let selection = backend.select(facts, spec);
    assert!(
        selection.claim > Claim::Refuses,
        "{}: refuses the conformance model: {}",
        backend.id(),
        selection.reason
    );
    assert!(
        !selection.reason.is_empty(),
        "{}: empty selection reason",
        backend.id()
    );
    let prepared = backend
        .prepare(facts, spec)
        .unwrap_or_else(|err| panic!("{}: rejects the spec's own parameters: {err}", backend.id()));
    let assignment = check_fit(backend.id(), prepared.as_ref(), devices, host);
    check_launch(backend.id(), prepared.as_ref(), &assignment);
}

fn check_identity(backend: &dyn Backend) {
    let id = backend.id();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
        "backend id `{id}` must be lowercase words joined by `-`"
    );
    let caps = backend.capabilities();
    assert!(!caps.formats.is_empty(), "{id}: no model format");
    assert!(!caps.platforms.is_empty(), "{id}: no platform");
    assert!(!caps.categories.is_empty(), "{id}: no category");
    if caps.multi_worker {
        assert_ne!(
            caps.subordinates,
            SubordinateGrouping::None,
            "{id}: multi-worker without a way to start subordinates"
        );
    }
    if caps.default_cpu_offloading {
        assert!(
            caps.cpu_offload,
            "{id}: offloads by default but cannot offload"
        );
    }
}

fn check_fit(
    id: &str,
    prepared: &dyn Prepared,
    devices: &[DeviceSlot],
    host: &HostSlot,
) -> Assignment {
    let estimator = prepared.estimator();
    let request = FitRequest {
        devices: devices.to_vec(),
        host: host.clone(),
        allow_cpu_offload: false,
    };
    let estimate = estimator
        .fit(&request)
        .unwrap_or_else(|e| panic!("{id}: conformance model does not fit: {e}"));
    let again = estimator.fit(&request).expect("second fit");
    assert_eq!(estimate, again, "{id}: fit is not deterministic");
    check_device_estimates(id, &estimate, devices);
    let json = serde_json::to_string(&estimate).expect("estimate serialises");
    let back: ResourceEstimate = serde_json::from_str(&json).expect("estimate parses");
    assert_eq!(
        back, estimate,
        "{id}: estimate does not round-trip through JSON"
    );
    Assignment {
        mode: match devices.len() {
            0 => PlacementMode::CpuOnly,
            1 => PlacementMode::SingleDevice,
            _ => PlacementMode::MultiDevice,
        },
        worker: host.worker.clone(),
        address: host.worker.clone(),
        devices: devices.to_vec(),
        host: host.clone(),
        estimate,
        port: 40000,
        subordinates: Vec::new(),
    }
}

/// One estimate per requested device, in request order, each saying how far it may be off (an
/// error band and its basis, issue 16), claiming at least its components and no more than is
/// allocatable.
fn check_device_estimates(id: &str, estimate: &ResourceEstimate, devices: &[DeviceSlot]) {
    assert_eq!(
        estimate.devices.len(),
        devices.len(),
        "{id}: one device estimate per requested device"
    );
    for (d, slot) in estimate.devices.iter().zip(devices) {
        assert_eq!(
            d.device, slot.id,
            "{id}: device estimates out of request order"
        );
        assert!(
            d.error_band.is_some(),
            "{id}: {} carries no error band (every device figure says how sure it is)",
            d.name
        );
        assert!(
            d.claim >= d.components.total(),
            "{id}: {} claims {} bytes, less than its components ({})",
            d.name,
            d.claim,
            d.components.total()
        );
        assert!(
            d.held() <= slot.allocatable,
            "{id}: {} over-claimed: {} (with its error band) > {}",
            d.name,
            d.held(),
            slot.allocatable
        );
    }
}

fn check_launch(id: &str, prepared: &dyn Prepared, a: &Assignment) {
    let specs = prepared
        .launch(a)
        .unwrap_or_else(|e| panic!("{id}: launch failed: {e}"));
    let main: Vec<_> = specs.iter().filter(|s| s.role.is_main()).collect();
    assert_eq!(main.len(), 1, "{id}: exactly one main process");
    assert_eq!(
        specs.last().map(|s| s.role.clone()),
        Some(ProcessRole::Main),
        "{id}: the main process starts last"
    );
    assert!(
        main[0].health.is_some(),
        "{id}: the main process has no health check"
    );
    let workers: BTreeSet<&str> = std::iter::once(a.worker.as_str())
        .chain(a.subordinates.iter().map(|s| s.worker.as_str()))
        .collect();
    for process in &specs {
        assert!(
            workers.contains(process.worker.as_str()),
            "{id}: process on unknown worker {}",
            process.worker
        );
        assert!(!process.program.is_empty(), "{id}: empty program");
        for arg in &process.args {
            assert!(
                !arg.is_empty() && arg.trim() == arg,
                "{id}: argument `{arg}` is empty or has surrounding spaces"
            );
        }
        for file in &process.files {
            assert!(
                file.path.is_relative(),
                "{id}: launch file path must be relative"
            );
        }
    }
    let again = prepared.launch(a).expect("second launch");
    assert_eq!(specs, again, "{id}: launch is not deterministic");
}
