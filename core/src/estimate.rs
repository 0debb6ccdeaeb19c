//! Memory estimates: the [`ResourceEstimator`] trait and what it answers.
//!
//! An estimator is bound to one model and one set of backend parameters (see
//! [`Prepared::estimator`](crate::Prepared::estimator)), so that it can parse the parameters and
//! precompute per-layer costs once, then answer many layout questions fast during placement.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::inventory::{DeviceId, Vendor};
use crate::{Error, Result};

/// One accelerator taking part in an estimate, with the memory placement may claim on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSlot {
    /// Which device.
    pub id: DeviceId,
    /// Its vendor.
    pub vendor: Vendor,
    /// Product name.
    pub name: String,
    /// Total device memory in bytes.
    pub total: u64,
    /// Bytes placement may claim: total − max(used, existing allocations) − the device reserve
    /// (none for a backend that keeps its own headroom), and on unified memory no more than the
    /// host's allocatable RAM. See [`placement::resources`](crate::placement::resources).
    pub allocatable: u64,
    /// Reached from the main worker over the network (llama.cpp RPC device, Ray worker).
    pub remote: bool,
    /// Compute capability or the vendor's equivalent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
    /// Bytes of `total` the driver keeps for itself, where the inventory says
    /// ([`Memory::reserved`](crate::inventory::Memory::reserved)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u64>,
}

/// Host memory of the main worker taking part in an estimate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSlot {
    /// Worker name.
    pub worker: String,
    /// Total RAM in bytes.
    pub total: u64,
    /// Bytes placement may claim.
    pub allocatable: u64,
    /// The worker's operating system as inventories name it (`linux`, `darwin`, `windows`),
    /// where known: a backend may run differently on it (vox-box's int8 on macOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
}

/// How a model is split over the devices of an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Layout {
    /// Everything in host memory.
    CpuOnly,
    /// The whole model on the single device of the request.
    Single,
    /// Layer offload: `offload_layers` of the model's `total_layers` layers go to the devices,
    /// in contiguous blocks in proportion to `split`; the rest stay in host memory. Which layers
    /// the backend counts and offloads first is the backend's (llama.cpp: the output layer,
    /// then repeating layers from the last; see the llama-box driver).
    Layers {
        /// Layers on the devices, 0..=`total_layers`.
        offload_layers: u32,
        /// Layers the backend counts for the model (what a full offload puts on devices).
        total_layers: u32,
        /// Share of each device (same order as the request's devices); empty: the backend's
        /// default split. Written as `tensor_split` in JSON, the name `plan --json` has always
        /// used (tools read it); `split` is read too.
        #[serde(rename = "tensor_split", alias = "split")]
        split: Vec<u64>,
    },
    /// Tensor × pipeline parallel over the request's devices (vLLM, MindIE).
    Parallel {
        /// Tensor-parallel size.
        tensor_parallel: u32,
        /// Pipeline-parallel size.
        pipeline_parallel: u32,
    },
}

/// An estimate question: this model, these devices, this layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateRequest {
    /// Accelerators in the backend's order (llama-box: devices of other workers first).
    pub devices: Vec<DeviceSlot>,
    /// Host memory of the main worker.
    pub host: HostSlot,
    /// The split to estimate.
    pub layout: Layout,
}

/// A placement question: find the best layout of this model over these devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitRequest {
    /// Accelerators available, in the backend's order. Empty means CPU only.
    pub devices: Vec<DeviceSlot>,
    /// Host memory of the main worker.
    pub host: HostSlot,
    /// Whether part of the model may stay in host memory (llama.cpp partial offload).
    pub allow_cpu_offload: bool,
}

/// Bytes by component on one device (or in host memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Components {
    /// Model weights.
    pub weights: u64,
    /// KV cache (or recurrent state).
    pub kv: u64,
    /// Compute (activation) buffers.
    pub compute: u64,
    /// Output buffers (logits, embeddings).
    pub output: u64,
    /// Fixed overheads (runtime context, CUDA graphs, allocator slack).
    pub overhead: u64,
}

impl Components {
    /// Sum of all components.
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.kv)
            .saturating_add(self.compute)
            .saturating_add(self.output)
            .saturating_add(self.overhead)
    }
}

impl std::ops::AddAssign for Components {
    fn add_assign(&mut self, rhs: Self) {
        self.weights = self.weights.saturating_add(rhs.weights);
        self.kv = self.kv.saturating_add(rhs.kv);
        self.compute = self.compute.saturating_add(rhs.compute);
        self.output = self.output.saturating_add(rhs.output);
        self.overhead = self.overhead.saturating_add(rhs.overhead);
    }
}

