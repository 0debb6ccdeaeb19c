#!/usr/bin/env python3
"""Measure llama.cpp (CPU backend) buffer sizes for GGUF files under a grid of settings.

Driver:  python measure.py [--models GLOB ...] [--out ground-truth.jsonl] [--quick]
Worker:  python measure.py --worker JOB.json   (one process per model load; prints one JSON line per context)

For every context it records the buffer sizes llama.cpp prints (model / KV / output / compute),
both as printed (MiB, 2 decimals) and as exact bytes (this build adds 'GT_BYTES' log lines next to
each standard line; see README). Nothing is generated: model load + context creation only.
"""
import argparse
import ctypes
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "bf16": 30}
FA = {"auto": -1, "off": 0, "on": 1}


def rss():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v, _ = line.split()
                out[k[:-1]] = int(v) * 1024
    return out


# ---------------------------------------------------------------------------
# log parsing
# ---------------------------------------------------------------------------
RE_GT = re.compile(r"^(\w+): GT_BYTES (model|kv|output|compute) (\S+) (\d+)$")
RE_GT_KV = re.compile(r"GT_BYTES kv_detail cells=(\d+) layers=(\d+) seqs=(\d+) streams=(\d+) k=(\d+) v=(\d+)")
# RS: the recurrent state of Mamba/RWKV layers, which the GT_BYTES patch does not log in bytes.
RE_MIB = re.compile(r"^(\w+):\s+(\S+)\s+(model|KV|RS|output|compute) buffer size =\s+([\d.]+) MiB")
RE_CTX_KV = re.compile(r"^llama_context: (\w+)\s+= (.+)$")
RE_INFO = re.compile(r"^print_info: ([\w ]+?)\s+= (.+)$")
RE_GRAPH = re.compile(r"graph nodes\s+= (\d+).*graph splits = (\d+)")


def parse_buffer_line(r, ln, gt_lines=None):
    """Records `ln` in `r` when it is a buffer line: a GT_BYTES size (summed per
    `kind:buffer`, several KV caches such as SWA and non-SWA print separately; each also
    appended to `gt_lines` as [kind, buffer, bytes] when a list is given), a KV cache's
    GT_BYTES detail (`kv_caches`) or a printed MiB size (`buffers_mib_printed`, the line kept
    in `raw`). Returns whether it was one. measure_rpc.py's parser shares it."""
    m = RE_GT.match(ln)
    if m:
        kind, name, n = m.group(2), m.group(3), int(m.group(4))
        key = f"{kind}:{name}"
        r["buffers_bytes"][key] = r["buffers_bytes"].get(key, 0) + n
        if gt_lines is not None:
            gt_lines.append([kind, name, n])
        return True
    m = RE_GT_KV.search(ln)
    if m:
        c, l, s, st, k, v = map(int, m.groups())
        r["kv_caches"].append(dict(cells=c, layers=l, seqs=s, streams=st, k_bytes=k, v_bytes=v))
        return True
    m = RE_MIB.match(ln)
    if m:
        key = f"{m.group(3).lower()}:{m.group(2)}"
        r["buffers_mib_printed"].setdefault(key, []).append(float(m.group(4)))
        r["raw"].append(ln)
        return True
    return False


def parse_ctx_line(r, ln):
    """Records a `llama_context: key = value` line in `r["ctx_log"]`; returns whether it was one."""
    m = RE_CTX_KV.match(ln)
    if m:
        r["ctx_log"][m.group(1)] = m.group(2).strip()
    return bool(m)


def parse(lines):
    r = {"buffers_bytes": {}, "buffers_mib_printed": {}, "kv_caches": [], "ctx_log": {}, "raw": []}
    for ln in lines:
        if parse_buffer_line(r, ln):
            continue
        m = RE_GRAPH.search(ln)
        if m:
            r["graph_nodes"], r["graph_splits"] = int(m.group(1)), int(m.group(2))
            continue
        if parse_ctx_line(r, ln):
            continue
        if re.search(r"(flash.?attn|flash attention).*(enabled|disabled)$", ln, re.I) and "llama_context: flash_attn" not in ln:
            r["flash_attn_auto_resolved"] = ln.rsplit(" ", 1)[-1]
        if "llama_graph_n_input_tensors" in ln:
            continue
        if "llama_kv_cache: size =" in ln or "llama_kv_cache_iswa" in ln or "SWA" in ln or "flash" in ln.lower() or "error" in ln.lower() or "failed" in ln.lower() or "warn" in ln.lower():
            r["raw"].append(ln)
    return r


def parse_model(lines):
    info = {}
    for ln in lines:
        m = RE_INFO.match(ln)
        if m:
            info[m.group(1).strip()] = m.group(2).strip()
    return info


