//! The main job: which backend serves a model, where it goes on a cluster, and the exact
//! commands that start it.
//!
//! ```text
//! cargo run --release --example plan -- MODEL_PATH [--cluster CLUSTER.json] [--backend NAME]
//!     [--strategy spread|binpack] [--distributed] [--json] [-- BACKEND_PARAMS...]
//! ```
//!
//! `--distributed` allows one instance to span several workers where the backend's default
//! does not (vLLM through Ray).
//!
//! Without `--cluster` the local machine is probed (feature `host-probe`, on by default). The
//! human output shows every device the plan uses with a bar of how full it will be (`#` in use
//! before, `=` claimed by this plan, `.` free), then the processes. `--json` prints the
//! `DeploymentPlan`. When nothing fits, the exit status is 1 and the output says why (with
//! `--json`: `{"error": ..., "explanation": [...], "rejected": [...]}`).

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use inferkit::units::gib;
use inferkit::{
    Cluster, DeploymentPlan, Error, ModelSpec, PlacementStrategy, PlanOptions, default_registry,
    plan,
};

const USAGE: &str = "usage: plan MODEL_PATH [--cluster CLUSTER.json] [--backend NAME] \
[--strategy spread|binpack] [--distributed] [--json] [-- BACKEND_PARAMS...]";

/// Width of a device bar in characters.
const BAR: usize = 32;

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    model: PathBuf,
    cluster: Option<PathBuf>,
    backend: Option<String>,
    strategy: PlacementStrategy,
    distributed: bool,
    json: bool,
    backend_parameters: Vec<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args::default();
    let mut model = None;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => parsed.json = true,
            "--distributed" => parsed.distributed = true,
            "--cluster" => parsed.cluster = Some(PathBuf::from(value("--cluster")?)),
            "--backend" => parsed.backend = Some(value("--backend")?),
            "--strategy" => {
                parsed.strategy = match value("--strategy")?.as_str() {
                    "spread" => PlacementStrategy::Spread,
                    "binpack" => PlacementStrategy::Binpack,
                    other => return Err(format!("unknown strategy `{other}`\n{USAGE}")),
                }
            }
            "--" => parsed.backend_parameters = args.by_ref().collect(),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option `{flag}`\n{USAGE}"));
            }
            path if model.is_none() => model = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument `{extra}`\n{USAGE}")),
        }
    }
    parsed.model = model.ok_or(format!("missing MODEL_PATH\n{USAGE}"))?;
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    let args = match common::parse_command_line(USAGE, parse_args) {
        Ok(parsed) => parsed,
        Err(exit) => return exit,
    };
    let cluster = match &args.cluster {
        // A cluster file, or one worker as `probe --json` prints it.
        Some(path) => inferkit::probe::static_inventory::load_cluster(path),
        None => probe_local(),
    };
    let result = cluster.and_then(|cluster| {
        let mut spec = ModelSpec::local(&args.model);
        spec.backend = args.backend.clone();
        spec.backend_parameters = args.backend_parameters.clone();
        if args.distributed {
            spec.distributed_inference_across_workers = Some(true);
        }
        let options = PlanOptions {
            strategy: args.strategy,
            ..PlanOptions::default()
        };
        plan(&default_registry(), &spec, &cluster, &options)
    });
    match result {
        Ok(plan) if args.json => print_json(&plan),
        Ok(plan) => {
            print_human(&plan);
            ExitCode::SUCCESS
        }
        Err(error) => report(&error, args.json),
    }
}

#[cfg(feature = "host-probe")]
fn probe_local() -> inferkit::Result<Cluster> {
    use inferkit::probe::{CompositeProbe, DeviceProbe};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Probe {
            probe: "local".into(),
            reason: format!("cannot start the async runtime: {e}"),
        })?;
    let worker = runtime.block_on(CompositeProbe::local().probe())?;
    Ok(Cluster {
        workers: vec![worker],
    })
}

#[cfg(not(feature = "host-probe"))]
fn probe_local() -> inferkit::Result<Cluster> {
    Err(Error::Unsupported(
        "no --cluster given and this build has no host probe (feature `host-probe`)".into(),
    ))
}

fn print_json(plan: &DeploymentPlan) -> ExitCode {
    match serde_json::to_string_pretty(plan) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot serialise the plan: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report(error: &Error, json: bool) -> ExitCode {
    let (explanation, rejected) = match error {
        Error::NoPlacement {
            explanation,
            rejected,
            ..
        } => (explanation.clone(), rejected.clone()),
        _ => (Vec::new(), Vec::new()),
    };
    if json {
        let body = serde_json::json!({
            "error": error.to_string(),
            "explanation": explanation,
            "rejected": rejected,
        });
        println!("{body:#}");
    } else {
        eprintln!("error: {error}");
        for line in &explanation {
            eprintln!("  - {line}");
        }
        if !rejected.is_empty() {
            eprintln!("refused:");
        }
        for r in &rejected {
            eprintln!("  - {}: {}", r.candidate, r.reason);
        }
    }
    ExitCode::FAILURE
}

fn print_human(plan: &DeploymentPlan) {
    let categories: Vec<&str> = plan.categories.iter().map(|c| c.as_str()).collect();
    let layers = match (plan.placement.offload_layers, plan.placement.total_layers) {
        (Some(on), Some(total)) => format!(", {on}/{total} layers on devices"),
        _ => String::new(),
    };
    println!(
        "{} on {} ({}): {}{layers}",
        plan.model,
        plan.backend,
        categories.join(", "),
        plan.placement.mode.as_str()
    );
    println!();
    for worker in &plan.placement.workers {
        println!("{}  host RAM {}", worker.name, gib(worker.ram));
        for device in &worker.devices {
            let before = device.total.saturating_sub(device.allocatable);
            println!(
                "  [{}] {:<28} {} claims {} of {} allocatable ({} total)",
                device.index,
                device.name,
                bar(before, device.vram, device.total),
                gib(device.vram),
                gib(device.allocatable),
                gib(device.total)
            );
        }
    }
    println!();
    for process in &plan.processes {
        println!("# {} ({})", process.worker, process.role.as_str());
        for (key, value) in &process.env {
            println!("{key}={value} \\");
        }
        println!("{}", process.command_line());
        for file in &process.files {
            println!("# writes {}", file.path.display());
        }
    }
    println!();
    for line in &plan.explanation {
        println!("- {line}");
    }
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
