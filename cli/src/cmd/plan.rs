//! `inferkit plan`: which backend serves a model, where it goes on a cluster, and the exact
//! commands that start it.

use std::io::Write;
use std::sync::Arc;

use inferkit::launch::shell_quote;
use inferkit::llama_box::TextDetails;
use inferkit::mindie::MindIe;
use inferkit::units::GIB;
use inferkit::vllm::{Vllm, VllmDetails};
use inferkit::{
    Backend, Cluster, DeploymentPlan, DeviceEstimate, Error, LaunchSpec, ModelFacts, ModelSpec,
    PlacementOptions, PlacementStrategy, PlanOptions, Registry, Result, Vendor, WorkerClaim,
    default_registry, plan_with_facts,
};

use crate::cluster_arg::ClusterArgs;
use crate::kubernetes_arg::KubernetesArgs;
use crate::model_arg;
use crate::output::{Failure, Output, terminal_safe};
use crate::progress::Waiting;
use crate::warnings;

/// Width of a device bar in characters.
const BAR: usize = 24;

/// Plans one instance of a model: the backend, the devices, and the processes to start.
///
/// The human output shows each device the plan uses (memory by component, and a bar of how
/// full it will be), the processes with their environment and command line (copy-pasteable
/// into a shell), and how the plan was reached. When nothing fits, the exit status is 1 and
/// the output says why; with --json the error object {"error", "explanation", "rejected"} is
/// printed on stdout.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a GGUF file (first shard of a split model), a model directory, or
    /// `hf://ORG/NAME[:QUANT]`, `ms://...`, `ollama://NAME[:TAG]`, an http(s) URL.
    pub model: String,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The backend to use (llama-box, llama-server, vllm, vox-box, ascend-mindie); it always
    /// wins over automatic selection.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,

    /// The backend version installed on the workers (selects its flag table and launch
    /// rules).
    #[arg(long, value_name = "VERSION")]
    pub backend_version: Option<String>,

    /// How to choose among placements that fit: spread (fewer instances per worker and
    /// device) or binpack (fill devices, keep others free).
    #[arg(long, value_enum, default_value_t = Strategy::Spread)]
    pub strategy: Strategy,

    /// Allow one instance to span several workers where the backend's default does not (vLLM
    /// through Ray).
    #[arg(long)]
    pub distributed: bool,

    /// For GPUStack's vLLM build: multi-node vLLM plans also set
    /// GPUSTACK_RAY_PLACEMENT_GROUP_BUNDLES and VLLM_RAY_BUNDLE_INDICES, the Ray placement
    /// group that pins every rank to the plan's node and devices. Upstream vLLM does not read
    /// them (it places ranks itself), so they are off by default.
    #[arg(long)]
    pub gpustack_ray_bundles: bool,

    /// Read caches only (the Hugging Face, ModelScope and Ollama caches and inferkit's cache
    /// of fetched headers): no network request; a missing file is an error naming it.
    #[arg(long)]
    pub offline: bool,

    /// Print the DeploymentPlan as JSON (the input of `inferkit serve`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// What to print: the plan for people (text), the DeploymentPlan (json), or its
    /// Kubernetes objects as multi-document YAML for `kubectl apply -f` (kubernetes).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    pub kubernetes: KubernetesArgs,

    /// Parameters passed to the backend, after `--` (e.g. `-- --ctx-size 8192`).
    #[arg(last = true, value_name = "BACKEND_PARAMS")]
    pub backend_parameters: Vec<String>,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The plan for people.
    Text,
    /// The DeploymentPlan as JSON (as --json).
    Json,
    /// Kubernetes manifests: a Deployment and a Service, or a LeaderWorkerSet across nodes.
    Kubernetes,
}

/// `--strategy` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Strategy {
    /// Prefer workers and devices with fewer instances (GPUStack's default).
    Spread,
    /// Prefer filling devices, keeping large devices free.
    Binpack,
}

impl Args {
    /// Whether the output, and so the error object, is JSON.
    pub fn json(&self) -> bool {
        self.json || self.format == Format::Json
    }
}

/// Runs `plan`; `verbose` prints every reason in full.
pub fn run(args: &Args, verbose: bool, out: &mut Output) -> std::result::Result<(), Failure> {
    let (plan, messages) = make_plan(args)?;
    for message in &messages {
        eprintln!("{}", terminal_safe(message));
    }
    match (args.json(), args.format) {
        (true, _) => out.json(&plan),
        (false, Format::Kubernetes) => {
            let export = inferkit_kube::export(&plan, &args.kubernetes.options())?;
            for note in &export.notes {
                eprintln!("note: {}", terminal_safe(note));
            }
            write!(out, "{}", export.to_yaml()?)?;
            Ok(())
        }
        (false, _) => {
            print_human(out, &plan, args, verbose)?;
            Ok(())
        }
    }
}

