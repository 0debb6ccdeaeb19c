//! The generated flag tables against the `--help` dumps they were generated from (with the
//! corrections of `data/flags.json`): a stale or hand-edited table fails here.

use inferkit_core::flags::FlagTable;
use inferkit_core::flags::source::compare;
use inferkit_llama_server::{flag_table as table, rpc_flag_table as rpc_table};
use serde_json::Value;

fn data(file: &str) -> Value {
    let path = format!("{}/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_matches(table: &FlagTable, dump: &str) {
    let diffs = compare(table, &data(dump), &data("flags.json"));
    assert!(diffs.is_empty(), "{dump}:\n{}", diffs.join("\n"));
}

#[test]
fn the_tables_match_their_dumps() {
    assert_matches(table(), "llama-server-0c1e57098.json");
    assert_matches(rpc_table(), "ggml-rpc-server-0c1e57098.json");
}

/// The team's shared reference extraction (`shared/reference/backend-flags`), found in the
/// nearest directory above the crate that has one: beside the repository, above a worktree.
fn shared_reference() -> Option<std::path::PathBuf> {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/reference/backend-flags"))
        .find(|dir| dir.is_dir())
}

#[test]
fn the_dumps_are_the_shared_reference() {
    let Some(reference) = shared_reference() else {
        // A copy of the crate without the team's reference beside it: nothing to compare.
        eprintln!(
            "SKIPPED the_dumps_are_the_shared_reference: no shared/reference/backend-flags \
             above {}",
            env!("CARGO_MANIFEST_DIR")
        );
        return;
    };
    // The copies in data/ are the reference extraction, byte for byte.
    for dump in [
        "llama-server-0c1e57098.json",
        "ggml-rpc-server-0c1e57098.json",
    ] {
        let path = reference.join(dump);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let copy: Value = serde_json::from_str(&text).expect("reference JSON");
        assert_eq!(copy, data(dump), "{dump} differs from the reference");
    }
}

#[test]
fn the_marks_the_driver_relies_on() {
    let server = table();
    assert!(server.flag("--api-key").is_some_and(|f| f.secret));
    assert_eq!(
        server.flag("--api-key").and_then(|f| f.env),
        Some("LLAMA_API_KEY")
    );
    for owned in [
        "--host", "--port", "--model", "--alias", "--device", "--rpc", "--fit",
    ] {
        assert!(
            server
                .flag(owned)
                .is_some_and(|f| f.platform_owned.is_some()),
            "{owned}"
        );
    }
    let negative = server.lookup("-nkvo").expect("-nkvo");
    assert!(negative.negated && negative.spec.name == "--kv-offload");
    assert!(
        server.lookup("--no-mmap").is_none(),
        "memory mapping is --load-mode"
    );
    // Every flag llama-server reads from the environment names its variable.
    assert!(server.flag("--ctx-size").and_then(|f| f.env) == Some("LLAMA_ARG_CTX_SIZE"));
    assert!(
        rpc_table()
            .lookup("-d")
            .is_some_and(|f| f.spec.name == "--device")
    );
}
