//! Run directories: private to the user, never reached through a link, never another user's.
//!
//! A predictable path in a shared directory (`/tmp/inferkit-MODEL`) can be planted in advance:
//! as a link to a directory of the attacker's choice, or as a directory another user owns and
//! reads. So the launcher only works in a directory that is a real directory (not a symbolic
//! link), owned by the user it runs as, and writable by nobody else; one it creates is 0700,
//! and the files it writes there are 0600. [`fresh`] makes a new such directory with an
//! unpredictable name under a per-user base ([`default_base`]).

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use inferkit_core::{Error, Result};

/// Mode of the directories the launcher creates.
const PRIVATE_DIR: u32 = 0o700;

/// Checks `dir` as a run directory without changing anything: when it exists, it must be a
/// directory (not a symbolic link to one), owned by the effective user, and not writable by
/// group or others. A missing directory passes: [`prepare`] creates it.
pub fn check(dir: &Path) -> Result<()> {
    let metadata = match std::fs::symlink_metadata(dir) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let refuse = |why: String| {
        Err(Error::invalid_parameter(
            format!("run directory {}", dir.display()),
            why,
        ))
    };
    if metadata.file_type().is_symlink() {
        return refuse(
            "it is a symbolic link; a run directory must be a directory of its own".into(),
        );
    }
    if !metadata.is_dir() {
        return refuse("it exists and is not a directory".into());
    }
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    let user = unsafe { libc::geteuid() };
    if metadata.uid() != user {
        return refuse(format!(
            "it belongs to user id {}, not to this user ({user})",
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o022 != 0 {
        return refuse(format!(
            "other users may write into it (mode {:o}); make it private (chmod 700)",
            metadata.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Makes `dir` ready as a run directory: [`check`]s it, and creates it (0700, with any missing
/// parent) when it does not exist.
pub fn prepare(dir: &Path) -> Result<()> {
    check(dir)?;
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
        .map_err(|e| Error::io(dir, e))?;
    // Checked again: the path may have been planted between the check and the creation.
    check(dir)
}

/// The per-user directory that holds fresh run directories: `$XDG_RUNTIME_DIR/inferkit` (a
/// private tmpfs that systemd creates per user), else `$XDG_STATE_HOME/inferkit/run`, else
/// `$HOME/.local/state/inferkit/run` (the XDG Base Directory specification's defaults).
pub fn default_base() -> Result<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    if let Some(runtime) = absolute("XDG_RUNTIME_DIR") {
        return Ok(runtime.join("inferkit"));
    }
    if let Some(state) = absolute("XDG_STATE_HOME") {
        return Ok(state.join("inferkit").join("run"));
    }
    match absolute("HOME") {
        Some(home) => Ok(home.join(".local/state/inferkit/run")),
        None => Err(Error::invalid_parameter(
            "run directory",
            "neither XDG_RUNTIME_DIR, XDG_STATE_HOME nor HOME is set; name one (--run-dir)",
        )),
    }
}

/// Creates a new private run directory `BASE/NAME-PID-XXXXXXXX` (0700, name unpredictable;
/// PID is this process's), creating and checking `base` first. Directories of earlier runs
/// whose process is gone are removed first ([`sweep_abandoned`]): a `serve` ended by SIGKILL
/// had no chance to remove its own.
pub fn fresh(base: &Path, name: &str) -> Result<PathBuf> {
    prepare(base)?;
    sweep_abandoned(base);
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let mut attempt = 0u32;
    loop {
        let dir = base.join(format!(
            "{stem}-{}-{:08x}",
            std::process::id(),
            random_u32(attempt)
        ));
        match DirBuilder::new().mode(PRIVATE_DIR).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
}

/// Removes the run directories [`fresh`] made under `base` for processes that no longer run.
/// A directory whose process still runs (or whose pid was reused) is kept; failures are
/// ignored (another `serve` may be sweeping too). Only names of [`fresh`]'s form are touched,
/// and `base` is private to the user ([`prepare`]).
pub fn sweep_abandoned(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        if !process_exists(pid) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in a name of [`fresh`]'s form, `NAME-PID-XXXXXXXX`.
fn owner_pid(name: &str) -> Option<libc::pid_t> {
    let mut parts = name.rsplitn(3, '-');
    let random = parts.next()?;
    let pid = parts.next()?;
    parts.next()?;
    let hex = random.len() == 8 && random.bytes().all(|b| b.is_ascii_hexdigit());
    let decimal = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (hex && decimal)
        .then(|| pid.parse().ok())
        .flatten()
        .filter(|&pid| pid > 0)
}

/// Whether a process `pid` exists (signal 0 checks without sending; EPERM means it exists
/// under another user).
fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: `kill` with signal 0 sends nothing; it only reports whether `pid` exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A number nobody can guess in advance: from the kernel's random source, else the clock
/// and pid (the base is private anyway: the name only avoids collisions then).
fn random_u32(attempt: u32) -> u32 {
    let mut bytes = [0u8; 4];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes));
    if read.is_ok() {
        return u32::from_ne_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16) ^ attempt.wrapping_mul(0x9e37_79b9)
}
