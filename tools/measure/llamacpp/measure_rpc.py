#!/usr/bin/env python3
"""Measure llama.cpp per-device buffer sizes with layers offloaded to ggml RPC servers (127.0.0.1).

Driver:  python measure_rpc.py [--models NAME ...] [--out ground-truth-rpc.jsonl]
             [--rpc-server BIN [--ports P1 P2]]
Worker:  python measure_rpc.py --worker JOB.json   (one process per model load; one JSON line per context)
Trace:   python measure_rpc.py --trace --models NAME --rpc HOST:PORT --ngl N [--ts 3,1] [--n-ctx ...]
         (one layout, one context, in this process; llama.cpp's log on stderr: README, "Tracing")

Uses llama-cpp-python 0.3.36's ctypes bindings (from the earlier venv) against the libllama.so built
here (LLAMA_CPP_LIB_PATH=build/bin), registers RPC servers via ggml_backend_rpc_add_server +
ggml_backend_register (what llama.cpp's --rpc does), then loads the model with n_gpu_layers /
tensor_split and creates contexts. Nothing is generated.

The RPC servers are the ones already listening on 127.0.0.1:50052/50053 (started by hand, the
normal `ggml-rpc-server`), unless --rpc-server BIN (or $RPC_SERVER_BIN) names a server binary:
then measure_rpc.py starts two of them on --ports for the run and stops them at the end. With
rpc_nocommit.sh's `ggml-rpc-server-nocommit` the servers hold no weight memory (zero-weight files
only), which lets models larger than the host's RAM be measured; the sizes are the same
(README: "A server that does not commit weights").
"""
import argparse
import ctypes
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The log parsing of buffer and context lines, log capture and context parameters are
# measure.py's (one copy of each); its RE_MIB also matches the recurrent state's
# `RS buffer size` lines, per device.
from make_models import SPECS  # noqa: E402
from measure import ENCODERS, arch_grid, capture_log, context_params, parse_buffer_line, parse_ctx_line, rss  # noqa: E402

BIN = os.environ.get("LLAMA_CPP_LIB_PATH", os.path.join(HERE, "build", "bin"))
MODELS = os.environ.get("MODELS_DIR", os.path.join(HERE, "models"))  # the files make_models.py writes
SERVERS = ["127.0.0.1:50052", "127.0.0.1:50053"]  # --ports replaces them (set_ports)


def set_ports(ports):
    """Measure against servers on these loopback ports (the layouts take SERVERS[:1] / SERVERS)."""
    SERVERS[:] = [f"127.0.0.1:{p}" for p in ports]


