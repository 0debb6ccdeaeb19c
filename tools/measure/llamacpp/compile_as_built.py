#!/usr/bin/env python3
"""Compile a patched copy of one llama.cpp source file with the flags the build compiled the
original with, as BUILD_DIR/compile_commands.json records them (cmake writes it with
-DCMAKE_EXPORT_COMPILE_COMMANDS=ON), so that the object can replace the original's in that
build's libraries.

    python3 compile_as_built.py BUILD_DIR ORIGINAL PATCHED OBJECT

ORIGINAL is the source file as the build compiled it (LLAMA_CPP_SRC/ggml/src/ggml-alloc.c),
PATCHED its patched copy, OBJECT the object file to write. The build's command runs in its
directory with the source and the output replaced, and with `-iquote` the original's folder,
so that the copy's `#include "..."` of its neighbours finds them. Used by alloc_trace.sh and
rpc_nocommit.sh.
"""
import json
import os
import shlex
import subprocess
import sys


def main(build_dir, original, patched, obj):
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        entries = json.load(f)
    target = os.path.realpath(original)
    entry = next((e for e in entries
                  if os.path.realpath(os.path.join(e["directory"], e["file"])) == target), None)
    if entry is None:
        sys.exit(f"compile_as_built.py: {original} is not compiled in {build_dir}/compile_commands.json")
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out, replaced = [], set()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-o":
            out += ["-o", os.path.abspath(obj)]
            replaced.add("-o")
            i += 2
            continue
        if os.path.realpath(os.path.join(entry["directory"], arg)) == target:
            out.append(os.path.abspath(patched))
            replaced.add("source")
        else:
            out.append(arg)
        i += 1
    if replaced != {"-o", "source"}:
        sys.exit(f"compile_as_built.py: the command of {original} names no -o or no source: {args}")
    out[1:1] = ["-iquote", os.path.dirname(target)]
    subprocess.run(out, cwd=entry["directory"], check=True)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:5])
