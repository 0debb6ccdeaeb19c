//! How long a GGUF header is, estimated from its first bytes.
//!
//! A GGUF header says how many key-values and tensor infos it holds, but not how many bytes
//! they take: that is known only once every string has been read. A reader fetching headers
//! over HTTP still wants to ask for about the right number of bytes in one request rather
//! than over-read (a streamed response keeps sending tensor data until it is closed) or grow
//! a window round trip after round trip. [`estimate_header_len`] walks what it is given,
//! exactly, and extrapolates the rest from what it saw: the rest of the array it stopped in
//! from that array's average element, the tokenizer arrays that follow the token list
//! (llama.cpp's converters write them in a fixed order), small values for the other keys,
//! and the tensor infos from their count.

use super::value::ValueType;

/// Bytes assumed for a key-value not yet seen that is not a tokenizer array: a key of about
/// 30 bytes, its type tag and a scalar (chat templates, the one long string, are rare enough
/// that the caller's slack covers them).
const SMALL_KV: u64 = 48;

/// Bytes assumed for a tensor info not yet seen: a name of about 40 bytes (`blk.61.ffn_down_
/// exps.weight` is 28), two dimensions, the type and the offset.
const TENSOR_INFO: u64 = 8 + 40 + 4 + 2 * 8 + 4 + 8;

/// The key of the token list, whose count is the vocabulary size.
const TOKENS: &str = "tokenizer.ggml.tokens";

/// The total length of the GGUF header (magic to the end of the tensor infos) that starts
/// with `prefix`, estimated when `prefix` stops short of it and exact when it holds it all
/// (always at least `prefix.len()`). `None` when `prefix` is not the start of a GGUF header
/// (wrong magic, unknown value type, a count no file could hold): let the parser say why.
pub fn estimate_header_len(prefix: &[u8]) -> Option<u64> {
    let mut walk = Walk::start(prefix)?;
    let tensors = walk.length()?;
    let kvs = walk.length()?;
    let mut vocab = Vocabulary::default();
    for seen in 0..kvs {
        match walk.key_value(&mut vocab) {
            Step::Done => {}
            Step::OutOfBytes { rest_of_value } => {
                let later_kvs = (kvs - seen - 1).saturating_mul(SMALL_KV);
                let infos = tensors.saturating_mul(TENSOR_INFO);
                return Some(
                    walk.len()
                        .saturating_add(rest_of_value)
                        .saturating_add(later_kvs)
                        .saturating_add(vocab.arrays_to_come())
                        .saturating_add(infos),
                );
            }
            Step::Malformed => return None,
        }
    }
    let mut info_bytes = 0;
    for seen in 0..tensors {
        let start = walk.pos;
        if walk.tensor_info().is_none() {
            let average = match seen {
                0 => TENSOR_INFO,
                n => info_bytes / n,
            };
            return Some(
                walk.len()
                    .saturating_add((tensors - seen).saturating_mul(average)),
            );
        }
        info_bytes += (walk.pos - start) as u64;
    }
    Some(walk.pos as u64)
}

/// What the tokenizer keys seen so far imply about the arrays still to come.
#[derive(Debug, Default)]
struct Vocabulary {
    /// `tokenizer.ggml.model`: `gpt2` (BPE, with merges) or `llama` (SentencePiece, with
    /// scores) and others.
    model: Option<String>,
    /// Tokens and their average bytes (length prefix included), once the list is reached.
    tokens: Option<(u64, u64)>,
    scores: bool,
    token_type: bool,
    merges: bool,
}

impl Vocabulary {
    fn saw(&mut self, key: &str) {
        match key {
            "tokenizer.ggml.scores" => self.scores = true,
            "tokenizer.ggml.token_type" => self.token_type = true,
            "tokenizer.ggml.merges" => self.merges = true,
            _ => {}
        }
    }

    fn is_bpe(&self) -> bool {
        self.model.as_deref() == Some("gpt2")
    }

    /// Bytes of the vocabulary arrays not yet reached: token types (an i32 each), then
    /// merges (about one token's bytes plus the space each) for a BPE tokenizer, scores (an
    /// f32 each) for the others (`gguf-py`'s `add_token_*` order, as llama.cpp's converters
    /// call them).
    fn arrays_to_come(&self) -> u64 {
        let Some((count, average)) = self.tokens else {
            return 0;
        };
        let array = |element: u64| 12 + count.saturating_mul(element);
        let bpe = self.is_bpe();
        let mut bytes = 0;
        if !self.token_type {
            bytes += array(4);
        }
        if bpe && !self.merges {
            bytes += array(average + 1);
        }
        if !bpe && !self.scores {
            bytes += array(4);
        }
        bytes
    }
}

enum Step {
    Done,
    /// The prefix ends inside this key-value; about `rest_of_value` more bytes finish it.
    OutOfBytes {
        rest_of_value: u64,
    },
    Malformed,
}

/// A cursor over the prefix in the header's byte order and count width.
struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
    /// GGUF v1: counts and lengths are u32.
    narrow: bool,
}

