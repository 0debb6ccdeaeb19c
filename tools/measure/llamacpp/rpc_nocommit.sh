#!/bin/sh
# Build a measurement-only ggml RPC server that does not commit weight memory: its set_tensor
# checks the tensor and the bounds as usual and then drops the payload (rpc_nocommit.patch), so
# the buffers it allocates (MAP_NORESERVE mappings, never written: weight buffers are not
# cleared; only KV, recurrent-state and output buffers are, and those are small) stay
# uncommitted. Only
# for zero-weight models whose sizes do not depend on weight values (make_models.py's files):
# the server then holds a 34 GB model in a few hundred MB of RAM. Never serve a model with it.
#
# The client commits what it loads too (use_mmap = false: it reads the CPU layers' weights into
# its host buffers and every offloaded tensor into a staging buffer, then the RPC client copies
# that into its message): a libllama whose loader neither reads the file nor sends offloaded
# weights (loader_noread.patch) leaves those pages untouched as well, and loads in seconds.
# Neither changes a size: every buffer is allocated, placed and sized before any weight is
# written (README: "A server that does not commit weights").
#
# Usage: rpc_nocommit.sh LLAMA_CPP_SRC BUILD_DIR OUT_DIR
#   LLAMA_CPP_SRC  the llama.cpp tree of the measurement build (vendor/llama.cpp of the sdist)
#   BUILD_DIR      its configured and built cmake directory (transport.cpp.o, rpc-server.cpp.o and
#                  the other ggml libraries are reused; nothing in it is written)
#   OUT_DIR        gets OUT_DIR/client, a library directory for measure_rpc.py's client
#                  (LLAMA_CPP_LIB_PATH=OUT_DIR/client: the patched libllama.so, links to BUILD_DIR's
#                  unpatched ggml libraries), and the patched libggml-rpc.so.0 and
#                  ggml-rpc-server-nocommit, whose runpath
#                  names OUT_DIR before BUILD_DIR/bin; it links the patched library directly (first,
#                  --no-as-needed), so libggml's own lookup of libggml-rpc.so.0 finds it loaded
# The patched ggml-rpc.cpp and llama-model-loader.cpp are compiled with the flags BUILD_DIR's
# compile_commands.json gives the originals (compile_as_built.py); at 0c1e57098 BUILD_DIR's
# libllama objects carry gt_bytes.patch already (the loader is not in it).
set -eu
src=$1 build=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cp "$src/ggml/src/ggml-rpc/ggml-rpc.cpp" "$out/ggml-rpc.cpp"
patch --quiet "$out/ggml-rpc.cpp" "$here/rpc_nocommit.patch" ||
    { echo "rpc_nocommit.sh: ggml-rpc.cpp did not take the patch (another llama.cpp commit?)" >&2; exit 1; }
python3 "$here/compile_as_built.py" "$build" "$src/ggml/src/ggml-rpc/ggml-rpc.cpp" "$out/ggml-rpc.cpp" \
    "$out/ggml-rpc.cpp.o"
c++ -fPIC -O3 -shared -Wl,-soname,libggml-rpc.so.0 -o "$out/libggml-rpc.so.0" "$out/ggml-rpc.cpp.o" \
    "$build/ggml/src/ggml-rpc/CMakeFiles/ggml-rpc.dir/transport.cpp.o" \
    -Wl,-rpath,"$build/bin" "$build/bin/libggml-base.so.0"
c++ -O3 -o "$out/ggml-rpc-server-nocommit" "$build/tools/rpc/CMakeFiles/ggml-rpc-server.dir/rpc-server.cpp.o" \
    -Wl,--enable-new-dtags -Wl,-rpath,"$out:$build/bin" -Wl,--no-as-needed "$out/libggml-rpc.so.0" \
    "$build/bin/libggml.so.0" "$build/bin/libggml-cpu.so.0" "$build/bin/libggml-base.so.0"
mkdir -p "$out/client"
cp "$src/src/llama-model-loader.cpp" "$out/client/llama-model-loader.cpp"
patch --quiet "$out/client/llama-model-loader.cpp" "$here/loader_noread.patch" ||
    { echo "rpc_nocommit.sh: llama-model-loader.cpp did not take the patch" >&2; exit 1; }
python3 "$here/compile_as_built.py" "$build" "$src/src/llama-model-loader.cpp" \
    "$out/client/llama-model-loader.cpp" "$out/client/llama-model-loader.cpp.o"
objs=$(find "$build/src/CMakeFiles/llama.dir" -name '*.o' ! -name 'llama-model-loader.cpp.o' | sort)
c++ -fPIC -O3 -shared -Wl,-soname,libllama.so.0 -o "$out/client/libllama.so.0" $objs \
    "$out/client/llama-model-loader.cpp.o" -Wl,-rpath,"$build/bin" "$build/bin/libggml.so.0" \
    "$build/bin/libggml-cpu.so.0" "$build/bin/libggml-rpc.so.0" "$build/bin/libggml-base.so.0"
ln -sf libllama.so.0 "$out/client/libllama.so"
for lib in libggml libggml-base libggml-cpu libggml-rpc; do
    ln -sf "$build/bin/$lib.so.0" "$out/client/$lib.so.0"
    ln -sf "$build/bin/$lib.so" "$out/client/$lib.so"
done
ldd "$out/ggml-rpc-server-nocommit" | grep -q "libggml-rpc.so.0 => $out/" ||
    { echo "rpc_nocommit.sh: the server does not load the patched libggml-rpc.so.0" >&2; exit 1; }
echo "$out/ggml-rpc-server-nocommit"
