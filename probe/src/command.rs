//! Runs a vendor tool (`npu-smi`, `rocm-smi`) and returns its standard output.

use std::io::ErrorKind;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::probe_error;
use inferkit_core::Result;

/// How long a vendor tool may run. `npu-smi` and `rocm-smi` answer in well under a second on a
/// healthy machine; a wedged driver makes them hang, which must not hang the caller.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes kept of one stream of a vendor tool. `npu-smi info` on a 16-NPU server prints
/// about 8 KiB and `rocm-smi --json` on 8 GPUs about 20 KiB; 4 MiB leaves room for far larger
/// machines while a tool that floods its output cannot exhaust memory.
pub(crate) const MAX_TOOL_OUTPUT: usize = 4 << 20;

/// A vendor tool to run: the name errors use, its program (a path, or a name looked up in
/// `PATH`) and its time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tool {
    pub(crate) name: &'static str,
    pub(crate) program: String,
    pub(crate) timeout: Duration,
}

impl Tool {
    /// The tool `name`, run as `name` from `PATH`.
    pub(crate) fn new(name: &'static str) -> Self {
        Tool {
            name,
            program: name.to_string(),
            timeout: TOOL_TIMEOUT,
        }
    }

    /// Runs the tool with `args` and returns its standard output.
    ///
    /// `Ok(None)` means the machine has no such devices: the tool is not installed, or its
    /// output contains one of `absent_markers` (the tool's own words for "no driver, no
    /// devices"). A tool that cannot be started for another reason, exits non-zero, prints
    /// non-UTF-8, prints more than [`MAX_TOOL_OUTPUT`] on either stream or outlives the timeout
    /// is an [`inferkit_core::Error::Probe`] naming the program. The tool leads its own process
    /// group; when it outlives the timeout or floods its output, the whole group is killed, so
    /// that nothing it started survives.
    pub(crate) async fn run(
        &self,
        args: &[&str],
        absent_markers: &[&str],
    ) -> Result<Option<String>> {
        let (name, program, timeout) = (self.name, self.program.as_str(), self.timeout);
        let command_line = || format!("{program} {}", args.join(" "));
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::debug!(
                    tool = name,
                    program,
                    "not installed; no such devices on this machine"
                );
                return Ok(None);
            }
            Err(e) => {
                let reason = format!("cannot run `{}`: {e}", command_line());
                return Err(probe_error(name, reason));
            }
        };
        let group = child.id();
        let reason = match tokio::time::timeout(timeout, capture(&mut child)).await {
            Ok(Ok(output)) => return self.interpret(output, &command_line(), absent_markers),
            Err(_) => format!("`{}` did not finish within {timeout:?}", command_line()),
            Ok(Err(Capture::TooLong(stream))) => format!(
                "`{}` printed more than {} MiB on {stream}; stopped it",
                command_line(),
                MAX_TOOL_OUTPUT >> 20
            ),
            Ok(Err(Capture::Io(e))) => {
                format!("cannot read the output of `{}`: {e}", command_line())
            }
        };
        kill_group(group);
        let _ = child.wait().await;
        Err(probe_error(name, reason))
    }

    /// What the whole output of a finished run means (see [`Tool::run`]).
    fn interpret(
        &self,
        output: Output,
        command_line: &str,
        absent_markers: &[&str],
    ) -> Result<Option<String>> {
        let (name, program) = (self.name, self.program.as_str());
        if let Some(marker) = absent_marker(&output, absent_markers) {
            tracing::debug!(
                tool = name,
                program,
                marker,
                "the tool reports no such devices"
            );
            return Ok(None);
        }
        if !output.status.success() {
            let reason = format!(
                "`{command_line}` exited with {}: {}",
                output.status,
                first_message(&output.stderr, &output.stdout)
            );
            return Err(probe_error(name, reason));
        }
        String::from_utf8(output.stdout)
            .map(Some)
            .map_err(|_| probe_error(name, format!("`{command_line}` printed non-UTF-8 output")))
    }
}

/// Why the output of a tool was not captured whole.
enum Capture {
    /// The named stream went over [`MAX_TOOL_OUTPUT`].
    TooLong(&'static str),
    /// Reading or waiting failed.
    Io(std::io::Error),
}

/// Reads both streams of `child` to their end, each up to [`MAX_TOOL_OUTPUT`], then waits for
/// it to exit.
async fn capture(child: &mut Child) -> std::result::Result<Output, Capture> {
    let stdout = read_capped(child.stdout.take(), "stdout");
    let stderr = read_capped(child.stderr.take(), "stderr");
    let (stdout, stderr) = tokio::try_join!(stdout, stderr)?;
    let status = child.wait().await.map_err(Capture::Io)?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Reads `stream` to its end, refusing more than [`MAX_TOOL_OUTPUT`] bytes.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    name: &'static str,
) -> std::result::Result<Vec<u8>, Capture> {
    let mut bytes = Vec::new();
    let Some(stream) = stream else {
        return Ok(bytes);
    };
    // One byte more than allowed tells "exactly the limit" from "over it".
    let limit = MAX_TOOL_OUTPUT as u64 + 1;
    stream
        .take(limit)
        .read_to_end(&mut bytes)
        .await
        .map_err(Capture::Io)?;
    if bytes.len() > MAX_TOOL_OUTPUT {
        return Err(Capture::TooLong(name));
    }
    Ok(bytes)
}

/// SIGKILL to the process group `group` (the tool and whatever it started).
#[cfg(unix)]
fn kill_group(group: Option<u32>) {
    // Group ids 0 and 1 would signal our own group or every process: never send to them.
    let Some(id) = group
        .and_then(|g| i32::try_from(g).ok())
        .filter(|&id| id > 1)
    else {
        return;
    };
    // SAFETY: `kill` has no memory-safety preconditions; a group already gone gives ESRCH.
    unsafe {
        libc::kill(-id, libc::SIGKILL);
    }
}

/// Without process groups, `kill_on_drop` stops the tool itself.
#[cfg(not(unix))]
fn kill_group(_group: Option<u32>) {}

/// The first of `markers` that occurs in the tool's output.
fn absent_marker<'m>(output: &Output, markers: &[&'m str]) -> Option<&'m str> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    markers
        .iter()
        .copied()
        .find(|m| stdout.contains(m) || stderr.contains(m))
}

/// The tool's own explanation of a failure: stderr, else stdout, trimmed to a few lines.
fn first_message(stderr: &[u8], stdout: &[u8]) -> String {
    let text = if stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        stderr
    } else {
        stdout
    };
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    if lines.is_empty() {
        "no output".to_string()
    } else {
        lines.join(" / ")
    }
}
