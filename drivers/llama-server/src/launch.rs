//! From a placement ([`Assignment`]) to the processes that run it: `ggml-rpc-server` per
//! remote device, then `llama-server`.
//!
//! The plan decides memory, so the command line always says it: `--gpu-layers`, `--ctx-size`,
//! `--device` (RPC devices first, as llama.cpp orders them), `--tensor-split` over those
//! devices, and `--fit off` so that llama-server does not second-guess them. Devices are
//! pinned twice: by the vendor's visibility variable and by name. A secret parameter the server
//! can read from its environment (`--api-key`, `LLAMA_API_KEY`) goes there instead of argv.

use std::collections::BTreeMap;
use std::path::Path;

use inferkit_core::{
    Assignment, Category, DeviceSlot, Error, HealthCheck, LaunchSpec, Layout, ModelFacts,
    ModelSpec, ProcessRole, Result, Subordinate, Vendor,
};
use inferkit_llama_box::llamacpp::{self as shared, Args};

use crate::flags::{self, Input};

/// llama-server's table resolves both polarities of a switch to one flag; no two flags set one
/// setting.
fn same_setting(flag: &str) -> &str {
    flag
}

/// Program name of the server (looked up in `PATH` by the launcher).
pub const PROGRAM: &str = "llama-server";

/// Program name of llama.cpp's RPC server.
pub const RPC_PROGRAM: &str = "ggml-rpc-server";

/// The flags that do not depend on the placement: the endpoint of the model's category, the
/// projector, then the user's parameters (replacing what they override).
pub fn model_args(categories: &[Category], mmproj: Option<&Path>, user: &Args) -> Args {
    let mut defaults = Args::default();
    if categories.contains(&Category::Embedding) {
        defaults.push("--embedding", &[]);
    }
    if categories.contains(&Category::Reranker) {
        defaults.push("--rerank", &[]);
    }
    let mut user = user.clone();
    if let Some(path) = mmproj {
        let path = path.display().to_string();
        defaults.push("--mmproj", &[&path]);
        for arg in user.args.iter_mut().filter(|a| a.flag == "--mmproj") {
            arg.values = vec![path.clone()];
        }
    }
    shared::layer(flags::table(), same_setting, &[defaults, user])
}

/// The processes of `assignment`: one RPC server per remote device, then llama-server with the
/// model's flags, the placement's, and a context of `context` tokens (`n_ctx` as the estimate
/// resolved it).
pub fn launch(
    facts: &ModelFacts,
    spec: &ModelSpec,
    assignment: &Assignment,
    model_args: &Args,
    context: Option<u64>,
) -> Result<Vec<LaunchSpec>> {
    let remote = shared::remote_devices(assignment)?;
    let local: Vec<&DeviceSlot> = assignment.devices.iter().filter(|d| !d.remote).collect();
    shared::check_ascend_order(&local)?;
    let mut specs = assignment
        .subordinates
        .iter()
        .zip(&remote)
        .map(|(sub, device)| rpc_server(sub, device))
        .collect::<Result<Vec<_>>>()?;

    let (model_args, secrets) = secrets_to_env(model_args);
    let estimated = Args::from_launch(&assignment.estimate.launch_parameters);
    let placement = placement_args(facts, assignment, &model_args, context, &local)?;
    let args = shared::layer(
        flags::table(),
        same_setting,
        &[
            shared::platform_args(facts, spec, assignment)?,
            model_args,
            placement,
            estimated,
        ],
    );
    let argv = args.to_argv();
    // Every generated command line is one llama-server reads.
    flags::parse(flags::table(), &argv, Input::Argv)?;
    let mut env = shared::visibility_env(&local);
    env.extend(secrets);
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut process = LaunchSpec::new(
        assignment.worker.clone(),
        ProcessRole::Main,
        PROGRAM.to_string(),
        argv,
    );
    process.env = env;
    process.health = Some(HealthCheck {
        port: assignment.port,
        path: Some("/health".to_string()),
    });
    specs.push(process);
    Ok(specs)
}

/// Moves the values of secret flags that llama-server also reads from the environment out of
/// the argument list (where every local user sees them) into those variables.
fn secrets_to_env(args: &Args) -> (Args, BTreeMap<String, String>) {
    let mut kept = args.clone();
    let mut env = BTreeMap::new();
    kept.args.retain(|arg| {
        let variable = flags::table()
            .lookup(&arg.flag)
            .filter(|found| found.spec.secret)
            .and_then(|found| found.spec.env);
        match (variable, arg.value()) {
            (Some(variable), Some(value)) => {
                env.insert(variable.to_string(), value.to_string());
                false
            }
            _ => true,
        }
    });
    (kept, env)
}

