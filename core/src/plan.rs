//! The main job: from a model and a cluster to a [`DeploymentPlan`].
//!
//! [`plan`] reads the model files, selects a backend ([`select_backend`]), binds its estimator
//! to the resolved spec, places one instance ([`place`]), and translates the placement into the
//! processes to start. Everything after reading the files is a pure function of its inputs
//! ([`plan_with_facts`]): the same inputs give the same plan.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::backend::{Assignment, Backend, Claim, PlacementMode, Registry, Selection};
use crate::download::DownloadStep;
use crate::estimate::{Layout, ResourceEstimate};
use crate::facts::ModelFacts;
use crate::inventory::{Cluster, Vendor};
use crate::launch::LaunchSpec;
use crate::model::{Category, ModelSpec};
use crate::placement::{
    Placement, PlacementOptions, PlacementRequest, PlacementStrategy, Rejection, place,
    selector_admits, selector_text,
};
use crate::secret;
use crate::{Error, Result};

/// Knobs of a plan that are not about the model: how to place it, and which backend versions
/// the fleet runs.
///
/// In JSON, one flat object (`{"strategy": "binpack", "port": 8080}`); a key it does not know
/// is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PlanOptionKeys")]
#[non_exhaustive]
pub struct PlanOptions {
    /// Strategy, reserves, ports and search bounds of the placement.
    #[serde(flatten)]
    pub placement: PlacementOptions,
    /// The version of each backend installed on the fleet, by backend id; applied when the
    /// spec names no `backend_version` (it selects the flag table and the launch rules).
    pub backend_versions: BTreeMap<String, String>,
}

/// The keys of [`PlanOptions`] spelt out: serde cannot refuse unknown keys of a struct that
/// flattens another, so JSON is read through this one.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PlanOptionKeys {
    strategy: PlacementStrategy,
    device_reserve: u64,
    ram_reserve: u64,
    port: u16,
    max_remote_devices: u32,
    max_workers: u32,
    backend_versions: BTreeMap<String, String>,
}

impl Default for PlanOptionKeys {
    fn default() -> Self {
        let PlanOptions {
            placement,
            backend_versions,
        } = PlanOptions::default();
        PlanOptionKeys {
            strategy: placement.strategy,
            device_reserve: placement.device_reserve,
            ram_reserve: placement.ram_reserve,
            port: placement.port,
            max_remote_devices: placement.max_remote_devices,
            max_workers: placement.max_workers,
            backend_versions,
        }
    }
}

impl From<PlanOptionKeys> for PlanOptions {
    fn from(keys: PlanOptionKeys) -> Self {
        PlanOptions {
            placement: PlacementOptions {
                strategy: keys.strategy,
                device_reserve: keys.device_reserve,
                ram_reserve: keys.ram_reserve,
                port: keys.port,
                max_remote_devices: keys.max_remote_devices,
                max_workers: keys.max_workers,
            },
            backend_versions: keys.backend_versions,
        }
    }
}

/// Bytes claimed on one device by a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct DeviceClaim {
    /// Device index on its worker.
    pub index: u32,
    /// Product name.
    pub name: String,
    /// Vendor (absent in plans written before it was recorded): what a Kubernetes export
    /// asks the device plugin for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// Bytes the plan claims.
    pub vram: u64,
    /// Device memory in all.
    pub total: u64,
    /// Bytes that were allocatable before this plan.
    pub allocatable: u64,
}

/// What a plan claims on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct WorkerClaim {
    /// Worker name.
    pub name: String,
    /// Address the plan's processes reach this worker at (absent in plans written before it
    /// was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Devices used on it (empty for CPU only).
    pub devices: Vec<DeviceClaim>,
    /// Host RAM claimed on it.
    pub ram: u64,
}

/// Where a plan puts the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct PlacementSummary {
    /// How the instance is spread.
    pub mode: PlacementMode,
    /// Layers on devices, for layer-offloading backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offload_layers: Option<u32>,
    /// Layers in all, for layer-offloading backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_layers: Option<u32>,
    /// Workers used, the main one first.
    pub workers: Vec<WorkerClaim>,
}

