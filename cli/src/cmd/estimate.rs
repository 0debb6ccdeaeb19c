//! `inferkit estimate`: the memory llama.cpp (llama-server, llama-box) needs for a GGUF
//! model, per device and component.

use std::io::Write;

use inferkit::gguf::GgufModel;
use inferkit::llama_box::llamacpp::{self, Args as Flags, LlamaSettings, Syntax};
use inferkit::llama_box::{LlamaBoxEstimator, llama_box_settings};
use inferkit::units::MIB;
use inferkit::{
    Components, DeviceId, DeviceSlot, Error, ErrorBand, EstimateRequest, HostSlot, Layout,
    ResourceEstimate, ResourceEstimator, Result, Vendor, WorkerInventory,
};
use serde_json::{Value, json};

use crate::cluster_arg::ClusterArgs;
use crate::model_arg;
use crate::output::{Failure, Output};
use crate::warnings;

/// Estimates the memory llama.cpp needs to run a GGUF model on this machine (or on described
/// hardware: --gpu), per device and component.
///
/// The FLAGS mean what they mean to llama-server: --ctx-size -c (total context shared by the
/// --parallel -np sequences), --batch-size -b, --ubatch-size -ub, --cache-type-k -ctk,
/// --cache-type-v -ctv, --flash-attn -fa [on|off|auto], --kv-unified, --swa-full,
/// --gpu-layers -ngl, --tensor-split -ts, --main-gpu -mg, --mmap / --no-mmap, --mmproj,
/// --embeddings, --rerank, --pooling, --override-tensor -ot, --cpu-moe, --n-cpu-moe,
/// --no-kv-offload -nkvo, and every other flag of llama-box v0.0.171 (checked, and ignored
/// when it does not change memory). --rpc HOST:PORT[,...] adds remote devices rpc0, rpc1, ...
/// (no connection is made), which come before the local GPUs as in llama.cpp.
///
/// Without --tensor-split, layers are shared in proportion to free memory (equal shares when
/// an RPC device takes part). Settings llama.cpp refuses exit with status 1 and the reason.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object: layers, offload_layers, devices (cpu first) with weights, kv,
    /// compute, output and total in bytes, the estimator's details and notes. Also accepted
    /// among the FLAGS.
    #[arg(long)]
    json: bool,

    /// Read the FLAGS as llama-box v0.0.171 does (its defaults: flash attention off unless
    /// --flash-attn; a whole-context micro-batch for non-causal embedding and reranker
    /// models). Also accepted among the FLAGS.
    #[arg(long)]
    llama_box: bool,

    #[command(flatten)]
    machine: ClusterArgs,

    /// Read caches only (the Hugging Face, ModelScope and Ollama caches and inferkit's cache
    /// of fetched headers): no network request; a missing file is an error naming it.
    #[arg(long)]
    offline: bool,

    /// The model: a GGUF file (any shard of a split model), or `hf://ORG/NAME[:QUANT]`,
    /// `ms://...`, `ollama://NAME[:TAG]`, an http(s) URL of a GGUF file.
    model: String,

    /// llama-server (or, with --llama-box, llama-box) flags.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "FLAGS"
    )]
    flags: Vec<String>,
}

impl Args {
    /// Whether --json was given, before MODEL or among the FLAGS.
    pub fn json(&self) -> bool {
        self.json || self.flags.iter().any(|f| f == "--json")
    }

    fn llama_box(&self) -> bool {
        self.llama_box || self.flags.iter().any(|f| f == "--llama-box")
    }

    /// The FLAGS without this command's own.
    fn backend_flags(&self) -> Vec<String> {
        let own = ["--json", "--llama-box"];
        self.flags
            .iter()
            .filter(|f| !own.contains(&f.as_str()))
            .cloned()
            .collect()
    }
}

/// Runs `estimate`.
pub fn run(args: &Args, out: &mut Output) -> std::result::Result<(), Failure> {
    let report = estimate(args)?;
    if args.json() {
        writeln!(out, "{report}")?;
    } else {
        print_table(out, &report)?;
    }
    Ok(())
}

