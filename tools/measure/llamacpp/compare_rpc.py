#!/usr/bin/env python3
"""Compare two measure_rpc.py outputs of the same models and layouts, buffer by buffer.

    python compare_rpc.py A.jsonl B.jsonl

Rows are matched by model, layout (servers, n_gpu_layers, tensor_split) and context settings;
for each pair every exact GT_BYTES buffer (model and context), the KV caches, the printed
MiB lines (the recurrent state's `RS buffer size`), the graph's nodes and splits and the
scheduler's copies must be equal. Prints the mismatches and a count; exits 1 on any mismatch
or a row present in one file only. Made to show that rpc_nocommit.sh's server measures what
the normal `ggml-rpc-server` does (README: "A server that does not commit weights").
"""
import json
import sys

COMPARED = ("ok", "buffers", "model_buffers_bytes", "buffers_bytes", "kv_caches", "buffers_mib_printed",
            "graph_nodes", "graph_splits", "sched_copies", "n_ctx_actual", "n_seq_max_actual")


def key(rec):
    load = rec["load"]
    # Buffer names carry the endpoint; the ports may differ between the runs.
    return json.dumps([rec["model"], len(load["rpc_servers"]), load["n_gpu_layers"], load["tensor_split"],
                       rec.get("settings")], sort_keys=True)


def ports_neutral(value, servers):
    s = json.dumps(value, sort_keys=True)
    for i, ep in enumerate(servers):
        s = s.replace(ep, f"server{i}")
    return s


def load(path):
    out = {}
    for ln in open(path):
        rec = json.loads(ln)
        out[key(rec)] = rec
    return out


def main(a_path, b_path):
    a, b = load(a_path), load(b_path)
    bad = 0
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            print("only in", a_path if k in a else b_path, k)
            bad += 1
            continue
        ra, rb = a[k], b[k]
        if ra.get("model_info"):
            ra = dict(ra, model_buffers_bytes=ra["model_info"]["model_buffers_bytes"])
        if rb.get("model_info"):
            rb = dict(rb, model_buffers_bytes=rb["model_info"]["model_buffers_bytes"])
        for f in COMPARED:
            va = ports_neutral(ra.get(f), ra["load"]["rpc_servers"])
            vb = ports_neutral(rb.get(f), rb["load"]["rpc_servers"])
            if va != vb:
                print("differs", f, k, va[:300], vb[:300])
                bad += 1
    n_buffers = sum(len(r.get("buffers", {})) for r in a.values())
    print(f"{len(a)} rows, {n_buffers} exact buffers compared: {bad} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(*sys.argv[1:3])