/// A complete, reproducible answer: which backend, where, and exactly how it is started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct DeploymentPlan {
    /// Backend id (`llama-box`, `vllm`, `vox-box`, `ascend-mindie`).
    pub backend: String,
    /// Deployment name.
    pub model: String,
    /// Categories the model serves (given or detected).
    pub categories: Vec<Category>,
    /// Where it goes.
    pub placement: PlacementSummary,
    /// Processes to start: subordinates first, the main process last.
    pub processes: Vec<LaunchSpec>,
    /// The estimate of the chosen layout, per device and component.
    pub estimate: ResourceEstimate,
    /// How the plan was reached, in order.
    pub explanation: Vec<String>,
    /// Options refused on the way, with reasons.
    pub rejected: Vec<Rejection>,
    /// Model files to fetch before the processes start (a hub model not on the workers'
    /// disks, for a backend that takes files); empty when the processes find everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downloads: Vec<DownloadStep>,
}

/// The backend chosen for a model, and the spec resolved against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackendChoice {
    /// Backend id.
    pub backend: String,
    /// The backend's answer for this model.
    pub selection: Selection,
    /// The spec with the backend, categories, CPU offloading, distribution and worker selector
    /// filled in: what estimate, placement and launch all follow.
    pub spec: ModelSpec,
    /// Why, in order.
    pub explanation: Vec<String>,
}

/// Reads the model files of `spec` and plans one instance on `cluster`.
pub fn plan(
    registry: &Registry,
    spec: &ModelSpec,
    cluster: &Cluster,
    options: &PlanOptions,
) -> Result<DeploymentPlan> {
    let facts = ModelFacts::read(&spec.source)?;
    plan_with_facts(registry, &facts, spec, cluster, options)
}

/// Plans one instance from facts already read: selection, estimate, placement, launch specs.
///
/// Traced as the `plan` span (info level) around the `select` and `place` spans.
#[tracing::instrument(
    name = "plan",
    level = "info",
    skip_all,
    fields(model = %spec.name, workers = cluster.workers.len(), backend = tracing::field::Empty)
)]
pub fn plan_with_facts(
    registry: &Registry,
    facts: &ModelFacts,
    spec: &ModelSpec,
    cluster: &Cluster,
    options: &PlanOptions,
) -> Result<DeploymentPlan> {
    let mut choice = select_backend(registry, facts, spec, cluster)?;
    tracing::Span::current().record("backend", choice.backend.as_str());
    let backend = registered(registry, &choice.backend)?;
    let mut explanation = std::mem::take(&mut choice.explanation);
    apply_fleet_version(&mut choice, options, &mut explanation);
    let prepared = tracing::debug_span!("prepare", backend = backend.id())
        .in_scope(|| backend.prepare(facts, &choice.spec))?;
    explanation.extend(prepared.warnings().iter().map(|w| format!("warning: {w}")));
    let request = PlacementRequest {
        backend,
        prepared: prepared.as_ref(),
        spec: &choice.spec,
        cluster,
        options: &options.placement,
    };
    let placement = place(&request).map_err(|e| prepend_explanation(e, &explanation))?;
    let mut processes = prepared.launch(&placement.assignment)?;
    for process in &mut processes {
        let table = prepared.flag_table(&process.program);
        explanation.extend(secret::redact(process, table));
        explanation.extend(process.run_time_files.iter().map(|file| {
            format!(
                "{} of the {} process on {} is written at run time by {}: the plan does not \
                 carry it, and `inferkit serve` starts the process only when it is already in \
                 the run directory",
                file.path.display(),
                process.role.as_str(),
                process.worker,
                file.written_by
            )
        }));
    }
    Ok(assemble(&choice.spec, explanation, placement, processes))
}

/// The fleet's version of the chosen backend, when the spec names none.
fn apply_fleet_version(
    choice: &mut BackendChoice,
    options: &PlanOptions,
    explanation: &mut Vec<String>,
) {
    if choice.spec.backend_version.is_some() {
        return;
    }
    if let Some(version) = options.backend_versions.get(&choice.backend) {
        choice.spec.backend_version = Some(version.clone());
        explanation.push(format!(
            "{} version {version} (plan options)",
            choice.backend
        ));
    }
}

/// Puts the selection's explanation in front of a placement failure's own.
fn prepend_explanation(error: Error, selection: &[String]) -> Error {
    match error {
        Error::NoPlacement {
            reason,
            explanation,
            rejected,
        } => Error::NoPlacement {
            reason,
            explanation: selection.iter().cloned().chain(explanation).collect(),
            rejected,
        },
        other => other,
    }
}

