//! Launch translation: from a placement ([`Assignment`]) to the llama-box processes that run it.
//!
//! The command line is GPUStack 0.7.1's (§2.1 of the behaviour spec) with its bugs fixed:
//! - one llama-box RPC server per remote device, with only flags llama-box knows (GPUStack also
//!   passed `--origin-rpc-server-main-gpu`, which llama-box ignores with a warning, and which
//!   broke on version skew);
//! - `--tensor-split` is the number of layers the estimate put on each device, so llama.cpp's
//!   split reproduces the estimated layout exactly (GPUStack passed each claim in MiB, whose
//!   proportions differ from the layer shares the estimate assumed);
//! - each flag appears once: a later source (user parameters, then the estimate's
//!   `launch_parameters`) replaces the default it overrides instead of relying on last-wins;
//! - devices are always pinned (hard case 25): through the vendor's visibility variable, and,
//!   when the main worker contributes no GPU, with `--device none` (CPU only) or `--device`
//!   listing the RPC devices, so that llama.cpp puts nothing on a GPU it was not given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inferkit_core::gguf::parse_split_name;
use inferkit_core::{
    Assignment, Category, DeviceSlot, Error, HealthCheck, LaunchSpec, Layout, ModelFacts,
    ModelSpec, ProcessRole, Result, Subordinate, Vendor,
};

use inferkit_core::flags::FlagTable;

use crate::flags::Args;

/// Role of a llama.cpp RPC server offering one device to the main process.
pub const RPC_SERVER: &str = "rpc_server";

/// Program name of llama-box (looked up in `PATH` by the launcher).
pub const PROGRAM: &str = "llama-box";

/// GPUStack's default context size (§2.1).
const DEFAULT_CTX_SIZE: &str = "8192";

/// GPUStack's parallel sequences for generation models; embedding and reranker models get 1.
const DEFAULT_PARALLEL: &str = "4";

/// GPUStack caches this many projected images when a projector is loaded.
const DEFAULT_PROJECTED_CACHE: &str = "10";

/// `llama_max_devices()`-independent "every layer": llama.cpp caps `n_gpu_layers` at
/// `n_layer + 1`, so 999 offloads everything for any model that exists.
const ALL_LAYERS: u32 = 999;

const MIB: u64 = 1 << 20;

/// Checks that the user's parameters leave alone the flags `table` marks platform-owned (they
/// would point the process at another address, model or device set than the plan's), and
/// refuses the combinations with a device selector GPUStack refuses, with its messages.
pub fn check_user_args(table: &FlagTable, spec: &ModelSpec, user: &Args) -> Result<()> {
    for arg in &user.args {
        if let Some(why) = table.lookup(&arg.flag).and_then(|f| f.spec.platform_owned) {
            return Err(Error::invalid_parameter(
                &arg.spelled,
                format!("is set by the platform ({why}) and cannot be overridden"),
            ));
        }
    }
    if spec.device_selector.is_empty() {
        return Ok(());
    }
    if let Some(arg) = user.last("--tensor-split") {
        return Err(Error::invalid_parameter(
            &arg.spelled,
            "Use tensor-split and gpu-selector at the same time is not allowed.",
        ));
    }
    match user.last("--gpu-layers") {
        Some(arg) if arg.value() == Some("0") => Err(Error::invalid_parameter(
            &arg.spelled,
            "Cannot set --gpu-layers to 0 and manually select GPUs at the same time. Setting \
             --gpu-layers to 0 means running on CPU only.",
        )),
        _ => Ok(()),
    }
}

