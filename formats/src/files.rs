//! Bounded reads of the small files inferkit parses (JSON configs, cluster files), and the
//! mapping of serde_json's line/column errors to byte offsets.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Take};
use std::path::Path;

use serde::de::DeserializeOwned;

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

/// Reads the JSON file at `path` (at most `max` bytes) when it holds one object whose only key
/// is `key` (written without escapes), an array of `T`: a cluster file's
/// `{"workers": [{...}, {...}]}`. `Ok(None)` when the file holds anything else or does not
/// parse; the caller then parses it with its general parser ([`read_json_file`]), which also
/// reports a malformed file's error at its offset, so a malformed file is read twice.
///
/// The file is read in chunks of [`CHUNK`] bytes (more while one element does not fit) and
/// each element is parsed from the chunk's bytes: serde_json parses a slice about twice as
/// fast as it reads from a reader (issue 18: reading a 152 MB fleet file was half the time of
/// planning on it), and the text is never held whole, so a large file costs the elements
/// built, not that and its size. Errors are those of the file system only ([`Error::Io`], a
/// file longer than `max`).
pub fn read_json_array_file<T: DeserializeOwned>(
    path: &Path,
    max: u64,
    key: &str,
) -> Result<Option<Vec<T>>> {
    read_array_in_chunks(path, max, key, CHUNK)
}

/// [`read_json_array_file`], reading `chunk` bytes at a time.
fn read_array_in_chunks<T: DeserializeOwned>(
    path: &Path,
    max: u64,
    key: &str,
    chunk: usize,
) -> Result<Option<Vec<T>>> {
    let (file, len) = open_regular_file(path)?;
    if len > max {
        return Err(too_long(path, max));
    }
    let mut input = Chunks {
        path,
        file: file.take(max),
        buf: vec![0; chunk.max(1)],
        start: 0,
        end: 0,
        eof: false,
        limit: usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1),
    };
    let opening = format!("\"{key}\"");
    if input.token()? != Some(b'{')
        || !input.skip_prefix(opening.as_bytes())?
        || input.token()? != Some(b':')
        || input.token()? != Some(b'[')
    {
        return Ok(None);
    }
    let mut items = Vec::new();
    if input.token()? != Some(b']') {
        // The first element starts with the byte just read.
        input.start -= 1;
        loop {
            let Some(item) = input.value()? else {
                return Ok(None);
            };
            items.push(item);
            match input.token()? {
                Some(b',') => continue,
                Some(b']') => break,
                _ => return Ok(None),
            }
        }
    }
    if input.token()? != Some(b'}') || input.token()?.is_some() {
        return Ok(None);
    }
    items.shrink_to_fit();
    Ok(Some(items))
}

/// The bytes [`read_json_array_file`] reads at a time.
pub const CHUNK: usize = 1 << 20;

/// A file read chunk by chunk: `buf[start..end]` is read and not yet consumed.
struct Chunks<'p> {
    path: &'p Path,
    file: Take<File>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The file has no more bytes.
    eof: bool,
    /// Most bytes the buffer grows to: one more than the file may give, so that a buffer of
    /// that size is never full and the end of the file is always seen.
    limit: usize,
}

