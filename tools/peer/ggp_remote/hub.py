#!/usr/bin/env python3
"""gguf-parser-go against the loopback hub of inferkit's `remote_plan` bench.

Rebuilds the bench's 5-shard GGUF repository (sources/benches/remote_plan.rs `split_gguf`:
the Qwen2.5-1.5B F16 header with its full tokenizer split as gguf-split writes it, 8 MiB of
tensor data after each header), serves it like the bench's stand-in (sources/tests/support):
a hub answering `/{repo}/resolve/{rev}/{file}` with a 302 to a second host that serves the
file with `Range`, 20 ms before every reply, one request per connection. Then runs the Go
client (main.go) cold (empty cache) and from gguf-parser-go's cache, and prints requests,
bytes written by the servers and wall time.

    python3 tools/peer/ggp_remote/hub.py --client /tmp/ggp_remote [--runs 5] [--full] [--delay-ms 20]
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DELAY = 0.020
REPO = "bench/Qwen2.5-1.5B-Instruct-GGUF"
FIXTURE = Path(__file__).resolve().parents[3] / "tests/fixtures/gguf/qwen2.5-1.5b-instruct-F16.tokenizer.header.gguf"
# GGUF scalar value sizes by type id (gguf.h): u8 i8 u16 i16 u32 i32 f32 bool _ _ u64 i64 f64.
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def read_header(data):
    """(kv section bytes, number of kvs, tensors [(name, dims, type, offset)])."""
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    pos = 24

    def string(pos):
        (n,) = struct.unpack_from("<Q", data, pos)
        return data[pos + 8:pos + 8 + n].decode(), pos + 8 + n

    def value(kind, pos):
        if kind in SCALAR:
            return pos + SCALAR[kind]
        if kind == 8:
            return string(pos)[1]
        if kind == 9:
            item, count = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if item in SCALAR:
                return pos + SCALAR[item] * count
            for _ in range(count):
                pos = value(item, pos)
            return pos
        raise ValueError(f"GGUF value type {kind} at {pos}")

    for _ in range(n_kv):
        _, pos = string(pos)
        (kind,) = struct.unpack_from("<I", data, pos)
        pos = value(kind, pos + 4)
    kv_end = pos
    tensors = []
    for _ in range(n_tensors):
        name, pos = string(pos)
        (n_dims,) = struct.unpack_from("<I", data, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", data, pos + 4)
        pos += 4 + 8 * n_dims
        kind, offset = struct.unpack_from("<IQ", data, pos)
        pos += 12
        tensors.append((name, dims, kind, offset))
    return data[24:kv_end], n_kv, tensors


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def split_gguf(count):
    """The bench's shards: {name: bytes} and the total header bytes."""
    kv_bytes, n_kv, tensors = read_header(FIXTURE.read_bytes())
    per = -(-len(tensors) // count)
    files, total = {}, 0
    for no in range(count):
        chunk = tensors[no * per:(no + 1) * per]
        out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(chunk), (n_kv if no == 0 else 0) + 3))
        if no == 0:
            out += kv_bytes
        out += gguf_string("split.no") + struct.pack("<IH", 2, no)
        out += gguf_string("split.count") + struct.pack("<IH", 2, count)
        out += gguf_string("split.tensors.count") + struct.pack("<Ii", 5, len(tensors))
        first = chunk[0][3]
        for name, dims, kind, offset in chunk:
            out += gguf_string(name) + struct.pack(f"<I{len(dims)}Q", len(dims), *dims)
            out += struct.pack("<IQ", kind, offset - first)
        out += bytes(-len(out) % 32)
        total += len(out)
        out += bytes(8 << 20)
        files[f"qwen2.5-1.5b-instruct-F16-{no + 1:05}-of-{count:05}.gguf"] = bytes(out)
    return files, total


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests, self.bytes, self.log = 0, 0, []

    def count(self, line, n=0):
        with self.lock:
            if line:
                self.requests += 1
                self.log.append(line)
            self.bytes += n


def handler(counters, route):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, head_only):
            counters.count(f"{self.command} {self.path} {self.headers.get('Range', '')}")
            time.sleep(DELAY)
            status, headers, body = route(self.path, self.headers.get("Range"))
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if head_only:
                return
            try:
                for i in range(0, len(body), 16 << 10):
                    self.wfile.write(body[i:i + (16 << 10)])
                    counters.count(None, len(body[i:i + (16 << 10)]))
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def do_GET(self):
            self.reply(False)

        def do_HEAD(self):
            self.reply(True)

    return Handler


def serve_file(data, range_header, etag):
    headers = [("ETag", f'"{etag}"'), ("Accept-Ranges", "bytes")]
    if not range_header:
        return 200, headers, data
    a, _, b = range_header.removeprefix("bytes=").partition("-")
    start, end = int(a), min(int(b) + 1 if b else len(data), len(data))
    if start >= len(data):
        return 416, [("Content-Range", f"bytes */{len(data)}")], b""
    return 206, headers + [("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")], data[start:end]


def start(counters, route):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(counters, route))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    global DELAY
    args = argparse.ArgumentParser()
    args.add_argument("--client", required=True, help="the built ggp_remote binary")
    args.add_argument("--runs", type=int, default=5)
    args.add_argument("--full", action="store_true", help="read large metadata too")
    args.add_argument("--delay-ms", type=float, default=DELAY * 1e3, help="before every reply")
    args = args.parse_args()
    DELAY = args.delay_ms / 1e3
    files, header_bytes = split_gguf(5)
    counters = Counters()

    def cdn_route(path, rng):
        name = path.rsplit("/", 1)[-1]
        if name not in files:
            return 404, [], b""
        return serve_file(files[name], rng, f"{hash(name) & 0xffffffff:08x}")

    cdn = start(counters, cdn_route)
    cdn_url = f"http://127.0.0.1:{cdn.server_address[1]}"

    def hub_route(path, rng):
        prefix = f"/{REPO}/resolve/"
        if not path.startswith(prefix):
            return 404, [], b""
        name = path[len(prefix):].split("/", 1)[-1]
        if name not in files:
            return 404, [("X-Error-Code", "EntryNotFound")], b""
        return 302, [("Location", f"{cdn_url}/blob/{REPO}/{name}")], b""

    hub = start(counters, hub_route)
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{hub.server_address[1]}")
    command = [args.client, "-repo", REPO, "-file", next(iter(files))] + (["-full"] if args.full else [])

    def run(cache):
        counters.reset()
        out = subprocess.run(command + ["-cache", cache], env=env, check=True, capture_output=True, text=True)
        ms, tensors = out.stdout.split()
        return float(ms), int(tensors), counters.requests, counters.bytes, list(counters.log)

    cold, cached = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run(cache))
            cached.append(run(cache))
    ms = [r[0] for r in cold]
    ms_cached = [r[0] for r in cached]
    result = {
        "model": "5-shard GGUF (remote_plan bench)",
        "skip_large_metadata": not args.full,
        "header_bytes": header_bytes,
        "tensors": cold[0][1],
        "cold_requests": cold[0][2],
        "cold_bytes": cold[0][3],
        "cold_bytes_over_headers": round(cold[0][3] / header_bytes, 2),
        "cold_ms_fastest": min(ms),
        "cold_ms_median": statistics.median(ms),
        "delay_ms": DELAY * 1e3,
        "cold_round_trips_fastest": round(min(ms) / (DELAY * 1e3), 1) if DELAY else None,
        "cached_requests": cached[0][2],
        "cached_ms_fastest": min(ms_cached),
        "cached_ms_median": statistics.median(ms_cached),
        "runs": args.runs,
        "cold_request_log": cold[0][4],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
