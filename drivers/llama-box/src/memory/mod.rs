//! llama.cpp's memory use, per device and per component, from a GGUF header and the launch
//! settings.
//!
//! [`LlamaCppModel::new`] reads the model and settings once: it resolves the context the way
//! `llama_context` does, sizes every layer's weights and KV cache, and replays ggml's graph
//! allocator over the worst-case graph for each role a device can play.
//! [`LlamaCppModel::estimate`] then only places layers and adds numbers, so placement can call
//! it thousands of times.

mod alloc;
mod architecture;
mod diffusion;
mod graph;
mod kv;
mod mmdit;
mod placement;
mod projector;
mod shape;
mod weights;

use std::collections::HashMap;
use std::sync::Mutex;

use inferkit_core::gguf::GgufModel;
use inferkit_core::{
    Components, DeviceEstimate, DeviceSlot, Error, ErrorBand, FitRequest, HostSlot, Layout,
    ResourceEstimate, Result, Vendor, details_map,
};
use serde::{Deserialize, Serialize};

use crate::params::{FlashAttn, LlamaSettings};
use architecture::Coverage;
pub use diffusion::{DiffusionEstimate, DiffusionFamily, StageBytes};
use graph::{Placement, Pooling, Reserve};
pub use kv::ContextSize;
use placement::LayerMap;
use projector::Projector;
pub use projector::{WarmupAudio, WarmupImage};
use shape::ModelShape;
use weights::WeightTable;

/// The error band a text model of architecture `arch` (`general.architecture`) carries on
/// every device: how its compute graph is covered (measured, derived from llama.cpp's builder,
/// or sized with the generic template).
pub fn architecture_band(arch: &str) -> inferkit_core::ErrorBand {
    Coverage::of(arch).band()
}

/// A GGUF model bound to llama.cpp settings, ready to estimate layouts: a text model
/// (llama.cpp) or an image model (stable-diffusion.cpp), as llama-box runs either.
#[derive(Debug, Clone)]
pub struct LlamaCppModel {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Text(Box<TextModel>),
    Image(Box<ImageModel>),
}

/// An image model with its settings.
#[derive(Debug, Clone)]
struct ImageModel {
    estimate: DiffusionEstimate,
    settings: LlamaSettings,
}

impl LlamaCppModel {
    /// Reads the model and resolves the settings as llama.cpp (or stable-diffusion.cpp for
    /// image models) would, refusing what they refuse. A projector named by
    /// `settings.mmproj` is read too.
    pub fn new(model: &GgufModel, settings: &LlamaSettings) -> Result<LlamaCppModel> {
        let kind = if model.is_diffusion() {
            let flash = !matches!(settings.flash_attn, FlashAttn::Off);
            let separate = open_components(model, &settings.image.components)?;
            let separate: Vec<&GgufModel> = separate.iter().collect();
            Kind::Image(Box::new(ImageModel {
                estimate: DiffusionEstimate::new(model, &separate, &settings.image, flash)?,
                settings: settings.clone(),
            }))
        } else {
            Kind::Text(Box::new(TextModel::new(model, settings)?))
        };
        Ok(LlamaCppModel { kind })
    }

    /// The same model with `--ctx-size` `ctx_size`: as [`LlamaCppModel::new`] with that
    /// context gives, without reading the tensors, the projector or the component files again
    /// (a text model keeps what does not depend on the context: its shape, weights and
    /// projector).
    pub fn with_ctx_size(&self, gguf: &GgufModel, ctx_size: u32) -> Result<LlamaCppModel> {
        match &self.kind {
            Kind::Text(text) => Ok(LlamaCppModel {
                kind: Kind::Text(Box::new(text.with_ctx_size(ctx_size)?)),
            }),
            Kind::Image(image) => {
                let settings = LlamaSettings {
                    ctx_size,
                    ..image.settings.clone()
                };
                LlamaCppModel::new(gguf, &settings)
            }
        }
    }

    /// Adds the multimodal projector read from `mmproj` (the file `--mmproj` names): its
    /// weights and warm-up compute go to the first local GPU (llama-box offloads the projector
    /// unless `--no-mmproj-offload`), else to the host.
    pub fn with_projector(self, mmproj: &GgufModel) -> Result<LlamaCppModel> {
        match self.kind {
            Kind::Text(text) => Ok(LlamaCppModel {
                kind: Kind::Text(Box::new(text.with_projector(mmproj)?)),
            }),
            Kind::Image(_) => Err(Error::unsupported(
                "a multimodal projector belongs to a text model, not an image model",
            )),
        }
    }

    /// The resolved context (cells, streams, batch sizes) of a text model.
    pub fn context(&self) -> Option<&ContextSize> {
        match &self.kind {
            Kind::Text(text) => Some(&text.context),
            Kind::Image(_) => None,
        }
    }

    /// Repeating layers + 1 (the output layer): llama.cpp's full `--gpu-layers`. Image models
    /// count as one layer.
    pub fn total_layers(&self) -> u32 {
        match &self.kind {
            Kind::Text(text) => text.total_layers(),
            Kind::Image(_) => 1,
        }
    }

    /// Bytes per device and component for `layout` over `devices` (llama.cpp's device order:
    /// RPC devices first). Pure and fast: the model was sized in [`LlamaCppModel::new`].
    pub fn estimate(
        &self,
        devices: &[DeviceSlot],
        host: &HostSlot,
        layout: &Layout,
    ) -> Result<ResourceEstimate> {
        match &self.kind {
            Kind::Text(text) => text.estimate(devices, host, layout),
            Kind::Image(image) => image.estimate(devices, layout),
        }
    }

    /// The largest offload that fits `request` (text models: layers split in proportion to
    /// each device's allocatable memory; image models: everything on the first device, else
    /// the host when partial offload is allowed).
    pub fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        match &self.kind {
            Kind::Text(text) => text.fit(request),
            Kind::Image(image) => image.fit(request),
        }
    }
}

