#!/usr/bin/env python3
"""Turn measure.py / measure_rpc.py output into the rows tests/fixtures/llamacpp-memory holds.

Usage: python to_fixtures.py cpu RAW.jsonl HEADER_PREFIX >> measurements-archs.jsonl
       python to_fixtures.py rpc RAW.jsonl HEADER_PREFIX >> measurements-archs-offload.jsonl

HEADER_PREFIX is the fixture header's directory under tests/fixtures/gguf (e.g. `archs/`); the
header of model NAME is `<prefix>NAME-<file type>.header.gguf`.
"""
import json
import re
import sys


def error_of(rec):
    if rec.get("crashed"):
        return "process aborted"
    for line in reversed(rec.get("log_tail") or []):
        if "error" in line.lower() or "failed" in line.lower() or "requires" in line:
            return line.strip()
    return "context creation failed"


def settings_of(rec, keys):
    s = rec["settings"]
    return {k: s[k] for k in keys if k in s}


CPU_KEYS = ["n_ctx", "n_seq_max", "type_k", "type_v", "flash_attn", "n_batch", "n_ubatch", "swa_full",
            "kv_unified", "embeddings"]
RPC_KEYS = CPU_KEYS + ["offload_kqv"]  # embeddings: the encoders' rows only (decoders' settings lack it)


def device_of(name, servers):
    """GT_BYTES buffer names -> the fixture's device names (cpu, cpu_repack, rpc0, rpc1): an RPC
    buffer is named after its endpoint (`RPC0[127.0.0.1:50053]`), devices count in --rpc order."""
    m = re.match(r"RPC\d*\[(.+)\]", name)
    if m:
        return f"rpc{servers.index(m.group(1))}"
    return name.lower()


def cpu_row(rec, prefix):
    mi = rec.get("model_info") or {}
    row = {
        "model": rec["model"], "architecture": rec["architecture"], "file_type": rec["file_type"],
        "header": f"{prefix}{rec['model']}-{rec['file_type']}.header.gguf", "file_size": rec["file_size"],
        "llama_cpp_commit": "0c1e57098", "use_mmap": rec["load"]["use_mmap"],
        "cpu_repack": rec["load"]["use_extra_bufts"], "n_gpu_layers": 0,
        "settings": settings_of(rec, CPU_KEYS), "ok": bool(rec.get("ok")),
    }
    if not row["ok"]:
        row["error"] = error_of(rec)
        return row
    row["actual"] = {"n_ctx": rec["n_ctx_actual"], "n_batch": rec["n_batch_actual"],
                     "n_ubatch": rec["n_ubatch_actual"], "n_seq_max": rec["n_seq_max_actual"]}
    buffers = dict(mi.get("model_buffers_bytes", {}))
    buffers.update(rec.get("buffers_bytes", {}))
    row["buffers"] = buffers
    row["kv_caches"] = rec.get("kv_caches", [])
    rs = rec.get("buffers_mib_printed", {}).get("rs:CPU")
    if rs:
        # Recurrent state: only the printed MiB (two decimals) is logged.
        row["rs_mib_printed"] = sum(rs)
    row["n_params"] = mi.get("llama_model_n_params")
    row["tensor_bytes"] = mi.get("llama_model_size_bytes")
    return row


def rpc_row(rec, prefix):
    load = rec["load"]
    row = {
        "model": rec["model"], "file_type": rec["file_type"],
        "header": f"{prefix}{rec['model']}-{rec['file_type']}.header.gguf", "llama_cpp_commit": "0c1e57098",
        "use_mmap": False, "cpu_repack": load.get("use_extra_bufts", True), "rpc_servers": len(load["rpc_servers"]),
        "n_gpu_layers": load["n_gpu_layers"], "tensor_split": load["tensor_split"],
        "settings": settings_of(rec, RPC_KEYS), "ok": bool(rec.get("ok")),
    }
    if not row["ok"]:
        row["error"] = error_of(rec)
        return row
    buffers = {}
    for key, n in rec["buffers"].items():
        kind, name = key.split(":", 1)
        k = f"{kind}:{device_of(name, load['rpc_servers'])}"
        buffers[k] = buffers.get(k, 0) + n
    row["buffers"] = buffers
    rs = {}
    for key, mibs in rec.get("buffers_mib_printed", {}).items():
        kind, name = key.split(":", 1)
        if kind == "rs":
            # Recurrent state per device: only the printed MiB (two decimals) is logged.
            dev = device_of(name, load["rpc_servers"])
            rs[dev] = round(rs.get(dev, 0) + sum(mibs), 2)
    if rs:
        row["rs_mib_printed"] = rs
    row["pipeline_copies"] = rec.get("sched_copies", 1)
    return row


def main():
    mode, raw, prefix = sys.argv[1:4]
    convert = cpu_row if mode == "cpu" else rpc_row
    for line in open(raw):
        rec = json.loads(line)
        if "settings" not in rec:
            continue
        print(json.dumps(convert(rec, prefix)))


if __name__ == "__main__":
    main()
