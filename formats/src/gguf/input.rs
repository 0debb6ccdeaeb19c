//! Byte sources for the header parser: a byte slice (or memory map) and a buffered `Read`.
//!
//! The parser only moves forward. Neither source seeks; the `Read` source reads at most one
//! buffer (64 KiB) beyond the last header byte it was asked for.

use std::io::{self, Read};

/// Why a source could not deliver the bytes asked for.
#[derive(Debug)]
pub(crate) enum InputError {
    /// The source ended first.
    Eof,
    /// The operating system reported an error.
    Io(io::Error),
}

/// A forward-only byte source.
pub(crate) trait Input {
    /// Bytes consumed so far (the offset of the next byte).
    fn position(&self) -> u64;

    /// Bytes left, when the total length is known.
    fn remaining(&self) -> Option<u64>;

    /// Reads exactly `N` bytes.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], InputError>;

    /// Hands the next `len` bytes to `use_bytes` and consumes them.
    fn with_bytes<T>(
        &mut self,
        len: usize,
        use_bytes: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, InputError>;

    /// Consumes `len` bytes without looking at them.
    fn skip(&mut self, len: u64) -> Result<(), InputError>;
}

/// A byte slice, e.g. a memory map of the file or a header held in memory.
pub(crate) struct SliceInput<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> SliceInput<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        SliceInput { bytes, pos: 0 }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], InputError> {
        let end = self.pos.checked_add(len).ok_or(InputError::Eof)?;
        let taken = self.bytes.get(self.pos..end).ok_or(InputError::Eof)?;
        self.pos = end;
        Ok(taken)
    }
}

impl Input for SliceInput<'_> {
    fn position(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> Option<u64> {
        Some((self.bytes.len() - self.pos) as u64)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], InputError> {
        let taken = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(taken);
        Ok(out)
    }

    fn with_bytes<T>(
        &mut self,
        len: usize,
        use_bytes: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, InputError> {
        self.take(len).map(use_bytes)
    }

    fn skip(&mut self, len: u64) -> Result<(), InputError> {
        let len = usize::try_from(len).map_err(|_| InputError::Eof)?;
        self.take(len).map(|_| ())
    }
}

/// Capacity of the read buffer of [`ReadInput`].
const BUFFER_SIZE: usize = 64 * 1024;

/// Any `Read`, buffered internally (wrapping it in a `BufReader` is not needed).
pub(crate) struct ReadInput<R> {
    inner: R,
    buffer: Box<[u8]>,
    /// Start of the unconsumed bytes in `buffer`.
    start: usize,
    /// End of the valid bytes in `buffer`.
    end: usize,
    /// Bytes consumed before `buffer[0]`.
    consumed_before: u64,
    /// Total length of the source when known (a file's length).
    total_len: Option<u64>,
}

impl<R: Read> ReadInput<R> {
    pub(crate) fn new(inner: R, total_len: Option<u64>) -> Self {
        ReadInput {
            inner,
            buffer: vec![0; BUFFER_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            consumed_before: 0,
            total_len,
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// One `read` into the free tail of the buffer; returns the byte count (0 at the end).
    fn read_more(&mut self) -> Result<usize, InputError> {
        loop {
            match self.inner.read(&mut self.buffer[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(InputError::Io(e)),
            }
        }
    }

    /// Makes at least `len` (at most [`BUFFER_SIZE`]) bytes available at `start`.
    fn fill(&mut self, len: usize) -> Result<(), InputError> {
        if self.buffered() >= len {
            return Ok(());
        }
        self.buffer.copy_within(self.start..self.end, 0);
        self.consumed_before += self.start as u64;
        self.end -= self.start;
        self.start = 0;
        while self.end < len {
            if self.read_more()? == 0 {
                return Err(InputError::Eof);
            }
        }
        Ok(())
    }

    /// Reads a long run of bytes (longer than the buffer) into memory growing with the data
    /// actually read, so a hostile length allocates no more than the source delivers.
    fn read_long(&mut self, len: usize) -> Result<Vec<u8>, InputError> {
        let mut out = Vec::with_capacity(BUFFER_SIZE);
        out.extend_from_slice(&self.buffer[self.start..self.end]);
        self.consume(self.buffered());
        let wanted = (len - out.len()) as u64;
        let got = (&mut self.inner)
            .take(wanted)
            .read_to_end(&mut out)
            .map_err(InputError::Io)?;
        self.consumed_before += got as u64;
        if out.len() < len {
            return Err(InputError::Eof);
        }
        Ok(out)
    }

    fn consume(&mut self, len: usize) {
        self.start += len;
    }
}

impl<R: Read> Input for ReadInput<R> {
    fn position(&self) -> u64 {
        self.consumed_before + self.start as u64
    }

    fn remaining(&self) -> Option<u64> {
        self.total_len
            .map(|total| total.saturating_sub(self.position()))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], InputError> {
        self.fill(N)?;
        let mut out = [0; N];
        out.copy_from_slice(&self.buffer[self.start..self.start + N]);
        self.consume(N);
        Ok(out)
    }

    fn with_bytes<T>(
        &mut self,
        len: usize,
        use_bytes: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, InputError> {
        if len > BUFFER_SIZE {
            return self.read_long(len).map(|bytes| use_bytes(&bytes));
        }
        self.fill(len)?;
        let out = use_bytes(&self.buffer[self.start..self.start + len]);
        self.consume(len);
        Ok(out)
    }

    fn skip(&mut self, len: u64) -> Result<(), InputError> {
        let mut left = len;
        loop {
            let here = left.min(self.buffered() as u64);
            self.consume(here as usize);
            left -= here;
            if left == 0 {
                return Ok(());
            }
            self.consumed_before += self.end as u64;
            self.start = 0;
            self.end = 0;
            if self.read_more()? == 0 {
                return Err(InputError::Eof);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most 3 bytes per call, to exercise buffer refills.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_input_matches_slice_input_across_refills() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut slice = SliceInput::new(&data);
        let mut read = ReadInput::new(Trickle(&data), None);
        let steps = [
            (8usize, false),
            (70_000, true),
            (5, false),
            (100_000, false),
            (3, true),
        ];
        for (len, skip) in steps {
            if skip {
                slice.skip(len as u64).unwrap();
                read.skip(len as u64).unwrap();
            } else {
                let a = slice.with_bytes(len, <[u8]>::to_vec).unwrap();
                let b = read.with_bytes(len, <[u8]>::to_vec).unwrap();
                assert_eq!(a, b);
            }
            assert_eq!(slice.position(), read.position());
        }
        assert_eq!(read.array::<4>().unwrap(), slice.array::<4>().unwrap());
        assert!(matches!(read.skip(1 << 20), Err(InputError::Eof)));
        assert!(matches!(slice.skip(1 << 20), Err(InputError::Eof)));
    }
}
