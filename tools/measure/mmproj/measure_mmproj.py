#!/usr/bin/env python3
"""Run mtmd_probe for each projector x settings, parse EXACT buffer lines and printed hparams,
append one JSON object per run to ground-truth-mmproj.jsonl.
usage: python measure_mmproj.py [--encode] [--only NAME ...]"""
import argparse, json, os, re, subprocess, time
HERE = os.path.dirname(os.path.abspath(__file__))
# The probe binary, models and logs live in scratch space (MMPROJ_WORK).
WORK = os.environ.get("MMPROJ_WORK", HERE)
PROBE = os.path.join(WORK, "mtmd_probe")
OUT = os.path.join(WORK, "ground-truth-mmproj.jsonl")
LOGS = os.path.join(WORK, "logs")

def parse(log):
    r = {"buffers": {}, "buffers_all": [], "hparams": {}, "warmup_image_size": None, "encoders": []}
    for line in log.splitlines():
        m = re.search(r"EXACT model weights buffer: buft=(\S+) bytes=(\d+) n_tensors=(\d+)", line)
        if m:
            # Each encoder (clip context) loads its own weights first: a file with a vision and
            # an audio encoder (Qwen2.5-Omni) has two contexts, whose buffers add up.
            r["encoders"].append({"weights": int(m[2]), "compute_reserve": None})
            key = f"clip_weights:{m[1].lower()}"
            r["buffers"][key] = sum(e["weights"] for e in r["encoders"]); r["n_tensors_loaded"] = int(m[3])
            r["buffers_all"].append({"kind": "clip_weights", "buft": m[1], "bytes": int(m[2])})
        m = re.search(r"EXACT compute buffer: buft=(\S+) bytes=(\d+)", line)
        if m:
            # within an encoder the last reserve wins (auto-FA may reserve twice)
            if r["encoders"]:
                r["encoders"][-1]["compute_reserve"] = int(m[2])
            r["buffers"][f"clip_compute_reserve:{m[1].lower()}"] = sum(
                e["compute_reserve"] or 0 for e in r["encoders"]) or int(m[2])
            r["buffers_all"].append({"kind": "clip_compute_reserve", "buft": m[1], "bytes": int(m[2])})
        m = re.search(r"EXACT encode compute buffer: buft=(\S+) bytes=(\d+) \(image (\d+) x (\d+), n_batch (\d+)\)", line)
        if m:
            r["buffers"][f"clip_compute_after_encode:{m[1]}"] = int(m[2])
            r["buffers_all"].append({"kind": "clip_compute_after_encode", "buft": m[1], "bytes": int(m[2]),
                                     "preprocessed_image": [int(m[3]), int(m[4])], "n_batch": int(m[5])})
        m = re.search(r"EXACT model size bytes=(\d+) metadata size bytes=(\d+)", line)
        if m: r["sum_tensor_nbytes_in_file"] = int(m[1]); r["ctx_meta_bytes"] = int(m[2])
        m = re.match(r"load_hparams: (\w+):\s+(.*?)\s*$", line)
        if m and not m[1].startswith("model") and not m[1].startswith("metadata") and not m[1].startswith("EXACT"):
            r["hparams"][m[1]] = m[2]
        m = re.search(r"warmup with image size = (\d+) x (\d+)", line)
        if m: r["warmup_image_size"] = [int(m[1]), int(m[2])]
        if m and r["encoders"]: r["encoders"][-1]["warmup_image_size"] = [int(m[1]), int(m[2])]
        m = re.search(r"warmup with audio size = (\d+)", line)
        if m: r["warmup_audio_frames"] = int(m[1])
        if m and r["encoders"]: r["encoders"][-1]["warmup_audio_frames"] = int(m[1])
        m = re.search(r"warmup: flash attention is (\w+)", line)
        if m: r["flash_attn_effective"] = m[1]
        if m and r["encoders"]: r["encoders"][-1]["flash_attn_effective"] = m[1]
        m = re.search(r"graph splits = (\d+), nodes = (\d+)", line)
        if m: r["graph_nodes"] = int(m[2])
        m = re.search(r"PROBE: image chunk n_tokens=(\d+)", line)
        if m: r["image_n_tokens"] = int(m[1])
        m = re.search(r"PROBE: encode rc=(-?\d+)", line)
        if m: r["encode_rc"] = int(m[1])
        if "WARNING: flash attention not supported" in line: r["fa_fallback_warning"] = True
    r["ok"] = "PROBE: done" in log
    return r

