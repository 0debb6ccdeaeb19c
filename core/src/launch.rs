//! Launch specifications: the exact processes a plan starts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a process does in a deployment: the main process (the one with the HTTP endpoint),
/// or a subordinate the main process relies on, of a kind its driver names (llama-box's
/// `rpc_server`, vLLM's `ray_head` and `ray_worker`, MindIE's `subordinate`). The launcher starts
/// subordinates first, in plan order, and names each after its kind.
///
/// In JSON a role is one snake_case string: `main`, or the subordinate's kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ProcessRole {
    /// The serving process (the one with the HTTP endpoint).
    Main,
    /// A process the main one relies on (a device server, a cluster node).
    Subordinate {
        /// The driver's name for it, snake_case (`rpc_server`); never `main`.
        kind: String,
    },
}

impl ProcessRole {
    /// The JSON name of the main process's role.
    const MAIN: &'static str = "main";

    /// A subordinate of the kind the driver names (`rpc_server`).
    pub fn subordinate(kind: impl Into<String>) -> Self {
        let kind = kind.into();
        if kind == Self::MAIN {
            ProcessRole::Main
        } else {
            ProcessRole::Subordinate { kind }
        }
    }

    /// The name used in JSON and in process names: `main`, or the subordinate's kind.
    pub fn as_str(&self) -> &str {
        match self {
            ProcessRole::Main => Self::MAIN,
            ProcessRole::Subordinate { kind } => kind,
        }
    }

    /// Whether this is the main process.
    pub fn is_main(&self) -> bool {
        matches!(self, ProcessRole::Main)
    }

    /// Whether this is a subordinate of `kind`.
    pub fn is_subordinate(&self, kind: &str) -> bool {
        matches!(self, ProcessRole::Subordinate { kind: k } if k == kind)
    }
}

/// A role read from JSON: `main` or a kind in snake_case (what process names and Kubernetes
/// port names are made from).
impl TryFrom<String> for ProcessRole {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let mut chars = name.chars();
        let snake_case = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        match snake_case {
            true => Ok(ProcessRole::subordinate(name)),
            false => Err(format!("process role `{name}` is not a snake_case name")),
        }
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for ProcessRole {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProcessRole".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`main`, or the kind of subordinate its driver names (`rpc_server`)",
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]*$"
        })
    }
}

impl From<ProcessRole> for String {
    fn from(role: ProcessRole) -> Self {
        match role {
            ProcessRole::Main => ProcessRole::MAIN.to_string(),
            ProcessRole::Subordinate { kind } => kind,
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

/// A file a process reads that the plan cannot write: something on the target writes it at
/// run time (Ascend Operator writes the HCCL rank table of a MindIE job on Kubernetes). The
/// launcher starts the process only when the file is already in the run directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunTimeFile {
    /// Path relative to the run directory, as the process's environment or config names it.
    pub path: PathBuf,
    /// What writes it, and where (for the user: `Ascend Operator, on Kubernetes`).
    pub written_by: String,
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
#[non_exhaustive]
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
    /// Files the process reads that are written at run time by something else, not by the
    /// launcher ([`RunTimeFile`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_time_files: Vec<RunTimeFile>,
    /// Readiness check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
}

impl LaunchSpec {
    /// `program` with `args` on `worker` in `role`, with no extra environment, files or
    /// readiness check (set the fields to add them).
    pub fn new(
        worker: impl Into<String>,
        role: ProcessRole,
        program: impl Into<String>,
        args: Vec<String>,
    ) -> Self {
        LaunchSpec {
            worker: worker.into(),
            role,
            program: program.into(),
            args,
            env: BTreeMap::new(),
            files: Vec::new(),
            run_time_files: Vec::new(),
            health: None,
        }
    }

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
    fn a_role_is_one_string_in_json() {
        for (role, name) in [
            (ProcessRole::Main, "main"),
            (ProcessRole::subordinate("rpc_server"), "rpc_server"),
            (ProcessRole::subordinate("ray_head"), "ray_head"),
        ] {
            let value = serde_json::to_value(&role).unwrap();
            assert_eq!(value, serde_json::json!(name));
            assert_eq!(serde_json::from_value::<ProcessRole>(value).unwrap(), role);
            assert_eq!(role.as_str(), name);
        }
        assert_eq!(ProcessRole::subordinate("main"), ProcessRole::Main);
        for bad in ["", "Ray Head", "rpc-server", "9th"] {
            assert!(serde_json::from_value::<ProcessRole>(serde_json::json!(bad)).is_err());
        }
        assert!(ProcessRole::subordinate("rpc_server").is_subordinate("rpc_server"));
        assert!(!ProcessRole::Main.is_subordinate("main"));
    }

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
            run_time_files: vec![],
            health: None,
        };
        assert_eq!(
            spec.command_line(),
            "llama-box --alias 'my model' --ctx-size 8192"
        );
    }
}