/// The band of a device that also holds the projector: the text model's band on its share and
/// the projector's on its compute (its weights are exact), rounded up; the weaker basis when
/// the projector's band is the wider.
fn with_projector(band: ErrorBand, total: u64, projector: &ProjectorEstimate) -> ErrorBand {
    let own = u128::from(total.saturating_sub(projector.weights + projector.compute));
    let off = own * u128::from(band.percent)
        + u128::from(projector.compute) * u128::from(projector.error_band.percent);
    let percent = u32::try_from(off.div_ceil(u128::from(total.max(1)))).unwrap_or(100);
    let basis = if projector.error_band.percent > band.percent {
        projector.error_band.basis
    } else {
        band.basis
    };
    ErrorBand::new(percent, basis)
}

/// Opens the separate component files of an image model; a relative path is taken from the
/// model's directory, as llama-box's working directory is not known here.
fn open_components(
    model: &GgufModel,
    components: &crate::params::ImageComponents,
) -> Result<Vec<GgufModel>> {
    let dir = model.path().parent().unwrap_or(std::path::Path::new("."));
    components
        .text_encoders()
        .chain(components.vae.as_deref())
        .map(|file| GgufModel::open(dir.join(file)))
        .collect()
}

impl ImageModel {
    /// All components on the first device (llama-box's single-GPU image placement), minus
    /// those the settings keep on the host; compute buffers stay allocated between stages
    /// unless `--image-free-compute-memory-immediately`.
    fn estimate(&self, devices: &[DeviceSlot], layout: &Layout) -> Result<ResourceEstimate> {
        let e = &self.estimate;
        let image = &self.settings.image;
        let on_device = !devices.is_empty() && !matches!(layout, Layout::CpuOnly);
        let mut host = Components::default();
        let mut per_device = vec![Components::default(); devices.len()];
        let stages = [
            (e.diffusion, on_device),
            (e.vae, on_device && !image.vae_on_cpu),
            (e.text_encoders, on_device && !image.text_encoder_on_cpu),
        ];
        for (stage, offloaded) in stages {
            let target = if offloaded {
                &mut per_device[0]
            } else {
                &mut host
            };
            target.weights += stage.weights;
            target.compute = if image.free_compute_immediately {
                target.compute.max(stage.compute)
            } else {
                target.compute + stage.compute
            };
        }
        add_runtime_overhead(devices, &mut per_device);
        let names = device_names(devices);
        let estimates = devices
            .iter()
            .zip(per_device)
            .zip(names)
            .map(|((slot, components), name)| {
                // A device holding any stage claims the estimate's band on top.
                let band = (components.total() > 0).then_some(e.error_band);
                {
                    let mut device_estimate = DeviceEstimate::new(
                        slot.id.clone(),
                        name,
                        components,
                        band.map_or(components.total(), |b| b.headroom_over(components.total())),
                    );
                    device_estimate.layers = u32::from(components.total() > 0);
                    device_estimate.error_band = band;
                    device_estimate
                }
            })
            .collect();
        let details = ImageDetails {
            diffusion: e.clone(),
        };
        let mut estimate = ResourceEstimate::new(
            if on_device {
                Layout::Single
            } else {
                Layout::CpuOnly
            },
            estimates,
        );
        estimate.host_error_band = (host.total() > 0).then_some(e.error_band);
        estimate.host = host;
        estimate.details = details_map(&details);
        Ok(estimate)
    }

    fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        let full = self.estimate(&request.devices, &Layout::Single)?;
        let fits = full.check_fits(&request.devices, &request.host);
        if fits.is_ok() || request.devices.is_empty() || !request.allow_cpu_offload {
            return fits.map(|()| full);
        }
        let cpu = self.estimate(&request.devices, &Layout::CpuOnly)?;
        cpu.check_fits(&request.devices, &request.host)?;
        Ok(cpu)
    }
}

/// A llama.cpp text model bound to its settings.
#[derive(Debug, Clone)]
struct TextModel {
    shape: ModelShape,
    settings: LlamaSettings,
    context: ContextSize,
    weights: WeightTable,
    /// KV bytes per repeating layer, all streams.
    layer_kv: Vec<u64>,
    output_buffer: u64,
    /// [`ModelShape::layer_classes`]: which layers build the same compute graph.
    layer_classes: Vec<usize>,
    replays: ReplayCache,
    flash_attn: bool,
    projector: Option<Projector>,
    /// How the architecture's compute graph is covered (sets every device's error band).
    coverage: Coverage,
}

/// What the estimate of a text model reports beside the bytes, each under its JSON key in
/// [`ResourceEstimate::details`] (read back with [`ResourceEstimate::details_as`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextDetails {
    /// `general.architecture`.
    pub architecture: String,
    /// The context size llama.cpp allocates (`n_ctx`).
    pub n_ctx: u64,
    /// The context of one sequence (`n_ctx_seq`).
    pub n_ctx_seq: u64,
    /// KV cache cells.
    pub kv_cells: u64,
    /// KV cache streams (one per sequence with a unified cache off).
    pub kv_streams: u64,
    /// Logical batch size (`n_batch`).
    pub n_batch: u64,
    /// Physical batch size (`n_ubatch`), which sizes the compute buffers.
    pub n_ubatch: u64,
    /// Whether flash attention is on.
    pub flash_attn: bool,
    /// The multimodal projector, when one is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projector: Option<ProjectorEstimate>,
}

/// What the estimate of an image model reports beside the bytes (read back with
/// [`ResourceEstimate::details_as`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageDetails {
    /// Bytes of each stable-diffusion.cpp stage.
    pub diffusion: DiffusionEstimate,
}

/// Projector (mmproj) memory, reported in [`ResourceEstimate::details`] as `projector`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectorEstimate {
    /// Where it runs: `cpu` or a device name.
    pub device: String,
    /// Weight bytes.
    pub weights: u64,
    /// Compute buffer bytes.
    pub compute: u64,
    /// The warm-up image the vision encoder's compute buffer is sized for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_image: Option<projector::WarmupImage>,
    /// The warm-up audio the audio encoder's compute buffer is sized for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_audio: Option<projector::WarmupAudio>,
    /// How far the compute figure may be off, and what it rests on.
    pub error_band: inferkit_core::ErrorBand,
}

