//! Byte units, for display only: sizes are `u64` bytes everywhere else.

/// 2^20 bytes.
pub const MIB: u64 = 1 << 20;
/// 2^30 bytes.
pub const GIB: u64 = 1 << 30;

/// `bytes` as GiB with two decimals, for messages and tables (`42.90 GiB`).
///
/// ```
/// assert_eq!(inferkit_core::units::gib(3 << 29), "1.50 GiB");
/// ```
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB as f64)
}
