//! A mock backend for placement and planning tests, so that core's orchestration is tested
//! without any driver. Its memory model is deliberately simple and exact:
//!
//! * layered (llama.cpp-like): `layers` repeating layers of `layer` bytes plus an output layer
//!   of `output` bytes; each device used also needs `compute` bytes; the main worker's host
//!   needs `ram` bytes plus the layers left on the CPU. Layers go to devices in proportion to
//!   their allocatable memory, as llama.cpp's tensor split does.
//! * `tensor_parallel`: every device holds 1/n of the weights plus `compute`, and n must divide
//!   `heads` (vLLM's rule); with `gmu`, every device claims `total × gmu` (vLLM's
//!   `--gpu-memory-utilization`).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use inferkit_core::{
    Arch, Assignment, Backend, Capabilities, Category, Claim, Cluster, Components, Device,
    DeviceEstimate, DeviceId, Error, EstimateRequest, FitRequest, LaunchArgument, LaunchSpec,
    Layout, Memory, ModelFacts, ModelFormat, ModelSource, ModelSpec, Os, Platform, Prepared,
    ProcessRole, ResourceEstimate, ResourceEstimator, Result, Selection, SubordinateGrouping,
    Unfit, Vendor, WorkerInventory,
};

pub const GIB: u64 = 1 << 30;

/// The mock model's memory.
#[derive(Debug, Clone)]
pub struct MockModel {
    pub layers: u32,
    pub layer: u64,
    pub output: u64,
    pub compute: u64,
    pub ram: u64,
    /// Attention heads; `Some` makes the model tensor-parallel (divisibility enforced).
    pub heads: Option<u32>,
    /// vLLM's gpu-memory-utilization: claim `total × gmu` per device.
    pub gmu: Option<f64>,
}

impl MockModel {
    /// A llama.cpp-like model of about `gib` GiB of weights in 61 layers (DeepSeek's count).
    pub fn layered(gib: u64) -> Self {
        MockModel {
            layers: 61,
            layer: gib * GIB / 62,
            output: gib * GIB / 62,
            compute: GIB / 2,
            ram: GIB / 2,
            heads: None,
            gmu: None,
        }
    }

    /// A vLLM-like model of `gib` GiB of weights with `heads` attention heads.
    pub fn tensor_parallel(gib: u64, heads: u32) -> Self {
        MockModel {
            heads: Some(heads),
            ..MockModel::layered(gib)
        }
    }

    pub fn weights(&self) -> u64 {
        self.layer * u64::from(self.layers) + self.output
    }
}

/// The mock backend. `fits` counts estimator fits (to check the search stays bounded),
/// `refusals` the refusals it was asked to explain.
#[derive(Clone)]
pub struct MockBackend {
    pub id: &'static str,
    pub caps: Capabilities,
    pub model: MockModel,
    pub claim: Claim,
    pub categories: Vec<Category>,
    /// Compute capabilities this build cannot run (hard case 19).
    pub unsupported_cc: Vec<String>,
    /// CPU architectures this model runs on (empty: any), as vox-box restricts some families.
    pub model_arches: Vec<String>,
    pub fits: Arc<AtomicUsize>,
    pub refusals: Arc<AtomicUsize>,
    /// Whether explaining a refusal fails (an estimator error while computing the note).
    pub explaining_fails: bool,
}

/// What the llama-box-like backend can do.
fn llama_capabilities() -> Capabilities {
    let mut caps = Capabilities::default();
    caps.formats = vec![ModelFormat::Gguf];
    caps.vendors = vec![Vendor::Nvidia, Vendor::Amd, Vendor::Apple, Vendor::Ascend];
    caps.categories = vec![Category::Llm, Category::Embedding, Category::Reranker];
    caps.cpu_only = true;
    caps.cpu_offload = true;
    caps.multi_device = true;
    caps.multi_worker = true;
    caps.default_cpu_offloading = true;
    caps.default_distributed = true;
    caps.subordinates = SubordinateGrouping::PerRemoteDevice;
    caps
}

impl MockBackend {
    /// A llama-box-like backend: GGUF, offload, RPC per remote device, CPU capable.
    pub fn llama(model: MockModel) -> Self {
        MockBackend {
            id: "llama-box",
            caps: llama_capabilities(),
            model,
            claim: Claim::Prefers,
            categories: vec![Category::Llm],
            unsupported_cc: vec![],
            model_arches: vec![],
            fits: Arc::default(),
            refusals: Arc::default(),
            explaining_fails: false,
        }
    }

