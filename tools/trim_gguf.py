#!/usr/bin/env python3
"""Copy a GGUF header without its tokenizer arrays, for the test data a crate ships.

The published crates carry the few GGUF headers their own unit tests and doc tests read
(`<crate>/testdata/`), so `cargo test` works on the crate as crates.io delivers it. A full
header is mostly tokenizer: 3-6 MB of tokens, scores, token types and merges. This tool keeps
every other metadata entry and every tensor info byte for byte, drops the tokenizer arrays
longer than 1024 elements, writes `<arch>.vocab_size` (the vocabulary size the dropped token
list had, which readers use when the list is absent, as llama.cpp's converter does for models
without a tokenizer), and ends the file at the aligned start of the tensor data, like the other
header fixtures.

Standard library only. Usage: python3 tools/trim_gguf.py IN.gguf OUT.gguf
"""
import struct
import sys

SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY, UINT32 = 8, 9, 4
LONG_ARRAY = 1024


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        chunk = self.data[self.pos:self.pos + n]
        if len(chunk) != n:
            raise ValueError(f"truncated at offset {self.pos}")
        self.pos += n
        return chunk

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        return self.take(self.u64()).decode()

    def skip_value(self, kind):
        if kind == STRING:
            self.take(self.u64())
        elif kind == ARRAY:
            item, count = self.u32(), self.u64()
            for _ in range(count):
                self.skip_value(item)
        else:
            self.take(SCALAR_SIZES[kind])


def encode_string(text):
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def main(src, dst):
    r = Reader(open(src, "rb").read())
    if r.take(4) != b"GGUF":
        raise ValueError(f"{src}: not a GGUF file")
    version, n_tensors, n_kv = r.u32(), r.u64(), r.u64()
    kept, arch, vocab, alignment = [], None, None, 32
    for _ in range(n_kv):
        start = r.pos
        key, kind = r.string(), r.u32()
        value_at = r.pos
        if kind == ARRAY:
            r.u32()
            count = r.u64()
            r.pos = value_at
        r.skip_value(kind)
        raw = r.data[start:r.pos]
        if key == "general.architecture":
            arch = Reader(r.data[value_at:r.pos]).string()
        if key == "general.alignment":
            alignment = struct.unpack("<I", r.data[value_at:r.pos])[0]
        if key == "tokenizer.ggml.tokens":
            vocab = count
        if kind == ARRAY and key.startswith("tokenizer.") and count > LONG_ARRAY:
            continue
        kept.append((key, raw))
    tensor_infos = r.data[r.pos:]
    r2 = Reader(tensor_infos)
    for _ in range(n_tensors):
        r2.string()
        r2.take(8 * r2.u32())
        r2.take(4 + 8)
    tensor_infos = tensor_infos[:r2.pos]
    if vocab is not None and arch and not any(k == f"{arch}.vocab_size" for k, _ in kept):
        kept.append((f"{arch}.vocab_size",
                     encode_string(f"{arch}.vocab_size") + struct.pack("<II", UINT32, vocab)))
    out = b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(kept))
    out += b"".join(raw for _, raw in kept) + tensor_infos
    out += b"\0" * (-len(out) % alignment)
    with open(dst, "wb") as f:
        f.write(out)
    print(f"{dst}: {len(out)} bytes, {len(kept)} of {n_kv} metadata entries, vocabulary {vocab}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