impl TextModel {
    /// Reads the model and resolves the settings as llama.cpp would, refusing what llama.cpp
    /// refuses.
    fn new(model: &GgufModel, settings: &LlamaSettings) -> Result<TextModel> {
        let shape = ModelShape::from_gguf(model)?;
        let coverage = Coverage::of(&shape.arch);
        if shape.n_layer() == 0 {
            return Err(Error::unsupported(format!(
                "{}: no repeating layers to estimate",
                model.path().display()
            )));
        }
        let flash_attn = resolve_flash_attn(settings)?;
        check_cache_blocks(&shape, settings)?;
        let context = ContextSize::resolve(&shape, settings)?;
        let layer_kv = kv::layer_bytes(&shape, &context, settings, !flash_attn);
        let weights = WeightTable::new(&shape, settings)?;
        let output_buffer = output_buffer_bytes(&shape, settings, &context);
        let layer_classes = shape.layer_classes();
        let model = TextModel {
            shape,
            settings: settings.clone(),
            context,
            weights,
            layer_kv,
            output_buffer,
            layer_classes,
            replays: ReplayCache::default(),
            flash_attn,
            projector: None,
            coverage,
        };
        match &settings.mmproj {
            Some(path) => model.with_projector(&GgufModel::open(path)?),
            None => Ok(model),
        }
    }

    /// [`TextModel::new`] with `--ctx-size` `ctx_size`: the context and what it sizes (KV
    /// cache, output buffer, compute graphs) are resolved again; the shape, the weight table
    /// (override rules, mmap, repacking) and the projector do not depend on it.
    fn with_ctx_size(&self, ctx_size: u32) -> Result<TextModel> {
        let settings = LlamaSettings {
            ctx_size,
            ..self.settings.clone()
        };
        let context = ContextSize::resolve(&self.shape, &settings)?;
        Ok(TextModel {
            shape: self.shape.clone(),
            layer_kv: kv::layer_bytes(&self.shape, &context, &settings, !self.flash_attn),
            output_buffer: output_buffer_bytes(&self.shape, &settings, &context),
            context,
            settings,
            weights: self.weights.clone(),
            layer_classes: self.layer_classes.clone(),
            replays: ReplayCache::default(),
            flash_attn: self.flash_attn,
            projector: self.projector.clone(),
            coverage: self.coverage,
        })
    }

    /// Adds the multimodal projector read from `mmproj` (the file `--mmproj` names): its
    /// weights and warm-up compute go to the first local GPU (llama-box offloads the projector
    /// unless `--no-mmproj-offload`), else to the host.
    fn with_projector(mut self, mmproj: &GgufModel) -> Result<TextModel> {
        self.projector = Some(Projector::new(mmproj)?);
        Ok(self)
    }

    /// Repeating layers + 1 (the output layer): llama.cpp's full `--gpu-layers`.
    pub fn total_layers(&self) -> u32 {
        u32::try_from(self.shape.n_layer() + 1).unwrap_or(u32::MAX)
    }

    fn reserve(&self, n_copies: u64) -> Reserve {
        let c = &self.context;
        Reserve {
            n_tokens: c.n_ubatch_reserve(),
            n_stream: c.n_stream,
            n_seqs: c.n_seq_max,
            n_kv: c.kv_size,
            n_kv_swa: c.kv_size_swa,
            flash_attn: self.flash_attn,
            v_trans: !self.flash_attn,
            n_copies,
            pooling: if self.settings.embeddings || self.settings.reranking || !self.shape.causal {
                Pooling::of(self.settings.pooling, self.shape.pooling_type)
            } else {
                Pooling::None
            },
            kv_on_host: self.settings.no_kv_offload,
            cache_types: (self.settings.type_k, self.settings.type_v),
        }
    }

    /// Bytes per device and component for `layout` over `devices` (llama.cpp's device order:
    /// RPC devices first).
    pub fn estimate(
        &self,
        devices: &[DeviceSlot],
        _host: &HostSlot,
        layout: &Layout,
    ) -> Result<ResourceEstimate> {
        let (offload, split) = self.resolve_layout(devices, layout)?;
        let map = LayerMap::new(self.shape.n_layer(), offload, &split);
        let mut host = Components::default();
        let mut per_device = vec![Components::default(); devices.len()];
        self.add_weights(&map, &mut host, &mut per_device);
        self.add_kv(&map, &mut host, &mut per_device);
        host.output = self.output_buffer;
        self.add_compute(&map, devices.len(), &mut host, &mut per_device);
        let projector = self.add_projector(devices, offload > 0, &mut host, &mut per_device);
        add_runtime_overhead(devices, &mut per_device);
        let names = device_names(devices);
        let estimates = devices
            .iter()
            .zip(per_device)
            .zip(names)
            .enumerate()
            .map(|(i, ((slot, components), name))| {
                let mut band = self.coverage.band();
                if let Some(p) = projector.as_ref().filter(|p| p.device == name) {
                    band = with_projector(band, components.total(), p);
                }
                {
                    let mut device_estimate =
                        DeviceEstimate::new(slot.id.clone(), name, components, components.total());
                    device_estimate.layers = map.layers_on(i);
                    device_estimate.error_band = Some(band);
                    device_estimate
                }
            })
            .collect();
        let resolved = Layout::Layers {
            offload_layers: offload,
            total_layers: self.total_layers(),
            split: split.iter().map(|&s| s as u64).collect(),
        };
        let mut estimate = ResourceEstimate::new(resolved, estimates);
        estimate.host_error_band = Some(self.coverage.band());
        estimate.host = host;
        estimate.details = details_map(&self.details(projector));
        estimate.notes = self.coverage.note(&self.shape.arch).into_iter().collect();
        Ok(estimate)
    }