impl<'a> Walk<'a> {
    /// Checks the magic and reads the version (a byte-swapped version means big-endian, as
    /// the parser decides it).
    fn start(bytes: &'a [u8]) -> Option<Walk<'a>> {
        if bytes.get(..4)? != b"GGUF" {
            return None;
        }
        let raw: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
        let little = u32::from_le_bytes(raw);
        let big_endian = little & 0xFFFF == 0;
        let version = if big_endian {
            u32::from_be_bytes(raw)
        } else {
            little
        };
        Some(Walk {
            bytes,
            pos: 8,
            big_endian,
            narrow: version == 1,
        })
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(usize::try_from(n).ok()?)?;
        let bytes = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        let raw: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(match self.big_endian {
            true => u32::from_be_bytes(raw),
            false => u32::from_le_bytes(raw),
        })
    }

    fn u64(&mut self) -> Option<u64> {
        let raw: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(match self.big_endian {
            true => u64::from_be_bytes(raw),
            false => u64::from_le_bytes(raw),
        })
    }

    fn length(&mut self) -> Option<u64> {
        match self.narrow {
            true => self.u32().map(u64::from),
            false => self.u64(),
        }
    }

    fn width(&self) -> u64 {
        if self.narrow { 4 } else { 8 }
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.length()?;
        self.take(len)
    }

    /// One key-value. A string or a count read in full that cannot fit in any real file
    /// (more than the 64 MiB the parser accepts per string) is malformed.
    fn key_value(&mut self, vocab: &mut Vocabulary) -> Step {
        let Some(key) = self.string() else {
            return self.ran_out(SMALL_KV);
        };
        let key = String::from_utf8_lossy(key).into_owned();
        vocab.saw(&key);
        let Some(tag) = self.u32() else {
            return self.ran_out(SMALL_KV);
        };
        let Some(kind) = ValueType::from_tag(tag) else {
            return Step::Malformed;
        };
        match kind {
            ValueType::Array => self.array(&key, vocab),
            ValueType::String => match self.string() {
                Some(value) => {
                    if key == "tokenizer.ggml.model" {
                        vocab.model = Some(String::from_utf8_lossy(value).into_owned());
                    }
                    Step::Done
                }
                None => self.ran_out(SMALL_KV),
            },
            fixed => match fixed.fixed_size().and_then(|size| self.take(size)) {
                Some(_) => Step::Done,
                None => self.ran_out(SMALL_KV),
            },
        }
    }

    fn array(&mut self, key: &str, vocab: &mut Vocabulary) -> Step {
        let Some(tag) = self.u32() else {
            return self.ran_out(SMALL_KV);
        };
        let Some(count) = self.length() else {
            return self.ran_out(SMALL_KV);
        };
        let element = ValueType::from_tag(tag);
        if let Some(size) = element.and_then(ValueType::fixed_size) {
            let bytes = count.saturating_mul(size);
            return match self.take(bytes) {
                Some(_) => Step::Done,
                None => Step::OutOfBytes {
                    rest_of_value: bytes - (self.len() - self.pos as u64),
                },
            };
        }
        if element != Some(ValueType::String) {
            // Nested arrays hold per-layer values in the files that have them: short.
            return match self.skip_nested(count) {
                Some(()) => Step::Done,
                None => self.ran_out(SMALL_KV),
            };
        }
        let start = self.pos;
        for read in 0..count {
            if self.string().is_none() {
                let mut average = match read {
                    0 => self.width() + 8,
                    n => (self.pos - start) as u64 / n,
                };
                if key == TOKENS {
                    // A byte-level BPE vocabulary starts with its 256 bytes and shortest
                    // merges: the tokens after the first 64 KiB run about 9% longer (Qwen2.5:
                    // 17.2 bytes each with the length over the first 64 KiB, 18.8 over all
                    // 151936; Llama 3.2: 14.8 and 16.1).
                    if vocab.is_bpe() {
                        average += average / 10;
                    }
                    vocab.tokens = Some((count, average));
                }
                return Step::OutOfBytes {
                    rest_of_value: (count - read).saturating_mul(average),
                };
            }
        }
        if key == TOKENS && count > 0 {
            vocab.tokens = Some((count, (self.pos - start) as u64 / count));
        }
        Step::Done
    }

    /// Skips `count` arrays (each: type, count, elements), one level deep.
    fn skip_nested(&mut self, count: u64) -> Option<()> {
        for _ in 0..count {
            let tag = self.u32()?;
            let inner = self.length()?;
            match ValueType::from_tag(tag)?.fixed_size() {
                Some(size) => {
                    self.take(inner.checked_mul(size)?)?;
                }
                None => {
                    for _ in 0..inner {
                        self.string()?;
                    }
                }
            }
        }
        Some(())
    }

    /// The prefix ended inside the current key-value: the bytes up to here were read.
    fn ran_out(&mut self, rest_of_value: u64) -> Step {
        self.pos = self.bytes.len();
        Step::OutOfBytes { rest_of_value }
    }

    fn tensor_info(&mut self) -> Option<()> {
        self.string()?;
        let dims = self.u32()?;
        self.take(u64::from(dims).checked_mul(self.width())?)?;
        self.u32()?;
        self.u64()?;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_gguf_prefix() {
        assert_eq!(estimate_header_len(b"PK\x03\x04 a zip"), None);
        assert_eq!(estimate_header_len(b"GG"), None);
        // An unknown value type tag.
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.push(b'k');
        bytes.extend_from_slice(&99u32.to_le_bytes());
        assert_eq!(estimate_header_len(&bytes), None);
    }
}
