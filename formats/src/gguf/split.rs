//! Split-model file names: `<prefix>-00001-of-00003.gguf` (llama.cpp's `llama_split_path`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The parts of a shard's file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitName {
    /// Everything before `-NNNNN-of-MMMMM.gguf`, directory included.
    pub prefix: PathBuf,
    /// 1-based shard number.
    pub number: u32,
    /// Number of shards.
    pub count: u32,
}

impl SplitName {
    /// The path of shard `number` (1-based), formatted like llama.cpp's `llama_split_path`
    /// (`%s-%05d-of-%05d.gguf`).
    pub fn shard_path(&self, number: u32) -> PathBuf {
        let mut name = self.prefix.clone().into_os_string();
        name.push(format!("-{number:05}-of-{:05}.gguf", self.count));
        PathBuf::from(name)
    }
}

/// Splits `path` into prefix, shard number and count when its file name ends in
/// `-NNNNN-of-MMMMM.gguf` (at least five digits each, 1 <= NNNNN <= MMMMM).
pub fn parse_split_name(path: &Path) -> Option<SplitName> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, number) = rest.rsplit_once('-')?;
    let number = five_digits(number)?;
    let count = five_digits(count)?;
    if prefix.is_empty() || number == 0 || number > count {
        return None;
    }
    Some(SplitName {
        prefix: path.with_file_name(prefix),
        number,
        count,
    })
}

fn five_digits(s: &str) -> Option<u32> {
    if s.len() < 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_llama_cpp_names() {
        let split =
            parse_split_name(Path::new("/m/Qwen2.5-7B-Q4_K_M-00002-of-00003.gguf")).unwrap();
        assert_eq!(split.prefix, Path::new("/m/Qwen2.5-7B-Q4_K_M"));
        assert_eq!((split.number, split.count), (2, 3));
        assert_eq!(
            split.shard_path(1),
            Path::new("/m/Qwen2.5-7B-Q4_K_M-00001-of-00003.gguf")
        );
    }

    #[test]
    fn rejects_other_names() {
        for name in [
            "model.gguf",
            "m-0001-of-00003.gguf",
            "m-00004-of-00003.gguf",
            "m-00000-of-00003.gguf",
            "-00001-of-00003.gguf",
            "m-00001-of-00003.bin",
        ] {
            assert_eq!(parse_split_name(Path::new(name)), None, "{name}");
        }
    }
}
