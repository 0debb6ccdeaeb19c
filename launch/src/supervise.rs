//! The task that watches one process: start, readiness, failure, restart, stop.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use super::output::{self, BROADCAST_CAPACITY, LogTail, OutputStream, Sink};
use super::{LaunchOptions, ProcessHandle, ProcessState, health, ready_or_final, signal};
use inferkit_core::launch::LaunchSpec;

/// How long to wait for the output readers to drain once a process is gone. The group was
/// killed, so the pipes are closed; this only bounds a reader stuck on a slow tracing
/// subscriber.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// What is started: the spec with its secrets filled in, and those secrets (variable → value),
/// kept out of the output lines.
pub(super) struct Launch {
    pub(super) spec: LaunchSpec,
    pub(super) secrets: Arc<BTreeMap<String, String>>,
}

/// Everything the task of one process owns.
pub(super) struct Supervised {
    spec: LaunchSpec,
    run_dir: PathBuf,
    options: Arc<LaunchOptions>,
    state: watch::Sender<ProcessState>,
    sink: Sink,
    group: Arc<AtomicU32>,
    stop: watch::Receiver<bool>,
}

/// Builds the handle, the task state and the stop switch of one process: the handle shows
/// `spec` (secrets as placeholders), the task starts `launch`.
pub(super) fn prepare(
    name: String,
    spec: LaunchSpec,
    launch: Launch,
    run_dir: &Path,
    options: &Arc<LaunchOptions>,
) -> (ProcessHandle, Supervised, watch::Sender<bool>) {
    let (state_tx, state_rx) = watch::channel(ProcessState::Waiting);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (output, _) = broadcast::channel(BROADCAST_CAPACITY);
    let tail = LogTail::new(options.log_lines);
    let group = Arc::new(AtomicU32::new(0));
    let sink = Sink {
        name: name.clone(),
        role: spec.role.clone(),
        tail: tail.clone(),
        output: output.clone(),
        secrets: launch.secrets,
    };
    let handle = ProcessHandle {
        name,
        spec,
        state: state_rx,
        output,
        tail,
        group: group.clone(),
    };
    let supervised = Supervised {
        spec: launch.spec,
        run_dir: run_dir.to_path_buf(),
        options: options.clone(),
        state: state_tx,
        sink,
        group,
        stop: stop_rx,
    };
    (handle, supervised, stop_tx)
}

/// The name and state of the process started before, which must be ready first.
pub(super) type Previous = (String, watch::Receiver<ProcessState>);

/// Why a run of the process ended.
enum Ended {
    /// Stopped on request, with the exit status.
    Stopped(Option<ExitStatus>),
    /// Failed, with the exit status when the process exited by itself.
    Failed {
        reason: String,
        status: Option<ExitStatus>,
        phase: Phase,
    },
}

/// How far a failed run got.
enum Phase {
    /// The program could not be spawned: starting it again would fail the same way.
    Spawn,
    /// Spawned, never ready.
    Startup,
    /// Ready for this long before it failed.
    Serving(Duration),
}

impl Supervised {
    /// Runs the process until it is stopped or fails for good. `previous` is the process
    /// started before this one, which must be ready first.
    pub(super) async fn run(mut self, previous: Option<Previous>) {
        if let Some(previous) = previous
            && let Some(final_state) = self.wait_for(previous).await
        {
            self.set(final_state);
            return;
        }
        let mut restarts = 0;
        let final_state = loop {
            let ended = self.run_once(restarts).await;
            let policy = &self.options.restart;
            if let Ended::Failed {
                phase: Phase::Serving(ready_for),
                ..
            } = &ended
                && *ready_for >= Duration::from_millis(policy.reset_after_ms)
            {
                restarts = 0;
            }
            match ended {
                Ended::Stopped(status) => {
                    let exit_code = status.and_then(|s| s.code());
                    break ProcessState::Stopped { exit_code };
                }
                Ended::Failed { reason, phase, .. }
                    if !matches!(phase, Phase::Spawn) && restarts < policy.max_restarts =>
                {
                    restarts += 1;
                    if !self.back_off(restarts, reason).await {
                        break ProcessState::Stopped { exit_code: None };
                    }
                }
                Ended::Failed { reason, status, .. } => {
                    break ProcessState::Failed {
                        reason,
                        exit_code: status.and_then(|s| s.code()),
                        last_lines: self.sink.tail.lines(),
                    };
                }
            }
        };
        self.set(final_state);
    }

    /// Publishes a new state and logs it.
    fn set(&self, state: ProcessState) {
        let process = &self.sink.name;
        match &state {
            ProcessState::Failed {
                reason, exit_code, ..
            } => {
                tracing::warn!(target: "inferkit::process", %process, ?exit_code, "failed: {reason}")
            }
            other => tracing::debug!(target: "inferkit::process", %process, state = ?other),
        }
        self.state.send_replace(state);
    }

