//! The guardian (Linux): a small process between the supervisor and each backend, so that
//! nothing a backend started outlives it, even when the supervisor is killed outright.
//!
//! A process group reaches what a backend forks, and `PR_SET_PDEATHSIG` makes a child die with
//! its parent; but when the supervisor itself is killed with SIGKILL (or by the OOM killer),
//! nobody is left to signal the group, and the backend's helpers (vLLM's engine processes,
//! Ray's workers) live on with parent 1. So every spawn forks twice:
//!
//! ```text
//! supervisor ── guardian (pid G, the pid the supervisor knows)
//!                  └── backend (exec'd program, leads nothing: its group is G)
//!                        └── helpers (group G, unless they start their own session)
//! ```
//!
//! The child that the standard library forks for a spawn runs [`split`] before `exec`. It sets
//! up group G (done before by `process_group(0)`), forks the backend, which goes on to `exec`
//! the program, and stays behind as the guardian. The guardian leaves group G for the
//! supervisor's group, so the supervisor's SIGTERM and SIGKILL to group G reach the backend and
//! its helpers but not the guardian, and it becomes a child subreaper, so that descendants
//! orphaned by the death of their parent (daemons that started their own session included)
//! become its children instead of init's. It then waits, with every signal blocked:
//!
//! - when the backend exits, it SIGKILLs group G and every remaining descendant, reaps them and
//!   exits with the backend's status (the same exit code, or the same signal), so the
//!   supervisor sees what the backend did;
//! - when the supervisor dies (its parent-death signal, or its parent pid changing), it sends
//!   SIGTERM to group G, gives the backend the stop grace period, then does the same.
//!
//! The backend gets SIGKILL as its own parent-death signal: if the guardian is killed, the
//! backend goes with it.
//!
//! Everything here runs between `fork` and `exec` (the guardian never execs): only
//! async-signal-safe system calls, no allocation, no lock.

use std::io;
use std::mem::MaybeUninit;

use libc::{c_int, pid_t};

/// How long the guardian waits for descendants to die after SIGKILL before it exits anyway (a
/// process stuck in the kernel, in a GPU driver call, dies only when that call returns).
const SWEEP_LIMIT_MS: u64 = 5_000;

/// How often the guardian checks that its supervisor is alive, in case the parent-death signal
/// was missed.
const PARENT_CHECK_MS: u64 = 500;

/// The guardian's process name (at most 15 bytes), as `ps` shows it.
const NAME: &[u8] = b"inferkit-guard\0";

/// Forks the backend from the spawned child. Returns in the backend, which then execs the
/// program; never returns in the guardian. `supervisor` is the supervisor's pid, `grace_ms`
/// the time the backend gets between SIGTERM and SIGKILL when the supervisor dies.
///
/// # Safety
///
/// Call only in the child between `fork` and `exec` (a `pre_exec` closure), after the child
/// leads its own process group.
pub(super) unsafe fn split(supervisor: pid_t, grace_ms: u64) -> io::Result<()> {
    // SAFETY (whole function): only async-signal-safe calls on stack values.
    unsafe {
        let guardian = libc::getpid();
        let mut all = empty_set();
        libc::sigfillset(&mut all);
        let mut previous = empty_set();
        // Blocked before the fork, so that neither process runs a handler inherited from the
        // supervisor, and no signal is lost between the fork and the guardian's first wait.
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut previous);
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM))?;
        // The supervisor may have died before the request took effect: the signal would never
        // come, so refuse to start as an orphan. ESRCH: no such process.
        if libc::getppid() != supervisor {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        check(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1))?;
        match libc::fork() {
            -1 => {
                let error = io::Error::last_os_error();
                libc::sigprocmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
                Err(error)
            }
            0 => {
                libc::sigprocmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
                if libc::getppid() != guardian {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            }
            backend => guard(supervisor, backend, grace_ms, &all),
        }
    }
}

/// The guardian's life: follows `backend` until it exits or the supervisor dies, then clears
/// away every descendant and exits as the backend did.
unsafe fn guard(supervisor: pid_t, backend: pid_t, grace_ms: u64, all: &libc::sigset_t) -> ! {
    // SAFETY (whole function): only async-signal-safe calls on stack values.
    unsafe {
        let group = libc::getpid();
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr());
        // Holds nothing open: no pipe end of the supervisor's (its output readers and its
        // spawn-error pipe must see the end of file when the backend is gone).
        close_all();
        // Out of group G, into the supervisor's: signals to G reach the backend, not us.
        libc::setpgid(0, libc::getpgid(supervisor));
        let mut status = None;
        while status.is_none() {
            status = reap(backend);
            if status.is_none() && libc::getppid() != supervisor {
                libc::kill(-group, libc::SIGTERM);
                status = wait_for(backend, now_ms().saturating_add(grace_ms), all);
                break;
            }
            if status.is_none() {
                wait_signal(all, PARENT_CHECK_MS);
            }
        }
        sweep(group, backend, all);
        exit_as(status)
    }
}

/// Reaps every child that has exited; the wait status of `backend` if it was one of them.
unsafe fn reap(backend: pid_t) -> Option<c_int> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: `waitpid` writes only `status`.
        match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
            pid if pid == backend => found = Some(status),
            pid if pid > 0 => {}
            _ => return found,
        }
    }
}