/// The estimate for one accelerator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct DeviceEstimate {
    /// The device, as given in the request.
    pub device: DeviceId,
    /// Display name in the backend's terms (`gpu0`, `rpc1`).
    pub name: String,
    /// Bytes by component.
    pub components: Components,
    /// What placement must reserve on the device. At least `components.total()`; more where the
    /// backend claims a fixed share of the device (vLLM's `--gpu-memory-utilization`).
    pub claim: u64,
    /// Model layers held (llama.cpp layouts), for display.
    #[serde(default)]
    pub layers: u32,
    /// How far the figure (`components.total()`) may be from what the backend really uses, where
    /// the estimator declares it; placement holds that much headroom above the figure
    /// ([`DeviceEstimate::held`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_band: Option<ErrorBand>,
}

impl DeviceEstimate {
    /// The estimate for `device` (shown as `name`): `components` and a `claim` of at least
    /// their total, no layers and no error band (set the fields to add them).
    pub fn new(
        device: DeviceId,
        name: impl Into<String>,
        components: Components,
        claim: u64,
    ) -> Self {
        DeviceEstimate {
            device,
            name: name.into(),
            components,
            claim,
            layers: 0,
            error_band: None,
        }
    }

    /// This estimate with `band` declared and held: the claim becomes at least the figure plus
    /// the band's headroom (unchanged for a band [inside the claim](ErrorBand::inside_claim)).
    /// Estimators call it before comparing claims with what a device has, so that the layout
    /// they choose is the one placement accepts.
    pub fn with_error_band(mut self, band: ErrorBand) -> DeviceEstimate {
        self.error_band = Some(band);
        self.claim = self.held();
        self
    }

    /// What placement holds on the device: the claim, and never less than the figure plus its
    /// error band's headroom.
    pub fn held(&self) -> u64 {
        let banded = self
            .error_band
            .filter(|band| !band.inside_claim)
            .map_or(0, |band| band.headroom_over(self.components.total()));
        self.claim.max(banded)
    }
}

/// The declared uncertainty of a memory figure: how far off it may be, and what it rests on.
///
/// Placement keeps the band as headroom: [`DeviceEstimate::with_error_band`] raises the claim to
/// the figure plus the band, and placement never holds less than [`DeviceEstimate::held`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBand {
    /// Largest expected error, in percent of the figure.
    pub percent: u32,
    /// What the figure rests on.
    pub basis: FigureBasis,
    /// The backend sizes a pool to whatever its claim leaves (vLLM's KV cache inside
    /// `--gpu-memory-utilization`): an error moves that pool, not the memory taken, so the
    /// claim holds no headroom for it (the driver keeps its own margin, such as a shorter
    /// context).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inside_claim: bool,
}

impl ErrorBand {
    /// A band of `percent` on `basis`, held above the figure.
    pub fn new(percent: u32, basis: FigureBasis) -> ErrorBand {
        ErrorBand {
            percent,
            basis,
            inside_claim: false,
        }
    }

    /// `figure` plus the band's headroom (rounded up, saturating): what placement should claim.
    pub fn headroom_over(&self, figure: u64) -> u64 {
        let headroom = (u128::from(figure) * u128::from(self.percent)).div_ceil(100);
        u64::try_from(u128::from(figure) + headroom).unwrap_or(u64::MAX)
    }
}

/// `± 2% (measured architecture)`, as the human output shows a band.
impl std::fmt::Display for ErrorBand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "± {}% ({}", self.percent, self.basis)?;
        if self.inside_claim {
            f.write_str(", inside the claim")?;
        }
        f.write_str(")")
    }
}

/// What a memory figure rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FigureBasis {
    /// A published measurement of this model at this compute type (a catalog figure).
    CatalogFigure,
    /// A published measurement of another size of the same family, scaled by parameter count.
    ScaledCatalogFigure,
    /// Parameter count × bytes per parameter of the compute type, plus a cited runtime overhead.
    Derived,
    /// Nothing published fits: a stated guess.
    Guess,
    /// Built from the backend's own compute graph for this architecture, and checked against
    /// measured buffers of this architecture.
    MeasuredArchitecture,
    /// Built from the backend's own compute graph for this architecture, not measured.
    GraphDerived,
    /// The backend runs an architecture the estimator has no graph of its own for: sized with a
    /// generic template.
    UnmodelledArchitecture,
    /// Checked against published start-up logs of the backend (vLLM's logged KV capacity).
    PublishedLogs,
}

