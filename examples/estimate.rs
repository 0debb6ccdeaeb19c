//! Estimates the memory llama.cpp (llama-server, llama-box) needs to run a GGUF model on this
//! machine, per device and per component.
//!
//! ```text
//! cargo run --release --example estimate -- MODEL.gguf [llama-server flags...] [--json] [--llama-box]
//! ```
//!
//! The flags mean what they mean to llama-server: `--ctx-size -c` (total context shared by the
//! `--parallel -np` sequences), `--batch-size -b`, `--ubatch-size -ub`, `--cache-type-k -ctk`,
//! `--cache-type-v -ctv`, `--flash-attn -fa [on|off|auto]`, `--kv-unified`, `--swa-full`,
//! `--gpu-layers -ngl`, `--tensor-split -ts`, `--main-gpu -mg`, `--mmap` / `--no-mmap`,
//! `--mmproj`, `--embeddings`, `--rerank`, `--pooling`, `--override-tensor -ot`, `--cpu-moe`,
//! `--n-cpu-moe`, `--no-kv-offload -nkvo`, and every other flag of llama-box v0.0.171 (checked,
//! and ignored when it does not change memory).
//!
//! Devices: `--rpc HOST:PORT[,HOST:PORT...]` adds remote devices `rpc0`, `rpc1`, ... (no
//! connection is made), which come before the local GPUs as in llama.cpp. Local GPUs are found
//! with the host and NVML probes (features `host-probe` and `nvml`); without them, or with
//! `--gpu-layers 0`, the model runs in host memory (`cpu`). Without `--tensor-split`, layers
//! are shared in proportion to free memory (equal shares when an RPC device takes part, whose
//! memory cannot be known).
//!
//! With `--llama-box` the flags mean what they mean to llama-box v0.0.171 instead, with its
//! defaults and adjustments (flash attention off unless `--flash-attn`, and for non-causal
//! embedding and reranker models a micro-batch of the whole context, capped at the training
//! context unless the RoPE flags differ from the model's).
//!
//! With `--json` it prints one object: `layers` (repeating layers + output), `offload_layers`,
//! `devices` (`cpu` first, then each device) with `weights`, `kv`, `compute`, `output` and
//! `total` in bytes, and the estimator's `details` and `notes`. Settings llama.cpp refuses exit
//! with status 1 and the reason.

use std::path::PathBuf;
use std::process::ExitCode;

use inferkit_core::gguf::GgufModel;
use inferkit_core::{
    Components, DeviceId, DeviceSlot, EstimateRequest, HostSlot, Layout, ResourceEstimate,
    ResourceEstimator, Result, Vendor,
};
use inferkit_llama_box::flags::{Args, Syntax};
use inferkit_llama_box::params::LlamaSettings;
use inferkit_llama_box::{LlamaBoxEstimator, llama_box_settings, select};
use serde_json::{Value, json};

const USAGE: &str = "usage: estimate MODEL.gguf [llama-server flags...] [--json] [--llama-box]";

struct Command {
    model: PathBuf,
    flags: Vec<String>,
    json: bool,
    /// Read the flags as llama-box v0.0.171 does.
    llama_box: bool,
}

fn parse_command() -> std::result::Result<Command, String> {
    // A word that is not UTF-8 is refused (`std::env::args` would panic on it).
    let mut words = std::env::args_os()
        .skip(1)
        .map(|word| {
            word.into_string()
                .map_err(|bad| format!("argument `{}` is not UTF-8\n{USAGE}", bad.display()))
        })
        .collect::<std::result::Result<Vec<String>, String>>()?;
    let json = words.iter().any(|w| w == "--json");
    let llama_box = words.iter().any(|w| w == "--llama-box");
    words.retain(|w| w != "--json" && w != "--llama-box");
    if words.is_empty() || words[0].starts_with('-') {
        return Err(USAGE.to_string());
    }
    let model = PathBuf::from(words.remove(0));
    Ok(Command {
        model,
        flags: words,
        json,
        llama_box,
    })
}

/// The local machine: its free host memory and GPUs, from the probes compiled in.
#[cfg(feature = "host-probe")]
fn local_machine() -> Result<(HostSlot, Vec<DeviceSlot>)> {
    use inferkit::probe::CompositeProbe;
    use inferkit_core::DeviceProbe;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| inferkit_core::Error::Probe {
            probe: "host".into(),
            reason: e.to_string(),
        })?;
    let worker = runtime.block_on(CompositeProbe::local().probe())?;
    let host = HostSlot {
        worker: worker.name.clone(),
        total: worker.ram.total,
        allocatable: worker.ram.free(),
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
        })
        .collect();
    Ok((host, devices))
}

/// Without the host probe: host memory unknown, no GPU.
#[cfg(not(feature = "host-probe"))]
fn local_machine() -> Result<(HostSlot, Vec<DeviceSlot>)> {
    Ok((HostSlot::default(), Vec::new()))
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
        })
        .collect()
}

fn run(command: &Command) -> Result<Value> {
    let gguf = GgufModel::open(&command.model)?;
    let syntax = match command.llama_box {
        true => Syntax::Parameters,
        false => Syntax::LlamaServer,
    };
    let args = Args::parse(&command.flags, syntax)?;
    // Projector and adapter files are refused here, with GPUStack's message.
    select::detect_categories(&gguf, &args)?;
    let settings = match command.llama_box {
        true => llama_box_settings(&args)?,
        false => {
            let mut settings = LlamaSettings::default();
            args.apply_to(&mut settings)?;
            settings
        }
    };
    let estimator = LlamaBoxEstimator::new(&gguf, &settings)?;

    let (host, local) = local_machine()?;
    let cpu_only = settings.gpu_layers == Some(0);
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
            tensor_split: Vec::new(),
        }
    };
    let estimate = estimator.estimate(&EstimateRequest {
        devices,
        host,
        layout,
    })?;
    Ok(report(&estimate, &args))
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

fn report(estimate: &ResourceEstimate, args: &Args) -> Value {
    let (layers, offload) = match estimate.layout {
        Layout::Layers {
            offload_layers,
            total_layers,
            ..
        } => (total_layers, offload_layers),
        _ => (0, 0),
    };
    let devices: Vec<Value> = std::iter::once(row("cpu", &estimate.host))
        .chain(estimate.devices.iter().map(|d| row(&d.name, &d.components)))
        .collect();
    let mut out = json!({
        "layers": layers,
        "offload_layers": offload,
        "devices": devices,
        "notes": estimate.notes,
        "warnings": args.warnings,
    });
    for (key, value) in &estimate.details {
        out[key] = value.clone();
    }
    out
}

fn print_table(report: &Value) {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / MIB;
    println!(
        "layers: {}  offloaded: {}",
        report["layers"], report["offload_layers"]
    );
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "device", "weights MiB", "kv MiB", "compute MiB", "output MiB", "total MiB"
    );
    for d in report["devices"].as_array().into_iter().flatten() {
        println!(
            "{:<8} {:>12.2} {:>12.2} {:>12.2} {:>12.2} {:>12.2}",
            d["name"].as_str().unwrap_or("?"),
            mib(&d["weights"]),
            mib(&d["kv"]),
            mib(&d["compute"]),
            mib(&d["output"]),
            mib(&d["total"]),
        );
    }
    for note in report["notes"].as_array().into_iter().flatten() {
        println!("note: {}", note.as_str().unwrap_or_default());
    }
    for warning in report["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", warning.as_str().unwrap_or_default());
    }
}

fn main() -> ExitCode {
    let command = match parse_command() {
        Ok(command) => command,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match run(&command) {
        Ok(report) if command.json => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print_table(&report);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
