//! Bounded reads of the small files inferkit parses (JSON configs, cluster files), and the
//! mapping of serde_json's line/column errors to byte offsets.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Take};
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
/// refusing more than `max` bytes: a file reported longer is refused before it is read, and
/// the limit also applies to what is read, so a file that grows while it is read cannot make
/// the read unbounded.
///
/// The text is read into a buffer of the length the file reports, so that a
/// large file costs its size once: a buffer grown as it is filled ends up to twice as large
/// (a 152 MB cluster file took 268 MB).
pub fn read_text_file(path: &Path, max: u64) -> Result<String> {
    let (file, len) = open_regular_file(path)?;
    if len > max {
        return Err(too_long(path, max));
    }
    let reported = usize::try_from(len).unwrap_or(0);
    let mut text = String::new();
    text.try_reserve_exact(reported)
        .map_err(|e| Error::io_with(path, std::io::ErrorKind::OutOfMemory, e.to_string()))?;
    file.take(max.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    if text.len() as u64 > max {
        return Err(too_long(path, max));
    }
    Ok(text)
}

/// The error for a file longer than the `max` bytes read from it.
fn too_long(path: &Path, max: u64) -> Error {
    Error::parse(
        path,
        max,
        format!("longer than the {max} bytes read from such a file"),
    )
}

/// The JSON of the regular file at `path`, read as it is parsed: what [`read_json_file`]
/// hands to its parser.
pub type JsonFileReader = serde_json::Deserializer<serde_json::de::IoRead<BufReader<Take<File>>>>;

/// Parses the JSON of the regular file at `path` (at most `max` bytes) with `parse`, reading
/// the file as it goes: the text is never held whole, so a large file costs what `parse`
/// builds of it, not that and its size (issue 18: a 152 MB cluster file). `parse` reads one
/// value; anything after it but whitespace is an error.
///
/// A file reported longer than `max` is refused before it is read, and no more than `max`
/// bytes are read from one that grows. Errors name the file and, for malformed JSON, the byte
/// offset: serde_json reports a line and a column, so on that (rare) path the file is read
/// again, as text, to count the bytes before them; `error` turns serde_json's error on that
/// text into the error returned.
pub fn read_json_file<T>(
    path: &Path,
    max: u64,
    parse: impl FnOnce(&mut JsonFileReader) -> serde_json::Result<T>,
    error: impl FnOnce(&str, &serde_json::Error) -> Error,
) -> Result<T> {
    let (file, len) = open_regular_file(path)?;
    if len > max {
        return Err(too_long(path, max));
    }
    let mut input = serde_json::Deserializer::from_reader(BufReader::with_capacity(
        READ_BUFFER,
        file.take(max),
    ));
    let parsed = parse(&mut input).and_then(|value| input.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(e) if e.is_io() => Err(Error::io(path, std::io::Error::from(e))),
        Err(e) => Err(error(&read_text_file(path, max)?, &e)),
    }
}

/// Buffer of [`read_json_file`]'s reads.
const READ_BUFFER: usize = 1 << 16;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file longer than the limit is refused, naming the limit as the offset, whether the
    /// text is read whole or parsed as it is read.
    #[test]
    fn a_file_longer_than_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, "{\"a\": [1, 2]}").unwrap();
        assert_eq!(read_text_file(&path, 13).unwrap(), "{\"a\": [1, 2]}");
        let parse = |input: &mut JsonFileReader| -> serde_json::Result<serde_json::Value> {
            serde::Deserialize::deserialize(input)
        };
        let error = |text: &str, e: &serde_json::Error| json_error(text, &path, e);
        assert!(read_json_file(&path, 13, parse, error).is_ok());
        for refused in [
            read_text_file(&path, 12).map(drop),
            read_json_file(&path, 12, parse, error).map(drop),
        ] {
            let Err(Error::Parse { offset, what, .. }) = refused else {
                panic!("not refused: {refused:?}");
            };
            assert_eq!(offset, 12);
            assert!(what.starts_with("longer than the 12 bytes"), "{what}");
        }
    }
}
