//! # inferkit-launch
//!
//! Launching and supervising the processes of a plan on one worker (Unix).
//!
//! A [`Launcher`] takes the [`LaunchSpec`]s of one worker and a run directory. It writes the
//! launch files atomically, then starts the processes one at a time, subordinates (RPC servers,
//! Ray nodes, MindIE subordinates) first and the main process last, each only once the one
//! before it is ready. Every process is watched by its own task, which:
//!
//! - streams stdout and stderr line by line into `tracing` (target `inferkit::process`, with the
//!   process name and role) and keeps the last lines for error reports;
//! - waits for readiness: `GET` of the [`HealthCheck`](inferkit_core::HealthCheck) path on
//!   `127.0.0.1:port` answering 200, or a TCP connection when the check has no path, probed
//!   with exponential back-off up to a deadline;
//! - restarts the process when it fails, as the [`RestartPolicy`] allows, with back-off;
//! - stops it gracefully: SIGTERM to its process group, SIGKILL after a grace period.
//!
//! Before anything is written or started, [`Launcher::check`] (which a dry run calls alone)
//! refuses a run directory that is a symbolic link, another user's, or writable by others (see
//! [`run_dir`]), launch files leaving it, and secret placeholders (`${HF_TOKEN}`, see
//! `inferkit_core::secret`) whose variable this process's environment lacks. The launcher
//! creates directories 0700 and files 0600, and shows a secret's placeholder wherever a
//! process prints its value.
//!
//! The state of each process ([`ProcessState`]) is published on a `tokio::sync::watch` channel
//! ([`ProcessHandle::state`]), and its output on a broadcast channel ([`ProcessHandle::output`]).
//!
//! ```no_run
//! use inferkit_core::DeploymentPlan;
//! use inferkit_launch::{LaunchOptions, Launcher, RestartPolicy};
//!
//! # async fn serve(plan: DeploymentPlan) -> inferkit_core::Result<()> {
//! let here = plan.processes.into_iter().filter(|p| p.worker == "dgx-01").collect();
//! let launcher = Launcher::new(LaunchOptions {
//!     restart: RestartPolicy::on_failure(3),
//!     ..LaunchOptions::default()
//! });
//! let supervisor = launcher.start(here, "/var/lib/inferkit/run/qwen".as_ref()).await?;
//! supervisor.wait_ready().await?; // or watch `supervisor.processes()[i].state()`
//! // ... serve requests until asked to stop ...
//! supervisor.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # No zombies, no orphans
//!
//! Every child is awaited by its task, so it is reaped as soon as it exits. What this module
//! relies on to leave nothing behind:
//!
//! - each process leads its own process group, and every exit (stop, crash, failed start) is
//!   followed by SIGKILL to the whole group, so helpers a backend forked (vLLM's engine
//!   processes, a shell wrapper's child) go with it;
//! - on Linux, a guardian process stands between the supervisor and each program: a child
//!   subreaper that, when the program exits or the supervisor dies (even by SIGKILL), kills
//!   the group and every descendant handed to it, daemons that left the group included (see
//!   `guard.rs`); the program gets SIGKILL when its guardian dies. The pid in
//!   [`ProcessState`] is the guardian's, which is also the process group of the program;
//! - dropping the [`Supervisor`] sends SIGKILL to every group still running and aborts the
//!   tasks; the children are also spawned with tokio's `kill_on_drop`, and tokio reaps children
//!   whose handle was dropped;
//! - a program that supervises installs [`ShutdownSignals`] and stops the supervisor when one
//!   arrives, so that SIGTERM and SIGHUP stop the processes as gracefully as Ctrl-C.
//!
//! The guardian asks for its parent-death signal when it is forked by one of the runtime's
//! worker threads, which live as long as the runtime; it also checks its parent twice a
//! second. Other Unix systems get the process groups only.
//!
//! The module exists on Unix only: it needs process groups and signals.

#![cfg(unix)]
#![warn(missing_docs)]

mod files;
#[cfg(target_os = "linux")]
mod guard;
mod health;
mod output;
pub mod run_dir;
mod signal;
mod supervise;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use inferkit_core::launch::LaunchSpec;
use inferkit_core::secret;
use inferkit_core::{Error, Result};

pub use output::{OutputLine, OutputStream};
pub use signal::{Shutdown, ShutdownSignals};

use output::LogTail;