/// The plan, and the warnings to print with it.
fn make_plan(args: &Args) -> Result<(DeploymentPlan, Vec<String>)> {
    let model = model_arg::read(&args.model, args.offline)?;
    let mut spec: ModelSpec = model.spec;
    for (variable, value) in model.hub_env {
        spec.env.entry(variable).or_insert(value);
    }
    spec.backend = args.backend.clone();
    spec.backend_version = args.backend_version.clone();
    spec.backend_parameters = args.backend_parameters.clone();
    let mut messages = warnings::absolute_paths(&mut spec.backend_parameters);
    if args.distributed {
        spec.distributed_inference_across_workers = Some(true);
    }
    // A hub GGUF model not on this machine is planned from its header copies, and the plan
    // downloads it before starting the backend.
    let facts = match &model.download {
        Some(download) => download.facts(&model.facts),
        None => model.facts,
    };
    let cluster: Cluster = args.cluster.cluster()?;
    let options = {
        let mut plan_options = PlanOptions::default();
        plan_options.placement = {
            let mut placement_options = PlacementOptions::default();
            placement_options.strategy = match args.strategy {
                Strategy::Spread => PlacementStrategy::Spread,
                Strategy::Binpack => PlacementStrategy::Binpack,
            };
            placement_options
        };
        plan_options
    };
    // On Kubernetes Ascend Operator writes MindIE's rank table when the pods start (the
    // AscendJob of `inferkit_kube`), so MindIE may span workers without the NPUs' addresses.
    let registry = registry(args, args.format == Format::Kubernetes);
    let planned = {
        let _waiting = Waiting::start("planning");
        plan_with_facts(&registry, &facts, &spec, &cluster, &options)
    };
    let mut plan = match planned {
        Ok(plan) => plan,
        Err(error) if args.format != Format::Kubernetes => {
            return Err(mindie_across_workers_hint(
                error, args, &facts, &spec, &cluster, &options,
            ));
        }
        Err(error) => return Err(error),
    };
    if let Some(download) = model.download {
        download.attach(&mut plan);
    }
    // The backend's own warnings (flags dropped or translated for the target version) come
    // first, not only among the explanation lines (issue 17).
    messages.extend(
        plan.explanation
            .iter()
            .filter(|line| line.starts_with("warning: "))
            .cloned(),
    );
    let trained = warnings::training_context(&facts);
    let found = warnings::context_beyond_training(trained, &plan.estimate)
        .into_iter()
        .chain(warnings::empty_devices(&plan.estimate));
    messages.extend(found.map(|w| format!("warning: {w}")));
    Ok((plan, messages))
}

/// A refusal that MindIE across workers would answer, with how to get that plan: `serve`
/// cannot write MindIE's rank table (it needs each NPU's RoCE address, which no cluster file
/// carries), but on Kubernetes Ascend Operator writes it. The hint is added only when that
/// plan exists: the same request, across workers, with the rank table left to run time.
///
/// Only a refusal MindIE could answer is planned again: no placement or a parameter refused,
/// MindIE chosen or no backend named, and Ascend NPUs in the cluster.
fn mindie_across_workers_hint(
    mut error: Error,
    args: &Args,
    facts: &ModelFacts,
    spec: &ModelSpec,
    cluster: &Cluster,
    options: &PlanOptions,
) -> Error {
    let id = MindIe::new().id();
    let answerable = matches!(
        error,
        Error::NoPlacement { .. } | Error::InvalidParameter { .. }
    ) && spec.backend.as_deref().is_none_or(|backend| backend == id)
        && cluster
            .workers
            .iter()
            .flat_map(|worker| &worker.devices)
            .any(|device| device.vendor == Vendor::Ascend);
    if !answerable {
        return error;
    }
    let mut across = spec.clone();
    across.distributed_inference_across_workers = Some(true);
    let workers = match plan_with_facts(&registry(args, true), facts, &across, cluster, options) {
        Ok(plan) if plan.backend == id => plan.placement.workers.len(),
        _ => return error,
    };
    let hint = match workers {
        1 => format!(
            "{id} runs this on one node: leave out --distributed ({id} spans workers only \
             with --format kubernetes, where Ascend Operator writes its HCCL rank table)"
        ),
        _ => format!(
            "{id} runs this across {workers} workers with --distributed --format kubernetes: \
             an AscendJob, whose HCCL rank table Ascend Operator writes when the pods start; \
             `inferkit serve` runs {id} on one node only (its rank table needs every NPU's \
             RoCE address, which a cluster file does not carry)"
        ),
    };
    match &mut error {
        Error::NoPlacement { explanation, .. } => explanation.push(format!("hint: {hint}")),
        Error::InvalidParameter { reason, .. } => *reason = format!("{reason}; {hint}"),
        _ => {}
    }
    error
}

