//! Fuzzes the parsers of vendor tool output: `npu-smi info` (status table), `npu-smi info -m`
//! (chip mapping) and `rocm-smi --json`. Any text must give devices or a typed error, never a
//! panic.
//!
//! `cargo +nightly fuzz run vendor_smi` (see fuzz/README.md)

#![no_main]

use inferkit_probe::{ascend, rocm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = ascend::parse_status_table(&text);
    let _ = ascend::parse_chip_mapping(&text);
    let _ = rocm::parse_rocm_smi_json(&text);
});
