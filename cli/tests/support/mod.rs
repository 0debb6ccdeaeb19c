//! The harness of the CLI tests: the `inferkit` binary run in the repository root, where the
//! fixture paths start.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Qwen2.5-0.5B-Instruct's GGUF header, the model most tests plan.
pub const QWEN: &str = "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf";

/// `inferkit` in the repository root, with no `RUST_LOG` from the test's environment.
pub fn inferkit() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inferkit"));
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    command.env_remove("RUST_LOG");
    command
}

/// `inferkit` reading hub models through `endpoint` (a loopback stand-in, or an unreachable
/// address for offline tests), with every cache under `caches` and no token from the test's
/// environment.
pub fn inferkit_with_hub(endpoint: &str, caches: &Path) -> Command {
    let mut command = inferkit();
    command
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_CACHE", caches.join("hf"))
        .env("INFERKIT_CACHE", caches.join("headers"))
        .env("OLLAMA_MODELS", caches.join("no-ollama"))
        .env("MODELSCOPE_CACHE", caches.join("no-modelscope"))
        .env("XDG_RUNTIME_DIR", caches.join("run"));
    command
}

/// Runs `inferkit ARGS...` to the end.
pub fn run(args: &[&str]) -> Output {
    inferkit().args(args).output().expect("run inferkit")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON document on stdout; a panic showing both streams when it is not one.
pub fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}