/// The machine to estimate for: the only worker of the cluster options.
fn machine(args: &ClusterArgs) -> Result<WorkerInventory> {
    let mut cluster = args.cluster()?;
    match cluster.workers.len() {
        1 => Ok(cluster.workers.remove(0)),
        n => Err(Error::invalid_parameter(
            "--cluster",
            format!("estimate sizes one machine; this cluster has {n} workers (use plan)"),
        )),
    }
}

/// The host and GPUs of `worker`, as the estimator takes them.
fn slots(worker: &WorkerInventory) -> (HostSlot, Vec<DeviceSlot>) {
    let host = HostSlot {
        worker: worker.name.clone(),
        total: worker.ram.total,
        allocatable: worker.ram.free(),
        os: Some(worker.os.clone()),
    };
    let devices = worker
        .devices
        .iter()
        .map(|d| DeviceSlot {
            id: DeviceId {
                worker: worker.name.clone(),
                index: d.index,
            },
            vendor: d.vendor.clone(),
            name: d.name.clone(),
            total: d.memory.total,
            allocatable: d.memory.free(),
            remote: false,
            compute_capability: d.compute_capability.clone(),
            reserved: d.memory.reserved,
        })
        .collect();
    (host, devices)
}

/// One remote device per `--rpc` server, named by its address; its memory is unknown.
fn rpc_devices(settings: &LlamaSettings) -> Vec<DeviceSlot> {
    settings
        .rpc_servers
        .iter()
        .map(|server| DeviceSlot {
            id: DeviceId {
                worker: server.clone(),
                index: 0,
            },
            vendor: Vendor::Other("rpc".into()),
            name: format!("RPC[{server}]"),
            total: 0,
            allocatable: 0,
            remote: true,
            compute_capability: None,
            reserved: None,
        })
        .collect()
}

fn estimate(args: &Args) -> Result<Value> {
    let model = model_arg::read(&args.model, args.offline)?;
    let gguf = GgufModel::open(&model.files)?;
    let llama_box = args.llama_box();
    let syntax = match llama_box {
        true => Syntax::Parameters,
        false => Syntax::LlamaServer,
    };
    let flags = Flags::parse(&args.backend_flags(), syntax)?;
    // Projector and adapter files are refused here, with GPUStack's message.
    llamacpp::detect_categories(&gguf, &flags)?;
    let settings = match llama_box {
        true => llama_box_settings(&flags)?,
        false => {
            let mut settings = LlamaSettings::default();
            flags.apply_to(&mut settings)?;
            settings
        }
    };
    let estimator = LlamaBoxEstimator::new(&gguf, &settings)?;

    let (host, local) = slots(&machine(&args.machine)?);
    let cpu_only = settings.gpu_layers == Some(0);
    let no_gpu = !cpu_only && local.is_empty();
    let mut devices = rpc_devices(&settings);
    if !cpu_only {
        devices.extend(local);
    }
    let layout = if cpu_only || devices.is_empty() {
        devices.clear();
        Layout::CpuOnly
    } else {
        let total_layers = estimator.total_layers();
        Layout::Layers {
            offload_layers: settings
                .gpu_layers
                .map_or(total_layers, |n| n.min(total_layers)),
            total_layers,
            split: Vec::new(),
        }
    };
    let estimate = estimator.estimate(&EstimateRequest {
        devices,
        host,
        layout,
    })?;
    let mut report = report(&estimate, &flags);
    let trained = gguf.context_length().ok().flatten();
    let found = warnings::context_beyond_training(trained, &estimate)
        .into_iter()
        .chain(warnings::empty_devices(&estimate));
    if let Some(list) = report["warnings"].as_array_mut() {
        list.extend(found.map(Value::from));
    }
    if let Some(why) = why_host_only(cpu_only, no_gpu, &args.machine) {
        report["host_only"] = why.into();
    }
    Ok(report)
}

/// Why everything went to host memory, when it did for a reason other than the flags.
fn why_host_only(cpu_only: bool, no_gpu: bool, machine: &ClusterArgs) -> Option<String> {
    if cpu_only {
        return Some("--gpu-layers 0 keeps every layer in host memory".into());
    }
    if !no_gpu {
        return None;
    }
    Some(match (&machine.cluster, &machine.gpu) {
        (Some(path), _) => format!("{} lists no GPU", path.display()),
        _ => "no GPU found on this machine (no NVIDIA driver through NVML, no npu-smi, no \
              rocm-smi: -vv shows what each probe said), so every layer is in host memory; \
              --gpu NAME estimates for a GPU this machine does not have"
            .into(),
    })
}

