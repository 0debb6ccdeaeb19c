//! An application registers its own backend next to the built-in ones: here Hugging Face's
//! text-generation-inference (TGI) for safetensors models on one NVIDIA GPU, sized as the
//! weights plus a fixed KV cache. A spec that names it gets it; selection, placement and the
//! plan work as for the built-in drivers.
//!
//! ```text
//! cargo run --example custom_backend
//! ```

use std::collections::BTreeMap;

use inferkit::{
    Arch, Assignment, Backend, Capabilities, Category, Claim, Cluster, Components, DeviceEstimate,
    Error, EstimateRequest, HealthCheck, LaunchSpec, ModelFacts, ModelFormat, ModelSpec, Os,
    PlanOptions, Platform, Prepared, ProcessRole, ResourceEstimate, ResourceEstimator, Result,
    Selection, Vendor, default_registry, plan,
};

/// KV cache and activations TGI keeps beside the weights, in this sketch a flat 4 GiB.
const RUNTIME_BYTES: u64 = 4 << 30;

struct Tgi(Capabilities);

impl Tgi {
    fn new() -> Self {
        let mut caps = Capabilities::default();
        caps.formats = vec![ModelFormat::Safetensors];
        caps.vendors = vec![Vendor::Nvidia];
        caps.platforms = vec![Platform::new(Os::Linux, Arch::Amd64)];
        caps.categories = vec![Category::Llm];
        Tgi(caps)
    }
}

impl Backend for Tgi {
    fn id(&self) -> &'static str {
        "tgi"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.0
    }

    fn select(&self, facts: &ModelFacts, _spec: &ModelSpec) -> Selection {
        match facts.format {
            ModelFormat::Safetensors => {
                let mut selection = Selection::new(Claim::Supports, "TGI serves safetensors");
                selection.categories = vec![Category::Llm];
                selection
            }
            _ => Selection::new(Claim::Refuses, "TGI serves safetensors directories only"),
        }
    }

    fn prepare<'a>(
        &'a self,
        facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> Result<Box<dyn Prepared + 'a>> {
        let weights = facts
            .require_hf()?
            .safetensors()
            .map(|weights| weights.summary.total_bytes)
            .ok_or_else(|| Error::unsupported("TGI needs safetensors weights"))?;
        Ok(Box::new(TgiModel { spec, weights }))
    }
}

/// One model prepared for TGI.
struct TgiModel<'a> {
    spec: &'a ModelSpec,
    weights: u64,
}

impl Prepared for TgiModel<'_> {
    fn warnings(&self) -> &[String] {
        &[]
    }

    fn estimator(&self) -> &dyn ResourceEstimator {
        self
    }

    fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
        let indexes: Vec<u32> = assignment.devices.iter().map(|d| d.id.index).collect();
        let (variable, devices) = Vendor::Nvidia.visible_devices(&indexes);
        let model = self
            .spec
            .source
            .local_path()
            .map(|p| p.display().to_string());
        let port = assignment.port;
        let args = vec![
            "--model-id".to_string(),
            model.unwrap_or_else(|| self.spec.source.display_name()),
            "--port".to_string(),
            port.to_string(),
        ];
        // Built through the constructor and field assignment: the structs are
        // `#[non_exhaustive]`, and this keeps compiling when inferkit adds fields.
        let mut process = LaunchSpec::new(
            assignment.worker.clone(),
            ProcessRole::Main,
            "text-generation-launcher",
            args,
        );
        process.env = BTreeMap::from([(variable.to_string(), devices)]);
        process.health = Some(HealthCheck {
            port,
            path: Some("/health".into()),
        });
        Ok(vec![process])
    }
}

impl ResourceEstimator for TgiModel<'_> {
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        let on_device = Components {
            weights: self.weights,
            kv: RUNTIME_BYTES,
            ..Components::default()
        };
        let devices = request.devices.iter().enumerate().map(|(i, slot)| {
            DeviceEstimate::new(
                slot.id.clone(),
                format!("gpu{i}"),
                on_device,
                on_device.total(),
            )
        });
        Ok(ResourceEstimate::new(
            request.layout.clone(),
            devices.collect(),
        ))
    }
}

fn main() -> Result<()> {
    let registry = default_registry().with(Tgi::new());
    let cluster = Cluster::from_json_file("examples/clusters/h100x8.json".as_ref())?;
    let mut spec = ModelSpec::local("tests/fixtures/hf/Llama-3.1-8B-Instruct");
    spec.backend = Some("tgi".into());
    let plan = plan(&registry, &spec, &cluster, &PlanOptions::default())?;
    for line in &plan.explanation {
        println!("- {line}");
    }
    for process in &plan.processes {
        println!("{}: {}", process.worker, process.command_line());
    }
    Ok(())
}