impl FigureBasis {
    /// A few words for human output ("catalog figure", "measured architecture").
    pub fn phrase(self) -> &'static str {
        match self {
            FigureBasis::CatalogFigure => "catalog figure",
            FigureBasis::ScaledCatalogFigure => "catalog figure scaled by size",
            FigureBasis::Derived => "derived, nothing published",
            FigureBasis::Guess => "a guess",
            FigureBasis::MeasuredArchitecture => "measured architecture",
            FigureBasis::GraphDerived => "graph derived, not measured",
            FigureBasis::UnmodelledArchitecture => "architecture not modelled, generic graph",
            FigureBasis::PublishedLogs => "checked against published logs",
        }
    }
}

impl std::fmt::Display for FigureBasis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.phrase())
    }
}

/// One backend parameter an estimate requires of the launch: a flag in its canonical spelling
/// and its values, already checked by the driver that made it.
///
/// ```
/// use inferkit_core::LaunchArgument;
///
/// let arg = LaunchArgument::new("--max-model-len", ["8192"]);
/// assert_eq!(arg.value(), Some("8192"));
/// assert_eq!(LaunchArgument::argv(&[arg]), ["--max-model-len", "8192"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LaunchArgument {
    /// The flag (`--max-model-len`).
    pub flag: String,
    /// Its values, as the backend reads them; empty for a switch.
    pub values: Vec<String>,
}

impl LaunchArgument {
    /// `flag` with `values`.
    pub fn new<I, V>(flag: impl Into<String>, values: I) -> LaunchArgument
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        LaunchArgument {
            flag: flag.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// The first value (flags with one value).
    pub fn value(&self) -> Option<&str> {
        self.values.first().map(String::as_str)
    }

    /// The command-line tokens of `args`: each flag followed by its values.
    pub fn argv(args: &[LaunchArgument]) -> Vec<String> {
        args.iter()
            .flat_map(|a| std::iter::once(a.flag.clone()).chain(a.values.iter().cloned()))
            .collect()
    }
}

/// The JSON form of [`ResourceEstimate::launch_parameters`]: the flat token list a command line
/// has, read back by starting a new argument at every option token.
mod launch_argv {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::LaunchArgument;
    use crate::flags::is_option;

