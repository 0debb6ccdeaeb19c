//! The ggml tensor type table: block size, bytes per block and llama.cpp's name of every type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A ggml tensor data type, as stored (`u32`) in a GGUF tensor info.
///
/// The table covers every id of `GGMLQuantizationType` in the `gguf` Python package 0.19.0
/// (`gguf/constants.py`, ids 0-41). Ids that ggml removed (4 `Q4_2`, 5 `Q4_3`, 31-33
/// `Q4_0_4_4`/`Q4_0_4_8`/`Q4_0_8_8`, 36-38 `IQ4_NL_4_4`/`IQ4_NL_4_8`/`IQ4_NL_8_8`; llama.cpp now
/// repacks Q4_0/IQ4_NL at load time instead) and ids above 41 are not variants: reading a
/// tensor with such an id is an [`Error::Parse`](crate::Error::Parse) naming the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
#[repr(u8)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 4-bit, blocks of 32 with an f16 scale.
    Q4_0,
    /// 4-bit, blocks of 32 with f16 scale and min.
    Q4_1,
    /// 5-bit, blocks of 32 with an f16 scale.
    Q5_0,
    /// 5-bit, blocks of 32 with f16 scale and min.
    Q5_1,
    /// 8-bit, blocks of 32 with an f16 scale.
    Q8_0,
    /// 8-bit, blocks of 32 with f32 scale and sum (activation type).
    Q8_1,
    /// 2-bit k-quant, super-blocks of 256.
    Q2K,
    /// 3-bit k-quant, super-blocks of 256.
    Q3K,
    /// 4-bit k-quant, super-blocks of 256.
    Q4K,
    /// 5-bit k-quant, super-blocks of 256.
    Q5K,
    /// 6-bit k-quant, super-blocks of 256.
    Q6K,
    /// 8-bit k-quant, super-blocks of 256 (activation type).
    Q8K,
    /// 2.06 bits per weight i-quant.
    IQ2XXS,
    /// 2.31 bits per weight i-quant.
    IQ2XS,
    /// 3.06 bits per weight i-quant.
    IQ3XXS,
    /// 1.56 bits per weight i-quant.
    IQ1S,
    /// 4.5 bits per weight non-linear quant, blocks of 32.
    IQ4NL,
    /// 3.44 bits per weight i-quant.
    IQ3S,
    /// 2.5 bits per weight i-quant.
    IQ2S,
    /// 4.25 bits per weight non-linear quant, super-blocks of 256.
    IQ4XS,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
    /// 1.75 bits per weight i-quant.
    IQ1M,
    /// bfloat16.
    BF16,
    /// Ternary, 1.69 bits per weight.
    TQ1_0,
    /// Ternary, 2.06 bits per weight.
    TQ2_0,
    /// Microscaling FP4, blocks of 32 with an E8M0 scale.
    MXFP4,
    /// NVIDIA FP4, blocks of 64 with four FP8 scales.
    NVFP4,
    /// 1-bit, blocks of 128 with an f16 scale.
    Q1_0,
}

/// One row of the table: (type, id, name as ggml prints it, block size, bytes per block).
///
/// Sizes from `GGML_QUANT_SIZES` in the `gguf` Python package 0.19.0 (which mirrors ggml's
/// `type_traits`); names from ggml's `type_traits[].type_name`.
const TABLE: [(GgmlType, u32, &str, u64, u64); 34] = [
    (GgmlType::F32, 0, "f32", 1, 4),
    (GgmlType::F16, 1, "f16", 1, 2),
    (GgmlType::Q4_0, 2, "q4_0", 32, 18),
    (GgmlType::Q4_1, 3, "q4_1", 32, 20),
    (GgmlType::Q5_0, 6, "q5_0", 32, 22),
    (GgmlType::Q5_1, 7, "q5_1", 32, 24),
    (GgmlType::Q8_0, 8, "q8_0", 32, 34),
    (GgmlType::Q8_1, 9, "q8_1", 32, 40),
    (GgmlType::Q2K, 10, "q2_K", 256, 84),
    (GgmlType::Q3K, 11, "q3_K", 256, 110),
    (GgmlType::Q4K, 12, "q4_K", 256, 144),
    (GgmlType::Q5K, 13, "q5_K", 256, 176),
    (GgmlType::Q6K, 14, "q6_K", 256, 210),
    (GgmlType::Q8K, 15, "q8_K", 256, 292),
    (GgmlType::IQ2XXS, 16, "iq2_xxs", 256, 66),
    (GgmlType::IQ2XS, 17, "iq2_xs", 256, 74),
    (GgmlType::IQ3XXS, 18, "iq3_xxs", 256, 98),
    (GgmlType::IQ1S, 19, "iq1_s", 256, 50),
    (GgmlType::IQ4NL, 20, "iq4_nl", 32, 18),
    (GgmlType::IQ3S, 21, "iq3_s", 256, 110),
    (GgmlType::IQ2S, 22, "iq2_s", 256, 82),
    (GgmlType::IQ4XS, 23, "iq4_xs", 256, 136),
    (GgmlType::I8, 24, "i8", 1, 1),
    (GgmlType::I16, 25, "i16", 1, 2),
    (GgmlType::I32, 26, "i32", 1, 4),
    (GgmlType::I64, 27, "i64", 1, 8),
    (GgmlType::F64, 28, "f64", 1, 8),
    (GgmlType::IQ1M, 29, "iq1_m", 256, 56),
    (GgmlType::BF16, 30, "bf16", 1, 2),
    (GgmlType::TQ1_0, 34, "tq1_0", 256, 54),
    (GgmlType::TQ2_0, 35, "tq2_0", 256, 66),
    (GgmlType::MXFP4, 39, "mxfp4", 32, 17),
    (GgmlType::NVFP4, 40, "nvfp4", 64, 36),
    (GgmlType::Q1_0, 41, "q1_0", 128, 18),
];

