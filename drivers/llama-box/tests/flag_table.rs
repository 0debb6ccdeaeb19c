//! The generated flag table (`src/flags/table.rs`) against the JSON it was generated from
//! (`data/llama-box-0.0.171.json`, extracted from llama-box's parser, with the corrections of
//! `data/flags.json`): a stale or hand-edited table fails here.

use std::path::Path;

use inferkit_core::flags::source::compare_data_dir;
use inferkit_core::flags::suggest::nearest;
use inferkit_llama_box::flag_table;

#[test]
fn the_table_matches_its_source_json() {
    let data = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data"));
    let diffs = compare_data_dir(flag_table(), data);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn the_platform_owns_the_address_model_and_devices() {
    let owned: Vec<&str> = flag_table()
        .flags
        .iter()
        .filter(|f| f.platform_owned.is_some())
        .map(|f| f.name)
        .collect();
    assert_eq!(
        owned,
        [
            "--host",
            "--port",
            "--model",
            "--alias",
            "--rpc",
            "--device",
            "--rpc-server-host",
            "--rpc-server-port",
            "--rpc-server-main-gpu",
        ]
    );
}

#[test]
fn the_help_only_spelling_is_not_a_flag() {
    // llama-box's help names --image-slg-skip-layer, but its parser reads --image-skip-layer.
    assert!(flag_table().lookup("--image-slg-skip-layer").is_none());
    assert!(flag_table().lookup("--image-skip-layer").is_some());
    let spellings = flag_table().spellings.iter().map(|s| s.text);
    assert_eq!(
        nearest("--image-slg-skip-layer", spellings),
        Some("--image-skip-layer")
    );
}