# ---------------------------------------------------------------------------
# worker
# ---------------------------------------------------------------------------

def capture_log(llama_cpp, echo=False):
    """Route llama.cpp's log into a list of complete lines (returned; the caller clears it
    between phases) and initialise the backends. With echo, every piece is also written to fd 2
    as it arrives, so it keeps its place among what the C code prints there itself (the traced
    ggml-base's ALLOC_DBG lines)."""
    buf, lines = [], []

    @llama_cpp.llama_log_callback
    def cb(level, text, user):
        s = text.decode("utf-8", "replace") if text else ""
        if echo:
            os.write(2, s.encode())
        buf.append(s)
        joined = "".join(buf)
        if "\n" in joined:
            parts = joined.split("\n")
            lines.extend(parts[:-1])
            buf.clear()
            if parts[-1]:
                buf.append(parts[-1])

    llama_cpp.llama_log_set(cb, None)
    capture_log.keep = cb  # the callback must outlive this frame
    llama_cpp.llama_backend_init()
    return lines


def context_params(llama_cpp, s):
    """llama_context_params for one setting of the grid (2 threads)."""
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = s["n_ctx"]
    cp.n_batch = s["n_batch"]
    cp.n_ubatch = s["n_ubatch"]
    cp.n_seq_max = s["n_seq_max"]
    cp.type_k = GGML_TYPES[s["type_k"]]
    cp.type_v = GGML_TYPES[s["type_v"]]
    cp.flash_attn_type = FA[s["flash_attn"]]
    cp.swa_full = s["swa_full"]
    cp.kv_unified = s["kv_unified"]
    cp.embeddings = s.get("embeddings", False)
    cp.offload_kqv = s.get("offload_kqv", True)
    cp.n_threads = 2
    cp.n_threads_batch = 2
    return cp


def worker(job_path):
    job = json.load(open(job_path))
    import llama_cpp

    lines = capture_log(llama_cpp)

    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 0
    mp.load_mode = 1 if job["use_mmap"] else 0
    mp.use_extra_bufts = job.get("use_extra_bufts", True)
    rss0 = rss()
    t0 = time.time()
    model = llama_cpp.llama_model_load_from_file(job["path"].encode(), mp)
    load_s = time.time() - t0
    if not model:
        print(json.dumps({"fatal": "model load failed", "log_tail": lines[-30:]}), flush=True)
        return
    rss1 = rss()
    model_lines = list(lines)
    mparsed = parse(model_lines)
    minfo = parse_model(model_lines)
    model_common = {
        "model_buffers_bytes": mparsed["buffers_bytes"],
        "model_buffers_mib_printed": mparsed["buffers_mib_printed"],
        "llama_model_size_bytes": llama_cpp.llama_model_size(model),
        "llama_model_n_params": llama_cpp.llama_model_n_params(model),
        "print_info": minfo,
        "load_seconds": round(load_s, 3),
        "rss_before_load": rss0["VmRSS"],
        "rss_after_load": rss1["VmRSS"],
        "hwm_after_load": rss1["VmHWM"],
    }
    print(json.dumps({"model": model_common}), flush=True)

    for i, s in enumerate(job["contexts"]):
        lines.clear()
        cp = context_params(llama_cpp, s)
        r0 = rss()
        t0 = time.time()
        ctx = llama_cpp.llama_init_from_model(model, cp)
        dt = time.time() - t0
        r1 = rss()
        res = {"i": i, "settings": s, "ok": bool(ctx), "ctx_seconds": round(dt, 3),
               "rss_before_ctx": r0["VmRSS"], "rss_after_ctx": r1["VmRSS"], "hwm_after_ctx": r1["VmHWM"]}
        p = parse(lines)
        res.update(p)
        if ctx:
            res["n_ctx_actual"] = llama_cpp.llama_n_ctx(ctx)
            res["n_batch_actual"] = llama_cpp.llama_n_batch(ctx)
            res["n_ubatch_actual"] = llama_cpp.llama_n_ubatch(ctx)
            res["n_seq_max_actual"] = llama_cpp.llama_n_seq_max(ctx)
            llama_cpp.llama_free(ctx)
        else:
            res["log_tail"] = lines[-15:]
        print(json.dumps(res), flush=True)
    llama_cpp.llama_model_free(model)


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------

def S(n_ctx=4096, n_seq_max=1, type_k="f16", type_v="f16", flash_attn="on", n_batch=2048, n_ubatch=512,
      swa_full=False, kv_unified=False, embeddings=False, tag="grid"):
    return dict(n_ctx=n_ctx, n_seq_max=n_seq_max, type_k=type_k, type_v=type_v, flash_attn=flash_attn,
                n_batch=n_batch, n_ubatch=n_ubatch, swa_full=swa_full, kv_unified=kv_unified,
                embeddings=embeddings, tag=tag)


