// LD_PRELOAD shim: prints the exact bytes of clip's weight buffer and compute reservation in the
// format measure_mmproj.py parses, without patching llama.cpp. clip.cpp allocates its weights
// with ggml_backend_alloc_ctx_tensors_from_buft and reads its reservation with
// ggml_backend_sched_get_buffer_size (tools/mtmd/clip.cpp at 0c1e57098); both calls cross into
// libggml-base, so they can be interposed.
// build: cc -O1 -shared -fPIC -o exact_bytes.so exact_bytes.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

typedef struct ggml_backend_buffer * buffer_t;
typedef struct ggml_context * context_t;
typedef struct ggml_backend_buffer_type * buft_t;
typedef struct ggml_backend_sched * sched_t;
typedef struct ggml_backend * backend_t;

size_t ggml_backend_buffer_get_size(buffer_t buffer);
const char * ggml_backend_buft_name(buft_t buft);
const char * ggml_backend_name(backend_t backend);

buffer_t ggml_backend_alloc_ctx_tensors_from_buft(context_t ctx, buft_t buft) {
    buffer_t (*real)(context_t, buft_t) = dlsym(RTLD_NEXT, "ggml_backend_alloc_ctx_tensors_from_buft");
    buffer_t buf = real(ctx, buft);
    if (buf) {
        fprintf(stderr, "EXACT model weights buffer: buft=%s bytes=%zu n_tensors=0\n",
                ggml_backend_buft_name(buft), ggml_backend_buffer_get_size(buf));
    }
    return buf;
}

size_t ggml_backend_sched_get_buffer_size(sched_t sched, backend_t backend) {
    size_t (*real)(sched_t, backend_t) = dlsym(RTLD_NEXT, "ggml_backend_sched_get_buffer_size");
    size_t size = real(sched, backend);
    fprintf(stderr, "EXACT compute buffer: buft=%s bytes=%zu\n", ggml_backend_name(backend), size);
    return size;
}