fn row(name: &str, c: &Components) -> Value {
    json!({
        "name": name,
        "weights": c.weights,
        "kv": c.kv,
        "compute": c.compute,
        "output": c.output,
        "overhead": c.overhead,
        "total": c.total(),
    })
}

fn report(estimate: &ResourceEstimate, flags: &Flags) -> Value {
    let (layers, offload) = match estimate.layout {
        Layout::Layers {
            offload_layers,
            total_layers,
            ..
        } => (total_layers, offload_layers),
        _ => (0, 0),
    };
    let banded = |name: &str, components: &Components, band: Option<ErrorBand>| {
        let mut row = row(name, components);
        if let Some(band) = band {
            row["error_band"] = json!(band);
        }
        row
    };
    let devices: Vec<Value> =
        std::iter::once(banded("cpu", &estimate.host, estimate.host_error_band))
            .chain(
                estimate
                    .devices
                    .iter()
                    .map(|d| banded(&d.name, &d.components, d.error_band)),
            )
            .collect();
    let mut out = json!({
        "layers": layers,
        "offload_layers": offload,
        "devices": devices,
        "notes": estimate.notes,
        "warnings": flags.warnings,
    });
    for (key, value) in &estimate.details {
        out[key] = value.clone();
    }
    out
}

/// Where the projector went and which warm-up input sized its compute buffer (clip.cpp
/// reserves it for that input, whatever the requests bring later).
fn projector_line(projector: &Value) -> Option<String> {
    let device = projector["device"].as_str()?;
    let mib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / MIB as f64;
    let mut inputs = Vec::new();
    if let Some(side) = projector["warmup_image"]["side"].as_u64() {
        let source = projector["warmup_image"]["source"].as_str().unwrap_or("?");
        inputs.push(format!("a {side}x{side} image ({source})"));
    }
    if let Some(frames) = projector["warmup_audio"]["frames"].as_u64() {
        let source = projector["warmup_audio"]["source"].as_str().unwrap_or("?");
        inputs.push(format!("{frames} mel frames of audio ({source})"));
    }
    let band = serde_json::from_value::<ErrorBand>(projector["error_band"].clone())
        .map(|band| format!(", compute {band}"))
        .unwrap_or_default();
    Some(format!(
        "projector on {device}: weights {:.2} MiB, compute {:.2} MiB sized for the warm-up with {}{band}",
        mib(&projector["weights"]),
        mib(&projector["compute"]),
        inputs.join(" and "),
    ))
}

fn print_table(out: &mut Output, report: &Value) -> std::io::Result<()> {
    let mib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / MIB as f64;
    writeln!(
        out,
        "layers: {}  offloaded: {}",
        report["layers"], report["offload_layers"]
    )?;
    writeln!(
        out,
        "{:<8} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "device", "weights MiB", "kv MiB", "compute MiB", "output MiB", "total MiB"
    )?;
    for d in report["devices"].as_array().into_iter().flatten() {
        let band = serde_json::from_value::<ErrorBand>(d["error_band"].clone())
            .map(|band| format!("  {band}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<8} {:>12.2} {:>12.2} {:>12.2} {:>12.2} {:>12.2}{band}",
            d["name"].as_str().unwrap_or("?"),
            mib(&d["weights"]),
            mib(&d["kv"]),
            mib(&d["compute"]),
            mib(&d["output"]),
            mib(&d["total"]),
        )?;
    }
    if let Some(why) = report["host_only"].as_str() {
        writeln!(out, "host only: {why}")?;
    }
    if let Some(line) = projector_line(&report["projector"]) {
        writeln!(out, "{line}")?;
    }
    for note in report["notes"].as_array().into_iter().flatten() {
        writeln!(out, "note: {}", note.as_str().unwrap_or_default())?;
    }
    for warning in report["warnings"].as_array().into_iter().flatten() {
        writeln!(out, "warning: {}", warning.as_str().unwrap_or_default())?;
    }
    Ok(())
}