/// The flags that do not depend on the placement: GPUStack's defaults for the model's
/// categories, the projector, then the user's parameters (which replace the defaults they
/// override). The estimator reads its settings from exactly these.
pub fn model_args(categories: &[Category], mmproj: Option<&Path>, user: &Args) -> Args {
    let mut defaults = Args::default();
    defaults.push("--embeddings", &[]);
    let single_sequence = categories
        .iter()
        .any(|c| matches!(c, Category::Embedding | Category::Reranker));
    let parallel = if single_sequence {
        "1"
    } else {
        DEFAULT_PARALLEL
    };
    defaults.push("--parallel", &[parallel]);
    defaults.push("--ctx-size", &[DEFAULT_CTX_SIZE]);
    defaults.push("--no-mmap", &[]);
    defaults.push("--no-warmup", &[]);
    if categories.contains(&Category::Reranker) {
        defaults.push("--rerank", &[]);
    }
    if categories.contains(&Category::Image) {
        defaults.push("--images", &[]);
        defaults.push("--image-vae-tiling", &[]);
    }
    if let Some(path) = mmproj {
        defaults.push("--mmproj", &[&path.display().to_string()]);
        defaults.push("--max-projected-cache", &[DEFAULT_PROJECTED_CACHE]);
    }
    let mut user = user.clone();
    for arg in user.args.iter_mut().filter(|a| a.flag == "--mmproj") {
        if let Some(path) = mmproj {
            arg.values = vec![path.display().to_string()];
        }
    }
    layer(crate::flags::table(), setting_of, &[defaults, user])
}

/// Concatenates argument lists, a later list replacing the earlier occurrences of each
/// setting it sets (repeatable flags of `table` accumulate). Two flags set one setting when
/// `table` resolves them to one flag (both polarities of a switch) or `setting_of` maps their
/// canonical names to one name (a server's separate `--no-` flags, two flags of one setting).
pub fn layer(table: &FlagTable, setting_of: fn(&str) -> &str, lists: &[Args]) -> Args {
    let setting = |flag: &str| -> String {
        let name = table.lookup(flag).map_or(flag, |found| found.spec.name);
        setting_of(name).to_string()
    };
    let repeatable = |flag: &str| table.lookup(flag).is_some_and(|f| f.spec.repeatable);
    let mut out = Args::default();
    for list in lists {
        let replaced: Vec<String> = list
            .args
            .iter()
            .filter(|a| !repeatable(&a.flag))
            .map(|a| setting(&a.flag))
            .collect();
        out.args.retain(|a| !replaced.contains(&setting(&a.flag)));
        out.args.extend(list.args.iter().cloned());
        out.warnings.extend(list.warnings.iter().cloned());
        out.flash_attn_auto = list.flash_attn_auto || out.flash_attn_auto;
    }
    out
}

/// What a `--gpu-layers` value asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuLayers {
    /// `auto` (llama-server's default): the server fits layers to free memory.
    Auto,
    /// `all`, or a negative count.
    All,
    /// That many layers, the output layer counted first.
    Count(u32),
}

/// Reads a `--gpu-layers` value as llama.cpp does (`common/arg.cpp`: `auto`, `all`, else
/// `std::stoi`; llama-box's table admits only the integers).
pub fn gpu_layers(value: &str) -> Option<GpuLayers> {
    match value {
        "auto" => Some(GpuLayers::Auto),
        "all" => Some(GpuLayers::All),
        n => n
            .parse::<i64>()
            .ok()
            .map(|n| u32::try_from(n).map_or(GpuLayers::All, GpuLayers::Count)),
    }
}

/// A user's `--gpu-layers` must be what the placement offloads, of `total` layers (a negative
/// or too large count means every layer, as in llama.cpp; `auto` leaves it to the plan).
pub fn check_user_gpu_layers(model_args: &Args, offload: u32, total: u32) -> Result<()> {
    let Some(arg) = model_args.last("--gpu-layers") else {
        return Ok(());
    };
    let asked = match arg.value().and_then(gpu_layers) {
        Some(GpuLayers::Count(n)) => n.min(total),
        Some(GpuLayers::All) => total,
        Some(GpuLayers::Auto) | None => return Ok(()),
    };
    if asked == offload.min(total) {
        return Ok(());
    }
    Err(Error::invalid_parameter(
        &arg.spelled,
        format!("asks for {asked} offloaded layers, but the placement offloads {offload}"),
    ))
}

