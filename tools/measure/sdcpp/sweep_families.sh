#!/bin/bash
# Buffer sweep over the families beyond SD 1.5 (SD 2.x, SDXL, FLUX.1 with separate CLIP-L, T5-XXL
# and VAE files), with compute skipped and params kept (see sweep.sh). Batch is left at 1: the
# SD 1.5 sweep shows it changes no buffer.
cd "$(dirname "$0")"  # the folder holding build/, models/ and runs/
export SDCPP_SKIP_COMPUTE=1 SDCPP_KEEP_PARAMS=1
run() { # id model-args size tiling fa
  local id=$1 margs=$2 sz=$3 tl=$4 fa=$5 extra=""
  [ "$tl" = 1 ] && extra="$extra --vae-tiling"
  [ "$fa" = 1 ] && extra="$extra --diffusion-fa"
  ./run_one.sh "$id" -- $margs -W $sz -H $sz -b 1 $extra
}
F="--diffusion-model models/flux_reduced.safetensors --clip_l models/clip_l.safetensors --t5xxl models/t5xxl_q4_0.gguf --vae models/flux_ae.safetensors --cfg-scale 1"
for sz in 512 768 1024; do for fa in 0 1; do for tl in 0 1; do
  [ "$sz" = 768 ] && [ "$tl" = 1 ] && continue
  run "skip_sd21_${sz}_tile${tl}_fa${fa}" "-m models/sd21.safetensors" $sz $tl $fa
  run "skip_sdxl_${sz}_tile${tl}_fa${fa}" "-m models/sdxl.safetensors" $sz $tl $fa
  run "skip_flux_${sz}_tile${tl}_fa${fa}" "$F" $sz $tl $fa
done; done; done
echo SWEEPDONE
