//! Runs the processes of a plan on this worker and supervises them until Ctrl-C.
//!
//! ```text
//! cargo run --example plan -- MODEL_PATH --json > plan.json
//! cargo run --example serve -- plan.json [--worker NAME] [--run-dir DIR] [--dry-run]
//! ```
//!
//! The worker is `--worker`, else the only worker of the plan's processes, else this machine's
//! host name. The run directory (default: `inferkit-MODEL` in the temporary directory) receives
//! the launch files and is every process's working directory. `--dry-run` prints what would be
//! run: files, environment, argv and readiness check of each process, in start order. Otherwise
//! each output line is printed as `[process] line`, each state change as `[process] state: ...`;
//! the exit status is 1 when a process fails, 0 after Ctrl-C.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use inferkit::files::{json_error, read_text_file};
use inferkit::inventory::MAX_CLUSTER_FILE;
use inferkit::process::{Launcher, ProcessHandle, ProcessState, Supervisor, start_order};
use inferkit::{DeploymentPlan, Error, LaunchSpec, Result};

const USAGE: &str = "usage: serve PLAN.json [--worker NAME] [--run-dir DIR] [--dry-run]";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    plan: PathBuf,
    worker: Option<String>,
    run_dir: Option<PathBuf>,
    dry_run: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args::default();
    let mut plan = None;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--dry-run" => parsed.dry_run = true,
            "--worker" => parsed.worker = Some(value("--worker")?),
            "--run-dir" => parsed.run_dir = Some(PathBuf::from(value("--run-dir")?)),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option `{flag}`\n{USAGE}"));
            }
            path if plan.is_none() => plan = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument `{extra}`\n{USAGE}")),
        }
    }
    parsed.plan = plan.ok_or(format!("missing PLAN.json\n{USAGE}"))?;
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    let args = match common::parse_command_line(USAGE, parse_args) {
        Ok(parsed) => parsed,
        Err(exit) => return exit,
    };
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode> {
    let plan = read_plan(&args.plan)?;
    let worker = local_worker(&plan, args.worker.as_deref())?;
    let specs: Vec<LaunchSpec> = plan
        .processes
        .iter()
        .filter(|p| p.worker == worker)
        .cloned()
        .collect();
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("inferkit-{}", file_name(&plan.model)))
    });
    if args.dry_run {
        print_dry_run(&worker, &run_dir, specs);
        return Ok(ExitCode::SUCCESS);
    }
    // One thread: the output subscriptions below are taken before any process task runs, so
    // no line is missed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Process {
            name: "serve".into(),
            reason: format!("cannot start the async runtime: {e}"),
        })?;
    runtime.block_on(serve(specs, &run_dir))
}

fn read_plan(path: &Path) -> Result<DeploymentPlan> {
    let text = read_text_file(path, MAX_CLUSTER_FILE)?;
    serde_json::from_str(&text).map_err(|e| match json_error(&text, path, &e) {
        Error::Parse { file, offset, what } => Error::parse(
            file,
            offset,
            format!("not a DeploymentPlan (`plan --json`): {what}"),
        ),
        other => other,
    })
}

/// `--worker`, else the plan's only worker, else this machine's host name if the plan has it.
fn local_worker(plan: &DeploymentPlan, asked: Option<&str>) -> Result<String> {
    let mut workers: Vec<&str> = plan.processes.iter().map(|p| p.worker.as_str()).collect();
    workers.sort_unstable();
    workers.dedup();
    let chosen = match (asked, workers.as_slice()) {
        (Some(name), _) => Some(name.to_string()),
        (None, [only]) => Some(only.to_string()),
        (None, _) => host_name().filter(|host| workers.contains(&host.as_str())),
    };
    match chosen {
        Some(worker) if workers.contains(&worker.as_str()) => Ok(worker),
        _ => Err(Error::invalid_parameter(
            "--worker",
            format!(
                "{} runs no process here; the plan's workers are: {}",
                asked.map_or("this host".to_string(), |w| format!("worker `{w}`")),
                workers.join(", ")
            ),
        )),
    }
}

fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// `name` with everything but letters, digits, `-`, `_` and `.` replaced by `_`.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn print_dry_run(worker: &str, run_dir: &Path, specs: Vec<LaunchSpec>) {
    println!("# worker {worker}, run directory {}", run_dir.display());
    for (name, spec) in start_order(specs) {
        println!();
        println!("# {name} ({})", spec.role.as_str());
        for file in &spec.files {
            match &file.link_to {
                Some(target) => println!("link {} -> {}", file.path.display(), target.display()),
                None => {
                    println!(
                        "write {} ({} bytes):",
                        file.path.display(),
                        file.content.len()
                    );
                    for line in file.content.lines() {
                        println!("    {line}");
                    }
                }
            }
        }
        for (key, value) in &spec.env {
            println!("env {key}={value}");
        }
        println!("run {}", spec.command_line());
        match &spec.health {
            Some(check) => match &check.path {
                Some(path) => println!(
                    "ready when GET http://127.0.0.1:{}{path} answers 200",
                    check.port
                ),
                None => println!("ready when TCP port {} accepts connections", check.port),
            },
            None => println!("ready once started"),
        }
    }
}

async fn serve(specs: Vec<LaunchSpec>, run_dir: &Path) -> Result<ExitCode> {
    let supervisor = Launcher::default().start(specs, run_dir).await?;
    for process in supervisor.processes() {
        tokio::spawn(print_output(process.clone()));
        tokio::spawn(print_states(process.clone()));
    }
    let failed = tokio::select! {
        failure = watch_for_failure(&supervisor) => Some(failure),
        _ = tokio::signal::ctrl_c() => None,
    };
    println!("stopping");
    supervisor.stop().await;
    match failed {
        Some(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Resolves with the first process to fail for good (or to stop: nothing else stops them).
async fn watch_for_failure(supervisor: &Supervisor) -> Error {
    if let Err(error) = supervisor.wait_ready().await {
        return error;
    }
    println!("all processes ready; Ctrl-C stops them");
    let mut watchers = tokio::task::JoinSet::new();
    for process in supervisor.processes() {
        let process = process.clone();
        watchers.spawn(async move {
            let mut state = process.state();
            let _ = state.wait_for(ProcessState::is_final).await.is_ok();
            process.wait_ready().await.err()
        });
    }
    match watchers.join_next().await {
        Some(Ok(Some(error))) => error,
        _ => Error::Process {
            name: "serve".into(),
            reason: "a process ended".into(),
        },
    }
}

async fn print_output(process: ProcessHandle) {
    let mut lines = process.output();
    loop {
        match lines.recv().await {
            Ok(line) => println!("[{}] {}", process.name(), line.line),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                println!("[{}] ... {missed} lines not shown", process.name());
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn print_states(process: ProcessHandle) {
    let mut state = process.state();
    loop {
        let current = state.borrow_and_update().clone();
        println!("[{}] state: {}", process.name(), describe(&current));
        if current.is_final() || state.changed().await.is_err() {
            return;
        }
    }
}

fn describe(state: &ProcessState) -> String {
    match state {
        ProcessState::Failed {
            reason, exit_code, ..
        } => format!("failed: {reason} (exit code {exit_code:?})"),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}
