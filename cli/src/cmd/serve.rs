//! `inferkit serve`: runs the processes of a plan on this worker and supervises them.

use std::io::Write;
use std::path::{Path, PathBuf};

use inferkit::files::{json_error, read_text_file};
use inferkit::inventory::MAX_CLUSTER_FILE;
use inferkit::launch::shell_quote;
use inferkit::process::{
    Launcher, ProcessHandle, ProcessState, ShutdownSignals, Supervisor, run_dir, start_order,
};
use inferkit::secret;
use inferkit::{DeploymentPlan, DownloadStep, Error, LaunchSpec, Result};

use crate::output::{Failure, Output};

/// Runs the processes of a plan (`inferkit plan MODEL --json > plan.json`) that belong to
/// this worker, and supervises them until Ctrl-C, SIGTERM or SIGHUP.
///
/// The run directory receives the launch files and is every process's working directory.
/// Each output line is printed as `[process] line`, each state change as
/// `[process] state: ...`; the exit status is 1 when a process fails, 0 after Ctrl-C, SIGTERM
/// or SIGHUP, which stop the processes gracefully. Whatever way `serve` ends, even killed,
/// every process it started ends too (see `inferkit::process`).
///
/// A plan of a hub model this worker does not have yet downloads its files first, into the
/// Hugging Face cache (resumed where an earlier run stopped, verified against the hub's
/// SHA-256), with a progress bar on a terminal; the token comes from the variable the plan
/// names.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan, as `inferkit plan --json` prints it.
    #[arg(value_name = "PLAN.json")]
    plan: PathBuf,

    /// The worker whose processes to run (default: the plan's only worker, else this
    /// machine's host name).
    #[arg(long, value_name = "NAME")]
    worker: Option<String>,

    /// Run directory: a directory of this user's that others cannot write into, created
    /// (0700) when missing (default: a new private directory under $XDG_RUNTIME_DIR/inferkit,
    /// else $XDG_STATE_HOME/inferkit/run, else ~/.local/state/inferkit/run, removed when
    /// `serve` ends).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,

    /// Print what would be run (files, environment, argv and readiness check of each
    /// process, in start order) instead of running it, after every check of the real run.
    /// Secrets show as placeholders.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `serve`.
pub fn run(args: &Args, out: &mut Output) -> std::result::Result<(), Failure> {
    match serve_plan(args, out)? {
        None => Ok(()),
        Some(error) => Err(Failure::Library(error)),
    }
}

