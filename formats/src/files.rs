//! Bounded reads of the small files inferkit parses (JSON configs, cluster files), and the
//! mapping of serde_json's line/column errors to byte offsets.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Opens the regular file at `path` for reading and returns it with its length. Anything else
/// (a FIFO, a socket, a device, a directory) is refused with an [`Error::Io`] naming the path,
/// and without blocking: opening a FIFO for reading waits for a writer, so the file is opened
/// non-blocking and its type is checked on the opened descriptor (a check of the path before
/// opening could be raced by a rename). `O_NONBLOCK` does not change reads of regular files.
pub fn open_regular_file(path: &Path) -> Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io_with(
            path,
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({})", file_kind(&meta)),
        ));
    }
    Ok((file, meta.len()))
}

/// What a non-regular file is, in words, for error messages.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Reads the UTF-8 text of the regular file at `path` (opened by [`open_regular_file`]),
/// refusing more than `max` bytes. The limit applies to what is read, not to the length the
/// file reports, so a file that grows while it is read cannot make the read unbounded.
pub fn read_text_file(path: &Path, max: u64) -> Result<String> {
    let (file, _) = open_regular_file(path)?;
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