/// The plan of a finished placement: its explanation after selection's, the estimate's notes
/// last, and what it claims per worker.
fn assemble(
    spec: &ModelSpec,
    mut explanation: Vec<String>,
    placement: Placement,
    processes: Vec<LaunchSpec>,
) -> DeploymentPlan {
    let Placement {
        assignment,
        explanation: searched,
        rejected,
    } = placement;
    explanation.extend(searched);
    explanation.extend(assignment.estimate.notes.iter().cloned());
    let (offload_layers, total_layers) = match assignment.estimate.layout {
        Layout::Layers {
            offload_layers,
            total_layers,
            ..
        } => (Some(offload_layers), Some(total_layers)),
        _ => (None, None),
    };
    let workers = worker_claims(&assignment);
    DeploymentPlan {
        backend: spec.backend.clone().unwrap_or_default(),
        model: spec.name.clone(),
        categories: spec.categories.clone(),
        placement: PlacementSummary {
            mode: assignment.mode,
            offload_layers,
            total_layers,
            workers,
        },
        processes,
        estimate: assignment.estimate,
        explanation,
        rejected,
        downloads: Vec::new(),
    }
}

/// What `assignment` claims per worker: the main worker first with the host RAM, then the
/// other workers in the order their devices appear.
fn worker_claims(assignment: &Assignment) -> Vec<WorkerClaim> {
    let mut workers = vec![WorkerClaim {
        name: assignment.worker.clone(),
        address: Some(assignment.address.clone()),
        devices: Vec::new(),
        ram: assignment.estimate.host.total(),
    }];
    for (slot, estimate) in assignment.devices.iter().zip(&assignment.estimate.devices) {
        let claim = DeviceClaim {
            index: slot.id.index,
            name: slot.name.clone(),
            vendor: Some(slot.vendor.clone()),
            vram: estimate.held(),
            total: slot.total,
            allocatable: slot.allocatable,
        };
        match workers.iter_mut().find(|w| w.name == slot.id.worker) {
            Some(worker) => worker.devices.push(claim),
            None => workers.push(WorkerClaim {
                name: slot.id.worker.clone(),
                address: assignment
                    .subordinates
                    .iter()
                    .find(|s| s.worker == slot.id.worker)
                    .map(|s| s.address.clone()),
                devices: vec![claim],
                ram: 0,
            }),
        }
    }
    workers
}

fn registered<'r>(registry: &'r Registry, id: &str) -> Result<&'r dyn Backend> {
    registry.get(id).ok_or_else(|| {
        Error::invalid_parameter(
            "backend",
            format!(
                "`{id}` is not a registered backend; registered: {}",
                registry.ids().join(", ")
            ),
        )
    })
}

/// Chooses the backend for a model and resolves the spec against it.
///
/// An explicit `spec.backend` always wins, and must claim the model. Otherwise the strongest
/// claim wins among backends that run on the eligible hardware (the devices of workers the
/// user's selector admits): GGUF → llama-box and speech → vox-box by their `Prefers` claims;
/// ties go to the backend covering more of the eligible vendors, then to the narrower one, so
/// that an Ascend-only cluster gets MindIE when MindIE supports the model and vLLM otherwise.
#[tracing::instrument(
    name = "select",
    level = "debug",
    skip_all,
    fields(explicit = spec.backend.as_deref(), candidates = registry.backends().count())
)]
pub fn select_backend(
    registry: &Registry,
    facts: &ModelFacts,
    spec: &ModelSpec,
    cluster: &Cluster,
) -> Result<BackendChoice> {
    let (backend, selection, mut explanation) = match &spec.backend {
        Some(id) => explicit_backend(registry, facts, spec, id)?,
        None => automatic_backend(registry, facts, spec, cluster)?,
    };
    let resolved = resolve_spec(backend, &selection, spec, &mut explanation)?;
    Ok(BackendChoice {
        backend: backend.id().to_string(),
        selection,
        spec: resolved,
        explanation,
    })
}

/// A selected backend, its answer, and the explanation of the choice.
type Chosen<'r> = (&'r dyn Backend, Selection, Vec<String>);

fn explicit_backend<'r>(
    registry: &'r Registry,
    facts: &ModelFacts,
    spec: &ModelSpec,
    id: &str,
) -> Result<Chosen<'r>> {
    let backend = registered(registry, id)?;
    let selection = backend.select(facts, spec);
    if selection.claim == Claim::Refuses {
        return Err(Error::unsupported(format!(
            "{id} cannot serve {}: {}",
            spec.name, selection.reason
        )));
    }
    let line = format!("backend {id}: chosen by the user ({})", selection.reason);
    Ok((backend, selection, vec![line]))
}

