#!/usr/bin/env python3
"""Compare llama.cpp's allocator trace (the log of `measure_rpc.py --trace`) with the estimator's replay, buffer by
buffer, and print the first allocation where they part.

    python trace_cmp.py LOG LLAMA_BUF REPLAY REPLAY_BUF [--context N]

LOG: the last graph reservation of the log (the worst-case ubatch) is read; LLAMA_BUF is the
scheduler's buffer index (`buf B:`: the devices in order, then the host). REPLAY: the replay's
lines, `R buf B: alloc ID (SIZE bytes) at OFFSET ...`, `R buf B: reuse P for ID ...` and
`R buf B: free ID at OFFSET (SIZE bytes)` (what `alloc.rs` prints with `replay_trace.patch`
applied and REPLAY_TRACE=1; its buffer 0 is the host, then the devices). Allocations are matched in order by size; the
first whose size or offset differs is printed with the events of both sides before it.
"""
import re
import sys

# llama.cpp's allocator log is read with the patterns of its viewer (one copy of its format).
from alloc_trace_view import RE_ALLOC, RE_FREE, RE_REUSE

R_ALLOC = re.compile(r"^R buf (\d+): alloc (\d+) \((\d+) bytes\) at (\d+)(.*)")
R_REUSE = re.compile(r"^R buf (\d+): reuse (\d+) for (\d+)(.*)")
R_FREE = re.compile(r"^R buf (\d+): free (\d+) at (\d+) \((\d+) bytes\)")


def llama_events(path, buf):
    lines = open(path, errors="replace").read().split("\n")
    start = max(i for i, ln in enumerate(lines) if ln.startswith("graph_reserve: reserving a graph"))
    where = {}
    events = []
    for ln in lines[start:]:
        m = RE_ALLOC.match(ln)
        if m:
            b, name, size, off = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
            where[name] = b
            if b == buf:
                events.append(("alloc", name, size, off))
            continue
        m = RE_REUSE.match(ln)
        if m:
            b = where.get(m.group(1))
            where[m.group(2)] = b
            if b == buf:
                events.append(("reuse", f"{m.group(1)} -> {m.group(2)}", 0, 0))
            continue
        m = RE_FREE.match(ln)
        if m and int(m.group(1)) == buf:
            events.append(("free", m.group(2), int(m.group(5)), int(m.group(4))))
    return events


def replay_events(path, buf):
    lines = open(path, errors="replace").read().split("\n")
    peaks = [i for i, ln in enumerate(lines) if ln.startswith("R peak")]
    start = peaks[-1] if peaks else 0
    events = []
    for ln in lines[start:]:
        m = R_ALLOC.match(ln)
        if m and int(m.group(1)) == buf:
            events.append(("alloc", m.group(2) + m.group(5)[:60], int(m.group(3)), int(m.group(4))))
            continue
        m = R_REUSE.match(ln)
        if m and int(m.group(1)) == buf:
            events.append(("reuse", f"{m.group(2)} -> {m.group(3)}", 0, 0))
            continue
        m = R_FREE.match(ln)
        if m and int(m.group(1)) == buf:
            events.append(("free", m.group(2), int(m.group(4)), int(m.group(3))))
    return events


def main():
    args = sys.argv[1:]
    context = 12
    if "--context" in args:
        i = args.index("--context")
        context = int(args[i + 1])
        del args[i:i + 2]
    log, lbuf, rep, rbuf = args[0], int(args[1]), args[2], int(args[3])
    le, re_ = llama_events(log, lbuf), replay_events(rep, rbuf)
    la = [(i, e) for i, e in enumerate(le) if e[0] == "alloc"]
    ra = [(i, e) for i, e in enumerate(re_) if e[0] == "alloc"]
    lpeak = max((e[3] + e[2] for _, e in la), default=0)
    rpeak = max((e[3] + e[2] for _, e in ra), default=0)
    print(f"llama: {len(la)} allocations, high-water {lpeak}; replay: {len(ra)} allocations, high-water {rpeak}")
    for k, ((li, l), (ri, r)) in enumerate(zip(la, ra)):
        # ggml-alloc logs sizes padded to the buffer's alignment (32 on CPU and RPC buffers:
        # TENSOR_ALIGNMENT of ggml-cpu), the replay the tensor's own bytes.
        if -(-l[2] // 32) != -(-r[2] // 32) or l[3] != r[3]:
            print(f"allocation {k} differs: llama {l[1]} {l[2]} at {l[3]}; replay {r[1]} {r[2]} at {r[3]}")
            print("-- llama, before:")
            for e in le[max(0, li - context):li + 1]:
                print("  ", *e)
            print("-- replay, before:")
            for e in re_[max(0, ri - context):ri + 1]:
                print("  ", *e)
            return
    print("allocations agree" if len(la) == len(ra) else f"agree up to {min(len(la), len(ra))} allocations")


if __name__ == "__main__":
    main()