/// Waits until `backend` exits or the monotonic clock reaches `deadline_ms`.
unsafe fn wait_for(backend: pid_t, deadline_ms: u64, all: &libc::sigset_t) -> Option<c_int> {
    loop {
        // SAFETY: see `guard`.
        if let Some(status) = unsafe { reap(backend) } {
            return Some(status);
        }
        let left = deadline_ms.saturating_sub(now_ms());
        if left == 0 {
            return None;
        }
        // SAFETY: see `guard`.
        unsafe { wait_signal(all, left.min(PARENT_CHECK_MS)) };
    }
}

/// SIGKILL to group G and to every descendant handed to the guardian, until none is left or
/// [`SWEEP_LIMIT_MS`] has passed; reaps them as they die.
unsafe fn sweep(group: pid_t, backend: pid_t, all: &libc::sigset_t) {
    let deadline = now_ms().saturating_add(SWEEP_LIMIT_MS);
    // SAFETY (whole function): only async-signal-safe calls on stack values.
    unsafe {
        loop {
            libc::kill(-group, libc::SIGKILL);
            // Children of killed processes come to us (we are their subreaper) once their
            // parent is gone; each round kills what arrived since.
            for_each_child(group, |child| {
                libc::kill(child, libc::SIGKILL);
            });
            reap(backend);
            let mut status = 0;
            let none_left = libc::waitpid(-1, &mut status, libc::WNOHANG) == -1;
            if none_left || now_ms() >= deadline {
                return;
            }
            wait_signal(all, 50);
        }
    }
}

/// Exits with the backend's wait status: the same exit code, or death by the same signal.
unsafe fn exit_as(status: Option<c_int>) -> ! {
    // SAFETY (whole function): async-signal-safe calls on stack values.
    unsafe {
        let Some(status) = status else {
            // The backend outlived the grace period and was killed with the rest.
            libc::_exit(128 + libc::SIGKILL)
        };
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signal, &default, std::ptr::null_mut());
            let mut only = empty_set();
            libc::sigaddset(&mut only, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            // A signal whose default action is not to terminate: the shell's convention.
            libc::_exit(128 + signal)
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

/// Calls `each` with the pid of every current child of the single-threaded process `pid`, read
/// from `/proc/PID/task/PID/children` (kernels built without `CONFIG_PROC_CHILDREN` lack it:
/// then only group G is swept).
unsafe fn for_each_child(pid: pid_t, mut each: impl FnMut(pid_t)) {
    let mut path = [0u8; 64];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        for &b in bytes {
            path[len] = b;
            len += 1;
        }
    };
    let mut digits = [0u8; 20];
    push(b"/proc/");
    push(decimal(pid as u64, &mut digits));
    push(b"/task/");
    push(decimal(pid as u64, &mut digits));
    push(b"/children\0");
    // SAFETY: `path` is NUL-terminated; `read` writes within `buffer`.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        let mut buffer = [0u8; 4096];
        let mut pending: u64 = 0;
        let mut in_number = false;
        loop {
            let n = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
            if n <= 0 {
                break;
            }
            for &b in &buffer[..n as usize] {
                if b.is_ascii_digit() {
                    pending = pending
                        .saturating_mul(10)
                        .saturating_add(u64::from(b - b'0'));
                    in_number = true;
                } else if in_number {
                    each(pending as pid_t);
                    (pending, in_number) = (0, false);
                }
            }
        }
        if in_number {
            each(pending as pid_t);
        }
        libc::close(fd);
    }
}

/// `value` in decimal, written at the end of `buffer`.
fn decimal(mut value: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buffer[start..];
        }
    }
}

/// Waits up to `millis` for any signal (all are blocked, so none runs a handler).
unsafe fn wait_signal(all: &libc::sigset_t, millis: u64) {
    let timeout = libc::timespec {
        tv_sec: (millis / 1000) as libc::time_t,
        tv_nsec: ((millis % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: `sigtimedwait` reads `all` and `timeout`; the siginfo pointer may be null.
    unsafe {
        libc::sigtimedwait(all, std::ptr::null_mut(), &timeout);
    }
}

/// Closes every file descriptor.
unsafe fn close_all() {
    // SAFETY: closing descriptors has no memory-safety preconditions.
    unsafe {
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) == 0 {
            return;
        }
        // Kernels before 5.9 lack close_range.
        let limit = match libc::sysconf(libc::_SC_OPEN_MAX) {
            n if n > 0 => n.min(65_536) as c_int,
            _ => 1024,
        };
        for fd in 0..limit {
            libc::close(fd);
        }
    }
}

/// Milliseconds of the monotonic clock.
fn now_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes only `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1000)
        .saturating_add(now.tv_nsec as u64 / 1_000_000)
}

fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initialises the whole set.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

fn check(result: c_int) -> io::Result<()> {
    if result == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_digits() {
        let mut buffer = [0u8; 20];
        assert_eq!(decimal(0, &mut buffer), b"0");
        assert_eq!(decimal(4_194_304, &mut buffer), b"4194304");
        assert_eq!(decimal(u64::MAX, &mut buffer), b"18446744073709551615");
    }
}