    /// Waits until `previous` is ready; `Some(final state)` when this process must not start.
    async fn wait_for(&mut self, previous: Previous) -> Option<ProcessState> {
        let (name, mut previous) = previous;
        tokio::select! {
            reached = previous.wait_for(ready_or_final) => {
                match reached.map(|s| s.clone()) {
                    Ok(ProcessState::Ready { .. }) => None,
                    _ => Some(ProcessState::Failed {
                        reason: format!("not started: {name} did not become ready"),
                        exit_code: None,
                        last_lines: Vec::new(),
                    }),
                }
            }
            () = requested(&mut self.stop) => Some(ProcessState::Stopped { exit_code: None }),
        }
    }

    /// Announces restart number `restart` and sleeps its delay; `false` when stopped meanwhile.
    async fn back_off(&mut self, restart: u32, reason: String) -> bool {
        let delay = self.options.restart.delay(restart);
        tracing::warn!(
            target: "inferkit::process",
            process = %self.sink.name,
            restart,
            "{reason}; restarting in {delay:?}"
        );
        self.set(ProcessState::Restarting {
            attempt: restart,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            reason,
        });
        tokio::select! {
            () = sleep(delay) => true,
            () = requested(&mut self.stop) => false,
        }
    }

    /// Starts the process once and follows it until it ends.
    async fn run_once(&mut self, attempt: u32) -> Ended {
        let mut child = match self.spawn() {
            Ok(child) => child,
            Err(e) => {
                return Ended::Failed {
                    reason: format!("cannot start `{}`: {e}", self.spec.program),
                    status: None,
                    phase: Phase::Spawn,
                };
            }
        };
        let pid = child.id().unwrap_or(0);
        self.group.store(pid, Ordering::SeqCst);
        let readers = self.read_output(&mut child);
        self.set(ProcessState::Starting { pid, attempt });
        let ended = self.follow(&mut child, pid).await;
        self.reap(&mut child, readers).await;
        ended
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let spec = &self.spec;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(&spec.env)
            .current_dir(&self.run_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        signal::isolate(
            &mut command,
            Duration::from_millis(self.options.stop_grace_ms),
        );
        command.spawn()
    }

    fn read_output(&self, child: &mut Child) -> Vec<JoinHandle<()>> {
        let stdout = child
            .stdout
            .take()
            .map(|out| output::pump(out, OutputStream::Stdout, self.sink.clone()));
        let stderr = child
            .stderr
            .take()
            .map(|err| output::pump(err, OutputStream::Stderr, self.sink.clone()));
        stdout.into_iter().chain(stderr).collect()
    }

    /// Follows a spawned process through readiness until it exits, fails or is stopped.
    async fn follow(&mut self, child: &mut Child, pid: u32) -> Ended {
        let check = self.spec.health.clone();
        let ready = tokio::select! {
            status = child.wait() => return exited(status, "before it was ready", Phase::Startup),
            ready = health::wait_ready(check.as_ref(), &self.options) => ready,
            () = requested(&mut self.stop) => {
                return Ended::Stopped(self.terminate(child, pid).await);
            }
        };
        if let Err(reason) = ready {
            self.terminate(child, pid).await;
            return Ended::Failed {
                reason,
                status: None,
                phase: Phase::Startup,
            };
        }
        self.set(ProcessState::Ready { pid });
        let ready_at = Instant::now();
        tokio::select! {
            status = child.wait() => {
                exited(status, "after it was ready", Phase::Serving(ready_at.elapsed()))
            }
            () = requested(&mut self.stop) => Ended::Stopped(self.terminate(child, pid).await),
        }
    }

    /// SIGTERM to the group, SIGKILL after the grace period; the exit status when known.
    async fn terminate(&self, child: &mut Child, pid: u32) -> Option<ExitStatus> {
        self.set(ProcessState::Stopping { pid });
        signal::terminate_group(pid);
        let grace = Duration::from_millis(self.options.stop_grace_ms);
        if let Ok(status) = timeout(grace, child.wait()).await {
            return status.ok();
        }
        tracing::warn!(
            target: "inferkit::process",
            process = %self.sink.name,
            "still running {grace:?} after SIGTERM; sending SIGKILL"
        );
        signal::kill_group(pid);
        child.wait().await.ok()
    }

    /// Kills what is left of the process group, reaps the child and lets the readers drain.
    async fn reap(&self, child: &mut Child, readers: Vec<JoinHandle<()>>) {
        let group = self.group.swap(0, Ordering::SeqCst);
        signal::kill_group(group);
        let _ = child.wait().await;
        for reader in readers {
            let _ = timeout(DRAIN_LIMIT, reader).await;
        }
    }
}

/// Resolves once a stop is requested (or the supervisor is gone).
async fn requested(stop: &mut watch::Receiver<bool>) {
    // The `Ref` returned holds the channel's lock: `let _` drops it at once. An error means the
    // supervisor is gone, which is a stop request too.
    let _ = stop.wait_for(|stop| *stop).await;
}

fn exited(status: std::io::Result<ExitStatus>, when: &str, phase: Phase) -> Ended {
    match status {
        Ok(status) => Ended::Failed {
            reason: format!("exited {when}: {}", describe(status)),
            status: Some(status),
            phase,
        },
        Err(e) => Ended::Failed {
            reason: format!("cannot wait for the process: {e}"),
            status: None,
            phase,
        },
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}