/// Flags that set the same llama-box setting share one key (a switch and its negation, a
/// deprecated spelling and its replacement).
fn setting_of(flag: &str) -> &str {
    match flag {
        "--no-mmap" => "--mmap",
        "--no-warmup" => "--warmup",
        "--no-flash-attn" => "--flash-attn",
        "--image-no-vae-tiling" => "--image-vae-tiling",
        "--no-context-shift" => "--context-shift",
        "--no-escape" => "--escape",
        "--no-enable-reasoning" => "--enable-reasoning",
        "--no-reasoning-in-content" => "--reasoning-in-content",
        // engine_param.hpp: both set n_threads_http, which is also n_parallel.
        "--threads-http" => "--parallel",
        "--visual-max-image-cache" => "--max-projected-cache",
        other => other,
    }
}

/// The processes of `assignment`: one RPC server per remote device, then the main process.
pub fn launch(
    facts: &ModelFacts,
    spec: &ModelSpec,
    assignment: &Assignment,
    model_args: &Args,
) -> Result<Vec<LaunchSpec>> {
    let remote = remote_devices(assignment)?;
    let local: Vec<&DeviceSlot> = assignment.devices.iter().filter(|d| !d.remote).collect();
    check_ascend_order(&local)?;
    let mut specs: Vec<LaunchSpec> = assignment
        .subordinates
        .iter()
        .zip(&remote)
        .map(|(sub, device)| rpc_server(sub, device))
        .collect();

    let launch_parameters = Args::from_launch(&assignment.estimate.launch_parameters);
    let args = layer(
        crate::flags::table(),
        setting_of,
        &[
            platform_args(facts, spec, assignment)?,
            model_args.clone(),
            placement_args(facts, assignment, model_args)?,
            launch_parameters,
        ],
    );
    let mut env = visibility_env(&local);
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut process = LaunchSpec::new(
        assignment.worker.clone(),
        ProcessRole::Main,
        PROGRAM.to_string(),
        args.to_argv(),
    );
    process.env = env;
    process.health = Some(HealthCheck {
        port: assignment.port,
        path: Some("/health".to_string()),
    });
    specs.push(process);
    Ok(specs)
}

/// `--host --port --model --alias`: the platform's flags, the same in llama-box and
/// llama-server.
pub fn platform_args(
    facts: &ModelFacts,
    spec: &ModelSpec,
    assignment: &Assignment,
) -> Result<Args> {
    let model = facts.path.as_deref().ok_or_else(|| {
        Error::unsupported(format!(
            "llama.cpp servers need the model file on the worker's disk; {} has no local path",
            spec.source.display_name()
        ))
    })?;
    let mut args = Args::default();
    args.push("--host", &["0.0.0.0"]);
    args.push("--port", &[&assignment.port.to_string()]);
    let model = first_shard(facts, model);
    args.push("--model", &[&model.display().to_string()]);
    args.push("--alias", &[&spec.name]);
    Ok(args)
}

/// The model file a llama.cpp server is given: for a split model, its first shard whichever shard named the
/// model, since llama.cpp refuses any other ("illegal split file idx ..., model must be loaded
/// with the first split", `llama-model-loader.cpp`) and finds the rest by name.
pub fn first_shard(facts: &ModelFacts, model: &Path) -> PathBuf {
    let split = facts.gguf.as_ref().is_some_and(|g| g.shards().len() > 1);
    match parse_split_name(model).filter(|_| split) {
        Some(name) => name.shard_path(1),
        None => model.to_path_buf(),
    }
}

/// `--gpu-layers`, `--rpc`, `--tensor-split` and `--device` from the placement.
fn placement_args(facts: &ModelFacts, assignment: &Assignment, model_args: &Args) -> Result<Args> {
    let estimate = &assignment.estimate;
    let offload = match &estimate.layout {
        Layout::CpuOnly => 0,
        Layout::Single => all_layers(facts),
        Layout::Layers { offload_layers, .. } => *offload_layers,
        _ => {
            return Err(Error::unsupported(
                "llama-box splits models by layers; it has no tensor or pipeline parallelism",
            ));
        }
    };
    check_user_gpu_layers(model_args, offload, all_layers(facts))?;
    check_user_main_gpu(model_args, assignment.devices.len())?;
    let mut args = Args::default();
    args.push("--gpu-layers", &[&offload.to_string()]);
    if !assignment.subordinates.is_empty() {
        let servers: Vec<String> = assignment
            .subordinates
            .iter()
            .map(|s| format!("{}:{}", s.address, s.port))
            .collect();
        args.push("--rpc", &[&servers.join(",")]);
    }
    let image = model_args.has("--images");
    if let Some(split) = tensor_split(assignment, offload, image) {
        args.push("--tensor-split", &[&split]);
    }
    if assignment.devices.iter().all(|d| d.remote) {
        args.push("--device", &[&remote_only_devices(assignment)]);
    }
    Ok(args)
}

