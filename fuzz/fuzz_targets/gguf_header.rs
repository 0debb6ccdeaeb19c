//! Fuzzes the GGUF header reader: any input must give a header or `Error::Parse`/`Error::Io`,
//! never a panic, an unbounded allocation or a hang; the slice and `Read` paths must agree;
//! every accessor of a parsed model must return without panicking.
//!
//! Seed corpus: the headers in `tests/fixtures/gguf/` (small ones, or prefixes of large ones).
//! `cargo +nightly fuzz run gguf_header fuzz/corpus/gguf_header ../tests/fixtures/gguf`

#![no_main]

use std::path::Path;

use inferkit_formats::gguf::{GgufHeader, GgufModel, ReadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.gguf");
    for options in [ReadOptions::default(), ReadOptions::full()] {
        let from_slice = GgufHeader::from_slice(data, path, &options);
        let from_read = GgufHeader::read(data, Some(data.len() as u64), path, &options);
        // Compared through `Debug`: float metadata may be NaN, which `==` never matches.
        assert_eq!(
            format!("{from_slice:?}"),
            format!("{from_read:?}"),
            "slice and Read paths disagree"
        );
        // Without a known length counts cannot be bounded up front; the outcome must not change.
        let unbounded = GgufHeader::read(data, None, path, &options);
        assert_eq!(from_slice.is_ok(), unbounded.is_ok());

        let Ok(header) = from_slice else { continue };
        assert!(header.data_offset >= header.header_end);
        assert!(header.header_end <= data.len() as u64);
        if let Ok(model) = GgufModel::from_headers(vec![(path.to_path_buf(), header)]) {
            exercise_accessors(&model);
        }
    }
});

/// Calls every accessor; errors are fine, panics are not.
fn exercise_accessors(model: &GgufModel) {
    let _ = (
        model.parameters(),
        model.tensor_bytes(),
        model.is_clip(),
        model.is_diffusion(),
    );
    let _ = (
        model.architecture(),
        model.block_count(),
        model.context_length(),
    );
    let _ = (
        model.embedding_length(),
        model.feed_forward_length_per_layer(),
    );
    let _ = (
        model.head_count_per_layer(),
        model.head_count_kv_per_layer(),
    );
    let _ = (
        model.key_length(),
        model.value_length(),
        model.sliding_window(),
    );
    let _ = (
        model.sliding_window_layers(),
        model.vocab_size(),
        model.is_embedding(),
    );
    let _ = (model.is_reranker(), model.clip_vision(), model.clip_audio());
    let _ = (
        model.rope_freq_base(),
        model.rope_scaling_type(),
        model.file_type(),
    );
}
