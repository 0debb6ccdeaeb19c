#!/usr/bin/env python3
"""Compare two measure_rpc.py outputs of the same models and layouts, buffer by buffer.

    python compare_rpc.py A.jsonl B.jsonl

Rows are matched by model, layout (servers, n_gpu_layers, tensor_split) and context settings;
for each pair every exact GT_BYTES buffer (`buffers`: the model's and the context's), the KV
caches, the printed MiB lines (the recurrent state's `RS buffer size`), the graph's nodes and
splits and the scheduler's copies must be equal. Buffers are named by device as the fixtures
name them (to_fixtures.device_of: `rpc0`, `rpc1` in --rpc order), so the two runs may use other
ports. A row measured more than once in one file (an appended --out) must give the same values
each time; such repeats are counted, and a repeat that disagrees is a difference. Prints the
mismatches and a count; exits 1 on any mismatch or a row present in one file only. Made to
show that rpc_nocommit.sh's server measures what the normal `ggml-rpc-server` does (README:
"A server that does not commit weights").
"""
import json
import sys

from to_fixtures import device_of

COMPARED = ("ok", "buffers", "kv_caches", "buffers_mib_printed", "graph_nodes", "graph_splits",
            "sched_copies", "n_ctx_actual", "n_seq_max_actual")


def key(rec):
    load = rec["load"]
    # Buffer names carry the endpoint; the ports may differ between the runs.
    return json.dumps([rec["model"], len(load["rpc_servers"]), load["n_gpu_layers"], load["tensor_split"],
                       rec.get("settings")], sort_keys=True)


def by_device(buffers, servers):
    """`kind:DEVICE` keys (`kv:RPC0[127.0.0.1:50352]`) with the device as the fixtures name it."""
    out = {}
    for name, value in buffers.items():
        kind, _, device = name.partition(":")
        out[f"{kind}:{device_of(device, servers)}"] = value
    return out


def compared(rec):
    """The compared fields of a row, buffer names independent of the ports, as JSON text."""
    servers = rec["load"]["rpc_servers"]
    values = {}
    for field in COMPARED:
        value = rec.get(field)
        if field in ("buffers", "buffers_mib_printed") and value is not None:
            value = by_device(value, servers)
        values[field] = json.dumps(value, sort_keys=True)
    return values


def load(path):
    """Rows by key: the compared fields of the first, and how many repeats there were and how
    many of them disagree with it (printed here)."""
    rows, repeats, disagree = {}, 0, 0
    for n, ln in enumerate(open(path), 1):
        rec = json.loads(ln)
        k, values = key(rec), compared(rec)
        if k not in rows:
            rows[k] = values
            continue
        repeats += 1
        for field, value in values.items():
            if value != rows[k][field]:
                print(f"differs within {path} (line {n} repeats an earlier row)", field, k,
                      rows[k][field][:300], value[:300])
                disagree += 1
    return rows, repeats, disagree


def main(a_path, b_path):
    (a, a_repeats, a_bad), (b, b_repeats, b_bad) = load(a_path), load(b_path)
    bad = a_bad + b_bad
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            print("only in", a_path if k in a else b_path, k)
            bad += 1
            continue
        for field in COMPARED:
            va, vb = a[k][field], b[k][field]
            if va != vb:
                print("differs", field, k, va[:300], vb[:300])
                bad += 1
    n_buffers = sum(len(json.loads(r["buffers"]) or {}) for r in a.values())
    repeated = f", {a_repeats} + {b_repeats} repeated rows" if a_repeats or b_repeats else ""
    print(f"{len(a)} rows, {n_buffers} exact buffers compared{repeated}: {bad} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(*sys.argv[1:3])