    /// Places the projector: the first local GPU when offloaded, else the host. llama-box
    /// v0.0.171 offloads it whenever any layer is offloaded (`httpserver.hpp`:
    /// `clip_context_params::use_gpu = n_gpu_layers != 0`), so a CPU-only layout keeps it on
    /// the host.
    fn add_projector(
        &self,
        devices: &[DeviceSlot],
        layers_offloaded: bool,
        host: &mut Components,
        per_device: &mut [Components],
    ) -> Option<ProjectorEstimate> {
        let projector = self.projector.as_ref()?;
        let (weights, compute) = (projector.weights, projector.compute(self.flash_attn));
        let offloaded = layers_offloaded && self.settings.mmproj_offload;
        let local = devices.iter().position(|d| !d.remote);
        let (target, device) = match local.filter(|_| offloaded) {
            Some(i) => (&mut per_device[i], device_names(devices).swap_remove(i)),
            None => (host, "cpu".to_owned()),
        };
        target.weights += weights;
        target.compute += compute;
        Some(ProjectorEstimate {
            device,
            weights,
            compute,
            warmup_image: projector.warmup_image.clone(),
            warmup_audio: projector.warmup_audio.clone(),
            error_band: projector.error_band,
        })
    }

    fn details(&self, projector: Option<ProjectorEstimate>) -> TextDetails {
        let c = &self.context;
        TextDetails {
            architecture: self.shape.arch.clone(),
            n_ctx: c.n_ctx,
            n_ctx_seq: c.n_ctx_seq,
            kv_cells: c.kv_size,
            kv_streams: c.n_stream,
            n_batch: c.n_batch,
            n_ubatch: c.n_ubatch,
            flash_attn: self.flash_attn,
            projector,
        }
    }

    /// Offloaded layers and split shares for a layout.
    fn resolve_layout(&self, devices: &[DeviceSlot], layout: &Layout) -> Result<(u32, Vec<f64>)> {
        let full = self.total_layers();
        let (offload, split) = match layout {
            Layout::CpuOnly => (0, Vec::new()),
            Layout::Single => (full, Vec::new()),
            Layout::Layers {
                offload_layers,
                split,
                ..
            } => (
                (*offload_layers).min(full),
                split.iter().map(|&s| s as f64).collect(),
            ),
            _ => {
                return Err(Error::unsupported(
                    "llama.cpp splits models by layers, not tensor/pipeline parallel",
                ));
            }
        };
        if devices.is_empty() {
            return Ok((0, Vec::new()));
        }
        let split = if !split.is_empty() {
            split
        } else if !self.settings.tensor_split.is_empty() {
            self.settings.tensor_split.clone()
        } else {
            default_split(devices)
        };
        if split.len() != devices.len() || split.iter().all(|&s| s <= 0.0) {
            return Err(Error::invalid_parameter(
                "--tensor-split",
                format!(
                    "needs one positive share per device ({} devices)",
                    devices.len()
                ),
            ));
        }
        Ok((offload, split))
    }

    fn add_weights(&self, map: &LayerMap, host: &mut Components, devices: &mut [Components]) {
        let host_layers = map.host_layers();
        host.weights = self
            .weights
            .host_bytes(host_layers.clone(), map.output_device().is_none());
        for (device, bytes) in devices
            .iter_mut()
            .enumerate()
            .map(|(i, d)| (d, map.range_on(i)))
        {
            device.weights = self.weights.device_bytes(bytes);
        }
        if let Some(out) = map.output_device() {
            devices[out].weights += self.weights.output_device_bytes();
        }
    }

    fn add_kv(&self, map: &LayerMap, host: &mut Components, devices: &mut [Components]) {
        let sum = |r: std::ops::Range<usize>| saturating_sum(&self.layer_kv[r]);
        if self.settings.no_kv_offload {
            host.kv = saturating_sum(&self.layer_kv);
            return;
        }
        host.kv = sum(map.host_layers());
        for (i, device) in devices.iter_mut().enumerate() {
            device.kv = sum(map.range_on(i));
        }
    }

    /// Compute buffers of the host and every device: one allocator replay of this layout
    /// ([`LayerMap::replay`]).
    fn add_compute(
        &self,
        map: &LayerMap,
        n_devices: usize,
        host: &mut Components,
        devices: &mut [Components],
    ) {
        // llama.cpp turns pipeline parallelism on with several devices at full offload
        // (`llama_context`: n_devices > 1, n_gpu_layers > n_layer, KV offloaded, no overrides).
        let full_offload = map.host_layers().is_empty() && map.output_device().is_some();
        let pipelined = full_offload
            && n_devices > 1
            && !self.settings.no_kv_offload
            && self.settings.override_tensors.is_empty();
        let copies = if pipelined { PIPELINE_COPIES } else { 1 };
        let max_run = if graph::replays_whole_runs(&self.shape) {
            self.layer_classes.len()
        } else {
            SIMULATED_LAYERS
        };
        let replay = map.replay(&self.layer_classes, max_run);
        let peaks = self
            .replays
            .peaks(replay.placement.clone(), copies, |placement| {
                graph::compute_peaks(&self.shape, &self.reserve(copies), placement)
            });
        host.compute = peaks[0];
        for (device, buffer) in devices.iter_mut().zip(&replay.device_buffers) {
            device.compute = buffer.map_or(0, |b| peaks[b]);
        }
    }

    /// The largest offload that fits `request`, with layers split in proportion to each
    /// device's allocatable memory (llama.cpp's default split by free memory).
    pub fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        let devices = &request.devices;
        let full = self.total_layers();
        let layout_for = |offload: u32| {
            if devices.is_empty() {
                Layout::CpuOnly
            } else {
                Layout::Layers {
                    offload_layers: offload,
                    total_layers: full,
                    split: Vec::new(),
                }
            }
        };
        let fits = |offload: u32| -> Result<Option<ResourceEstimate>> {
            let estimate = self.estimate(devices, &request.host, &layout_for(offload))?;
            Ok(estimate
                .check_fits(devices, &request.host)
                .is_ok()
                .then_some(estimate))
        };
        if devices.is_empty() {
            let estimate = self.estimate(devices, &request.host, &Layout::CpuOnly)?;
            estimate.check_fits(devices, &request.host)?;
            return Ok(estimate);
        }
        if let Some(estimate) = fits(full)? {
            return Ok(estimate);
        }
        if !request.allow_cpu_offload {
            let estimate = self.estimate(devices, &request.host, &layout_for(full))?;
            estimate.check_fits(devices, &request.host)?;
            return Ok(estimate);
        }
        let blocked = self.estimate(devices, &request.host, &layout_for(full))?;
        let note = blocking_note(&blocked, devices);
        // Device memory grows with the offload count: binary search the largest that fits.
        let (mut low, mut high) = (0u32, full);
        let mut best = None;
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            match fits(mid)? {
                Some(estimate) => {
                    best = Some(estimate);
                    low = mid;
                }
                None => high = mid - 1,
            }
        }
        let mut estimate = match best {
            Some(estimate) => estimate,
            None => {
                let estimate = self.estimate(devices, &request.host, &layout_for(0))?;
                estimate.check_fits(devices, &request.host)?;
                estimate
            }
        };
        estimate.notes.extend(note);
        Ok(estimate)
    }
}