/// Runs or prints the plan; the error of a process that failed while supervised.
fn serve_plan(args: &Args, out: &mut Output) -> std::result::Result<Option<Error>, Failure> {
    let plan = read_plan(&args.plan)?;
    let worker = local_worker(&plan, args.worker.as_deref())?;
    let specs: Vec<LaunchSpec> = plan
        .processes
        .iter()
        .filter(|p| p.worker == worker)
        .cloned()
        .collect();
    let downloads: Vec<&DownloadStep> = plan
        .downloads
        .iter()
        .filter(|step| step.workers.contains(&worker))
        .collect();
    let launcher = Launcher::default();
    if args.dry_run {
        let run_dir = match &args.run_dir {
            Some(dir) => dir.clone(),
            // The new directory does not exist yet: check where it will be made.
            None => run_dir::default_base()?,
        };
        launcher.check(&specs, &run_dir)?;
        let shown = match &args.run_dir {
            Some(dir) => dir.display().to_string(),
            None => format!("a new private directory in {}", run_dir.display()),
        };
        print_dry_run(out, &worker, &shown, &downloads, specs)?;
        return Ok(None);
    }
    // The files first, so that a failed download starts nothing.
    for step in downloads {
        for line in crate::download::describe(step) {
            say(format_args!("{line}"));
        }
        crate::download::perform(step)?;
    }
    let fresh = match &args.run_dir {
        Some(_) => None,
        None => Some(run_dir::fresh(&run_dir::default_base()?, &plan.model)?),
    };
    let run_dir = args.run_dir.clone().or(fresh.clone()).unwrap_or_default();
    // One thread: the output subscriptions below are taken before any process task runs, so
    // no line is missed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Process {
            name: "serve".into(),
            reason: format!("cannot start the async runtime: {e}"),
        })?;
    let served = runtime.block_on(serve(launcher, specs, &run_dir));
    if let Some(dir) = fresh {
        // Ours alone (0700, made for this run): nothing of it is kept.
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(served?)
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

fn print_dry_run(
    out: &mut Output,
    worker: &str,
    run_dir: &str,
    downloads: &[&DownloadStep],
    specs: Vec<LaunchSpec>,
) -> std::io::Result<()> {
    writeln!(out, "# worker {worker}, run directory {run_dir}")?;
    for step in downloads {
        writeln!(out)?;
        for line in crate::download::describe(step) {
            writeln!(out, "{line}")?;
        }
    }
    for (name, spec) in start_order(specs) {
        let spec = secret::shown(&spec);
        writeln!(out)?;
        writeln!(out, "# {name} ({})", spec.role.as_str())?;
        for file in &spec.files {
            match &file.link_to {
                Some(target) => {
                    writeln!(out, "link {} -> {}", file.path.display(), target.display())?
                }
                None => {
                    let (path, bytes) = (file.path.display(), file.content.len());
                    writeln!(out, "write {path} ({bytes} bytes):")?;
                    for line in file.content.lines() {
                        writeln!(out, "    {line}")?;
                    }
                }
            }
        }
        for (key, value) in &spec.env {
            writeln!(out, "env {key}={}", shell_quote(value))?;
        }
        writeln!(out, "run {}", spec.command_line())?;
        match &spec.health {
            Some(check) => match &check.path {
                Some(path) => writeln!(
                    out,
                    "ready when GET http://127.0.0.1:{}{path} answers 200",
                    check.port
                )?,
                None => writeln!(
                    out,
                    "ready when TCP port {} accepts connections",
                    check.port
                )?,
            },
            None => writeln!(out, "ready once started")?,
        }
    }
    Ok(())
}

/// Prints one line of the supervision log on stdout; false once stdout is gone (the
/// processes keep running until Ctrl-C or a failure).
fn say(line: std::fmt::Arguments<'_>) -> bool {
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}

/// Starts the processes and supervises them: the error of the first that fails, none after
/// Ctrl-C, SIGTERM or SIGHUP.
async fn serve(
    launcher: Launcher,
    specs: Vec<LaunchSpec>,
    run_dir: &Path,
) -> Result<Option<Error>> {
    // Handlers before anything starts: from here on SIGTERM and SIGHUP stop gracefully.
    let mut shutdown = ShutdownSignals::install().map_err(|e| Error::Process {
        name: "serve".into(),
        reason: format!("cannot install the signal handlers: {e}"),
    })?;
    let supervisor = launcher.start(specs, run_dir).await?;
    for process in supervisor.processes() {
        tokio::spawn(print_output(process.clone()));
        tokio::spawn(print_states(process.clone()));
    }
    let failed = tokio::select! {
        failure = watch_for_failure(&supervisor) => Some(failure),
        _ = shutdown.recv() => None,
    };
    say(format_args!("stopping"));
    supervisor.stop().await;
    Ok(failed)
}

/// Resolves with the first process to fail for good (or to stop: nothing else stops them).
async fn watch_for_failure(supervisor: &Supervisor) -> Error {
    if let Err(error) = supervisor.wait_ready().await {
        return error;
    }
    say(format_args!(
        "all processes ready; Ctrl-C (or SIGTERM, SIGHUP) stops them"
    ));
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
    use tokio::sync::broadcast::error::RecvError;

    let mut lines = process.output();
    loop {
        let printed = match lines.recv().await {
            Ok(line) => say(format_args!("[{}] {}", process.name(), line.line)),
            Err(RecvError::Lagged(missed)) => say(format_args!(
                "[{}] ... {missed} lines not shown",
                process.name()
            )),
            Err(RecvError::Closed) => false,
        };
        if !printed {
            return;
        }
    }
}

async fn print_states(process: ProcessHandle) {
    let mut state = process.state();
    loop {
        let current = state.borrow_and_update().clone();
        let printed = say(format_args!(
            "[{}] state: {}",
            process.name(),
            describe(&current)
        ));
        if !printed || current.is_final() || state.changed().await.is_err() {
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
