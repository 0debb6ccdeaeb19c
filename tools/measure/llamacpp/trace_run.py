#!/usr/bin/env python3
"""Trace llama.cpp's graph allocator for one model load and one context.

    python trace_run.py MODEL.gguf LOG [--trace-lib DIR] [--ports P1,P2] [--ngl N] [--ts 3,1]
                        [--ctx 4096] [--nseq 1] [--fa on|off] [--no-kv-offload]

Runs one context of measure.py (host only, mmap load, as the CPU rows) or, with --ports, of
measure_rpc.py (RPC servers started here on 127.0.0.1 at those ports, stopped afterwards; no
mmap, as the offload rows) against the ggml-base of alloc_trace.sh (--trace-lib, default
/work/scratch/trace) with ALLOC_DBG=1 and GGML_SCHED_DEBUG=2. LOG gets, in order, llama.cpp's
log (the scheduler's splits included) and the allocator's lines: `buf B: ...allocating NAME
(SIZE bytes) - block K, offset O, chunk C`, `reusing parent P for N`, `exec: OP (NAME) <= SRCS`
and `ggml_gallocr_free_node: freeing NAME at {chunk=C, offset=O} (SIZE bytes)`. The measured
buffers (exact bytes) are printed as JSON. The log holds one graph reservation per
`llama_init_from_model` pass (the last is the one that sizes the buffers); `trace_cmp.py`
compares one with the estimator's replay.

Models over a few GiB: run it under `flock /work/mem.lock` (the RPC servers hold the weights).
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
BIN = os.environ.get("LLAMA_CPP_LIB_PATH", os.path.join(HERE, "build", "bin"))


def log_to_stderr(module):
    """Replace `module.capture_log` so that llama.cpp's log also goes to fd 2, in order with
    the allocator's fprintf(stderr) lines."""
    original = module.capture_log

    def capture(llama_cpp):
        lines = original(llama_cpp)
        buf = []

        @llama_cpp.llama_log_callback
        def cb(level, text, user):
            s = text.decode("utf-8", "replace") if text else ""
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
        capture.keep = cb
        return lines

    module.capture_log = capture


def worker(job_path):
    job = json.load(open(job_path))
    if job.get("servers"):
        import measure_rpc as m
    else:
        import measure as m
    log_to_stderr(m)
    m.worker(job_path)


def wait_port(port, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"rpc server on port {port} did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("model", nargs="?")
    ap.add_argument("log", nargs="?")
    ap.add_argument("--trace-lib", default="/work/scratch/trace")
    ap.add_argument("--ports", default="")
    ap.add_argument("--ngl", type=int, default=0)
    ap.add_argument("--ts", default="")
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--nseq", type=int, default=1)
    ap.add_argument("--fa", default="on")
    ap.add_argument("--no-kv-offload", action="store_true")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    ports = [int(p) for p in args.ports.split(",") if p]
    setting = dict(n_ctx=args.ctx, n_seq_max=args.nseq, type_k="f16", type_v="f16", flash_attn=args.fa,
                   n_batch=2048, n_ubatch=512, swa_full=False, kv_unified=False,
                   offload_kqv=not args.no_kv_offload, tag="trace")
    job = dict(path=os.path.abspath(args.model), contexts=[setting], use_mmap=not ports,
               servers=[f"127.0.0.1:{p}" for p in ports], n_gpu_layers=args.ngl,
               tensor_split=[float(x) for x in args.ts.split(",")] if args.ts else None)
    servers = []
    try:
        for p in ports:
            servers.append(subprocess.Popen([os.path.join(BIN, "ggml-rpc-server"), "-H", "127.0.0.1",
                                             "-p", str(p)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        for p in ports:
            wait_port(p)
        jp = os.path.join(tempfile.gettempdir(), f"trace-job.{os.getpid()}.json")
        json.dump(job, open(jp, "w"))
        env = dict(os.environ, LLAMA_CPP_LIB_PATH=BIN, LD_LIBRARY_PATH=f"{args.trace_lib}:{BIN}",
                   ALLOC_DBG="1", GGML_SCHED_DEBUG="2")
        with open(args.log, "w") as log:
            p = subprocess.run([sys.executable, __file__, "--worker", jp], stdout=subprocess.PIPE,
                               stderr=log, text=True, env=env, timeout=900)
        for ln in p.stdout.splitlines():
            try:
                o = json.loads(ln)
            except ValueError:
                continue
            if "settings" in o:
                buffers = {k: v for k, v in o.get("buffers_bytes", {}).items() if k.startswith("compute")}
                print(json.dumps({"ok": o.get("ok"), "compute": buffers}))
            elif "fatal" in o:
                print(json.dumps(o)[:2000])
        if p.returncode:
            print(f"worker exited with {p.returncode}; see {args.log}", file=sys.stderr)
    finally:
        for s in servers:
            s.terminate()
            s.wait()


if __name__ == "__main__":
    main()