/// Why a full offload does not fit: the first device over its allocatable memory, with its
/// components largest first (hard case 21: say which term blocked the offload).
fn blocking_note(full: &ResourceEstimate, devices: &[DeviceSlot]) -> Option<String> {
    let (device, slot) = full
        .devices
        .iter()
        .zip(devices)
        .find(|(d, slot)| d.held() > slot.allocatable)?;
    let c = &device.components;
    let mut terms = [
        ("weights", c.weights),
        ("KV cache", c.kv),
        ("compute", c.compute),
        ("output", c.output),
        ("runtime overhead", c.overhead),
    ];
    terms.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    let listed: Vec<String> = terms
        .iter()
        .filter(|(_, bytes)| *bytes > 0)
        .map(|(name, bytes)| format!("{name} {} MiB", bytes >> 20))
        .collect();
    let projector = full
        .details
        .get("projector")
        .filter(|p| p["device"] == device.name.as_str())
        .map(|p| {
            let bytes = p["weights"].as_u64().unwrap_or(0) + p["compute"].as_u64().unwrap_or(0);
            format!(
                " (the projector's weights and compute are {} MiB of it)",
                bytes >> 20
            )
        })
        .unwrap_or_default();
    Some(format!(
        "full offload needs {} MiB on {} but {} MiB is allocatable: {}{projector}; \
         offloading fewer layers",
        device.held() >> 20,
        device.name,
        slot.allocatable >> 20,
        listed.join(", ")
    ))
}

/// Compute peaks by replayed layout and scheduler copies. A replay is a pure function of
/// them, and the estimates of one model repeat a few layouts (`fit`'s binary search, a
/// placement search over similar device sets), so each is replayed once.
#[derive(Debug, Default)]
struct ReplayCache(Mutex<HashMap<(Placement, u64), Vec<u64>>>);

impl ReplayCache {
    /// Layouts kept; past it the cache starts over (a search over thousands of layouts).
    const CAPACITY: usize = 256;

    fn peaks(
        &self,
        placement: Placement,
        copies: u64,
        replay: impl FnOnce(&Placement) -> Vec<u64>,
    ) -> Vec<u64> {
        let key = (placement, copies);
        if let Some(peaks) = self.lock().get(&key) {
            return peaks.clone();
        }
        let peaks = replay(&key.0);
        let mut cache = self.lock();
        if cache.len() >= Self::CAPACITY {
            cache.clear();
        }
        cache.insert(key, peaks.clone());
        peaks
    }

