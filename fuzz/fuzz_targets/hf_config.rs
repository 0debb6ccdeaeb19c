//! Fuzzes the readers of a model directory's JSON: `config.json` (typed through `HfConfig`, with
//! every accessor the drivers use) and the directory-level detection of model families. Any text
//! must give a config or a typed error, never a panic.
//!
//! `cargo +nightly fuzz run hf_config` (see fuzz/README.md)

#![no_main]

use std::path::Path;

use inferkit_formats::hf::HfConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("config.json");
    let Ok(config) = HfConfig::parse(text, path) else {
        return;
    };
    let _ = config.estimated_parameters();
    let _ = config.dimensions(path);
    let _ = config.text.sliding_layers();
    let _ = config.text.estimated_parameters();
});
