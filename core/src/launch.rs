//! Launch specifications: the exact processes a plan starts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a process does in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProcessRole {
    /// The serving process (the one with the HTTP endpoint).
    Main,
    /// A llama.cpp RPC server offering one device to the main process.
    RpcServer,
    /// The head of a Ray cluster (vLLM across workers).
    RayHead,
    /// A Ray worker joining the head (vLLM across workers).
    RayWorker,
    /// A subordinate process of a multi-node backend (MindIE).
    Subordinate,
}

impl ProcessRole {
    /// The snake_case name used in JSON (`main`, `rpc_server`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessRole::Main => "main",
            ProcessRole::RpcServer => "rpc_server",
            ProcessRole::RayHead => "ray_head",
            ProcessRole::RayWorker => "ray_worker",
            ProcessRole::Subordinate => "subordinate",
        }
    }
}

/// A file the launcher writes before starting a process (backend configuration, overlays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LaunchFile {
    /// Path relative to the run directory (absolute paths are refused by the launcher).
    pub path: PathBuf,
    /// Full content.
    pub content: String,
    /// When set, `path` is made a symbolic link to this existing path instead of a file with
    /// `content` (which is then empty): overlay directories that replace a few files of a
    /// model directory without writing into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_to: Option<PathBuf>,
}

/// How to tell that a process is ready to serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HealthCheck {
    /// TCP port of the endpoint on the process's worker.
    pub port: u16,
    /// HTTP path answering 200 when ready (`/health`); `None`: ready once the port accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One process to start: program, exact argv, environment and files. No shell is involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LaunchSpec {
    /// Worker the process runs on.
    pub worker: String,
    /// Role of the process.
    pub role: ProcessRole,
    /// Program to execute (name looked up in `PATH`, or a path).
    pub program: String,
    /// Arguments, exactly as passed to the program.
    pub args: Vec<String>,
    /// Environment variables set on top of the launcher's environment.
    pub env: BTreeMap<String, String>,
    /// Files to write into the run directory first.
    #[serde(default)]
    pub files: Vec<LaunchFile>,
    /// Readiness check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
}

impl LaunchSpec {
    /// The command line as one shell-quoted string, for display.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes a word for a POSIX shell when it needs it (`my model` → `'my model'`), so that a
/// printed command or environment line can be pasted into a shell.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_only_what_needs_it() {
        let spec = LaunchSpec {
            worker: "w".into(),
            role: ProcessRole::Main,
            program: "llama-box".into(),
            args: vec![
                "--alias".into(),
                "my model".into(),
                "--ctx-size".into(),
                "8192".into(),
            ],
            env: BTreeMap::new(),
            files: vec![],
            health: None,
        };
        assert_eq!(
            spec.command_line(),
            "llama-box --alias 'my model' --ctx-size 8192"
        );
    }
}
