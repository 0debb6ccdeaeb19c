//! Process groups and signals: the only unsafe code of the supervisor, kept here.

use tokio::process::Command;

/// Makes the child lead a new process group (so that a signal to the group reaches whatever it
/// forks) and, on Linux, puts a guardian between the supervisor and the program (see
/// [`super::guard`]): `grace` is the time the program gets between SIGTERM and SIGKILL when the
/// supervisor dies.
pub(super) fn isolate(command: &mut Command, grace: std::time::Duration) {
    command.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let supervisor = std::process::id() as libc::pid_t;
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        // SAFETY: `split` runs between fork and exec, after the child's `setpgid`, and makes
        // only async-signal-safe calls; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || super::guard::split(supervisor, grace_ms));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = grace;
}

/// Sends SIGTERM to the process group `group`.
pub(super) fn terminate_group(group: u32) {
    send(group, libc::SIGTERM);
}

/// Sends SIGKILL to the process group `group`.
pub(super) fn kill_group(group: u32) {
    send(group, libc::SIGKILL);
}

fn send(group: u32, signal: libc::c_int) {
    // Group 0 means "no process" here, but `kill(0, ...)` would signal the supervisor's own
    // group, and `kill(-1, ...)` every process it may signal: never send to either.
    let Ok(id) = i32::try_from(group) else {
        return;
    };
    if id <= 1 {
        return;
    }
    // SAFETY: `kill` has no memory-safety preconditions. A group that is already gone gives
    // ESRCH, which is the wanted outcome.
    unsafe {
        libc::kill(-id, signal);
    }
}

/// A signal asking the supervising program to stop: what `systemd`, Kubernetes, `ssh` and a
/// terminal send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Shutdown {
    /// SIGINT: Ctrl-C.
    Int,
    /// SIGTERM: `systemctl stop`, `kubectl delete`, `kill`.
    Term,
    /// SIGHUP: the terminal or the ssh session went away.
    Hup,
}

/// The handlers of SIGINT, SIGTERM and SIGHUP: once installed, those signals no longer end the
/// process but are received here. A program that runs a [`Supervisor`](crate::Supervisor)
/// installs them before it starts anything, awaits [`ShutdownSignals::recv`] and then calls
/// [`Supervisor::stop`](crate::Supervisor::stop), so that a stop by any of them is graceful.
#[derive(Debug)]
pub struct ShutdownSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers; call it inside a tokio runtime. Fails only when the operating
    /// system refuses them.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves at the next of the three signals, with which one it was.
    pub async fn recv(&mut self) -> Shutdown {
        tokio::select! {
            _ = self.int.recv() => Shutdown::Int,
            _ = self.term.recv() => Shutdown::Term,
            _ = self.hup.recv() => Shutdown::Hup,
        }
    }
}