/// With no local device, the main process must not use the worker's own GPUs: `--device`
/// lists only the RPC devices (llama-box names them `RPC[host:port]` when `--rpc`, which comes
/// earlier on the command line, registers them), or `none` for a CPU-only instance.
fn remote_only_devices(assignment: &Assignment) -> String {
    if assignment.subordinates.is_empty() {
        return "none".to_string();
    }
    let names: Vec<String> = assignment
        .subordinates
        .iter()
        .map(|s| format!("RPC[{}:{}]", s.address, s.port))
        .collect();
    names.join(",")
}

/// A user's `--main-gpu` must name one of the `devices` the placement gives the process
/// (llama.cpp numbers them from 0, local devices then RPC devices). Beyond them llama.cpp
/// refuses to load the model in split mode `none` ("invalid value for main_gpu",
/// `llama_model_load_from_file_impl`) and indexes past its device list in split mode `row`.
pub fn check_user_main_gpu(model_args: &Args, devices: usize) -> Result<()> {
    let Some(arg) = model_args.last("--main-gpu") else {
        return Ok(());
    };
    let asked = arg.value().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let within = usize::try_from(asked).is_ok_and(|n| n < devices.max(1));
    if asked < 0 || within {
        return Ok(());
    }
    Err(Error::invalid_parameter(
        &arg.spelled,
        format!(
            "is {asked}, but the placement gives the process {devices} device(s), numbered \
             from 0; llama.cpp refuses a main GPU beyond them"
        ),
    ))
}

/// Repeating layers + the output layer, when the GGUF says; else "all".
fn all_layers(facts: &ModelFacts) -> u32 {
    facts
        .gguf
        .as_ref()
        .filter(|g| !g.is_diffusion())
        .and_then(|g| g.block_count().ok())
        .and_then(|n| u32::try_from(n + 1).ok())
        .unwrap_or(ALL_LAYERS)
}

