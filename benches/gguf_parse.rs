//! GGUF header parse speed and memory: inferkit's reader against gguf-rs, in the same run.
//!
//! Inputs (`tests/fixtures/gguf/`), both parsed from memory so the numbers are parse cost:
//!
//! - `qwen2.5-1.5b` = `qwen2.5-1.5b-instruct-F16.tokenizer.header.gguf`: 6.5 MB, Qwen2.5-1.5B's
//!   338 tensors and a full-size tokenizer (151,936 tokens and token types, 151,387 merges);
//! - `qwen2.5-0.5b` = `qwen2.5-0.5b-instruct-Q4_K_M.header.gguf`: 3.7 MB, 290 tensors, 151,936
//!   tokens, scores and token types (no merges), as measured with llama.cpp.
//!
//! Benchmarks:
//!
//! - `inferkit::full_*`: every array kept ([`ReadOptions::full`]).
//! - `inferkit::skip_arrays_*`: the default: tokenizer arrays skipped, lengths kept.
//! - `*_read`: through the `Read` path (a `Cursor`); `*_slice`: from a byte slice (memory map).
//! - `gguf_rs_buf_reader::*`: gguf-rs 0.1.8 on a `BufReader`, keeping all array elements
//!   (`full`) or none (`max_array_size_0`, its closest to skipping).
//!
//! Before the timings, the peak heap memory of one parse of each kind is printed (a counting
//! global allocator around the system one).
//!
//! Run: `cargo bench --bench gguf_parse --features bench-gguf-rs` (the feature brings in gguf-rs).

use std::hint::black_box;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use inferkit_core::gguf::{GgufHeader, ReadOptions};

#[path = "support/peak_alloc.rs"]
mod peak_alloc;
use peak_alloc::{PeakAlloc, peak_extra};

const INPUTS: [&str; 2] = ["qwen2.5-1.5b", "qwen2.5-0.5b"];

fn fixture_path(input: &str) -> PathBuf {
    let file = match input {
        "qwen2.5-1.5b" => "qwen2.5-1.5b-instruct-F16.tokenizer.header.gguf",
        _ => "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(file)
}

/// The inputs' bytes, read once (gguf-rs wants a `'static` reader).
static BYTES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    INPUTS
        .iter()
        .map(|input| std::fs::read(fixture_path(input)).expect("benchmark fixture present"))
        .collect()
});

fn bytes(input: &str) -> &'static [u8] {
    let index = INPUTS.iter().position(|i| *i == input).unwrap_or(0);
    &BYTES[index]
}

#[global_allocator]
static ALLOC: divan::AllocProfiler<PeakAlloc> = divan::AllocProfiler::new(PeakAlloc);

fn main() {
    print_peak_memory();
    divan::main();
}

fn print_peak_memory() {
    for input in INPUTS {
        let bytes = bytes(input);
        let rows = [
            (
                "inferkit skip_arrays_slice",
                peak_extra(|| skip_arrays_slice_with(bytes)),
            ),
            (
                "inferkit skip_arrays_read",
                peak_extra(|| skip_arrays_read_with(bytes)),
            ),
            ("inferkit full_slice", peak_extra(|| full_slice_with(bytes))),
            ("inferkit full_read", peak_extra(|| full_read_with(bytes))),
            (
                "gguf-rs max_array_size 0",
                peak_extra(|| gguf_rs_with(bytes, 0)),
            ),
            ("gguf-rs full", peak_extra(|| gguf_rs_with(bytes, u64::MAX))),
        ];
        println!(
            "peak extra heap memory of one parse, {input} ({} bytes):",
            bytes.len()
        );
        for (name, peak) in rows {
            println!(
                "  {name:<28} {peak:>12} bytes ({:.2} MiB)",
                peak as f64 / 1048576.0
            );
        }
    }
}

fn path() -> &'static Path {
    Path::new("bench.gguf")
}

fn full_slice_with(bytes: &[u8]) -> GgufHeader {
    GgufHeader::from_slice(bytes, path(), &ReadOptions::full()).expect("parses")
}

fn skip_arrays_slice_with(bytes: &[u8]) -> GgufHeader {
    GgufHeader::from_slice(bytes, path(), &ReadOptions::default()).expect("parses")
}

fn full_read_with(bytes: &[u8]) -> GgufHeader {
    let len = Some(bytes.len() as u64);
    GgufHeader::read(Cursor::new(bytes), len, path(), &ReadOptions::full()).expect("parses")
}

fn skip_arrays_read_with(bytes: &[u8]) -> GgufHeader {
    let len = Some(bytes.len() as u64);
    GgufHeader::read(Cursor::new(bytes), len, path(), &ReadOptions::default()).expect("parses")
}

/// gguf-rs reads the magic itself in `get_gguf_container`; its `GGUFContainer` starts after it.
fn gguf_rs_with(bytes: &'static [u8], max_array_size: u64) -> gguf_rs::GGUFModel {
    let reader = BufReader::new(Cursor::new(&bytes[4..]));
    let mut container =
        gguf_rs::GGUFContainer::new(gguf_rs::ByteOrder::LE, Box::new(reader), max_array_size);
    container.decode().expect("gguf-rs parses")
}

mod inferkit {
    use super::*;

    #[divan::bench(args = INPUTS)]
    fn full_slice(input: &str) -> GgufHeader {
        full_slice_with(black_box(bytes(input)))
    }

    #[divan::bench(args = INPUTS)]
    fn full_read(input: &str) -> GgufHeader {
        full_read_with(black_box(bytes(input)))
    }

    #[divan::bench(args = INPUTS)]
    fn skip_arrays_slice(input: &str) -> GgufHeader {
        skip_arrays_slice_with(black_box(bytes(input)))
    }

    #[divan::bench(args = INPUTS)]
    fn skip_arrays_read(input: &str) -> GgufHeader {
        skip_arrays_read_with(black_box(bytes(input)))
    }
}

mod gguf_rs_buf_reader {
    use super::*;

    #[divan::bench(args = INPUTS)]
    fn full(input: &str) -> gguf_rs::GGUFModel {
        gguf_rs_with(black_box(bytes(input)), u64::MAX)
    }

    #[divan::bench(args = INPUTS)]
    fn max_array_size_0(input: &str) -> gguf_rs::GGUFModel {
        gguf_rs_with(black_box(bytes(input)), 0)
    }
}
