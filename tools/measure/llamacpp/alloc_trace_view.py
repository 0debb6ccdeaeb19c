#!/usr/bin/env python3
"""Reads llama.cpp's own graph-allocator trace: where each compute buffer's peak comes from.

    python3 alloc_trace_view.py LOG                    each reserve's graph: every buffer's peak
    python3 alloc_trace_view.py LOG --buf 0            buffer 0 of the last reserve: its peak,
                                                       the tensors live then and the free gaps
    python3 alloc_trace_view.py LOG --buf 0 --events   ... and every allocation, reuse and free

LOG is the stderr of a run with alloc_trace.sh's ggml-base first on LD_LIBRARY_PATH and
ALLOC_DBG=1 GGML_SCHED_DEBUG=2 (`measure_rpc.py --trace` makes one: see README). A context
reserves several graphs (`graph_reserve:` lines; the compute buffer is sized by the largest
peak of any of them, the last is the prompt-sized one); `--reserve K` picks the K-th (from 0,
negative from the end). Buffer ids are the scheduler's backend indices: the devices in order,
the CPU last. To compare with the estimator's replay, put the two sequences side by side: the
first allocation whose offset differs is where the replay's graph leaves llama.cpp's (a
split input too many, an op in another order, a tensor freed earlier or later).
"""
import argparse
import re
import sys

RE_RESERVE = re.compile(r"graph_reserve: reserving a graph for ubatch with n_tokens =\s*(\d+)")
RE_ALLOC = re.compile(r"^buf (\d+): ggml_dyn_tallocr_alloc: allocating (.*) \((\d+) bytes\) - "
                      r"block \d+, offset (\d+), chunk (\d+)$")
RE_FREE = re.compile(r"^buf (\d+): ggml_gallocr_free_node: freeing (.*) at \{chunk=(\d+), "
                     r"offset=(\d+)\} \((\d+) bytes\)")
RE_EXTRA = re.compile(r"^buf (\d+): freeing extra (\d+) bytes from parent (.*) for (.*)$")
RE_REUSE = re.compile(r"^reusing parent (.*) for (.*)$")
RE_REUSE_VIEW = re.compile(r"^reusing view parent (.*) \((.*)\) for (.*)$")
RE_SPLIT = re.compile(r"^## SPLIT #(\d+): (\S+) # (\d+) inputs(.*)$")
RE_GT = re.compile(r"GT_BYTES compute (\S+) (\d+)$")


def reserves(lines):
    """The log cut at each `graph_reserve:` line: (n_tokens, lines of that graph)."""
    out = []
    for ln in lines:
        m = RE_RESERVE.search(ln)
        if m:
            out.append((int(m.group(1)), []))
        elif out:
            out[-1][1].append(ln)
    return out


class Buffer:
    """One buffer's live tensors, keyed by (chunk, offset), as ggml-alloc places them."""

    def __init__(self):
        self.live = {}
        self.peak = (0, None)
        self.events = []

    def named(self, name):
        keys = [k for k, (n, _) in self.live.items() if n == name]
        return keys[-1] if keys else None


def replay(graph_lines):
    """Follows one reserve: every buffer's live tensors and peak, and its split inputs."""
    bufs, owner, splits = {}, {}, []
    for ln in graph_lines:
        m = RE_SPLIT.match(ln)
        if m:
            splits.append((int(m.group(1)), m.group(2), m.group(4).strip(": ")))
            continue
        m = RE_ALLOC.match(ln)
        if m:
            b, name, size, offset, chunk = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))
            buf = bufs.setdefault(b, Buffer())
            buf.live[(chunk, offset)] = (name, size)
            owner[name] = b
            buf.events.append(f"alloc {offset:>12} {size:>12} {offset + size:>12}  {name}")
            if offset + size > buf.peak[0]:
                buf.peak = (offset + size, (name, size, offset, dict(buf.live)))
            continue
        m = RE_REUSE_VIEW.match(ln) or RE_REUSE.match(ln)
        if m:
            parent, child = m.group(m.lastindex - 1), m.group(m.lastindex)
            b = owner.get(parent)
            buf = bufs.get(b)
            key = buf.named(parent) if buf else None
            if key is not None:
                buf.live[key] = (child, buf.live[key][1])
                owner[child] = b
                buf.events.append(f"reuse {key[1]:>12} {'':>12} {'':>12}  {child} <- {parent}")
            continue
        m = RE_EXTRA.match(ln)
        if m:
            buf = bufs.setdefault(int(m.group(1)), Buffer())
            key = buf.named(m.group(4))
            if key is not None:
                name, size = buf.live[key]
                buf.live[key] = (name, size - int(m.group(2)))
            buf.events.append(f"extra {'':>12} {int(m.group(2)):>12} {'':>12}  {m.group(4)} frees the tail of {m.group(3)}")
            continue
        m = RE_FREE.match(ln)
        if m:
            buf = bufs.setdefault(int(m.group(1)), Buffer())
            chunk, offset, size = int(m.group(3)), int(m.group(4)), int(m.group(5))
            buf.live.pop((chunk, offset), None)
            buf.events.append(f"free  {offset:>12} {size:>12} {offset + size:>12}  {m.group(2)}")
    return bufs, splits


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("--buf", type=int, help="the buffer to explain (its id in the `buf N:` lines)")
    ap.add_argument("--reserve", type=int, default=-1, help="which reserved graph (default: the last)")
    ap.add_argument("--events", action="store_true", help="print every allocation, reuse and free")
    args = ap.parse_args()
    lines = open(args.log, errors="replace").read().splitlines()
    graphs = reserves(lines)
    if not graphs:
        sys.exit(f"{args.log}: no `graph_reserve:` line (run with GGML_SCHED_DEBUG=2?)")
    for ln in lines:
        m = RE_GT.search(ln)
        if m:
            print(f"measured compute buffer {m.group(1)}: {m.group(2)}")
    if args.buf is None:
        for k, (n_tokens, body) in enumerate(graphs):
            bufs, _ = replay(body)
            peaks = ", ".join(f"buf {b}: {buf.peak[0]}" for b, buf in sorted(bufs.items()))
            print(f"reserve {k} (n_tokens = {n_tokens}): {peaks or 'no allocation logged'}")
        return
    n_tokens, body = graphs[args.reserve]
    bufs, splits = replay(body)
    for index, backend, inputs in splits:
        print(f"split #{index} on {backend}: {inputs}")
    buf = bufs.get(args.buf)
    if buf is None:
        sys.exit(f"buffer {args.buf}: no allocation in reserve {args.reserve} (buffers: {sorted(bufs)})")
    if args.events:
        print(f"{'':5} {'offset':>12} {'bytes':>12} {'end':>12}  tensor")
        print("\n".join(buf.events))
    peak, (name, size, offset, live) = buf.peak
    print(f"\nbuf {args.buf}, reserve {args.reserve} (n_tokens = {n_tokens}): peak {peak} bytes, "
          f"set by {name} ({size} bytes at offset {offset}); live then:")
    end = 0
    for (chunk, off), (n, sz) in sorted(live.items(), key=lambda kv: kv[0]):
        if off > end:
            print(f"{end:>12} {off - end:>12}  (free)")
        print(f"{off:>12} {sz:>12}  {n}" + (f"  (chunk {chunk})" if chunk else ""))
        end = max(end, off + sz)


if __name__ == "__main__":
    main()