ENCODERS = ("bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert", "t5encoder")


def arch_grid(arch):
    """The grid for the architecture set (measurements-archs.jsonl): every setting that changes
    the graph (context, parallel sequences, unified KV, ubatch, flash attention on/off/auto,
    quantized cache, SWA full), fewer repeats of the same shape than grid()."""
    if arch in ENCODERS:
        return [S(512, 1, flash_attn=fa, n_batch=512, n_ubatch=512, embeddings=True) for fa in ("on", "off")] + [
            S(512, 4, n_batch=512, n_ubatch=512, embeddings=True),
            S(2048, 1, flash_attn="off", n_batch=2048, n_ubatch=2048, embeddings=True, tag="batch")] + (
            # ModernBERT's whole 8192-token training context in one ubatch, both kernels: its
            # second (sliding-window) mask is as large as the first.
            [S(8192, 1, flash_attn=fa, n_batch=8192, n_ubatch=8192, embeddings=True, tag="train_ctx")
             for fa in ("on", "off")] if arch == "modern-bert" else [])
    out = [S(n_ctx, n_seq, flash_attn=fa) for n_ctx in (512, 4096) for n_seq in (1, 4) for fa in ("on", "off")]
    out += [S(4096, 1, "q8_0", "q8_0", "on", tag="kv_type"),
            S(4096, 1, flash_attn="on", n_batch=512, n_ubatch=128, tag="batch"),
            S(4096, 1, flash_attn="off", n_batch=2048, n_ubatch=2048, tag="batch"),
            S(4096, 1, flash_attn="auto", tag="fa_auto"),
            S(4096, 4, flash_attn="on", kv_unified=True, tag="kv_unified"),
            S(4096, 4, flash_attn="off", kv_unified=True, tag="kv_unified"),
            S(8192, 1, swa_full=True, tag="swa_full"),
            S(16384, 1, flash_attn="off", tag="big_ctx")]
    return out


def grid(arch, quick=False):
    emb = arch == "bert"
    out = []
    ctxs = [512] if emb else [512, 4096, 8192]
    for n_ctx in ctxs:
        for n_seq in (1, 4):
            for kvt in ("f16", "q8_0"):
                for fa in ("on", "off"):
                    if emb:
                        # bert: n_ubatch must cover the whole sequence (non-causal); llama-server --embedding uses n_ubatch=n_batch
                        out.append(S(n_ctx, n_seq, kvt, kvt, fa, 512, 512, embeddings=True))
                    else:
                        out.append(S(n_ctx, n_seq, kvt, kvt, fa))
    if quick:
        return out
    if emb:
        out.append(S(512, 1, flash_attn="auto", n_batch=512, n_ubatch=512, embeddings=True, tag="fa_auto"))
        out.append(S(512, 1, n_batch=2048, n_ubatch=2048, embeddings=True, tag="batch"))
        out.append(S(512, 1, flash_attn="off", n_batch=2048, n_ubatch=2048, embeddings=True, tag="batch"))
        out.append(S(2048, 1, n_batch=2048, n_ubatch=2048, embeddings=True, tag="ctx_over_train"))
        return out
    # non-default batch / ubatch
    for fa in ("on", "off"):
        out.append(S(4096, 1, flash_attn=fa, n_batch=512, n_ubatch=128, tag="batch"))
        out.append(S(4096, 1, flash_attn=fa, n_batch=2048, n_ubatch=2048, tag="batch"))
        out.append(S(4096, 4, flash_attn=fa, n_batch=4096, n_ubatch=1024, tag="batch"))
    # flash attention auto (library default)
    out.append(S(4096, 1, flash_attn="auto", tag="fa_auto"))
    out.append(S(4096, 4, flash_attn="auto", tag="fa_auto"))
    # unified KV with parallel sequences
    for fa in ("on", "off"):
        out.append(S(4096, 4, flash_attn=fa, kv_unified=True, tag="kv_unified"))
    # swa_full (llama_context_default_params default is true; llama-server default is false)
    for n_seq in (1, 4):
        out.append(S(8192, n_seq, swa_full=True, tag="swa_full"))
    # other KV types, mixed K/V
    out.append(S(4096, 1, "q4_0", "q4_0", "on", tag="kv_type"))
    out.append(S(4096, 1, "q8_0", "f16", "off", tag="kv_type"))
    out.append(S(4096, 1, "q8_0", "f16", "on", tag="kv_type"))
    out.append(S(4096, 1, "f32", "f32", "on", tag="kv_type"))
    # larger contexts
    out.append(S(16384, 1, tag="big_ctx"))
    out.append(S(32768, 1, tag="big_ctx"))
    out.append(S(32768, 1, flash_attn="off", tag="big_ctx"))
    return out