def start_servers(binary, timeout=30):
    """Start one `binary -p PORT` per endpoint of SERVERS and wait until each accepts a
    connection; returns the processes (stop_servers ends them)."""
    procs = []
    for ep in SERVERS:
        host, port = ep.rsplit(":", 1)
        procs.append(subprocess.Popen([binary, "-H", host, "-p", port], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    for ep, p in zip(SERVERS, procs):
        host, port = ep.rsplit(":", 1)
        t0 = time.time()
        while True:
            if p.poll() is not None:
                stop_servers(procs)
                raise SystemExit(f"{binary} on {ep} exited with {p.returncode}")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                if time.time() - t0 > timeout:
                    stop_servers(procs)
                    raise SystemExit(f"{binary} on {ep} did not listen within {timeout}s")
                time.sleep(0.2)
    return procs


def stop_servers(procs):
    for ep, p in zip(SERVERS, procs):
        if p.poll() is None:
            # The server's peak resident memory (what a no-commit server saves shows here).
            with open(f"/proc/{p.pid}/status") as f:
                hwm = next((ln.split()[1] for ln in f if ln.startswith("VmHWM:")), "?")
            print(f"rpc server {ep}: peak RSS (VmHWM) {hwm} kB", flush=True)
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

RE_GRAPH = re.compile(r"graph(?: \(pp bs=\d+, tg bs=\d+\))?: nodes = ([\d /]+), splits = ([\d /]+), input")
RE_KVDEV = re.compile(r"^llama_kv_cache(?:_iswa)?: layer\s+(\d+): dev = (\S+)")
RE_SCHED = re.compile(r"reserve took [\d.]+ ms, sched copies = (\d+)")
RE_LAYER = re.compile(r"layer\s+(\d+) assigned to device (\S+), is_swa = (\d)")


def parse(lines):
    r = {"buffers_bytes": {}, "buffers_mib_printed": {}, "gt_lines": [], "kv_caches": [], "ctx_log": {},
         "offload_log": [], "raw": []}
    layers = {}
    kvdev = {}
    for ln in lines:
        if "llama_graph_n_input_tensors" in ln:
            continue
        m = RE_KVDEV.match(ln)
        if m:
            kvdev.setdefault(m.group(2), []).append(int(m.group(1)))
            continue
        m = RE_SCHED.search(ln)
        if m:
            r["sched_copies"] = int(m.group(1))
            continue
        m = RE_LAYER.search(ln)
        if m:
            layers.setdefault(m.group(2), []).append(int(m.group(1)))
            continue
        if parse_buffer_line(r, ln, r["gt_lines"]):
            continue
        m = RE_GRAPH.search(ln)
        if m:
            r["graph_nodes"], r["graph_splits"] = m.group(1).strip(), m.group(2).strip()
            r["raw"].append(ln)
            continue
        if "offload" in ln or "using device" in ln or "pipeline" in ln or "n_copies" in ln:
            r["offload_log"].append(ln)
            continue
        if parse_ctx_line(r, ln):
            continue
        if ("llama_kv_cache" in ln and ("size =" in ln or "layer" in ln)) or "SWA" in ln or "flash" in ln.lower() \
                or "error" in ln.lower() or "failed" in ln.lower() or "warn" in ln.lower() or "RPC" in ln:
            r["raw"].append(ln)
    if layers:
        r["layer_device"] = layers
    if kvdev:
        r["kv_layer_device"] = kvdev
    return r


def worker(job):
    import llama_cpp

    lines = capture_log(llama_cpp, echo=job.get("echo_log", False))

    ggml = ctypes.CDLL(os.path.join(BIN, "libggml.so"), mode=ctypes.RTLD_GLOBAL)
    ggml_rpc = ctypes.CDLL(os.path.join(BIN, "libggml-rpc.so"), mode=ctypes.RTLD_GLOBAL)
    ggml_rpc.ggml_backend_rpc_add_server.restype = ctypes.c_void_p
    ggml_rpc.ggml_backend_rpc_add_server.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_register.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_register.restype = None
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    ggml.ggml_backend_dev_name.restype = ctypes.c_char_p
    ggml.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_description.restype = ctypes.c_char_p
    ggml.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
    ggml.ggml_backend_dev_type.restype = ctypes.c_int
    ggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    for ep in job["servers"]:
        reg = ggml_rpc.ggml_backend_rpc_add_server(ep.encode())
        if not reg:
            print(json.dumps({"fatal": f"cannot reach RPC server {ep}"}), flush=True)
            return
        ggml.ggml_backend_register(reg)
    devices = []
    for i in range(ggml.ggml_backend_dev_count()):
        d = ggml.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        ggml.ggml_backend_dev_memory(d, ctypes.byref(free), ctypes.byref(total))
        devices.append({"name": ggml.ggml_backend_dev_name(d).decode(),
                        "description": ggml.ggml_backend_dev_description(d).decode(),
                        "type": {0: "CPU", 1: "GPU", 2: "IGPU", 3: "ACCEL"}.get(ggml.ggml_backend_dev_type(d), "?"),
                        "memory_free": free.value, "memory_total": total.value})

    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = job["n_gpu_layers"]
    mp.split_mode = llama_cpp.LLAMA_SPLIT_MODE_LAYER
    mp.load_mode = 0  # use_mmap = false
    mp.use_extra_bufts = job.get("use_extra_bufts", True)
    ts = None
    if job.get("tensor_split"):
        ts = (ctypes.c_float * llama_cpp.LLAMA_MAX_DEVICES)(*([float(x) for x in job["tensor_split"]] +
                                                             [0.0] * (llama_cpp.LLAMA_MAX_DEVICES - len(job["tensor_split"]))))
        mp.tensor_split = ctypes.cast(ts, ctypes.POINTER(ctypes.c_float))
    lines.clear()
    rss0 = rss()
    t0 = time.time()
    model = llama_cpp.llama_model_load_from_file(job["path"].encode(), mp)
    load_s = time.time() - t0
    if not model:
        print(json.dumps({"fatal": "model load failed", "log_tail": lines[-30:]}), flush=True)
        return
    rss1 = rss()
    mparsed = parse(list(lines))
    model_common = {
        "devices": devices,
        "model_buffers_bytes": mparsed["buffers_bytes"],
        "model_buffers_mib_printed": mparsed["buffers_mib_printed"],
        "model_gt_lines": mparsed["gt_lines"],
        "offload_log": mparsed["offload_log"],
        "layer_device": mparsed.get("layer_device"),
        "llama_model_size_bytes": llama_cpp.llama_model_size(model),
        "llama_model_n_params": llama_cpp.llama_model_n_params(model),
        "n_layer": llama_cpp.llama_model_n_layer(model),
        "load_seconds": round(load_s, 3),
        "rss_before_load": rss0["VmRSS"], "rss_after_load": rss1["VmRSS"],
        "load_raw": [l for l in mparsed["raw"]],
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
               "rss_before_ctx": r0["VmRSS"], "rss_after_ctx": r1["VmRSS"]}
        p = parse(lines)
        p.pop("layer_device", None)
        res.update(p)
        if ctx:
            res["n_ctx_actual"] = llama_cpp.llama_n_ctx(ctx)
            res["n_seq_max_actual"] = llama_cpp.llama_n_seq_max(ctx)
            llama_cpp.llama_free(ctx)
        else:
            res["log_tail"] = lines[-15:]
        print(json.dumps(res), flush=True)
    llama_cpp.llama_model_free(model)


def S(n_ctx=4096, n_seq_max=1, flash_attn="on", offload_kqv=True, tag="grid"):
    return dict(n_ctx=n_ctx, n_seq_max=n_seq_max, type_k="f16", type_v="f16", flash_attn=flash_attn,
                n_batch=2048, n_ubatch=512, swa_full=False, kv_unified=False, offload_kqv=offload_kqv, tag=tag)


def contexts(arch, nkvo_fa=("on",), only_nkvo=False):
    """The contexts of one load. Decoders: 4096 and 8192 tokens, 1 and 4 sequences, flash
    attention on and off, and the cache on the host (4096 tokens, 1 sequence, with each flash
    attention setting of `nkvo_fa`). Encoders (measure.ENCODERS): measure.py's encoder grid
    (embeddings, n_ubatch = n_batch: a non-causal batch must hold whole sequences), and its first
    two settings (flash attention on, off) with the cache on the host, which without flash
    attention moves the merged attention heads to the host. `only_nkvo` keeps only the contexts
    with the cache on the host."""
    if arch in ENCODERS:
        out = [dict(s, offload_kqv=True) for s in arch_grid(arch)]
        out += [dict(s, offload_kqv=False, tag="no_kv_offload") for s in out[:2]]
    else:
        out = [S(c, n, fa) for c in (4096, 8192) for n in (1, 4) for fa in ("on", "off")]
        out += [S(4096, 1, fa, offload_kqv=False, tag="no_kv_offload") for fa in nkvo_fa]
    return [s for s in out if not s["offload_kqv"]] if only_nkvo else out


def parse_layout(text):
    """`--layout DEVICES:NGL[:TS]` (e.g. `2:3:1,1`): that many of the servers, n_gpu_layers and
    the tensor split (none: llama.cpp splits by reported free memory, or one device)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise SystemExit(f"--layout {text}: expected DEVICES:NGL[:TS]")
    # Whole shares as integers, as the subset's and the fixtures' splits are written.
    ts = [int(x) if float(x).is_integer() else float(x) for x in parts[2].split(",")] if len(parts) == 3 else None
    return dict(servers=SERVERS[:int(parts[0])], n_gpu_layers=int(parts[1]), tensor_split=ts)


def loads(n_layer):
    L = n_layer
    part = sorted({1, L // 4, L // 2})
    out = []
    # one RPC device
    for ngl in [0] + part + [L, L + 1]:
        out.append(dict(servers=SERVERS[:1], n_gpu_layers=ngl, tensor_split=None))
    # two RPC devices, equal split and 3:1
    for ngl in [1, L // 2, L, L + 1]:
        out.append(dict(servers=SERVERS, n_gpu_layers=ngl, tensor_split=[1, 1]))
    for ngl in [L // 2, L + 1]:
        out.append(dict(servers=SERVERS, n_gpu_layers=ngl, tensor_split=[3, 1]))
    # two devices, no tensor_split given (llama.cpp splits by reported free memory)
    out.append(dict(servers=SERVERS, n_gpu_layers=L + 1, tensor_split=None))
    # two devices, ngl=0 (devices present, nothing offloaded)
    out.append(dict(servers=SERVERS, n_gpu_layers=0, tensor_split=[1, 1]))
    return out


def subset(n_layer):
    """The offload layouts measured for the architecture set: one device with part and all of
    the layers, two devices 1:1 at full offload (pipeline parallelism) and 3:1 partial."""
    L = n_layer
    return [dict(servers=SERVERS[:1], n_gpu_layers=L // 2, tensor_split=None),
            dict(servers=SERVERS[:1], n_gpu_layers=L + 1, tensor_split=None),
            dict(servers=SERVERS, n_gpu_layers=L + 1, tensor_split=[1, 1]),
            dict(servers=SERVERS, n_gpu_layers=L, tensor_split=[3, 1])]


def trace(args):
    """One layout and one context, run here with the log on stderr (fd 2) as it comes: with
    alloc_trace.sh's ggml-base first on LD_LIBRARY_PATH and ALLOC_DBG=1 GGML_SCHED_DEBUG=2, that
    log holds the scheduler's splits and every allocation of each compute buffer, in order
    (alloc_trace_view.py reads it). The JSON lines on stdout are the worker's, as measured."""
    ts = [float(x) for x in args.ts.split(",")] if args.ts else None
    ctx = S(args.n_ctx, args.n_seq, args.fa, offload_kqv=not args.no_kv_offload, tag="trace")
    ctx.update(type_k=args.cache_type, type_v=args.cache_type)
    if model_of(args.models[0])[0] in ENCODERS:
        # As the encoder grid: embeddings, one ubatch holds the whole context.
        ctx.update(embeddings=True, n_batch=args.n_ctx, n_ubatch=args.n_ctx)
    worker(dict(servers=args.rpc, n_gpu_layers=args.ngl, tensor_split=ts, echo_log=True, contexts=[ctx],
                use_extra_bufts=not args.no_extra_bufts, path=os.path.join(MODELS, args.models[0] + ".gguf")))


def run_job(job, timeout=600):
    jp = os.path.join(tempfile.gettempdir(), f"measure-job.{os.getpid()}.json")
    json.dump(job, open(jp, "w"))
    env = dict(os.environ, LLAMA_CPP_LIB_PATH=BIN, LD_LIBRARY_PATH=BIN)
    p = subprocess.run([sys.executable, __file__, "--worker", jp], capture_output=True, text=True,
                       timeout=timeout, env=env)
    model_info, results, errors = None, [], []
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
            results.append(o)
    if p.returncode != 0:
        errors.append({"returncode": p.returncode, "stderr_tail": p.stderr[-1500:]})
    return model_info, results, errors


# The models of shared/reference/llamacpp-memory (its make_models.py): architecture, layers.
REFERENCE = {"llama-3.2-1b": ("llama", 16), "qwen2.5-0.5b-instruct": ("qwen2", 24), "gemma-2-2b": ("gemma2", 26),
             "llama-3.1-8b": ("llama", 32), "granite-3.1-1b-a400m": ("granitemoe", 24),
             "phi-3-mini-4k-instruct": ("phi3", 32), "qwen1.5-moe-a2.7b-4layer": ("qwen2moe", 4),
             "bge-small-en-v1.5": ("bert", 12)}


def model_of(m):
    """(architecture, layers) of the file named m (`NAME-QUANT`): the architecture set's from
    make_models.py's SPECS (its files have fewer layers than the published models; reading them
    back with GGUFReader parses the tokenizer), the reference models' from REFERENCE."""
    name = m.rsplit("-", 1)[0]
    if name in SPECS:
        return SPECS[name]["arch"], SPECS[name]["layers"]
    return REFERENCE[name]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--models", nargs="*", default=["llama-3.2-1b-Q4_K_M"])
    ap.add_argument("--out", default=os.path.join(HERE, "ground-truth-rpc.jsonl"))
    ap.add_argument("--subset", action="store_true", help="subset() of the layouts")
    ap.add_argument("--layout", action="append", default=[],
                    help="DEVICES:NGL[:TS] (e.g. 2:3:1,1), repeatable: these layouts instead of loads()/subset()")
    ap.add_argument("--no-kv-offload-fa", nargs="+", default=["on"], choices=["on", "off", "auto"],
                    help="the flash attention settings of the context with the cache on the host (decoders)")
    ap.add_argument("--only-no-kv-offload", action="store_true",
                    help="measure only the contexts with the cache on the host")
    ap.add_argument("--deadline", type=float, default=0, help="unix time after which no new load starts")
    ap.add_argument("--trace", action="store_true",
                    help="one load and one context in this process, llama.cpp's log echoed to stderr")
    ap.add_argument("--rpc", nargs="*", default=SERVERS, help="--trace: the RPC servers (host:port)")
    ap.add_argument("--ngl", type=int, default=0, help="--trace: n_gpu_layers")
    ap.add_argument("--ts", help="--trace: tensor split, e.g. 3,1")
    ap.add_argument("--n-ctx", type=int, default=4096, help="--trace: context")
    ap.add_argument("--n-seq", type=int, default=1, help="--trace: parallel sequences")
    ap.add_argument("--fa", default="on", choices=["on", "off", "auto"], help="--trace: flash attention")
    ap.add_argument("--no-kv-offload", action="store_true", help="--trace: cache on the host")
    ap.add_argument("--no-extra-bufts", action="store_true",
                    help="no extra CPU buffer types (AMX, CPU_REPACK) for the host's weights "
                         "(llama-box's --no-repack); on a CPU with AMX tiles they are on by default")
    ap.add_argument("--cache-type", default="f16", help="--trace: the K and V cache type (f16, q8_0, ...)")
    ap.add_argument("--rpc-server", default=os.environ.get("RPC_SERVER_BIN"),
                    help="start two servers from this binary for the run (default: use running ones)")
    ap.add_argument("--ports", nargs=2, type=int, default=[50052, 50053], help="the two servers' ports")
    ap.add_argument("--timeout", type=int, default=600, help="seconds one load and its contexts may take")
    args = ap.parse_args()
    if args.worker:
        return worker(json.load(open(args.worker)))
    if args.trace:
        return trace(args)
    set_ports(args.ports)
    procs = start_servers(args.rpc_server) if args.rpc_server else []
    try:
        measure(args)
    finally:
        stop_servers(procs)


def measure(args):
    server = os.path.basename(args.rpc_server) if args.rpc_server else "ggml-rpc-server (running)"
    with open(args.out, "a") as out:
        for m in args.models:
            path = os.path.join(MODELS, m + ".gguf")
            name, quant = m.rsplit("-", 1)
            arch, n_layer = model_of(m)
            layouts = [parse_layout(t) for t in args.layout] or (subset(n_layer) if args.subset else loads(n_layer))
            for ld in layouts:
                if args.deadline and time.time() > args.deadline:
                    print("deadline reached, stopping", flush=True)
                    return
                job = dict(ld, path=path, contexts=contexts(arch, args.no_kv_offload_fa, args.only_no_kv_offload),
                           use_extra_bufts=not args.no_extra_bufts)
                t0 = time.time()
                mi, results, errors = run_job(job, args.timeout)
                n_ok = sum(1 for r in results if r.get("ok"))
                print(f"{m} servers={len(ld['servers'])} ngl={ld['n_gpu_layers']} ts={ld['tensor_split']}: "
                      f"{n_ok}/{len(results)} ok in {time.time()-t0:.1f}s", flush=True)
                for e in errors:
                    print("  error:", json.dumps(e)[:800], flush=True)
                base = {"model": name, "file": path, "file_type": quant, "file_size": os.path.getsize(path),
                        "llama_cpp": {"llama_cpp_python": "0.3.36", "llama_cpp_commit": "0c1e57098",
                                      "build": "cmake GGML_RPC=ON GGML_NATIVE=ON Release (CPU + RPC backends)"},
                        "load": {"n_gpu_layers": ld["n_gpu_layers"], "tensor_split": ld["tensor_split"],
                                 "split_mode": "layer", "use_mmap": False, "use_extra_bufts": job["use_extra_bufts"],
                                 "rpc_servers": ld["servers"], "rpc_server_binary": server},
                        "devices": mi["devices"] if mi else None,
                        "model_info": mi}
                if not results:
                    rec = dict(base, ok=False, errors=errors)
                    out.write(json.dumps(rec) + "\n")
                for r in results:
                    rec = dict(base)
                    rec.update(r)
                    # merged view: model buffers + context buffers, exact bytes
                    allb = dict(mi["model_buffers_bytes"]) if mi else {}
                    allb.update(r.get("buffers_bytes", {}))
                    rec["buffers"] = allb
                    out.write(json.dumps(rec) + "\n")
                out.flush()


if __name__ == "__main__":
    main()