/// The backends a plan chooses from: the default drivers, vLLM with GPUStack's placement
/// bundles when asked for, and MindIE with its rank table left to run time when the plan is
/// for Kubernetes (`rank_table_at_run_time`).
fn registry(args: &Args, rank_table_at_run_time: bool) -> Registry {
    let mut registry = default_registry();
    if args.gpustack_ray_bundles {
        registry.register(Arc::new(Vllm::new().with_gpustack_placement_bundles()));
    }
    if rank_table_at_run_time {
        registry.register(Arc::new(MindIe::new().with_rank_table_at_run_time()));
    }
    registry
}

fn print_human(
    out: &mut Output,
    plan: &DeploymentPlan,
    args: &Args,
    verbose: bool,
) -> std::io::Result<()> {
    print_headline(out, plan)?;
    writeln!(out)?;
    for worker in &plan.placement.workers {
        print_worker(out, plan, worker)?;
    }
    writeln!(
        out,
        "  bar: # in use before this plan (and reserved)  = claimed by this plan  . free after"
    )?;
    writeln!(out, "  {}", score_meaning(args.strategy))?;
    writeln!(out)?;
    for step in &plan.downloads {
        for line in crate::download::describe(step) {
            writeln!(out, "{line}")?;
        }
        writeln!(out)?;
    }
    for process in &plan.processes {
        print_process(out, process)?;
    }
    writeln!(out)?;
    for line in &plan.explanation {
        // "not vllm (Refuses): ..." lines: why each other backend was not chosen.
        let line = match line.starts_with("not ") {
            true => shorten(line, verbose),
            false => line.clone(),
        };
        writeln!(out, "- {line}")?;
    }
    if !plan.rejected.is_empty() {
        writeln!(out, "refused on the way:")?;
        for rejection in &plan.rejected {
            let reason = shorten(&rejection.reason, verbose);
            writeln!(out, "  - {}: {reason}", rejection.describe_candidate())?;
        }
    }
    Ok(())
}

/// Model, backend, mode, and the figures that decide how many requests it serves.
fn print_headline(out: &mut Output, plan: &DeploymentPlan) -> std::io::Result<()> {
    let categories: Vec<&str> = plan.categories.iter().map(|c| c.as_str()).collect();
    let layers = match (plan.placement.offload_layers, plan.placement.total_layers) {
        (Some(on), Some(total)) => format!(", {on}/{total} layers on devices"),
        _ => String::new(),
    };
    writeln!(
        out,
        "{} on {} ({}): {}{layers}",
        plan.model,
        plan.backend,
        categories.join(", "),
        plan.placement.mode.as_str()
    )?;
    if let Some(capacity) = capacity(plan) {
        writeln!(out, "{capacity}")?;
    }
    Ok(())
}

/// The serving capacity in the backend's terms: llama-box's context and parallel slots,
/// vLLM's KV cache in tokens and how many requests of the full length it holds at once.
fn capacity(plan: &DeploymentPlan) -> Option<String> {
    if let Some(vllm) = plan.estimate.details_as::<VllmDetails>() {
        let (tokens, max_len) = (vllm.kv_cache_tokens, vllm.max_model_len);
        let concurrency = tokens as f64 / max_len.max(1) as f64;
        return Some(format!(
            "KV cache {tokens} tokens: {concurrency:.1} requests at the full {max_len}-token length at once"
        ));
    }
    let text = plan.estimate.details_as::<TextDetails>()?;
    let (ctx, per_sequence) = (text.n_ctx, text.n_ctx_seq);
    let parallel = main_process_flag(plan, &["--parallel", "-np"])
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| ctx / per_sequence.max(1));
    Some(format!(
        "context {ctx} tokens, {parallel} parallel slot{} of {per_sequence} tokens each",
        if parallel == 1 { "" } else { "s" }
    ))
}

/// The value of the first of `flags` in the main process's arguments.
fn main_process_flag(plan: &DeploymentPlan, flags: &[&str]) -> Option<String> {
    let main = plan.processes.last()?;
    main.args.iter().enumerate().find_map(|(i, arg)| {
        flags.iter().find_map(|flag| match arg.strip_prefix(flag) {
            Some("") => main.args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        })
    })
}

