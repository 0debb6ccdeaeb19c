//! `estimate_header_len` on real headers with full tokenizers: the sources crate sizes its
//! first range read of a remote GGUF file from it.

use inferkit_formats::gguf::{GgufHeader, ReadOptions, estimate_header_len};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/gguf/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn header_end(bytes: &[u8]) -> u64 {
    GgufHeader::from_slice(bytes, "fixture".as_ref(), &ReadOptions::default())
        .expect("fixture parses")
        .header_end
}

/// From the first 64 KiB of real headers with full tokenizers (BPE ones with merges, a
/// WordPiece one), the estimate lands within 15% of the real length.
#[test]
fn estimates_real_headers_from_their_first_64_kib() {
    for name in [
        "qwen2.5-1.5b-instruct-F16.tokenizer.header.gguf",
        "llama-3.2-1b-Q4_K_M.header.gguf",
        "qwen1.5-moe-a2.7b-4layer-F16.header.gguf",
        "bge-small-en-v1.5-F16.header.gguf",
    ] {
        let bytes = fixture(name);
        let real = header_end(&bytes);
        let estimate = estimate_header_len(&bytes[..64 << 10]).expect("a GGUF prefix");
        let ratio = estimate as f64 / real as f64;
        assert!(
            (0.85..=1.15).contains(&ratio),
            "{name}: estimated {estimate} bytes from 64 KiB, real {real} ({ratio:.3})"
        );
    }
}

#[test]
fn a_whole_header_measures_exactly() {
    for name in [
        "qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        "bge-small-en-v1.5-Q8_0.v1.header.gguf",
        "qwen1.5-moe-a2.7b-4layer-Q4_K_M.big-endian.header.gguf",
    ] {
        let bytes = fixture(name);
        assert_eq!(
            estimate_header_len(&bytes),
            Some(header_end(&bytes)),
            "{name}"
        );
    }
}

#[test]
fn a_longer_prefix_refines_the_estimate() {
    let bytes = fixture("qwen2.5-1.5b-instruct-F16.tokenizer.header.gguf");
    let real = header_end(&bytes) as f64;
    let early = estimate_header_len(&bytes[..64 << 10]).unwrap() as f64;
    let late = estimate_header_len(&bytes[..(real * 0.8) as usize]).unwrap() as f64;
    assert!(
        (late - real).abs() <= (early - real).abs(),
        "{early} {late} {real}"
    );
    assert!((late / real - 1.0).abs() < 0.05, "{late} {real}");
}