    /// A vLLM-like backend: tensor parallel, Ray per remote worker, Linux only.
    pub fn vllm(model: MockModel) -> Self {
        let mut b = MockBackend::llama(model);
        b.id = "vllm";
        b.caps.formats = vec![ModelFormat::Safetensors];
        b.caps.vendors = vec![Vendor::Nvidia, Vendor::Amd, Vendor::Ascend];
        b.caps.platforms = vec![
            Platform::new(Os::Linux, Arch::Amd64),
            Platform::new(Os::Linux, Arch::Arm64),
        ];
        b.caps.cpu_only = false;
        b.caps.cpu_offload = false;
        b.caps.default_cpu_offloading = false;
        b.caps.default_worker_selector = [("os".to_string(), "linux".to_string())].into();
        b.caps.subordinates = SubordinateGrouping::PerRemoteWorker;
        b.claim = Claim::Supports;
        b
    }

    /// A MindIE-like backend: Ascend only.
    pub fn mindie(model: MockModel, claim: Claim) -> Self {
        let mut b = MockBackend::vllm(model);
        b.id = "ascend-mindie";
        b.caps.vendors = vec![Vendor::Ascend];
        b.caps.default_distributed = false;
        b.claim = claim;
        b
    }

    pub fn fit_count(&self) -> usize {
        self.fits.load(Ordering::Relaxed)
    }

    pub fn refusal_count(&self) -> usize {
        self.refusals.load(Ordering::Relaxed)
    }
}

impl Backend for MockBackend {
    fn id(&self) -> &'static str {
        self.id
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn select(&self, facts: &ModelFacts, _spec: &ModelSpec) -> Selection {
        let gguf = matches!(
            &facts.source,
            ModelSource::Huggingface { filename: Some(f), .. } if f.ends_with(".gguf")
        );
        let claim = match (self.id, gguf) {
            ("llama-box", true) => Claim::Prefers,
            ("llama-box", false) => Claim::Refuses,
            (_, true) => Claim::Fallback,
            _ => self.claim,
        };
        Selection {
            claim,
            reason: format!("{} says {claim:?}", self.id),
            categories: self.categories.clone(),
        }
    }

    fn prepare<'a>(
        &'a self,
        _facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> Result<Box<dyn Prepared + 'a>> {
        Ok(Box::new(MockPrepared {
            backend: self,
            spec,
            estimator: MockEstimator {
                model: self.model.clone(),
                fits: self.fits.clone(),
                refusals: self.refusals.clone(),
                explaining_fails: self.explaining_fails,
            },
        }))
    }
}

/// The mock backend bound to one spec.
pub struct MockPrepared<'a> {
    backend: &'a MockBackend,
    spec: &'a ModelSpec,
    estimator: MockEstimator,
}

impl Prepared for MockPrepared<'_> {
    fn warnings(&self) -> &[String] {
        &[]
    }

    fn estimator(&self) -> &dyn ResourceEstimator {
        &self.estimator
    }

    fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
        let spec = self.spec;
        let mut specs: Vec<LaunchSpec> = assignment
            .subordinates
            .iter()
            .map(|s| {
                LaunchSpec::new(
                    s.worker.clone(),
                    ProcessRole::subordinate("rpc_server"),
                    "rpc-server",
                    vec!["--port".into(), s.port.to_string()],
                )
            })
            .collect();
        let local: Vec<String> = assignment
            .devices
            .iter()
            .filter(|d| !d.remote)
            .map(|d| d.id.index.to_string())
            .collect();
        let mut process = LaunchSpec::new(
            assignment.worker.clone(),
            ProcessRole::Main,
            self.backend.id,
            vec![
                "--alias".into(),
                spec.name.clone(),
                "--port".into(),
                assignment.port.to_string(),
            ],
        );
        process.env = [
            ("CUDA_VISIBLE_DEVICES".to_string(), local.join(",")),
            (
                "BACKEND_VERSION".to_string(),
                spec.backend_version.clone().unwrap_or_default(),
            ),
        ]
        .into();
        specs.push(process);
        Ok(specs)
    }

    fn check_device(
        &self,
        _worker: &WorkerInventory,
        device: &Device,
    ) -> std::result::Result<(), Unfit> {
        match &device.compute_capability {
            Some(cc) if self.backend.unsupported_cc.contains(cc) => Err(Unfit::Device {
                reason: format!(
                    "this {} build has no kernels for compute capability {cc}",
                    self.backend.id
                ),
            }),
            _ => Ok(()),
        }
    }

    fn check_worker(&self, worker: &WorkerInventory) -> std::result::Result<(), Unfit> {
        let arches = &self.backend.model_arches;
        if arches.is_empty() || arches.contains(&worker.arch) {
            Ok(())
        } else {
            Err(Unfit::Platform {
                reason: format!("this model runs on {} only", arches.join(", ")),
            })
        }
    }
}