/// When a failed process is started again.
///
/// A process fails when it cannot be started, exits (with any status: a server is not meant to
/// exit by itself) or is not ready within [`LaunchOptions::ready_timeout_ms`]. A program that
/// cannot be spawned at all (missing, not executable) is not restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    /// Restarts allowed over the supervisor's life; 0 never restarts.
    pub max_restarts: u32,
    /// Delay before the first restart, in milliseconds; each further restart doubles it.
    pub initial_delay_ms: u64,
    /// Longest delay between restarts, in milliseconds.
    pub max_delay_ms: u64,
    /// A process that failed after being ready for at least this long, in milliseconds, is
    /// restarted as if it had never failed: the count and the delay start over.
    pub reset_after_ms: u64,
}

impl RestartPolicy {
    /// Never restart: a failure is final.
    pub fn never() -> Self {
        RestartPolicy::on_failure(0)
    }

    /// Restart up to `max_restarts` times in a row, after 1 s, 2 s, 4 s, ... at most 60 s;
    /// after 10 minutes of serving the count starts over (as the kubelet resets a container's
    /// back-off after it ran 10 minutes without problems).
    pub fn on_failure(max_restarts: u32) -> Self {
        RestartPolicy {
            max_restarts,
            initial_delay_ms: 1_000,
            max_delay_ms: 60_000,
            reset_after_ms: 10 * 60 * 1000,
        }
    }

    /// The delay before restart number `restart` (1 for the first).
    pub fn delay(&self, restart: u32) -> Duration {
        let doublings = restart.saturating_sub(1).min(63);
        let millis = self
            .initial_delay_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_delay_ms);
        Duration::from_millis(millis)
    }
}

impl Default for RestartPolicy {
    /// [`RestartPolicy::never`]: restarting is the caller's decision (GPUStack restarts by
    /// default, `restart_on_error`, but it also owns the instance's lifecycle around it).
    fn default() -> Self {
        RestartPolicy::never()
    }
}

/// Timings and limits of a [`Launcher`]. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LaunchOptions {
    /// How long a process may take to become ready (default 30 minutes: large models read from
    /// network storage take tens of minutes to load).
    pub ready_timeout_ms: u64,
    /// Delay before the second readiness probe; doubles after each failed probe (default 100).
    pub probe_initial_delay_ms: u64,
    /// Longest delay between readiness probes (default 2000).
    pub probe_max_delay_ms: u64,
    /// Time limit of one probe: connect, request and status line (default 5000).
    pub probe_timeout_ms: u64,
    /// Time between SIGTERM and SIGKILL when stopping (default 10000, as `docker stop`).
    pub stop_grace_ms: u64,
    /// Lines of output kept per process for error reports (default 100).
    pub log_lines: usize,
    /// What to do when a process fails.
    pub restart: RestartPolicy,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            ready_timeout_ms: 30 * 60 * 1000,
            probe_initial_delay_ms: 100,
            probe_max_delay_ms: 2_000,
            probe_timeout_ms: 5_000,
            stop_grace_ms: 10_000,
            log_lines: 100,
            restart: RestartPolicy::never(),
        }
    }
}

/// Where a supervised process is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProcessState {
    /// Not started yet: an earlier process is not ready.
    Waiting,
    /// Spawned; not ready yet.
    Starting {
        /// Process id (and process group id).
        pid: u32,
        /// 0 for the first start, then the restart number (counted since the last reset, see
        /// [`RestartPolicy::reset_after_ms`]).
        attempt: u32,
    },
    /// The health check passed (or there is none).
    Ready {
        /// Process id (and process group id).
        pid: u32,
    },
    /// Failed; starting again after a delay.
    Restarting {
        /// The restart about to happen (1 for the first).
        attempt: u32,
        /// Milliseconds until it starts.
        delay_ms: u64,
        /// Why the last run failed.
        reason: String,
    },
    /// Failed for good.
    Failed {
        /// What happened.
        reason: String,
        /// Exit status, when the process exited by itself with one.
        exit_code: Option<i32>,
        /// The last lines of its output, oldest first.
        last_lines: Vec<String>,
    },
    /// SIGTERM sent; waiting for the process to exit.
    Stopping {
        /// Process id (and process group id).
        pid: u32,
    },
    /// Stopped on request.
    Stopped {
        /// Exit status, when it exited with one (not when killed by a signal).
        exit_code: Option<i32>,
    },
}

impl ProcessState {
    /// Whether nothing will happen to the process any more (failed or stopped).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ProcessState::Failed { .. } | ProcessState::Stopped { .. }
        )
    }
}

/// Starts the processes of one worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Launcher {
    options: LaunchOptions,
}

impl Launcher {
    /// A launcher with these timings and restart policy.
    pub fn new(options: LaunchOptions) -> Self {
        Launcher { options }
    }

