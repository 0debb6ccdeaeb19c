//! Sets `cfg(repo_fixtures)` when the repository's test fixtures sit beside this crate: the
//! workspace's `tests/fixtures/hf` and the crate's own `tests/fixtures/vllm-v1`. The published
//! crate ships neither, so there the unit tests that read them are reported ignored instead of
//! failing.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(repo_fixtures)");
    println!("cargo::rerun-if-changed=../../tests/fixtures/hf");
    println!("cargo::rerun-if-changed=tests/fixtures/vllm-v1");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let crate_dir = Path::new(&manifest);
    let present = ["../../tests/fixtures/hf", "tests/fixtures/vllm-v1"]
        .iter()
        .all(|dir| crate_dir.join(dir).is_dir());
    if present {
        println!("cargo::rustc-cfg=repo_fixtures");
    }
}