    /// The map, also after a panic elsewhere poisoned the lock (entries are only inserted
    /// whole).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Placement, u64), Vec<u64>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A clone starts with an empty cache.
impl Clone for ReplayCache {
    fn clone(&self) -> Self {
        ReplayCache::default()
    }
}

/// Layers replayed per run of layers on one buffer (the model's last layer comes on top):
/// enough to cover llama.cpp's longest sliding-window period (6, Gemma-3).
const SIMULATED_LAYERS: usize = 8;

/// `GGML_SCHED_MAX_COPIES` default: scheduler copies with pipeline parallelism.
const PIPELINE_COPIES: u64 = 4;

/// Flash attention as llama.cpp resolves it: a quantized V cache needs it (refused when
/// off); `auto` turns it on (every backend llama-box ships supports it).
fn resolve_flash_attn(settings: &LlamaSettings) -> Result<bool> {
    match settings.flash_attn {
        FlashAttn::On | FlashAttn::Auto => Ok(true),
        FlashAttn::Off if settings.type_v.is_quantized() => Err(Error::invalid_parameter(
            "--cache-type-v",
            "quantized V cache requires flash_attn to be enabled (llama_init_from_model)",
        )),
        FlashAttn::Off => Ok(false),
    }
}

/// `llama_init_from_model` (0c1e57098) refuses a quantized cache type whose block does not
/// divide the head size (Exaone-3.5's 80-wide heads with a q8_0 cache, for example) when flash
/// attention may be on.
fn check_cache_blocks(shape: &ModelShape, settings: &LlamaSettings) -> Result<()> {
    if matches!(settings.flash_attn, FlashAttn::Off) {
        return Ok(());
    }
    // Every layer's own head sizes (`n_embd_head_k(il)` / `n_embd_head_v(il)`).
    let checks = shape.layers.iter().flat_map(|layer| {
        [
            ("--cache-type-k", "K", settings.type_k, layer.head_k),
            ("--cache-type-v", "V", settings.type_v, layer.head_v),
        ]
    });
    for (flag, which, cache, head) in checks {
        let block = cache.block_size();
        if cache.is_quantized() && head % block != 0 {
            return Err(Error::invalid_parameter(
                flag,
                format!(
                    "{which} cache type {} with block size {block} does not divide the head size {head} (llama_init_from_model)",
                    cache.name()
                ),
            ));
        }
    }
    Ok(())
}

/// `llama_context::output_reserve`: logits for `n_seq_max` outputs, plus embeddings when
/// requested, as f32, in host memory. llama-box's patch drops the logits of non-causal models
/// (`has_logits = cparams.causal_attn`).
fn output_buffer_bytes(shape: &ModelShape, settings: &LlamaSettings, context: &ContextSize) -> u64 {
    let embd = if settings.embeddings || settings.reranking {
        shape.n_embd
    } else {
        0
    };
    let logits = if settings.non_causal_whole_context && !shape.causal {
        0
    } else {
        shape.n_vocab
    };
    context.n_seq_max * (logits + embd) * 4
}

/// llama.cpp's default split: each device's free memory; RPC devices, whose memory an
/// estimate cannot know, get equal shares.
fn default_split(devices: &[DeviceSlot]) -> Vec<f64> {
    if devices.iter().any(|d| d.remote) || devices.iter().any(|d| d.allocatable == 0) {
        return vec![1.0; devices.len()];
    }
    devices.iter().map(|d| d.allocatable as f64).collect()
}

/// Device memory a CUDA or HIP process holds outside llama.cpp's buffers, which the CPU-backed
/// measurements cannot show. Assumptions, from llama.cpp's CUDA backend and the CUDA runtime:
/// - the CUDA context with lazily loaded kernels (`CUDA_MODULE_LOADING=LAZY`, the default since
///   CUDA 11.7) and cuBLAS/cuBLASLt handles and workspaces: about 250 MiB on current drivers
///   (gguf-parser-go budgets the same 250 MiB "platform" footprint);
/// - not counted: the `ggml_cuda_pool` scratch of the cuBLAS path (dequantized weights for
///   non-MMQ matmuls at batch > 32), row padding of quantized weights (512 elements per tensor
///   in `ggml_backend_cuda_buffer_type_get_alloc_size`, at most a few KiB per tensor), and host
///   buffers being pinned (`CUDA_Host`: same bytes, locked in RAM).
///
/// Applied to every NVIDIA or AMD device that holds something, remote ones included (an RPC
/// server on a GPU worker runs its own context).
const RUNTIME_CONTEXT: u64 = 250 << 20;

fn add_runtime_overhead(devices: &[DeviceSlot], per_device: &mut [Components]) {
    for (slot, components) in devices.iter().zip(per_device) {
        let gpu_runtime = matches!(slot.vendor, Vendor::Nvidia | Vendor::Amd);
        if gpu_runtime && components.total() > 0 {
            components.overhead += RUNTIME_CONTEXT;
        }
    }
}

/// `rpc0`, `rpc1`... for remote devices and `gpu0`, `gpu1`... for local ones, in order.
fn device_names(devices: &[DeviceSlot]) -> Vec<String> {
    let (mut rpc, mut gpu) = (0, 0);
    devices
        .iter()
        .map(|d| {
            let (prefix, counter) = if d.remote {
                ("rpc", &mut rpc)
            } else {
                ("gpu", &mut gpu)
            };
            let name = format!("{prefix}{counter}");
            *counter += 1;
            name
        })
        .collect()
}

/// Sum of byte counts that saturates instead of overflowing (a saturated size fits nowhere).
pub(crate) fn saturating_sum(values: &[u64]) -> u64 {
    values.iter().fold(0u64, |acc, v| acc.saturating_add(*v))
}

/// A header of the crate's `testdata/` (the committed fixtures it links to), for unit tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> GgufModel {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    GgufModel::open(path).expect("fixture")
}

#[cfg(test)]
mod tests {
    use inferkit_core::{DeviceId, Vendor};

    use super::*;
    use crate::params::{CacheType, TensorOverride};

    fn device(index: u32, remote: bool, allocatable: u64) -> DeviceSlot {
        DeviceSlot {
            id: DeviceId {
                worker: "w".into(),
                index,
            },
            vendor: Vendor::Nvidia,
            name: "test".into(),
            total: allocatable,
            allocatable,
            remote,
            compute_capability: None,
            reserved: None,
        }
    }

    fn host() -> HostSlot {
        HostSlot {
            worker: "w".into(),
            total: 64 << 30,
            allocatable: 64 << 30,
            os: None,
        }
    }

    fn llama(settings: &LlamaSettings) -> LlamaCppModel {
        LlamaCppModel::new(&fixture("llama-3.2-1b-Q4_K_M.header.gguf"), settings).expect("model")
    }

    #[test]
    fn quantized_v_cache_without_flash_attention_is_refused() {
        let settings = LlamaSettings {
            flash_attn: FlashAttn::Off,
            type_v: CacheType::Q8_0,
            ..LlamaSettings::default()
        };
        let error = LlamaCppModel::new(&fixture("llama-3.2-1b-Q4_K_M.header.gguf"), &settings)
            .expect_err("llama.cpp refuses it");
        assert!(error.to_string().contains("requires flash_attn"), "{error}");
        // auto turns flash attention on, so the same cache is accepted.
        let settings = LlamaSettings {
            flash_attn: FlashAttn::Auto,
            ..settings
        };
        let estimate = llama(&settings)
            .estimate(&[], &host(), &Layout::CpuOnly)
            .expect("estimate");
        assert_eq!(estimate.details["flash_attn"], true);
    }

    /// ChatGLM3's fused QKV at full offload with the cache on the host: the host stores V, an
    /// unroped view of the device's QKV output, and the scheduler copies what `ggml_nbytes`
    /// counts of it (511 token rows of 4608 floats and 256 floats), not the whole QKV output.
    /// llama.cpp's compute buffer on the host: 22,541,312 bytes (`measurements-archs-offload`,
    /// chatglm3-6b, ngl 5, flash attention, 4096 tokens, one sequence, measured at 0c1e57098);
    /// a copy of the whole output put it 17,408 bytes over.
    #[test]
    fn a_fused_qkv_view_is_copied_to_the_host_cache_as_far_as_it_spans() {
        let settings = LlamaSettings {
            ctx_size: 4096,
            n_parallel: 1,
            flash_attn: FlashAttn::On,
            no_kv_offload: true,
            use_mmap: false,
            ..LlamaSettings::default()
        };
        let model =
            LlamaCppModel::new(&fixture("chatglm3-6b-F16.header.gguf"), &settings).expect("model");
        let layout = Layout::Layers {
            offload_layers: 5,
            total_layers: 5,
            split: Vec::new(),
        };
        let estimate = model
            .estimate(&[device(0, true, 16 << 30)], &host(), &layout)
            .expect("estimate");
        assert_eq!(estimate.host.compute, 22_541_312);
        assert_eq!(estimate.devices[0].components.compute, 141_557_760);
    }