    /// Writes the launch files of `specs` into `run_dir` and starts the processes in the
    /// background, subordinates first (in the given order) and the main process last, each
    /// once the previous one is ready. Returns at once; observe the processes through
    /// [`Supervisor::processes`] or wait with [`Supervisor::wait_ready`].
    ///
    /// Fails before starting anything when a check of [`Launcher::check`] fails. `run_dir` is
    /// created (0700) when missing; files are written 0600. Secret placeholders
    /// (`${HF_TOKEN}`, see [`inferkit_core::secret`]) are filled in from this process's
    /// environment; output lines show the placeholder wherever a backend prints the value.
    pub async fn start(&self, specs: Vec<LaunchSpec>, run_dir: &Path) -> Result<Supervisor> {
        self.check(&specs, run_dir)?;
        run_dir::prepare(run_dir)?;
        files::write_all(run_dir, specs.iter().flat_map(|spec| &spec.files))?;
        let mut ordered = Vec::new();
        for (name, spec) in start_order(specs) {
            let mut launched = spec.clone();
            let secrets = secret::resolve(&mut launched, environment)?;
            ordered.push((name, spec, launched, secrets));
        }
        let options = Arc::new(self.options.clone());
        let mut supervisor = Supervisor {
            run_dir: run_dir.to_path_buf(),
            processes: Vec::new(),
            tasks: Vec::new(),
        };
        let mut previous = None;
        for (name, spec, launched, secrets) in ordered {
            let launch = supervise::Launch {
                spec: launched,
                secrets: Arc::new(secrets),
            };
            let (handle, supervised, stop) =
                supervise::prepare(name, spec, launch, run_dir, &options);
            let this = (handle.name.clone(), handle.state());
            let task = tokio::spawn(supervised.run(previous.replace(this)));
            supervisor.tasks.push(Task { stop, task });
            supervisor.processes.push(handle);
        }
        Ok(supervisor)
    }

    /// Every check [`Launcher::start`] makes before it writes or starts anything, without
    /// writing or starting anything (what a dry run applies): the run directory, when it
    /// exists, is a directory of this user's, not a link, that others cannot write into; every
    /// launch file stays inside it; every health-check path is a plain HTTP path; every secret
    /// placeholder names a variable set in this process's environment; every file a process
    /// expects to be written at run time by something else ([`LaunchSpec::run_time_files`])
    /// is already in the run directory.
    pub fn check(&self, specs: &[LaunchSpec], run_dir: &Path) -> Result<()> {
        run_dir::check(run_dir)?;
        for spec in specs {
            health::validate(spec.health.as_ref())?;
            secret::resolve(&mut spec.clone(), environment)?;
            files::check_run_time(run_dir, &spec.run_time_files)?;
        }
        files::check_all(run_dir, specs.iter().flat_map(|spec| &spec.files))
    }
}

/// A variable of this process's environment (where secret placeholders are filled in from).
fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The order and names [`Launcher::start`] gives `specs`: subordinates in their given order,
/// then the main process; each named after its role and its rank among the processes of that
/// role (`rpc_server-0`, `ray_head-0`, `main`).
pub fn start_order(specs: Vec<LaunchSpec>) -> Vec<(String, LaunchSpec)> {
    let (main, subordinates): (Vec<_>, Vec<_>) =
        specs.into_iter().partition(|spec| spec.role.is_main());
    let mut ordered: Vec<(String, LaunchSpec)> = Vec::new();
    for spec in subordinates.into_iter().chain(main) {
        let rank = ordered.iter().filter(|(_, s)| s.role == spec.role).count();
        let name = match rank {
            0 if spec.role.is_main() => spec.role.as_str().to_string(),
            _ => format!("{}-{rank}", spec.role.as_str()),
        };
        ordered.push((name, spec));
    }
    ordered
}

/// A live view of one supervised process.
#[derive(Debug, Clone)]
pub struct ProcessHandle {
    name: String,
    spec: LaunchSpec,
    state: watch::Receiver<ProcessState>,
    output: broadcast::Sender<OutputLine>,
    tail: LogTail,
    /// Process group of the running process; 0 when none runs.
    group: Arc<AtomicU32>,
}

impl ProcessHandle {
    /// Name: the role and its rank (`main`, `rpc_server-0`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What was launched.
    pub fn spec(&self) -> &LaunchSpec {
        &self.spec
    }

    /// The current state.
    pub fn current(&self) -> ProcessState {
        self.state.borrow().clone()
    }

    /// A receiver of every state change, starting from the current state.
    pub fn state(&self) -> watch::Receiver<ProcessState> {
        self.state.clone()
    }

    /// A receiver of the output lines printed from now on (a slow reader misses lines and is
    /// told how many, see [`broadcast::error::RecvError::Lagged`]).
    pub fn output(&self) -> broadcast::Receiver<OutputLine> {
        self.output.subscribe()
    }

    /// The last lines of output (both streams, oldest first), across restarts.
    pub fn last_lines(&self) -> Vec<String> {
        self.tail.lines()
    }