    pub fn serialize<S: Serializer>(args: &[LaunchArgument], out: S) -> Result<S::Ok, S::Error> {
        LaunchArgument::argv(args).serialize(out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        input: D,
    ) -> Result<Vec<LaunchArgument>, D::Error> {
        let tokens = Vec::<String>::deserialize(input)?;
        let mut args: Vec<LaunchArgument> = Vec::new();
        for token in tokens {
            match args.last_mut() {
                Some(last) if !is_option(&token) => last.values.push(token),
                None if !is_option(&token) => {
                    return Err(serde::de::Error::custom(format!(
                        "launch parameters must start with a flag, not `{token}`"
                    )));
                }
                _ => args.push(LaunchArgument::new(token, [] as [String; 0])),
            }
        }
        Ok(args)
    }
}

/// The answer of an estimator: bytes per device and per component, plus host RAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ResourceEstimate {
    /// The layout this estimate is for (resolved: no defaults left implicit).
    pub layout: Layout,
    /// One entry per accelerator of the request, in request order.
    pub devices: Vec<DeviceEstimate>,
    /// Host RAM of the main worker, by component.
    pub host: Components,
    /// How sure the host figure is, as for a device's
    /// ([`DeviceEstimate::error_band`]); `None` where the estimator declares none. Shown, not
    /// held as headroom: placement claims host RAM at the figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_error_band: Option<ErrorBand>,
    /// Backend parameters the launch must carry so that it matches this estimate (for example
    /// a lowered `--gpu-memory-utilization` or a computed `--max-model-len`). In JSON, the
    /// command-line tokens they stand for (`["--max-model-len", "8192"]`).
    #[serde(default, with = "launch_argv")]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub launch_parameters: Vec<LaunchArgument>,
    /// Backend-specific facts worth showing (KV capacity in tokens, largest context that fits,
    /// projector buffers...): a driver's typed details (for example `inferkit_vllm::VllmDetails`)
    /// field by field, made by [`details_map`] and read back by [`ResourceEstimate::details_as`].
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Value>,
    /// Sentences explaining choices the estimator made.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The [`ResourceEstimate::details`] of a driver's typed details: each field of `details` (a
/// struct) under its serialised name. Anything that does not serialise as a struct gives no
/// details.
pub fn details_map<T: Serialize>(details: &T) -> BTreeMap<String, serde_json::Value> {
    match serde_json::to_value(details) {
        Ok(serde_json::Value::Object(fields)) => fields.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

impl ResourceEstimate {
    /// An estimate of `layout` over `devices` with no host RAM, launch parameters, details or
    /// notes (set the fields to add them). Built this way, a driver outside this crate keeps
    /// compiling when fields are added.
    ///
    /// ```
    /// use inferkit_core::{Components, DeviceEstimate, DeviceId, Layout, ResourceEstimate};
    ///
    /// let weights = Components { weights: 4 << 30, ..Components::default() };
    /// let gpu = DeviceId { worker: "worker-1".to_string(), index: 0 };
    /// let device = DeviceEstimate::new(gpu, "gpu0", weights, 4 << 30);
    /// let mut estimate = ResourceEstimate::new(Layout::Single, vec![device]);
    /// estimate.notes.push("weights only".to_string());
    /// assert_eq!(estimate.devices[0].held(), 4 << 30);
    /// ```
    pub fn new(layout: Layout, devices: Vec<DeviceEstimate>) -> Self {
        ResourceEstimate {
            layout,
            devices,
            host: Components::default(),
            host_error_band: None,
            launch_parameters: Vec::new(),
            details: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// The details as the typed value a driver made them from (see [`details_map`]); `None`
    /// when they are not of that shape (another backend's estimate).
    pub fn details_as<T: DeserializeOwned>(&self) -> Option<T> {
        let fields = self.details.clone().into_iter().collect();
        serde_json::from_value(serde_json::Value::Object(fields)).ok()
    }

    /// `Ok` when every device's claim (with its error band, [`DeviceEstimate::held`]) and the
    /// host RAM fit what is allocatable, else
    /// [`Error::DoesNotFit`] naming the first over-claimed device.
    pub fn check_fits(&self, request_devices: &[DeviceSlot], host: &HostSlot) -> Result<()> {
        for (estimate, slot) in self.devices.iter().zip(request_devices) {
            if estimate.held() > slot.allocatable {
                return Err(Error::DoesNotFit {
                    needed: estimate.held(),
                    available: slot.allocatable,
                    reason: format!("{} ({}) is too small", slot.id, slot.name),
                });
            }
        }
        let ram = self.host.total();
        if ram > host.allocatable {
            return Err(Error::DoesNotFit {
                needed: ram,
                available: host.allocatable,
                reason: format!("host RAM of {} is too small", host.worker),
            });
        }
        Ok(())
    }
}

/// Sizes a model bound to one set of backend parameters.
pub trait ResourceEstimator: Send + Sync {
    /// Bytes per device and component for exactly this layout. Pure and fast: placement calls
    /// it many times.
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate>;

    /// The best layout of the model over `request.devices`, or [`Error::DoesNotFit`] /
    /// [`Error::Unsupported`] saying why none works. The default estimates the natural layout
    /// (everything on the devices, no offload) and checks that it fits.
    fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        let layout = match request.devices.len() {
            0 => Layout::CpuOnly,
            1 => Layout::Single,
            n => Layout::Parallel {
                tensor_parallel: u32::try_from(n).unwrap_or(u32::MAX),
                pipeline_parallel: 1,
            },
        };
        let estimate = self.estimate(&EstimateRequest {
            devices: request.devices.clone(),
            host: request.host.clone(),
            layout,
        })?;
        estimate.check_fits(&request.devices, &request.host)?;
        Ok(estimate)
    }

    /// Completes `estimate`, the one placement chose ([`fit`](Self::fit)'s answer to
    /// `request`), with notes worth computing once rather than for every device group
    /// placement tries (one that costs estimates of its own: the llama-server driver's largest
    /// context that keeps every layer on the devices). Placement calls it once, on the
    /// estimate of the assignment it returns; the default adds nothing.
    fn annotate_chosen(&self, request: &FitRequest, estimate: &mut ResourceEstimate) -> Result<()> {
        let _ = (request, estimate);
        Ok(())
    }

    /// What to add to the refusal when no placement fits, computed once rather than for every
    /// device group refused (the llama-server driver's largest context that keeps every layer
    /// on the devices). Placement calls it once, with the request of the largest group it
    /// refused, and appends the note to its [`Error::NoPlacement`] reason; the default adds
    /// nothing.
    fn explain_refusal(&self, request: &FitRequest) -> Result<Option<String>> {
        let _ = request;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_rounds_up_and_saturates() {
        let band = ErrorBand::new(10, FigureBasis::CatalogFigure);
        assert_eq!(band.headroom_over(1_000), 1_100);
        assert_eq!(band.headroom_over(1_001), 1_102);
        assert_eq!(band.headroom_over(0), 0);
        assert_eq!(band.headroom_over(u64::MAX - 1), u64::MAX);
        let json = serde_json::to_value(band).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"percent": 10, "basis": "catalog_figure"})
        );
    }

    fn device(total: u64, claim: u64) -> DeviceEstimate {
        DeviceEstimate {
            device: DeviceId {
                worker: "w".into(),
                index: 0,
            },
            name: "gpu0".into(),
            components: Components {
                weights: total,
                ..Components::default()
            },
            claim,
            layers: 0,
            error_band: None,
        }
    }

    #[test]
    fn the_band_is_held_above_the_figure_unless_it_is_inside_the_claim() {
        let band = ErrorBand::new(10, FigureBasis::MeasuredArchitecture);
        // A claim at the figure rises by the band; one already above it stays.
        assert_eq!(device(1_000, 1_000).with_error_band(band).claim, 1_100);
        assert_eq!(device(1_000, 1_500).with_error_band(band).claim, 1_500);
        // A band declared without raising the claim is still held by placement.
        let mut declared = device(1_000, 1_000);
        declared.error_band = Some(band);
        assert_eq!(declared.held(), 1_100);
        // vLLM's pool: the band moves the KV cache inside the claim, the claim stays.
        let inside = ErrorBand {
            inside_claim: true,
            ..ErrorBand::new(5, FigureBasis::PublishedLogs)
        };
        let vllm = device(1_000, 1_000).with_error_band(inside);
        assert_eq!((vllm.claim, vllm.held()), (1_000, 1_000));
        assert_eq!(band.to_string(), "± 10% (measured architecture)");
        assert_eq!(
            inside.to_string(),
            "± 5% (checked against published logs, inside the claim)"
        );
        let json = serde_json::to_value(inside).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"percent": 5, "basis": "published_logs", "inside_claim": true})
        );
    }

