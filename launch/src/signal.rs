//! Process groups and signals: the only unsafe code of the supervisor, kept here.

use tokio::process::Command;

/// Makes the child lead a new process group (so that a signal to the group reaches whatever it
/// forks) and, on Linux, asks the kernel to SIGKILL it when the spawning thread dies.
pub(super) fn isolate(command: &mut Command) {
    command.process_group(0);
    #[cfg(target_os = "linux")]
    die_with_parent(command);
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and calls only `prctl` and `getppid`,
    // which are async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the request took effect: the signal would never
            // come, so refuse to run as an orphan.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the supervisor exited during spawn"));
            }
            Ok(())
        });
    }
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