impl Chunks<'_> {
    /// Reads more of the file after the unconsumed bytes, which move to the front of the
    /// buffer; the buffer doubles when they fill it, up to its limit. `false` at the end of
    /// the file.
    fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            // The file gave as many bytes as the buffer holds, fewer than `limit`.
            let len = self.buf.len().saturating_mul(2).min(self.limit);
            let more = len - self.buf.len();
            self.buf.try_reserve_exact(more).map_err(|e| {
                Error::io_with(self.path, std::io::ErrorKind::OutOfMemory, e.to_string())
            })?;
            self.buf.resize(len, 0);
        }
        let before = self.end;
        while self.end < self.buf.len() {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(self.path, e)),
            }
        }
        Ok(self.end > before)
    }

    /// The next byte that is not JSON whitespace, consumed; `None` at the end of the file.
    fn token(&mut self) -> Result<Option<u8>> {
        loop {
            if let Some(at) = self.buf[self.start..self.end]
                .iter()
                .position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
            {
                self.start += at + 1;
                return Ok(Some(self.buf[self.start - 1]));
            }
            self.start = self.end;
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes `prefix` after any whitespace when the unconsumed bytes start with it.
    fn skip_prefix(&mut self, prefix: &[u8]) -> Result<bool> {
        let Some(first) = self.token()? else {
            return Ok(false);
        };
        self.start -= 1;
        debug_assert_eq!(first, self.buf[self.start]);
        while self.end - self.start < prefix.len() {
            if !self.fill()? {
                return Ok(false);
            }
        }
        let found = self.buf[self.start..].starts_with(prefix);
        if found {
            self.start += prefix.len();
        }
        Ok(found)
    }

    /// The next JSON value as a `T`, consumed; `None` when it does not parse. A value cut by
    /// the end of the bytes read is parsed again with more of the file: serde_json reports a
    /// value cut short as such (an end-of-file error), and a number that ends where the bytes
    /// do may continue after them. Should a cut value give another error, the general parser
    /// [`read_json_array_file`] leaves the file to reads it right.
    fn value<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        loop {
            let bytes = &self.buf[self.start..self.end];
            let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
            let cut = match values.next() {
                Some(Ok(value)) if self.eof || values.byte_offset() < bytes.len() => {
                    self.start += values.byte_offset();
                    return Ok(Some(value));
                }
                Some(Ok(_)) | None => true,
                Some(Err(e)) => e.is_eof(),
            };
            if !cut || self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }
}

/// Turns a serde_json error on `text` (read from `origin`) into an [`Error::Parse`] with the
/// byte offset of the line and column serde_json reports.
pub fn json_error(text: &str, origin: &Path, err: &serde_json::Error) -> Error {
    Error::parse(origin, json_offset(text, err), err.to_string())
}

/// The byte offset in `text` of the line and column of serde_json's error `err` on it.
pub fn json_offset(text: &str, err: &serde_json::Error) -> u64 {
    text.split_inclusive('\n')
        .take(err.line().saturating_sub(1))
        .map(|l| l.len() as u64)
        .sum::<u64>()
        + err.column().saturating_sub(1) as u64
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
        assert!(read_json_array_file::<u8>(&path, 12, "a").is_err());
    }

    /// Reads `text` as an array under `key`, `chunk` bytes at a time.
    fn array_of<T: DeserializeOwned>(text: &str, key: &str, chunk: usize) -> Option<Vec<T>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, text).unwrap();
        read_array_in_chunks(&path, 1 << 20, key, chunk).unwrap()
    }

    /// Whatever byte a chunk ends at (inside a number after its sign or its point, a string
    /// with an escape, a key, between tokens), the array read is the one parsed from the
    /// whole text, and a value longer than a chunk is read whole.
    #[test]
    fn an_array_read_in_chunks_is_the_array_parsed_whole() {
        let text = "  {\n \"workers\" :[ -1.5e3, {\"a\": \"x\\\"}\"}, -7,0.25 ,\"\\u00e9\",\
                    [1, [2, -30]], null, true, 123456789 ]\n}\n";
        let whole: serde_json::Value = serde_json::from_str(text).unwrap();
        for chunk in 1..=text.len() + 1 {
            let read: Vec<serde_json::Value> = array_of(text, "workers", chunk).unwrap();
            assert_eq!(
                read,
                whole["workers"].as_array().unwrap()[..],
                "chunk {chunk}"
            );
        }
        // A buffer that may grow to one byte more than the file only.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, text).unwrap();
        let read: Vec<serde_json::Value> =
            read_array_in_chunks(&path, text.len() as u64, "workers", 1)
                .unwrap()
                .unwrap();
        assert_eq!(read, whole["workers"].as_array().unwrap()[..]);
        let empty: Vec<u32> = array_of("{\"workers\": [ ]}", "workers", 1).unwrap();
        assert!(empty.is_empty());
    }

    /// A JSON value of numbers (with signs, fractions, exponents), strings (with escapes) and
    /// nested lists.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            "[a-z\"\\\\\\u{e9}\\n ]{0,6}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            proptest::collection::vec(inner, 0..4).prop_map(serde_json::Value::from)
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Read in chunks of any size, a document gives the array the parser of the whole text
        /// gives, and one byte changed anywhere gives that parser's array or none: never an
        /// array the whole text does not hold.
        #[test]
        fn chunked_reads_agree_with_the_whole_text(
            items in proptest::collection::vec(json_value(), 0..8),
            spaces in 0usize..3,
            chunk in 1usize..48,
            at in 0usize..1000,
            byte in proptest::sample::select(b"{}[],:\" \\-+.0e9tn".to_vec()),
        ) {
            let pad = " ".repeat(spaces);
            let array = serde_json::to_string(&items).unwrap();
            let text = format!("{pad}{{{pad}\"workers\"{pad}:{pad}{array}{pad}}}{pad}");
            // The array the parser of the whole text reads (numbers as it rounds them).
            let whole = |text: &str| {
                serde_json::from_str::<std::collections::BTreeMap<String, serde_json::Value>>(text)
                    .ok()
                    .filter(|doc| doc.len() == 1)
                    .and_then(|mut doc| doc.remove("workers"))
                    .and_then(|workers| workers.as_array().cloned())
            };
            let read: Option<Vec<serde_json::Value>> = array_of(&text, "workers", chunk);
            proptest::prop_assert_eq!(read.as_ref().map(Vec::len), Some(items.len()));
            proptest::prop_assert_eq!(read, whole(&text));
            let mut changed = text.into_bytes();
            let at = at % changed.len();
            changed[at] = byte;
            let Ok(changed) = String::from_utf8(changed) else {
                return Ok(());
            };
            if let Some(read) = array_of::<serde_json::Value>(&changed, "workers", chunk) {
                proptest::prop_assert_eq!(Some(read), whole(&changed));
            }
        }
    }

    /// A document of any other layout, or one that does not parse, is left to the general
    /// parser: no error, no partial array.
    #[test]
    fn other_layouts_and_malformed_arrays_are_left_to_the_general_parser() {
        for text in [
            "",
            "[]",
            "{}",
            "{\"worker\": []}",
            "{\"workers\": {}}",
            "{\"workers\": [1, 2], \"name\": \"w\"}",
            "{\"workers\": [1, 2]} {}",
            "{\"workers\": [1, 2,]}",
            "{\"workers\": [1 2]}",
            "{\"workers\": [1, \"two\"]}",
            "{\"workers\": [1, -]}",
            "{\"workers\": [1, 2]",
            "{\"workers\": [1, 2",
        ] {
            for chunk in [1, 4, 1 << 10] {
                assert_eq!(
                    array_of::<i32>(text, "workers", chunk),
                    None,
                    "{text:?}, {chunk}"
                );
            }
        }
    }
}