    /// The RPC devices of `split` (ngl `offload` of `total` layer slots) for a replay checked
    /// byte for byte against one measured row of `measurements-archs-offload.jsonl`
    /// (0c1e57098, 4096 tokens, one sequence, no mmap, measured with the host's extra buffer
    /// types, as those rows are): the estimate of `header` with flash attention `fa` and the
    /// cache on the host or not.
    fn measured_layout(
        header: &str,
        fa: FlashAttn,
        no_kv_offload: bool,
        (offload, total): (u32, u32),
        split: &[u64],
    ) -> ResourceEstimate {
        let settings = LlamaSettings {
            ctx_size: 4096,
            n_parallel: 1,
            flash_attn: fa,
            no_kv_offload,
            use_mmap: false,
            ..LlamaSettings::default()
        };
        let model = LlamaCppModel::new(&fixture(header), &settings).expect("model");
        let devices: Vec<DeviceSlot> = (0..split.len().max(1) as u32)
            .map(|i| device(i, true, 64 << 30))
            .collect();
        let layout = Layout::Layers {
            offload_layers: offload,
            total_layers: total,
            split: split.to_vec(),
        };
        model
            .estimate(&devices, &host(), &layout)
            .expect("estimate")
    }

    /// OLMo's norms have no weight: nothing runs in place after them. The 1:1 split at full
    /// offload (pipeline copies) reads layer 3's normed input as a copy on the second device;
    /// a weight op there took 4 MiB of its own. Measured: 243,302,400 bytes.
    #[test]
    fn a_parameterless_norm_runs_no_weight_op_after_it() {
        let e = measured_layout(
            "olmo-1b-0724-F16.header.gguf",
            FlashAttn::Off,
            false,
            (5, 5),
            &[1, 1],
        );
        assert_eq!(e.devices[1].components.compute, 243_302_400);
    }

    /// Jamba (Mamba-1) adds its projection to the residual through a reshape, a view the add
    /// never takes: the first layer on a device adds into new memory (1:1 split, first
    /// device: 226,562,176 bytes measured). With the states on the host, the host layer's
    /// experts' weighting and sum stay there, before the next layer's state reads, and only
    /// the residual add moves (3:1 split at ngl 6, first device: 243,793,952 bytes).
    #[test]
    fn jamba_residual_adds_follow_llama_cpp() {
        let header = "jamba-mini-1.6-6layer-F16.header.gguf";
        let e = measured_layout(header, FlashAttn::On, false, (7, 7), &[1, 1]);
        assert_eq!(e.devices[0].components.compute, 226_562_176);
        let e = measured_layout(header, FlashAttn::On, true, (6, 7), &[3, 1]);
        assert_eq!(e.devices[0].components.compute, 243_793_952);
    }

    /// With the cache on the host a device split ends at its first layer's K/V stores: Llama
    /// 4's second device of the 1:3 split at ngl 9 (from layer 3, full attention, then chunked
    /// layers) copies the positions for layer 4 after layer 3's cache views and mask, not at
    /// its start (455,835,648 bytes measured; 464,128,000 before). And a split entered after
    /// a layer's opening norm copies that layer's residual before the next kind's inputs (the
    /// 1:4 split at ngl 8: 434,765,824 bytes; 464,148,480 before).
    #[test]
    fn llama4_splits_copy_inputs_where_their_layers_read_them() {
        let header = "llama-4-scout-17b-16e-8layer-F16.header.gguf";
        let e = measured_layout(header, FlashAttn::On, true, (9, 9), &[1, 3]);
        assert_eq!(e.devices[1].components.compute, 455_835_648);
        let e = measured_layout(header, FlashAttn::On, false, (8, 9), &[1, 4]);
        assert_eq!(e.devices[1].components.compute, 434_765_824);
    }

