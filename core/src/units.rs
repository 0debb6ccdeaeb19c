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

/// Parses a size as people write it: bytes (`1073741824`), or a number with a unit, with or
/// without a space: binary `KiB MiB GiB TiB PiB` (also Kubernetes' `Ki Mi Gi Ti Pi`), decimal
/// `kB MB GB TB PB` (also `k M G T P`), `B`. Units are case-insensitive except that a lone
/// `k`/`K` is decimal. A fraction is allowed (`1.5GiB`); the result is rounded down to a byte.
///
/// ```
/// use inferkit_core::units::parse_size;
///
/// assert_eq!(parse_size("24GiB"), Ok(24 << 30));
/// assert_eq!(parse_size("80 GB"), Ok(80_000_000_000));
/// assert_eq!(parse_size("24576MiB"), Ok(24 << 30));
/// assert_eq!(parse_size("1.5 Ki"), Ok(1536));
/// assert!(parse_size("12 parsecs").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier = unit_multiplier(unit.trim()).ok_or_else(|| {
        format!("`{text}` is not a size: use bytes or a unit such as 24GiB, 80GB, 24576MiB")
    })?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(format!("`{text}` is not a size: the number is missing"));
    }
    let too_large = || format!("`{text}` is larger than {} bytes", u64::MAX);
    let whole: u128 = match whole {
        "" => 0,
        digits => digits.parse().map_err(|_| too_large())?,
    };
    let mut bytes = whole
        .checked_mul(u128::from(multiplier))
        .ok_or_else(too_large)?;
    // Each fractional digit adds digit * multiplier / 10^position; u128 holds 19 digits of
    // a u64 multiplier without overflow, and more digits cannot change the byte count.
    let mut scale = 1u128;
    for digit in fraction.chars().take(19) {
        let digit = digit
            .to_digit(10)
            .ok_or_else(|| format!("`{text}` is not a size: bad number"))?;
        scale *= 10;
        bytes += u128::from(digit) * u128::from(multiplier) / scale;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

/// The JSON Schema of a size in a file people write: a number of bytes, or a string that
/// [`parse_size`] reads. Only for schemas (`schemars(with = ...)`); sizes are `u64` bytes.
#[cfg(feature = "schema")]
#[cfg_attr(docsrs, doc(cfg(feature = "schema")))]
pub struct Size;

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Size {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Bytes, or a size with a unit: \"24GiB\", \"80 GB\", \"24576MiB\", \"1.5 TiB\"",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {
                    "type": "string",
                    "pattern": "^\\s*([0-9]+\\.?[0-9]*|\\.[0-9]+)\\s*([kKmMgGtTpP][iI]?)?[bB]?\\s*$"
                }
            ]
        })
    }
}

/// Bytes per unit, for [`parse_size`].
fn unit_multiplier(unit: &str) -> Option<u64> {
    if unit == "k" || unit == "K" {
        return Some(1000);
    }
    let unit = unit.to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let power = |prefix: char| "kmgtp".find(prefix).map(|i| i as u32 + 1);
    match unit.as_bytes() {
        [] => Some(1),
        [prefix] => power(*prefix as char).map(|p| 1000u64.pow(p)),
        [prefix, b'i'] => power(*prefix as char).map(|p| 1024u64.pow(p)),
        _ => None,
    }
}

/// Serde helpers for byte counts in files people write (cluster JSON): a number of bytes or a
/// string [`parse_size`] reads (`"24GiB"`). Files are always written back as numbers.
pub mod serde_bytes {
    use std::fmt;

    use serde::de::{Deserializer, Error, MapAccess, Visitor};

    use crate::vec_map::VecMap;

    /// Reads a number of bytes or a size string.
    struct Size;

    impl<'de> Visitor<'de> for Size {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number of bytes or a size such as \"24GiB\"")
        }

        fn visit_u64<E: Error>(self, bytes: u64) -> Result<u64, E> {
            Ok(bytes)
        }

        fn visit_i64<E: Error>(self, bytes: i64) -> Result<u64, E> {
            u64::try_from(bytes).map_err(|_| E::custom(format!("{bytes} is not a size")))
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<u64, E> {
            super::parse_size(text).map_err(E::custom)
        }
    }

    /// A map whose values are sizes.
    struct Sizes;

    impl<'de> Visitor<'de> for Sizes {
        type Value = VecMap<String, u64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of sizes")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut sizes = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                sizes.push((key, map.next_value_seed(SizeSeed)?));
            }
            Ok(sizes.into_iter().collect())
        }
    }

    struct SizeSeed;

    impl<'de> serde::de::DeserializeSeed<'de> for SizeSeed {
        type Value = u64;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
            deserializer.deserialize_any(Size)
        }
    }

    /// Deserializes one size.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(Size)
    }

    /// Deserializes one size into `Some` (with `#[serde(default)]`, an absent field is `None`).
    pub fn deserialize_some<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        deserialize(deserializer).map(Some)
    }

    /// Deserializes a map whose values are sizes.
    pub fn deserialize_map<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<VecMap<String, u64>, D::Error> {
        deserializer.deserialize_map(Sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512 B"), Ok(512));
        assert_eq!(parse_size("2k"), Ok(2000));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("3 mb"), Ok(3_000_000));
        assert_eq!(parse_size("3Mi"), Ok(3 << 20));
        assert_eq!(parse_size("1.5TiB"), Ok(3 << 39));
        assert_eq!(parse_size(".5 GiB"), Ok(1 << 29));
        assert_eq!(parse_size("2 PB"), Ok(2_000_000_000_000_000));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn bad_sizes_are_refused_with_the_text() {
        for bad in [
            "",
            "GiB",
            "1.2.3GiB",
            "24 GiBs",
            "-1",
            "1e9",
            "16 EiB",
            "99999999999 PiB",
        ] {
            let error = parse_size(bad).unwrap_err();
            assert!(error.contains(bad.trim()), "{bad}: {error}");
        }
    }
}