def llama_version():
    try:
        import llama_cpp
        return {"llama_cpp_python": llama_cpp.__version__, "llama_cpp_commit": "0c1e57098",
                "system_info": llama_cpp.llama_print_system_info().decode()}
    except Exception as e:  # pragma: no cover
        return {"error": str(e)}


def run_job(job, timeout=900):
    jp = os.path.join(tempfile.gettempdir(), f"measure-job.{os.getpid()}.json")
    json.dump(job, open(jp, "w"))
    remaining = list(job["contexts"])
    results, model_info, errors = [], None, []
    while True:
        job2 = dict(job, contexts=remaining)
        json.dump(job2, open(jp, "w"))
        p = subprocess.run([sys.executable, __file__, "--worker", jp], capture_output=True, text=True, timeout=timeout)
        got = []
        for ln in p.stdout.splitlines():
            try:
                o = json.loads(ln)
            except Exception:
                continue
            if "model" in o:
                model_info = o["model"]
            elif "fatal" in o:
                errors.append(o)
            else:
                got.append(o)
        results += got
        if p.returncode == 0 or not remaining:
            break
        # worker crashed (e.g. GGML_ASSERT abort) on context len(got): record and continue after it
        if len(got) >= len(remaining):
            break
        bad = remaining[len(got)]
        results.append({"settings": bad, "ok": False, "crashed": True, "returncode": p.returncode,
                        "stderr_tail": p.stderr[-1500:]})
        remaining = remaining[len(got) + 1:]
        if not remaining or model_info is None:
            break
    return model_info, results, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "ground-truth.jsonl"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--arch-grid", action="store_true", help="arch_grid(), one mmap load per file")
    ap.add_argument("--no-extra-bufts", action="store_true",
                    help="no extra CPU buffer types: on a CPU with AMX tiles llama.cpp otherwise copies "
                         "F16 matmul weights into an AMX buffer beside the mapped file")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)

    import gguf
    ver = llama_version()
    paths = sorted(args.models or glob.glob(os.path.join(HERE, "models", "*.gguf")))
    with open(args.out, "a") as out:
        for path in paths:
            name = os.path.basename(path).rsplit("-", 1)[0]
            if args.arch_grid:
                # The architecture set's files come from make_models.py (reading the arch back
                # with GGUFReader parses the whole tokenizer in Python: minutes per file).
                from make_models import SPECS
                arch, ftype = SPECS[name]["arch"], 1
            else:
                rd = gguf.GGUFReader(path)
                arch = bytes(rd.fields["general.architecture"].parts[-1]).decode()
                ftype = int(rd.fields["general.file_type"].parts[-1][0]) if "general.file_type" in rd.fields else None
            quant = os.path.basename(path).rsplit("-", 1)[1].replace(".gguf", "")
            base = {"model": name, "architecture": arch, "file": path, "file_size": os.path.getsize(path),
                    "file_type": quant, "general.file_type": ftype, "llama_cpp": ver}
            if args.arch_grid:
                jobs = [dict(path=path, use_mmap=True, use_extra_bufts=not args.no_extra_bufts,
                             contexts=arch_grid(arch))]
            elif name == "llama-3.1-8b" and quant == "F16":
                jobs = [dict(path=path, use_mmap=True, use_extra_bufts=True, contexts=[S(4096)])]
            else:
                g = grid(arch, args.quick)
                if arch == "phi3":  # no GQA: 384 KiB of f16 KV per token; keep RAM use < ~12 GB on this 24 GB box
                    g = [x for x in g if x["n_ctx"] <= (16384 if quant != "F16" else 8192)]
                d = g[0] if arch == "bert" else S(4096)
                jobs = [dict(path=path, use_mmap=False, use_extra_bufts=True, contexts=g),
                        dict(path=path, use_mmap=True, use_extra_bufts=True, contexts=[d]),
                        dict(path=path, use_mmap=False, use_extra_bufts=False, contexts=[d])]
            for job in jobs:
                t0 = time.time()
                mi, results, errors = run_job(job)
                n_ok = sum(1 for r in results if r.get("ok"))
                print(f"{os.path.basename(path)} mmap={job['use_mmap']} extra_bufts={job['use_extra_bufts']}: "
                      f"{n_ok}/{len(results)} ok in {time.time()-t0:.1f}s", flush=True)
                for e in errors:
                    print("  fatal:", json.dumps(e)[:500], flush=True)
                for r in results:
                    rec = dict(base)
                    rec["load"] = {"use_mmap": job["use_mmap"], "use_extra_bufts": job["use_extra_bufts"], "n_gpu_layers": 0}
                    rec["model_info"] = mi
                    rec.update(r)
                    out.write(json.dumps(rec) + "\n")
                out.flush()


if __name__ == "__main__":
    main()