pub struct MockEstimator {
    model: MockModel,
    fits: Arc<AtomicUsize>,
    refusals: Arc<AtomicUsize>,
    explaining_fails: bool,
}

impl MockEstimator {
    fn device_estimate(
        &self,
        slot: &inferkit_core::DeviceSlot,
        weights: u64,
        layers: u32,
    ) -> DeviceEstimate {
        let components = Components {
            weights,
            compute: self.model.compute,
            ..Components::default()
        };
        let claim = match self.model.gmu {
            Some(gmu) => ((slot.total as f64) * gmu) as u64,
            None => components.total(),
        };
        {
            let mut device_estimate = DeviceEstimate::new(
                slot.id.clone(),
                format!("gpu{}", slot.id.index),
                components,
                claim,
            );
            device_estimate.layers = layers;
            device_estimate
        }
    }

    fn layered(&self, request: &EstimateRequest, offload: u32) -> ResourceEstimate {
        let m = &self.model;
        let total_layers = m.layers + 1;
        let on_devices = if request.devices.is_empty() {
            0
        } else {
            offload
        };
        // Split the offloaded layers in proportion to allocatable memory, rounding the
        // running total so that no device gets more than one layer above its share.
        let free: u128 = request
            .devices
            .iter()
            .map(|d| u128::from(d.allocatable.max(1)))
            .sum();
        let mut seen: u128 = 0;
        let mut given = 0u32;
        let mut devices = Vec::new();
        for slot in &request.devices {
            seen += u128::from(slot.allocatable.max(1));
            let upto = ((u128::from(on_devices) * seen + free / 2) / free.max(1)) as u32;
            let share = upto - given;
            given = upto;
            devices.push(self.device_estimate(slot, u64::from(share) * m.layer, share));
        }
        // The output layer counts as one of the offloaded layers and sits on the last device
        // holding layers.
        if let Some(last) = devices.iter_mut().rev().find(|d| d.layers > 0) {
            last.components.weights = last.components.weights - m.layer + m.output;
            last.claim = last.components.total();
        }
        let cpu_layers = total_layers - on_devices;
        {
            let mut estimate = ResourceEstimate::new(
                Layout::Layers {
                    offload_layers: on_devices,
                    total_layers,
                    split: request.devices.iter().map(|d| d.allocatable).collect(),
                },
                devices,
            );
            estimate.host = Components {
                weights: u64::from(cpu_layers) * m.layer,
                overhead: m.ram,
                ..Components::default()
            };
            estimate
        }
    }

    fn parallel(&self, request: &EstimateRequest, heads: u32) -> Result<ResourceEstimate> {
        let n = request.devices.len() as u32;
        if !heads.is_multiple_of(n) {
            let valid: Vec<String> = (1..=heads)
                .filter(|d| heads.is_multiple_of(*d))
                .map(|d| d.to_string())
                .collect();
            return Err(Error::unsupported(format!(
                "tensor parallel {n} does not divide {heads} attention heads; valid sizes: {}",
                valid.join(", ")
            )));
        }
        let share = self.model.weights() / u64::from(n);
        let devices: Vec<DeviceEstimate> = request
            .devices
            .iter()
            .map(|slot| self.device_estimate(slot, share, 0))
            .collect();
        for d in &devices {
            if d.components.total() > d.claim {
                return Err(Error::DoesNotFit {
                    needed: d.components.total(),
                    available: d.claim,
                    reason: format!(
                        "{} would hold {} bytes but gpu-memory-utilization leaves {}",
                        d.device,
                        d.components.total(),
                        d.claim
                    ),
                });
            }
        }
        let mut estimate = ResourceEstimate::new(
            Layout::Parallel {
                tensor_parallel: n,
                pipeline_parallel: 1,
            },
            devices,
        );
        estimate.host = Components {
            overhead: self.model.ram,
            ..Components::default()
        };
        estimate.launch_parameters = vec![LaunchArgument::new(
            "--tensor-parallel-size",
            [n.to_string()],
        )];
        Ok(estimate)
    }
}

