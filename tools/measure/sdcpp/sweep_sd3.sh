#!/bin/bash
# SD3.5 medium and large, or the models given as arguments (sd3_medium), at full depth (sd.cpp
# sizes the MMDiT's width by its depth) with CLIP-L, CLIP-G and T5-XXL as separate files,
# compute skipped, params kept, tensor data not read
# (SDCPP_SKIP_LOAD: the buffers are allocated but never touched, so 16 GB of zero weights cost
# no memory).
cd "$(dirname "$0")"  # the folder holding build/, models/ and runs/
export SDCPP_SKIP_COMPUTE=1 SDCPP_KEEP_PARAMS=1 SDCPP_SKIP_LOAD=1
T="--clip_l models/clip_l.f16.gguf --clip_g models/clip_g.f16.gguf --t5xxl models/t5xxl.f16.gguf"
for m in ${@:-sd3.5_medium sd3.5_large}; do for sz in 512 768 1024 1536; do for fa in 0 1; do
  extra=""; [ "$fa" = 1 ] && extra="--diffusion-fa"
  ./run_one.sh "skip_${m}_${sz}_tile0_fa${fa}" -- -m models/$m.f16.gguf $T -W $sz -H $sz -b 1 $extra
done; done; done
echo SWEEPDONE