fn automatic_backend<'r>(
    registry: &'r Registry,
    facts: &ModelFacts,
    spec: &ModelSpec,
    cluster: &Cluster,
) -> Result<Chosen<'r>> {
    let vendors = eligible_vendors(spec, cluster);
    let answers: Vec<(usize, &dyn Backend, Selection)> = registry
        .backends()
        .enumerate()
        .map(|(i, b)| (i, b, b.select(facts, spec)))
        .collect();
    let best = answers
        .iter()
        .filter(|(_, _, s)| s.claim > Claim::Refuses)
        .max_by_key(|(i, b, s)| {
            let caps = b.capabilities();
            let coverage = vendors.iter().filter(|v| caps.vendors.contains(v)).count();
            let runs = coverage > 0 || caps.cpu_only;
            let narrow = std::cmp::Reverse(caps.vendors.len());
            (runs, s.claim, coverage, narrow, std::cmp::Reverse(*i))
        });
    let Some((chosen, backend, selection)) = best else {
        let reasons: Vec<String> = answers
            .iter()
            .map(|(_, b, s)| format!("{}: {}", b.id(), s.reason))
            .collect();
        return Err(Error::unsupported(format!(
            "no registered backend serves {} ({})",
            spec.name,
            if reasons.is_empty() {
                "no backend registered".to_string()
            } else {
                reasons.join("; ")
            }
        )));
    };
    let mut explanation = vec![format!("backend {}: {}", backend.id(), selection.reason)];
    for (i, other, s) in &answers {
        if i != chosen {
            explanation.push(format!("not {} ({:?}): {}", other.id(), s.claim, s.reason));
        }
    }
    Ok((*backend, selection.clone(), explanation))
}

/// Vendors of the devices the user's selectors admit.
fn eligible_vendors(spec: &ModelSpec, cluster: &Cluster) -> BTreeSet<Vendor> {
    let selected = |worker: &str, index: u32| {
        spec.device_selector.is_empty()
            || spec
                .device_selector
                .iter()
                .any(|id| id.worker == worker && id.index == index)
    };
    // Inserted one by one, not collected: collecting gathers (and clones) every device's
    // vendor before sorting them, 800k of them on a 100k-worker fleet, for a handful of vendors.
    let mut vendors = BTreeSet::new();
    for worker in &cluster.workers {
        if !selector_admits(&spec.worker_selector, worker) {
            continue;
        }
        for device in &worker.devices {
            if selected(&worker.name, device.index) && !vendors.contains(&device.vendor) {
                vendors.insert(device.vendor.clone());
            }
        }
    }
    vendors
}

/// Fills in what the user left to the backend and refuses what the backend cannot do
/// (GPUStack's per-backend validation, behaviour spec §1.3-1.5).
fn resolve_spec(
    backend: &dyn Backend,
    selection: &Selection,
    spec: &ModelSpec,
    explanation: &mut Vec<String>,
) -> Result<ModelSpec> {
    let caps = backend.capabilities();
    let id = backend.id();
    caps.check_spec(id, spec)?;
    let mut resolved = spec.clone();
    resolved.backend = Some(id.to_string());
    if resolved.categories.is_empty() && !selection.categories.is_empty() {
        resolved.categories = selection.categories.clone();
        explanation.push(format!(
            "categories: {} (detected)",
            category_names(&resolved.categories)
        ));
    }
    let offload = *resolved
        .cpu_offloading
        .get_or_insert(caps.default_cpu_offloading && caps.cpu_offload);
    let distributed = *resolved
        .distributed_inference_across_workers
        .get_or_insert(caps.default_distributed && caps.multi_worker);
    explanation.push(format!(
        "CPU offloading {}, distributed inference across workers {}",
        on_off(offload),
        on_off(distributed)
    ));
    if resolved.worker_selector.is_empty()
        && resolved.device_selector.is_empty()
        && !caps.default_worker_selector.is_empty()
    {
        resolved.worker_selector = caps.default_worker_selector.clone();
        explanation.push(format!(
            "worker selector {} ({id} default)",
            selector_text(&resolved.worker_selector)
        ));
    }
    Ok(resolved)
}

fn category_names(categories: &[Category]) -> String {
    categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}
