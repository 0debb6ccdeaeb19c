//! Bounded reads of the small files inferkit parses (JSON configs, cluster files), and the
//! mapping of serde_json's line/column errors to byte offsets.

use std::path::Path;

use crate::{Error, Result};

/// Reads the UTF-8 text of the regular file at `path`, refusing more than `max` bytes. The limit
/// applies to what is read, not to the length the file reports: that is 0 for `/proc` files
/// and device files such as `/dev/zero`, which never end. Pipes and devices are refused before
/// they are opened (opening a FIFO blocks until it has a writer).
pub fn read_text_file(path: &Path, max: u64) -> Result<String> {
    use std::io::Read;

    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io_with(
            path,
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    file.take(max.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    if text.len() as u64 > max {
        return Err(Error::parse(
            path,
            max,
            format!("longer than the {max} bytes read from such a file"),
        ));
    }
    Ok(text)
}

/// Turns a serde_json error on `text` (read from `origin`) into an [`Error::Parse`] with the
/// byte offset of the line and column serde_json reports.
pub fn json_error(text: &str, origin: &Path, err: &serde_json::Error) -> Error {
    let offset = text
        .split_inclusive('\n')
        .take(err.line().saturating_sub(1))
        .map(|l| l.len() as u64)
        .sum::<u64>()
        + err.column().saturating_sub(1) as u64;
    Error::parse(origin, offset, err.to_string())
}
