#!/bin/sh
# Build a copy of ggml-base whose graph allocator logs every allocation, in-place reuse and free
# to stderr when ALLOC_DBG is set (ggml-alloc.c's own AT_PRINTF hooks, switched on), for comparing
# the estimator's allocator replay with llama.cpp's, allocation by allocation.
#
# Usage: alloc_trace.sh LLAMA_CPP_SRC BUILD_DIR OUT_DIR
#   LLAMA_CPP_SRC  the llama.cpp tree of the measurement build (vendor/llama.cpp of the sdist)
#   BUILD_DIR      its configured and built cmake directory (objects of ggml-base are reused; the
#                  copy is compiled with its compile_commands.json's flags: compile_as_built.py)
#   OUT_DIR        gets libggml-base.so.0; put it first: LD_LIBRARY_PATH=OUT_DIR ALLOC_DBG=1 ...
# Lines look like `buf 1: ggml_dyn_tallocr_alloc: allocating NAME (SIZE bytes) - block B, offset O,
# chunk C`, `reusing parent P for N` (N takes P's place), `buf 1: freeing extra E bytes from parent
# P for N` and `buf 1: ggml_gallocr_free_node: freeing NAME at {chunk=C, offset=O} (SIZE bytes)`;
# the buffer id is the scheduler's backend index (devices in order, the CPU last). With
# GGML_SCHED_DEBUG=2 the scheduler's splits come in the same log. measure_rpc.py --trace runs one
# layout with it; alloc_trace_view.py reads the log.
set -eu
src=$1 build=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
sed -e 's|^#define AT_PRINTF(...)$|#include <stdio.h>\nstatic int at_enabled(void) { static int e = -1; if (e < 0) { e = getenv("ALLOC_DBG") != NULL; } return e; }\n#define AT_PRINTF(...) do { if (at_enabled()) { fprintf(stderr, __VA_ARGS__); } } while (0)|' \
    -e 's|^\(        hn->addr = ggml_dyn_tallocr_alloc(alloc, size, node);\)$|        AT_PRINTF("buf %d: ", buffer_id);\n\1|' \
    -e 's|^\(    AT_PRINTF("%s: freeing %s at {chunk=%d, offset=%zu} (%zu bytes) - n_free_blocks = %d\\n",\)$|    AT_PRINTF("buf %d: ", buffer_id);\n\1|' \
    -e 's|^\(        AT_PRINTF("freeing extra %zu bytes from parent %s for %s\\n", extra_size, parent->name, node->name);\)$|        AT_PRINTF("buf %d: ", p_hn->buffer_id);\n\1|' \
    "$src/ggml/src/ggml-alloc.c" > "$out/ggml-alloc.c"
[ "$(grep -c '"buf %d: "' "$out/ggml-alloc.c")" = 3 ] && grep -q at_enabled "$out/ggml-alloc.c" ||
    { echo "alloc_trace.sh: ggml-alloc.c did not take the patch (another llama.cpp commit?)" >&2; exit 1; }
python3 "$here/compile_as_built.py" "$build" "$src/ggml/src/ggml-alloc.c" "$out/ggml-alloc.c" \
    "$out/ggml-alloc.c.o"
objs=$(ls "$build"/ggml/src/CMakeFiles/ggml-base.dir/*.o | grep -v '/ggml-alloc\.c\.o$')
c++ -fPIC -O3 -shared -Wl,-soname,libggml-base.so.0 -o "$out/libggml-base.so.0" $objs "$out/ggml-alloc.c.o" \
    -fopenmp -lpthread -lm
echo "$out/libggml-base.so.0"