    /// Waits until the process is ready, or fails with its last lines when it fails or stops.
    pub async fn wait_ready(&self) -> Result<()> {
        let mut state = self.state.clone();
        let reached = state.wait_for(ready_or_final).await.map(|s| s.clone());
        match reached {
            Ok(ProcessState::Ready { .. }) => Ok(()),
            Ok(ProcessState::Failed {
                reason, last_lines, ..
            }) => Err(self.error(format_failure(&reason, &last_lines))),
            Ok(_) | Err(_) => Err(self.error("stopped before it was ready".into())),
        }
    }

    fn error(&self, reason: String) -> Error {
        Error::Process {
            name: self.name.clone(),
            reason,
        }
    }
}

/// Whether waiting for readiness is over: the process is ready, or never will be.
fn ready_or_final(state: &ProcessState) -> bool {
    matches!(state, ProcessState::Ready { .. }) || state.is_final()
}

fn format_failure(reason: &str, last_lines: &[String]) -> String {
    if last_lines.is_empty() {
        return reason.to_string();
    }
    format!("{reason}; last output:\n{}", last_lines.join("\n"))
}

/// A running process's stop signal and task.
#[derive(Debug)]
struct Task {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The processes started by [`Launcher::start`], in start order.
///
/// Dropping it kills every process still running (SIGKILL to each process group) without
/// waiting; call [`Supervisor::stop`] for a graceful stop.
#[derive(Debug)]
pub struct Supervisor {
    run_dir: PathBuf,
    processes: Vec<ProcessHandle>,
    tasks: Vec<Task>,
}

impl Supervisor {
    /// The processes, in start order (the main process last).
    pub fn processes(&self) -> &[ProcessHandle] {
        &self.processes
    }

    /// The run directory (working directory of every process).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The main process, when the worker runs one.
    pub fn main(&self) -> Option<&ProcessHandle> {
        self.processes.iter().find(|p| p.spec.role.is_main())
    }

    /// Waits until every process is ready; fails with the first process that fails instead.
    pub async fn wait_ready(&self) -> Result<()> {
        for process in &self.processes {
            process.wait_ready().await?;
        }
        Ok(())
    }

    /// Stops every process, the main process first and subordinates after it, each with
    /// SIGTERM and, after the grace period, SIGKILL; returns once all are reaped.
    pub async fn stop(mut self) {
        while let Some(Task { stop, task }) = self.tasks.pop() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for process in &self.processes {
            signal::kill_group(process.group.load(Ordering::SeqCst));
        }
        for Task { task, .. } in self.tasks.drain(..) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {

    use inferkit_core::launch::ProcessRole;

    use super::*;

    fn spec(role: ProcessRole, program: &str) -> LaunchSpec {
        LaunchSpec::new("w", role, program, Vec::new())
    }

    #[test]
    fn restart_delays_double_up_to_the_cap() {
        let policy = RestartPolicy::on_failure(100);
        let seconds: Vec<u64> = [1, 2, 3, 6, 7, 64, u32::MAX]
            .iter()
            .map(|&n| policy.delay(n).as_secs())
            .collect();
        assert_eq!(seconds, [1, 2, 4, 32, 60, 60, 60]);
        assert_eq!(RestartPolicy::default().max_restarts, 0);
    }

    #[test]
    fn subordinates_start_in_their_order_before_the_main_process() {
        let specs = vec![
            spec(ProcessRole::Main, "llama-box"),
            spec(ProcessRole::subordinate("rpc_server"), "rpc-a"),
            spec(ProcessRole::subordinate("ray_head"), "ray"),
            spec(ProcessRole::subordinate("rpc_server"), "rpc-b"),
        ];
        let order: Vec<(String, String)> = start_order(specs)
            .into_iter()
            .map(|(name, spec)| (name, spec.program))
            .collect();
        let expected = [
            ("rpc_server-0", "rpc-a"),
            ("ray_head-0", "ray"),
            ("rpc_server-1", "rpc-b"),
            ("main", "llama-box"),
        ]
        .map(|(n, p)| (n.to_string(), p.to_string()));
        assert_eq!(order, expected);
    }

    #[test]
    fn states_serialise_with_a_state_tag() {
        let failed = ProcessState::Failed {
            reason: "exited before it was ready: exit code 1".into(),
            exit_code: Some(1),
            last_lines: vec!["error: failed to load model".into()],
        };
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "state": "failed",
                "reason": "exited before it was ready: exit code 1",
                "exit_code": 1,
                "last_lines": ["error: failed to load model"],
            })
        );
        assert_eq!(
            serde_json::from_value::<ProcessState>(json).unwrap(),
            failed
        );
    }
}
