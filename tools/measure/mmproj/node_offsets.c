// LD_PRELOAD shim: after ggml_backend_sched_alloc_graph, prints every node of the graph with its
// offset in its compute buffer (and the graph inputs), then exits before any computation. Run
// the probe with an input of the warm-up size (e.g. `mtmd_probe TEXT MMPROJ 1 1 -1 -1 448 448`)
// to see where ggml-alloc put each tensor, to compare with the estimator's replay.
// build: cc -O1 -shared -fPIC -o node_offsets.so node_offsets.c -I$LLAMA/ggml/include -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ggml-backend.h"
#include "ggml.h"

static long offset_of(const struct ggml_tensor * t) {
    if (!t->buffer) {
        return -1;
    }
    return (long) ((uintptr_t) t->data - (uintptr_t) ggml_backend_buffer_get_base(t->buffer));
}

bool ggml_backend_sched_alloc_graph(ggml_backend_sched_t sched, struct ggml_cgraph * graph) {
    bool (*real)(ggml_backend_sched_t, struct ggml_cgraph *) =
        dlsym(RTLD_NEXT, "ggml_backend_sched_alloc_graph");
    bool ok = real(sched, graph);
    int n = ggml_graph_n_nodes(graph);
    for (int i = 0; i < n; i++) {
        struct ggml_tensor * t = ggml_graph_node(graph, i);
        fprintf(stderr, "NODE %d %s %s off=%ld bytes=%zu view=%d\n", i, ggml_op_desc(t), t->name,
                offset_of(t), ggml_nbytes(t), t->view_src != NULL);
        for (int j = 0; j < GGML_MAX_SRC; j++) {
            struct ggml_tensor * s = t->src[j];
            if (s && (s->flags & GGML_TENSOR_FLAG_INPUT)) {
                fprintf(stderr, "INPUT %s off=%ld bytes=%zu read_by=%d\n", s->name, offset_of(s),
                        ggml_nbytes(s), i);
            }
        }
    }
    fflush(stderr);
    exit(ok ? 0 : 1);
}