impl ResourceEstimator for MockEstimator {
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        match (&request.layout, self.model.heads) {
            (Layout::Layers { offload_layers, .. }, _) => {
                Ok(self.layered(request, *offload_layers))
            }
            (_, Some(heads)) if !request.devices.is_empty() => self.parallel(request, heads),
            _ => Ok(self.layered(request, self.model.layers + 1)),
        }
    }

    fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        self.fits.fetch_add(1, Ordering::Relaxed);
        let total_layers = self.model.layers + 1;
        let estimate_request = |layers: u32| EstimateRequest {
            devices: request.devices.clone(),
            host: request.host.clone(),
            layout: Layout::Layers {
                offload_layers: layers,
                total_layers,
                split: vec![],
            },
        };
        if request.devices.is_empty() {
            let estimate = self.layered(&estimate_request(0), 0);
            estimate.check_fits(&request.devices, &request.host)?;
            return Ok(estimate);
        }
        if let Some(heads) = self.model.heads {
            let estimate = self.parallel(
                &EstimateRequest {
                    devices: request.devices.clone(),
                    host: request.host.clone(),
                    layout: Layout::Single,
                },
                heads,
            )?;
            estimate.check_fits(&request.devices, &request.host)?;
            return Ok(estimate);
        }
        let full = self.layered(&estimate_request(total_layers), total_layers);
        match full.check_fits(&request.devices, &request.host) {
            Ok(()) => return Ok(full),
            Err(e) if !request.allow_cpu_offload => return Err(e),
            Err(_) => {}
        }
        (0..total_layers)
            .rev()
            .map(|layers| self.layered(&estimate_request(layers), layers))
            .find(|e| e.check_fits(&request.devices, &request.host).is_ok())
            .ok_or_else(|| Error::DoesNotFit {
                needed: self.model.ram + self.model.weights(),
                available: request.host.allocatable,
                reason: "not even CPU-only fits the host".into(),
            })
    }

    /// Names the devices and host of the request it is given.
    fn explain_refusal(&self, request: &FitRequest) -> Result<Option<String>> {
        self.refusals.fetch_add(1, Ordering::Relaxed);
        if self.explaining_fails {
            return Err(Error::InvalidParameter {
                name: "ctx_size".into(),
                reason: "the offer's estimate failed".into(),
            });
        }
        let devices: Vec<String> = request.devices.iter().map(|d| d.id.to_string()).collect();
        Ok(Some(format!(
            "explained for [{}] on {}",
            devices.join(" "),
            request.host.worker
        )))
    }
}

// ---- cluster builders --------------------------------------------------------------------

pub fn gpu(index: u32, vendor: Vendor, name: &str, total_gib: u64, used_gib: u64) -> Device {
    let mut device = Device::new(index, vendor, name, total_gib * GIB);
    device.memory.used = used_gib * GIB;
    device
}

pub fn worker(name: &str, ram_gib: u64, devices: Vec<Device>) -> WorkerInventory {
    WorkerInventory {
        name: name.into(),
        os: "linux".into(),
        arch: "amd64".into(),
        cpu_cores: 32,
        ram: Memory {
            total: ram_gib * GIB,
            used: 4 * GIB,
            reserved: None,
        },
        devices,
        ..WorkerInventory::default()
    }
}

pub fn nvidia_worker(name: &str, gpus: u32, gib: u64) -> WorkerInventory {
    let devices = (0..gpus)
        .map(|i| gpu(i, Vendor::Nvidia, &format!("GPU {gib}G"), gib, 0))
        .collect();
    worker(name, 512, devices)
}

pub fn cluster(workers: Vec<WorkerInventory>) -> Cluster {
    Cluster { workers }
}

/// Facts of a model known only by name (no files): `.gguf` names are GGUF for the mocks.
pub fn facts(name: &str) -> ModelFacts {
    ModelFacts::read(&ModelSource::Huggingface {
        repo_id: "test/model".into(),
        filename: Some(name.into()),
        revision: None,
    })
    .expect("remote facts")
}

pub fn spec(name: &str) -> ModelSpec {
    let mut spec = ModelSpec::local(format!("/models/{name}"));
    spec.source = ModelSource::Huggingface {
        repo_id: "test/model".into(),
        filename: Some(name.into()),
        revision: None,
    };
    spec
}

pub fn device_id(worker: &str, index: u32) -> DeviceId {
    DeviceId {
        worker: worker.into(),
        index,
    }
}
