//! GGUF headers whose tensors are each valid but whose totals overflow `u64` are refused with a
//! parse error, rather than overflowing the model's sums (a panic in debug builds, a wrapped,
//! too small model size in release builds).

use std::path::Path;

use inferkit_formats::Error;
use inferkit_formats::gguf::{GgufHeader, GgufModel, ReadOptions};

/// A little-endian GGUF v3 file with no metadata and `count` F32 tensors of 2^30 × 2^30
/// elements (2^62 bytes each: within ggml's limits one by one). Returns the bytes and the
/// offset of each tensor info.
fn huge_tensors(count: u64) -> (Vec<u8>, Vec<u64>) {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    let mut offsets = Vec::new();
    for i in 0..count {
        offsets.push(out.len() as u64);
        let name = format!("blk.{i}.weight");
        out.extend((name.len() as u64).to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(2u32.to_le_bytes());
        out.extend((1u64 << 30).to_le_bytes());
        out.extend((1u64 << 30).to_le_bytes());
        out.extend(0u32.to_le_bytes()); // GGML_TYPE_F32
        out.extend(0u64.to_le_bytes());
    }
    (out, offsets)
}

#[test]
fn three_huge_tensors_sum_to_just_under_the_limit() {
    let (bytes, _) = huge_tensors(3);
    let path = Path::new("three.gguf");
    let header = GgufHeader::from_slice(&bytes, path, &ReadOptions::default()).unwrap();
    let model = GgufModel::from_headers(vec![(path.into(), header)]).unwrap();
    assert_eq!(model.tensor_bytes(), 3 << 62);
    assert_eq!(model.parameters(), 3 << 60);
}

#[test]
fn a_fourth_overflows_the_byte_total_and_is_named_at_its_offset() {
    let (bytes, offsets) = huge_tensors(4);
    let path = Path::new("four.gguf");
    let err = GgufHeader::from_slice(&bytes, path, &ReadOptions::default()).unwrap_err();
    match err {
        Error::Parse { file, offset, what } => {
            assert_eq!(file, path);
            assert_eq!(offset, offsets[3]);
            assert!(
                what.contains("blk.3.weight") && what.contains("overflow"),
                "{what}"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn hand_built_headers_are_checked_by_from_headers() {
    let (bytes, _) = huge_tensors(3);
    let path = Path::new("edited.gguf");
    let mut header = GgufHeader::from_slice(&bytes, path, &ReadOptions::default()).unwrap();
    let mut extra = header.tensors[0].clone();
    extra.name = "extra.weight".into();
    header.tensors.push(extra);
    let err = GgufModel::from_headers(vec![(path.into(), header)]).unwrap_err();
    assert!(
        matches!(&err, Error::Parse { file, what, .. } if file == path && what.contains("extra.weight")),
        "{err:?}"
    );
}
