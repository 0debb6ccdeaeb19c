//! Parsers of tool output never panic: arbitrary text and corrupted captures give a value or a
//! typed error.

use std::path::Path;

use inferkit_probe::ascend::{parse_chip_mapping, parse_status_table};
use inferkit_probe::cgroup::{parse_limit, parse_proc_self_cgroup};
use inferkit_probe::rocm::parse_rocm_smi_json;
use inferkit_probe::static_inventory::parse_cluster;
use proptest::prelude::*;

fn capture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/probe/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `text` with the character at `at` (modulo its length) replaced by `with`.
fn corrupt(text: &str, at: usize, with: char) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at % chars.len();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i == at { with } else { *c })
        .collect()
}

fn parse_all(text: &str) {
    let _ = parse_status_table(text);
    let _ = parse_chip_mapping(text);
    let _ = parse_rocm_smi_json(text);
    let _ = parse_proc_self_cgroup(text);
    let _ = parse_limit(text, Path::new("memory.max"));
    let _ = parse_cluster(text, Path::new("cluster.json"));
}

proptest! {
    #[test]
    fn arbitrary_text_does_not_panic(text in "\\PC{0,400}") {
        parse_all(&text);
    }

    #[test]
    fn corrupted_captures_do_not_panic(at in 0usize..10_000, with in "[|/ 0-9a-z:{}\\-\\n\"]") {
        let with = with.chars().next().unwrap();
        for name in [
            "npu-smi-info-910b-8npu.txt",
            "npu-smi-info-310p-duo.txt",
            "npu-smi-info-m-310p-duo.txt",
            "rocm-smi-mi300x-8gpu.json",
        ] {
            parse_all(&corrupt(&capture(name), at, with));
        }
    }
}