/// Ids ggml once used and removed, with their old names (ggml.h `ggml_type` comments).
const REMOVED: [(u32, &str); 8] = [
    (4, "Q4_2"),
    (5, "Q4_3"),
    (31, "Q4_0_4_4"),
    (32, "Q4_0_4_8"),
    (33, "Q4_0_8_8"),
    (36, "IQ4_NL_4_4"),
    (37, "IQ4_NL_4_8"),
    (38, "IQ4_NL_8_8"),
];

impl GgmlType {
    /// Every known type, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|row| row.0)
    }

    /// The type with this GGUF id, or `None` for an unknown or removed id.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|row| row.1 == id).map(|row| row.0)
    }

    /// The old name of an id that ggml removed (for error messages), `None` otherwise.
    pub fn removed_name(id: u32) -> Option<&'static str> {
        REMOVED.iter().find(|row| row.0 == id).map(|row| row.1)
    }

    fn row(self) -> &'static (GgmlType, u32, &'static str, u64, u64) {
        // Variants are declared in table order; `table_is_in_variant_order` checks it.
        &TABLE[self as usize]
    }

    /// The GGUF id of this type.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// The name ggml prints (`ggml_type_name`), e.g. `q4_K`, `bf16`, `iq2_xxs`.
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block (1 for plain types).
    pub fn block_size(self) -> u64 {
        self.row().3
    }

    /// Bytes of one block.
    pub fn type_size(self) -> u64 {
        self.row().4
    }

    /// Whether this is a block-quantized type (block size above 1).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes of one row of `elements` values (`ggml_row_size`), `None` when `elements` is not
    /// a whole number of blocks or the size overflows `u64`.
    pub fn row_bytes(self, elements: u64) -> Option<u64> {
        if !elements.is_multiple_of(self.block_size()) {
            return None;
        }
        (elements / self.block_size()).checked_mul(self.type_size())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(GgmlType::from_id(row.1), Some(row.0));
            assert_eq!(row.0.id(), row.1);
            assert!(
                TABLE[i + 1..]
                    .iter()
                    .all(|other| other.0 != row.0 && other.1 != row.1)
            );
            assert!(GgmlType::removed_name(row.1).is_none());
        }
        for (id, _) in REMOVED {
            assert_eq!(GgmlType::from_id(id), None);
        }
        assert_eq!(GgmlType::from_id(42), None);
    }

    #[test]
    fn table_is_in_variant_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.0 as usize, i);
        }
    }

    #[test]
    fn sizes_match_ggml() {
        // Spot checks against ggml's type_traits: bits per weight of common quants.
        assert_eq!(GgmlType::Q4K.row_bytes(4096), Some(4096 / 256 * 144));
        assert_eq!(GgmlType::BF16.row_bytes(4096), Some(8192));
        assert_eq!(GgmlType::Q8_0.row_bytes(33), None);
        assert_eq!(GgmlType::MXFP4.row_bytes(64), Some(34));
        assert_eq!(GgmlType::Q6K.name(), "q6_K");
    }
}
