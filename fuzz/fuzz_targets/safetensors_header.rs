//! Fuzzes the safetensors header reader: any input must give a header or a typed error, never a
//! panic, an allocation of a length read from the input or a hang; a header it accepts keeps its
//! invariants (tensors in data order, inside the data section).
//!
//! `cargo +nightly fuzz run safetensors_header` (see fuzz/README.md)

#![no_main]

use std::path::Path;

use inferkit_formats::hf::SafetensorsFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    // The declared file length matters (header-only files, data present or not): try the
    // input's own length and a larger one.
    for file_len in [data.len() as u64, (data.len() as u64).saturating_mul(1 << 20)] {
        let Ok(file) = SafetensorsFile::read(data, file_len, path) else {
            continue;
        };
        assert!(file.header_len <= file_len);
        let mut end = 0;
        for tensor in &file.tensors {
            let [start, stop] = tensor.data_offsets;
            assert!(start >= end && stop >= start, "tensors overlap or run backwards");
            end = stop;
        }
        assert_eq!(end, file.data_len);
    }
});