/// The split over the devices of the main process (remote devices first, as llama.cpp orders
/// them). For layer models: the layers the estimate put on each device, which llama.cpp's
/// proportional split reproduces exactly (layer `i` goes to the first device whose cumulative
/// share exceeds `i / n`); for image models: every device may take a component (llama-box's
/// meaning of `--tensor-split` in image mode).
pub fn tensor_split(assignment: &Assignment, offload: u32, image: bool) -> Option<String> {
    let devices = &assignment.estimate.devices;
    if image {
        return (!devices.is_empty()).then(|| vec!["1"; devices.len()].join(","));
    }
    if devices.len() < 2 {
        return None;
    }
    let layers: Vec<u64> = devices.iter().map(|d| u64::from(d.layers)).collect();
    let values = if layers.iter().sum::<u64>() == u64::from(offload) && offload > 0 {
        layers
    } else {
        // The estimate did not say where layers go: GPUStack's split, each claim in MiB.
        devices.iter().map(|d| (d.claim / MIB).max(1)).collect()
    };
    Some(
        values
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The remote devices of the assignment, each matched with its subordinate (same order, same
/// worker and index). llama.cpp puts RPC devices before local ones.
pub fn remote_devices(assignment: &Assignment) -> Result<Vec<&DeviceSlot>> {
    let first_local = assignment.devices.iter().position(|d| !d.remote);
    let remote: Vec<&DeviceSlot> = assignment.devices.iter().filter(|d| d.remote).collect();
    if first_local.is_some_and(|i| i < remote.len()) {
        return Err(Error::unsupported(
            "llama.cpp orders RPC devices before local ones; the assignment lists a local \
             device first",
        ));
    }
    if remote.len() != assignment.subordinates.len() {
        return Err(Error::unsupported(format!(
            "llama-box runs one RPC server per remote device: {} remote devices, {} subordinates",
            remote.len(),
            assignment.subordinates.len()
        )));
    }
    for (device, sub) in remote.iter().zip(&assignment.subordinates) {
        if device.id.worker != sub.worker || sub.devices != [device.id.index] {
            return Err(Error::unsupported(format!(
                "RPC server on {} for devices {:?} does not serve device {}",
                sub.worker, sub.devices, device.id
            )));
        }
    }
    Ok(remote)
}

/// One RPC server offering one device; the device is pinned by the visibility variable, so it
/// is device 0 inside the process (as GPUStack runs it).
fn rpc_server(sub: &Subordinate, device: &DeviceSlot) -> LaunchSpec {
    let mut args = Args::default();
    args.push("--rpc-server-host", &["0.0.0.0"]);
    args.push("--rpc-server-port", &[&sub.port.to_string()]);
    args.push("--rpc-server-main-gpu", &["0"]);
    {
        let mut process = LaunchSpec::new(
            sub.worker.clone(),
            ProcessRole::subordinate(RPC_SERVER),
            PROGRAM.to_string(),
            args.to_argv(),
        );
        process.env = visibility_env(&[device]);
        // The RPC protocol is raw TCP: ready once the port accepts.
        process.health = Some(HealthCheck {
            port: sub.port,
            path: None,
        });
        process
    }
}

/// The vendor's device-visibility variable, listing the devices in the order given: CUDA and
/// ROCm number visible devices in list order, so device `k` of llama.cpp is the `k`-th device
/// of the assignment, the order the estimate split layers in. (Hence not
/// [`Vendor::visible_devices`], which sorts the list; Ascend, which needs it sorted, is checked by
/// [`check_ascend_order`].)
pub fn visibility_env(devices: &[&DeviceSlot]) -> BTreeMap<String, String> {
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for device in devices {
        if let Some(variable) = visibility_variable(&device.vendor) {
            let list = lists.entry(variable.to_string()).or_default();
            list.push(device.id.index.to_string());
        }
    }
    lists
        .into_iter()
        .map(|(variable, indices)| (variable, indices.join(",")))
        .collect()
}

/// `ASCEND_RT_VISIBLE_DEVICES` must list devices in ascending order (GPUStack issue 2527), so
/// llama.cpp numbers Ascend devices by index; an assignment in another order would put layers
/// (and the output layer) on other devices than its estimate did.
pub fn check_ascend_order(local: &[&DeviceSlot]) -> Result<()> {
    let ascend: Vec<u32> = local
        .iter()
        .filter(|d| visibility_variable(&d.vendor) == Some("ASCEND_RT_VISIBLE_DEVICES"))
        .map(|d| d.id.index)
        .collect();
    if ascend.is_sorted() {
        return Ok(());
    }
    let mut sorted = ascend.clone();
    sorted.sort_unstable();
    let (listed, used) = ascend
        .iter()
        .zip(&sorted)
        .find(|(listed, used)| listed != used)
        .unwrap_or((&ascend[0], &sorted[0]));
    Err(Error::unsupported(format!(
        "Ascend devices {ascend:?} must be assigned in ascending index order: CANN numbers the \
         devices of ASCEND_RT_VISIBLE_DEVICES in ascending order whatever the list's order \
         (GPUStack issue 2527), so llama.cpp would put the layers of device {} on device {}; \
         list the group as {sorted:?} (for example by sorting the placement's devices by index \
         before estimating) and estimate again",
        listed, used
    )))
}

/// The vendor's visibility variable by GPUStack's table (§2.0, [`Vendor::visible_devices_env`]),
/// except for Apple: Metal sees the Mac's one GPU and has no such variable.
fn visibility_variable(vendor: &Vendor) -> Option<&'static str> {
    (*vendor != Vendor::Apple).then(|| vendor.visible_devices_env())
}