def run(proj, fa=-1, warmup=1, min_tok=-1, max_tok=-1, img=None, tag=""):
    args = [PROBE, proj["text_model"], proj["file"], str(fa), str(warmup), str(min_tok), str(max_tok)]
    if img: args += [str(img[0]), str(img[1])]
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True, cwd=WORK)
    dt = time.time() - t0
    log = p.stdout + p.stderr
    name = f"{proj['projector']}_fa{fa}_w{warmup}_min{min_tok}_max{max_tok}" + (f"_img{img[0]}x{img[1]}" if img else "")
    with open(os.path.join(LOGS, name + ".log"), "w") as f: f.write(log)
    r = parse(log)
    rec = {"projector": proj["projector"], "file": os.path.relpath(proj["file"], WORK),
           "header": os.path.relpath(proj["header"], WORK), "text_model": os.path.relpath(proj["text_model"], WORK),
           "text_n_embd": proj["text"]["n_embd"],
           "settings": {"flash_attn": {-1: "auto", 0: "off", 1: "on"}[fa], "warmup": bool(warmup),
                        "image_min_tokens": min_tok, "image_max_tokens": max_tok,
                        "input_image": list(img) if img else None, "use_gpu": False, "n_threads": 2},
           "rc": p.returncode, "wall_s": round(dt, 2), "log": os.path.relpath(os.path.join(LOGS, name + ".log"), WORK),
           "file_sum_tensor_nbytes": proj["sum_tensor_nbytes"], "file_n_tensors": proj["n_tensors"],
           "file_data_offset": proj["data_offset"], **r}
    with open(OUT, "a") as f: f.write(json.dumps(rec) + "\n")
    print(f"{name}: rc={p.returncode} {dt:.1f}s {r['buffers']} fa={r.get('flash_attn_effective')} warm={r['warmup_image_size']} tok={r.get('image_n_tokens')}", flush=True)
    return rec

if __name__ == "__main__":
    ap = argparse.ArgumentParser(); ap.add_argument("--phase", default="init"); ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    os.makedirs(LOGS, exist_ok=True)
    projs = json.load(open(os.path.join(WORK, "models.json")))
    if a.only: projs = [p for p in projs if p["projector"] in a.only]
    for p in projs:
        dyn = p["projector"].startswith(("qwen2-vl", "qwen2.5-vl", "qwen3-vl", "smolvlm"))
        if a.phase == "init":
            for fa in (-1, 0, 1):
                run(p, fa=fa)
            run(p, fa=-1, warmup=0)
            if dyn:
                for mx in (256, 1024):
                    run(p, fa=-1, max_tok=mx)
                run(p, fa=-1, min_tok=1024, max_tok=1024) if p["projector"].startswith("qwen") else None
    if a.phase == "encode":
        P = {p["projector"]: p for p in projs}
        plan = [("smolvlm-256m", -1, 0, -1, -1, (512, 512)), ("smolvlm-256m", 0, 0, -1, -1, (512, 512)),
                ("smolvlm-256m", -1, 1, -1, -1, (512, 512)),
                ("llava-1.5-7b", -1, 0, -1, -1, (336, 336)), ("llava-1.5-7b", 0, 0, -1, -1, (336, 336)),
                ("qwen2.5-vl-3b", -1, 0, -1, -1, (224, 224)), ("qwen2.5-vl-3b", -1, 1, -1, -1, (224, 224)),
                ("qwen2.5-vl-3b", -1, 0, -1, -1, (448, 448)), ("qwen2.5-vl-3b", 0, 0, -1, -1, (448, 448)),
                ("qwen2.5-vl-3b", -1, 0, -1, 64, (448, 448)),
                ("qwen2-vl-2b", -1, 0, -1, -1, (448, 448)), ("qwen2-vl-2b", 0, 0, -1, -1, (448, 448)),
                ("smolvlm-instruct", -1, 0, -1, -1, (384, 384)),
                ("gemma-3-4b", -1, 0, -1, -1, (896, 896))]
        for name, fa, w, mn, mx, img in plan:
            if name in P:
                run(P[name], fa=fa, warmup=w, min_tok=mn, max_tok=mx, img=img)