    #[test]
    fn devices_are_named_rpc_first_and_the_output_layer_counts() {
        let model = llama(&LlamaSettings::default());
        let devices = [device(0, true, 8 << 30), device(0, false, 8 << 30)];
        let layout = Layout::Layers {
            offload_layers: 17,
            total_layers: 17,
            split: vec![1, 1],
        };
        let estimate = model
            .estimate(&devices, &host(), &layout)
            .expect("estimate");
        let names: Vec<&str> = estimate.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["rpc0", "gpu0"]);
        let layers: Vec<u32> = estimate.devices.iter().map(|d| d.layers).collect();
        // 17 slots at 1:1: slots 0-8 (x < 0.5) on the first device, the rest and the output
        // on the second.
        assert_eq!(layers, [9, 8]);
        // Only the token embeddings stay on the host; the logits buffer is there too.
        assert_eq!(estimate.host.kv, 0);
        assert_eq!(estimate.host.output, 128_256 * 4);
        assert!(estimate.devices.iter().all(|d| d.components.kv > 0));
    }

    #[test]
    fn no_kv_offload_keeps_the_cache_on_the_host() {
        let settings = LlamaSettings {
            no_kv_offload: true,
            ..LlamaSettings::default()
        };
        let estimate = llama(&settings)
            .estimate(&[device(0, false, 8 << 30)], &host(), &Layout::Single)
            .expect("estimate");
        // 16 layers × 4096 cells × 512 K+V values × 2 bytes × 2.
        assert_eq!(estimate.host.kv, 16 * 4096 * 512 * 2 * 2);
        assert_eq!(estimate.devices[0].components.kv, 0);
    }

    #[test]
    fn no_kv_offload_without_flash_attention_attends_on_the_host() {
        // build_attn_mha pins the attention output to the CPU when offload_kqv is false, so
        // KQ, softmax and KQV run on the host next to the cache: the host's compute buffer
        // holds the KQ matrix (4096 cells × 512 tokens × 32 heads, f32), the device's no longer.
        let kq = 4096 * 512 * 32 * 4;
        let compute = |no_kv_offload: bool| {
            let settings = LlamaSettings {
                ctx_size: 4096,
                flash_attn: FlashAttn::Off,
                no_kv_offload,
                ..LlamaSettings::default()
            };
            let estimate = llama(&settings)
                .estimate(&[device(0, false, 8 << 30)], &host(), &Layout::Single)
                .expect("estimate");
            (
                estimate.host.compute,
                estimate.devices[0].components.compute,
            )
        };
        let (host_offloaded, device_offloaded) = compute(false);
        let (host_kept, device_kept) = compute(true);
        assert!(host_offloaded < kq, "{host_offloaded}");
        assert!(host_kept > kq, "{host_kept}");
        assert!(
            device_kept < device_offloaded,
            "{device_kept} vs {device_offloaded}"
        );
    }

    #[test]
    fn fit_offloads_as_many_layers_as_fit() {
        let model = llama(&LlamaSettings::default());
        let full = model
            .estimate(&[device(0, false, 8 << 30)], &host(), &Layout::Single)
            .expect("estimate");
        // What placement holds: the figure and its error band.
        let needed = full.devices[0].held();
        // A device 150 MiB short of the full offload gets a partial one.
        let small = device(0, false, needed - (150 << 20));
        let request = FitRequest {
            devices: vec![small.clone()],
            host: host(),
            allow_cpu_offload: true,
        };
        let fitted = model.fit(&request).expect("a partial offload fits");
        let Layout::Layers { offload_layers, .. } = fitted.layout else {
            panic!("layered layout expected");
        };
        assert!((1..17).contains(&offload_layers), "{offload_layers}");
        assert!(fitted.devices[0].held() <= small.allocatable);
        // One more layer would not fit.
        let more = Layout::Layers {
            offload_layers: offload_layers + 1,
            total_layers: 17,
            split: Vec::new(),
        };
        let bigger = model
            .estimate(std::slice::from_ref(&small), &host(), &more)
            .expect("estimate");
        assert!(bigger.devices[0].held() > small.allocatable);
        // Without partial offload the same device is refused.
        let strict = FitRequest {
            allow_cpu_offload: false,
            ..request
        };
        assert!(matches!(model.fit(&strict), Err(Error::DoesNotFit { .. })));
    }

    #[test]
    fn expert_override_keeps_experts_on_the_host() {
        let gguf = fixture("qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf");
        let plain = LlamaCppModel::new(&gguf, &LlamaSettings::default()).expect("model");
        let settings = LlamaSettings {
            override_tensors: vec![TensorOverride {
                pattern: "exps".into(),
                buffer_type: "CPU".into(),
            }],
            ..LlamaSettings::default()
        };
        let overridden = LlamaCppModel::new(&gguf, &settings).expect("model");
        let devices = [device(0, false, 16 << 30)];
        let a = plain
            .estimate(&devices, &host(), &Layout::Single)
            .expect("estimate");
        let b = overridden
            .estimate(&devices, &host(), &Layout::Single)
            .expect("estimate");
        let experts: u64 = gguf
            .tensors()
            .iter()
            .filter(|t| t.name.contains("exps"))
            .map(|t| t.bytes.div_ceil(32) * 32)
            .sum();
        assert!(experts > 0);
        assert_eq!(
            a.devices[0].components.weights - b.devices[0].components.weights,
            experts
        );
        assert!(b.host.weights > a.host.weights);
    }

    #[test]
    fn projector_goes_to_the_first_local_gpu() {
        let model = LlamaCppModel::new(
            &fixture("vlm/llava-1.5-7b/llama-2-7b-text-stub-F16.header.gguf"),
            &LlamaSettings::default(),
        )
        .and_then(|m| m.with_projector(&fixture("vlm/llava-1.5-7b/mmproj-llava-1.5-7b-f16.gguf")))
        .expect("model");
        let devices = [device(0, true, 32 << 30), device(0, false, 32 << 30)];
        let estimate = model
            .estimate(&devices, &host(), &Layout::Single.clone())
            .expect("estimate");
        let projector = &estimate.details["projector"];
        assert_eq!(projector["device"], "gpu0");
        assert_eq!(projector["weights"], 624_412_672u64);
        assert_eq!(projector["warmup_image"]["side"], 336);
        // The device holding it carries the text model's band on its own share and the
        // projector's 10 % on the projector's compute (its weights are exact).
        let text = u64::from(architecture_band("llama").percent);
        let gpu0 = &estimate.devices[1];
        let total = gpu0.components.total();
        let (weights, compute) = (
            624_412_672u64,
            projector["compute"].as_u64().expect("compute"),
        );
        let expected = ((total - weights - compute) * text + compute * 10).div_ceil(total);
        assert_eq!(u64::from(gpu0.error_band.expect("band").percent), expected);
    }
}

#[cfg(test)]
mod swa_tests {
    use super::*;

    #[test]
    fn gemma2_sliding_layers_hold_window_plus_ubatch_cells() {
        let gguf = fixture("gemma-2-2b-F16.header.gguf");
        let settings = LlamaSettings {
            ctx_size: 8192,
            ..LlamaSettings::default()
        };
        let model = LlamaCppModel::new(&gguf, &settings).expect("model");
        // 26 layers, every other one sliding (window 4096): the sliding cache holds
        // pad(4096 + 512, 256) = 4608 cells, the others the full 8192.
        assert_eq!(model.context().map(|c| c.kv_size_swa), Some(4608));
        let per_cell = 2 * 4 * 256 * 2; // K and V, 4 KV heads of 256, f16
        let expected = 13 * 8192 * per_cell + 13 * 4608 * per_cell;
        let estimate = model
            .estimate(&[], &HostSlot::default(), &Layout::CpuOnly)
            .expect("estimate");
        assert_eq!(estimate.host.kv, expected);
        // --swa-full gives every layer the full context.
        let full = LlamaCppModel::new(
            &gguf,
            &LlamaSettings {
                swa_full: true,
                ..settings
            },
        )
        .expect("model");
        let estimate = full
            .estimate(&[], &HostSlot::default(), &Layout::CpuOnly)
            .expect("estimate");
        assert_eq!(estimate.host.kv, 26 * 8192 * per_cell);
    }
}