fn print_worker(
    out: &mut Output,
    plan: &DeploymentPlan,
    worker: &WorkerClaim,
) -> std::io::Result<()> {
    writeln!(
        out,
        "worker {}: claims {} of host RAM",
        worker.name,
        gib(worker.ram)
    )?;
    if worker.devices.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "  dev  {:<24}  weights       KV  compute    other    claim allocatable  usage",
        "name"
    )?;
    for device in &worker.devices {
        let estimate = device_estimate(plan, &worker.name, device.index);
        let (weights, kv, compute) = estimate.map_or((0, 0, 0), |e| {
            let c = &e.components;
            (c.weights, c.kv, c.compute)
        });
        let other = device.vram.saturating_sub(weights + kv + compute);
        let before = device.total.saturating_sub(device.allocatable);
        let band = estimate
            .and_then(|e| e.error_band)
            .map(|band| format!("  {band}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  {:<4} {:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>11}  {}{band}",
            device.index,
            truncate(&device.name, 24),
            gib_short(weights),
            gib_short(kv),
            gib_short(compute),
            gib_short(other),
            gib_short(device.vram),
            gib_short(device.allocatable),
            bar(before, device.vram, device.total),
        )?;
    }
    writeln!(
        out,
        "  (sizes in GiB; other = output buffers, runtime overhead and headroom the backend claims; \
         ± = how far the estimate may be off, and what it rests on)"
    )
}

fn device_estimate<'a>(
    plan: &'a DeploymentPlan,
    worker: &str,
    index: u32,
) -> Option<&'a DeviceEstimate> {
    plan.estimate
        .devices
        .iter()
        .find(|d| d.device.worker == worker && d.device.index == index)
}

/// What the placement score means for the strategy used.
fn score_meaning(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Spread => {
            "score (spread, 0-100, higher wins): 100 on a worker without instances; each \
             instance already on the worker or its devices lowers it"
        }
        Strategy::Binpack => {
            "score (binpack, 0-100, higher wins): how full the chosen devices and host RAM \
             would be; filling devices keeps others free"
        }
    }
}

fn print_process(out: &mut Output, process: &LaunchSpec) -> std::io::Result<()> {
    writeln!(out, "# {} ({})", process.worker, process.role.as_str())?;
    for (key, value) in &process.env {
        writeln!(out, "{key}={} \\", shell_quote(value))?;
    }
    writeln!(out, "{}", process.command_line())?;
    for file in &process.files {
        writeln!(out, "# writes {}", file.path.display())?;
    }
    Ok(())
}

/// A reason as one line: its first clause or sentence only, unless `verbose`. Backends and
/// placement explain at length (every alternative, every number); the first clause says why.
fn shorten(line: &str, verbose: bool) -> String {
    let first_line = line.lines().next().unwrap_or_default();
    let end = ["; ", ". "]
        .iter()
        .filter_map(|separator| first_line.find(separator))
        .min();
    match end {
        _ if verbose => line.to_string(),
        Some(end) => format!("{} ...", &first_line[..end]),
        None if first_line.len() < line.len() => format!("{first_line} ..."),
        None => line.to_string(),
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}~")
}

/// `1.50 GiB`.
fn gib(bytes: u64) -> String {
    inferkit::units::gib(bytes)
}

/// `1.50`: GiB with two decimals, the table's unit.
fn gib_short(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / GIB as f64)
}

/// `[####====........]`: in use before (and reserved), claimed by the plan, free after.
fn bar(before: u64, claim: u64, total: u64) -> String {
    let cells = |bytes: u64| {
        if total == 0 {
            0
        } else {
            ((u128::from(bytes) * BAR as u128).div_ceil(u128::from(total)) as usize).min(BAR)
        }
    };
    let used = cells(before);
    let claimed = cells(claim).min(BAR - used);
    format!(
        "[{}{}{}]",
        "#".repeat(used),
        "=".repeat(claimed),
        ".".repeat(BAR - used - claimed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_round_partial_cells_up_and_never_overflow() {
        assert_eq!(bar(0, 0, 0), format!("[{}]", ".".repeat(BAR)));
        assert_eq!(bar(1, 1, 100), format!("[#={}]", ".".repeat(BAR - 2)));
        assert_eq!(
            bar(90, 90, 100),
            format!("[{}{}]", "#".repeat(22), "=".repeat(2))
        );
    }

    #[test]
    fn reasons_keep_their_first_clause() {
        let line = "not vllm (Unsupported): GGUF needs llama-box; and more; and more";
        assert_eq!(
            shorten(line, false),
            "not vllm (Unsupported): GGUF needs llama-box ..."
        );
        assert_eq!(shorten(line, true), line);
    }
}