/// `--fit off --gpu-layers --ctx-size --rpc --device --tensor-split` from the placement.
fn placement_args(
    facts: &ModelFacts,
    assignment: &Assignment,
    model_args: &Args,
    context: Option<u64>,
    local: &[&DeviceSlot],
) -> Result<Args> {
    let total = facts
        .gguf
        .as_ref()
        .and_then(|g| g.block_count().ok())
        .map_or(0, |n| u32::try_from(n + 1).unwrap_or(u32::MAX));
    let offload = match &assignment.estimate.layout {
        Layout::CpuOnly => 0,
        Layout::Single => total,
        Layout::Layers { offload_layers, .. } => *offload_layers,
        _ => {
            return Err(Error::unsupported(
                "llama-server splits models by layers; it has no tensor or pipeline parallelism",
            ));
        }
    };
    shared::check_user_gpu_layers(model_args, offload, total)?;
    shared::check_user_main_gpu(model_args, assignment.devices.len())?;
    let mut args = Args::default();
    args.push("--fit", &["off"]);
    args.push("--gpu-layers", &[&offload.to_string()]);
    if let Some(context) = context {
        args.push("--ctx-size", &[&context.to_string()]);
    }
    let servers: Vec<String> = assignment
        .subordinates
        .iter()
        .map(|s| format!("{}:{}", s.address, s.port))
        .collect();
    if !servers.is_empty() {
        // Before --device: llama.cpp registers the RPC devices while parsing --rpc.
        args.push("--rpc", &[&servers.join(",")]);
    }
    let devices = device_names(servers.len(), local)?;
    let devices = match (offload, devices.is_empty()) {
        (0, _) | (_, true) => "none".to_string(),
        _ => devices.join(","),
    };
    args.push("--device", &[&devices]);
    if let Some(split) = shared::tensor_split(assignment, offload, false) {
        args.push("--tensor-split", &[&split]);
    }
    Ok(args)
}

/// The names llama.cpp gives the devices of the main process: `RPC0`.. for the RPC servers'
/// devices (numbered across servers in `--rpc` order, `ggml-rpc.cpp`), then each local
/// device by its backend's name and its position among the visible devices of that vendor
/// (`CUDA0`, `ROCm0`, `CANN0`, `MTL0`).
fn device_names(rpc_devices: usize, local: &[&DeviceSlot]) -> Result<Vec<String>> {
    let mut names: Vec<String> = (0..rpc_devices).map(|i| format!("RPC{i}")).collect();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for device in local {
        let prefix = backend_name(&device.vendor)?;
        let index = seen.entry(prefix).or_default();
        names.push(format!("{prefix}{index}"));
        *index += 1;
    }
    Ok(names)
}

/// The ggml backend that drives the vendor's devices, by its device-name prefix.
fn backend_name(vendor: &Vendor) -> Result<&'static str> {
    match vendor {
        Vendor::Nvidia => Ok("CUDA"),
        Vendor::Amd => Ok("ROCm"),
        Vendor::Ascend => Ok("CANN"),
        Vendor::Apple => Ok("MTL"),
        other => Err(Error::unsupported(format!(
            "llama-server device names are known for NVIDIA, AMD, Ascend and Apple devices, \
             not {other}"
        ))),
    }
}

/// `ggml-rpc-server -H 0.0.0.0 -p PORT -d DEVICE`: one device, pinned by the visibility
/// variable, so it is the vendor's device 0 inside the process.
fn rpc_server(sub: &Subordinate, device: &DeviceSlot) -> Result<LaunchSpec> {
    let name = format!("{}0", backend_name(&device.vendor)?);
    let mut args = Args::default();
    args.push("-H", &["0.0.0.0"]);
    args.push("-p", &[&sub.port.to_string()]);
    args.push("-d", &[&name]);
    let argv = args.to_argv();
    flags::parse(flags::rpc_table(), &argv, Input::Argv)?;
    let mut process = LaunchSpec::new(
        sub.worker.clone(),
        ProcessRole::subordinate(shared::RPC_SERVER),
        RPC_PROGRAM.to_string(),
        argv,
    );
    process.env = shared::visibility_env(&[device]);
    // The RPC protocol is raw TCP: ready once the port accepts.
    process.health = Some(HealthCheck {
        port: sub.port,
        path: None,
    });
    Ok(process)
}
