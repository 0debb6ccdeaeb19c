#!/usr/bin/env python3
"""Copy measured projectors into the repository's test fixtures.

For each projector measured in $MMPROJ_WORK/ground-truth-mmproj.jsonl (by measure_mmproj.py):
the mmproj header and the text stub cut at its tensor data (headers only) go to
tests/fixtures/gguf/vlm/<name>/, and each run becomes one row of
tests/fixtures/llamacpp-memory/measurements-mmproj.jsonl in that file's format. Projectors
already in the fixture file are left as they are.
usage: MMPROJ_WORK=DIR python3 to_fixtures.py REPO_ROOT [NAME ...]"""
import json, os, shutil, sys

from gguf import GGUFReader

WORK = os.environ["MMPROJ_WORK"]


def cut_header(src, dst):
    """Write the bytes of `src` up to its tensor data (header, metadata, tensor infos)."""
    start = GGUFReader(src).data_offset
    with open(src, "rb") as f:
        head = f.read(start)
    with open(dst, "wb") as f:
        f.write(head)


def main():
    repo, only = sys.argv[1], set(sys.argv[2:])
    table = os.path.join(repo, "tests/fixtures/llamacpp-memory/measurements-mmproj.jsonl")
    with open(table) as f:
        known = {json.loads(line)["projector"] for line in f if line.strip()}
    runs = [json.loads(line) for line in open(os.path.join(WORK, "ground-truth-mmproj.jsonl"))]
    rows = []
    for run in runs:
        name = run["projector"]
        if name in known or (only and name not in only) or not run.get("ok"):
            continue
        vlm = os.path.join(repo, "tests/fixtures/gguf/vlm", name)
        os.makedirs(vlm, exist_ok=True)
        mmproj = os.path.basename(run["header"])
        text = os.path.basename(run["text_model"]).replace(".gguf", ".header.gguf")
        shutil.copyfile(os.path.join(WORK, run["header"]), os.path.join(vlm, mmproj))
        cut_header(os.path.join(WORK, run["text_model"]), os.path.join(vlm, text))
        settings = {k: run["settings"][k] for k in
                    ("flash_attn", "warmup", "image_min_tokens", "image_max_tokens", "input_image")}
        rows.append({"projector": name, "mmproj_header": mmproj, "text_model_header": text,
                     "text_n_embd": run["text_n_embd"], "llama_cpp_commit": "0c1e57098",
                     "settings": settings, "ok": True, "buffers": run["buffers"],
                     "hparams": run["hparams"], "warmup_image_size": run["warmup_image_size"],
                     "warmup_audio_frames": run.get("warmup_audio_frames"),
                     "flash_attn_effective": run.get("flash_attn_effective")}
                    # per encoder, where the file has more than one (vision and audio)
                    | ({"encoders": run["encoders"]} if len(run.get("encoders", [])) > 1 else {}))
    with open(table, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"{len(rows)} rows added")


if __name__ == "__main__":
    main()
