//! Runs a vendor tool (`npu-smi`, `rocm-smi`) and returns its standard output.

use std::io::ErrorKind;
use std::time::Duration;

use tokio::process::Command;

use super::probe_error;
use inferkit_core::Result;

/// How long a vendor tool may run. `npu-smi` and `rocm-smi` answer in well under a second on a
/// healthy machine; a wedged driver makes them hang, which must not hang the caller.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// non-UTF-8 or outlives the timeout is an [`inferkit_core::Error::Probe`] naming the program.
    pub(crate) async fn run(
        &self,
        args: &[&str],
        absent_markers: &[&str],
    ) -> Result<Option<String>> {
        let (name, program, timeout) = (self.name, self.program.as_str(), self.timeout);
        let command_line = || format!("{program} {}", args.join(" "));
        let child = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(timeout, child).await {
            Err(_) => {
                let reason = format!("`{}` did not finish within {timeout:?}", command_line());
                return Err(probe_error(name, reason));
            }
            Ok(Err(e)) if e.kind() == ErrorKind::NotFound => {
                tracing::debug!(
                    tool = name,
                    program,
                    "not installed; no such devices on this machine"
                );
                return Ok(None);
            }
            Ok(Err(e)) => {
                let reason = format!("cannot run `{}`: {e}", command_line());
                return Err(probe_error(name, reason));
            }
            Ok(Ok(output)) => output,
        };
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
                "`{}` exited with {}: {}",
                command_line(),
                output.status,
                first_message(&output.stderr, &output.stdout)
            );
            return Err(probe_error(name, reason));
        }
        String::from_utf8(output.stdout).map(Some).map_err(|_| {
            probe_error(
                name,
                format!("`{}` printed non-UTF-8 output", command_line()),
            )
        })
    }
}

/// The first of `markers` that occurs in the tool's output.
fn absent_marker<'m>(output: &std::process::Output, markers: &[&'m str]) -> Option<&'m str> {
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