    #[test]
    fn check_fits_holds_the_band() {
        let slot = DeviceSlot {
            id: DeviceId {
                worker: "w".into(),
                index: 0,
            },
            vendor: Vendor::Nvidia,
            name: "gpu".into(),
            total: 1_050,
            allocatable: 1_050,
            remote: false,
            compute_capability: None,
            reserved: None,
        };
        let mut device = device(1_000, 1_000);
        let estimate = |devices| ResourceEstimate {
            layout: Layout::Single,
            devices,
            host: Components::default(),
            host_error_band: None,
            launch_parameters: Vec::new(),
            details: BTreeMap::new(),
            notes: Vec::new(),
        };
        let host = HostSlot::default();
        assert!(
            estimate(vec![device.clone()])
                .check_fits(std::slice::from_ref(&slot), &host)
                .is_ok()
        );
        device.error_band = Some(ErrorBand::new(10, FigureBasis::GraphDerived));
        let err = estimate(vec![device])
            .check_fits(&[slot], &host)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::DoesNotFit {
                    needed: 1_100,
                    available: 1_050,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    /// The JSON of launch parameters is the token list of a command line, read back into the
    /// same typed arguments (switches, negative values and several values included).
    #[test]
    fn launch_parameters_are_command_line_tokens_in_json() {
        let estimate = ResourceEstimate {
            layout: Layout::Single,
            devices: Vec::new(),
            host: Components::default(),
            host_error_band: None,
            launch_parameters: vec![
                LaunchArgument::new("--max-model-len", ["8192"]),
                LaunchArgument::new("--enforce-eager", [] as [&str; 0]),
                LaunchArgument::new("--seed", ["-1"]),
                LaunchArgument::new("--lora", ["a.gguf", "b.gguf"]),
            ],
            details: BTreeMap::new(),
            notes: Vec::new(),
        };
        let json = serde_json::to_value(&estimate).unwrap();
        assert_eq!(
            json["launch_parameters"],
            serde_json::json!([
                "--max-model-len",
                "8192",
                "--enforce-eager",
                "--seed",
                "-1",
                "--lora",
                "a.gguf",
                "b.gguf"
            ])
        );
        let back: ResourceEstimate = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, estimate);
        let mut bad = json;
        bad["launch_parameters"] = serde_json::json!(["8192", "--max-model-len"]);
        let err = serde_json::from_value::<ResourceEstimate>(bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("must start with a flag, not `8192`"),
            "{err}"
        );
    }
}
