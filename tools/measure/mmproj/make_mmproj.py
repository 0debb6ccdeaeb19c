#!/usr/bin/env python3
"""Write mmproj (CLIP/vision projector) GGUF files with real projectors' exact metadata and tensor
shapes/types (zero weights, sparse data region), plus matching tiny text models (llama arch,
1 layer, correct n_embd) and header-only copies of each mmproj file.

Tensor names/types follow the vendored converters:
  - LLaVA-1.5: tools/mtmd/legacy-models/convert_image_encoder_to_gguf.py (llava_surgery path):
    last CLIP layer dropped (block_count 23), no post_ln, 4-D/2-D .weight -> F16, rest F32.
  - Qwen2-VL / Qwen2.5-VL: conversion/qwenvl.py Qwen2VLVisionModel (qkv split, Conv3D split into
    v.patch_embd.weight + v.patch_embd.weight.1, both F16 via MmprojModel.tensor_force_quant).
  - Gemma-3: conversion/gemma.py Gemma3VisionModel (.embeddings. -> F32, input_projection -> F16).
  - SmolVLM: conversion/smolvlm.py SmolVLMModel (.embeddings. -> F32).
  - base rules: 1-D or *_norm.weight -> F32; v.position_embd -> F32 (unless forced); else F16.
Usage: python make_mmproj.py
"""
import json, os, shutil, sys
import numpy as np
import gguf
from gguf import GGUFWriter, GGMLQuantizationType as QT

HERE = os.path.dirname(os.path.abspath(__file__))
# Zero-weight files go to scratch space (MMPROJ_WORK), only headers are kept.
WORK = os.environ.get("MMPROJ_WORK", HERE)
MODELS = os.path.join(WORK, "models")
HEADERS = os.path.join(WORK, "headers")
F16, F32 = QT.F16, QT.F32
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def nbytes(shape, qt):
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    return int(np.prod(shape)) // bs * ts


def vit_block(i, E, F, *, ln_bias=True, gated=False, ffn_bias=True, swapped_names=False):
    """ggml ne order (ne0, ne1, ...)"""
    p = f"v.blk.{i}"
    ts = [(f"{p}.ln1.weight", (E,), F32)]
    if ln_bias: ts.append((f"{p}.ln1.bias", (E,), F32))
    for a in ("attn_q", "attn_k", "attn_v", "attn_out"):
        ts += [(f"{p}.{a}.weight", (E, E), F16), (f"{p}.{a}.bias", (E,), F32)]
    ts.append((f"{p}.ln2.weight", (E,), F32))
    if ln_bias: ts.append((f"{p}.ln2.bias", (E,), F32))
    if gated:
        ts += [(f"{p}.ffn_gate.weight", (E, F), F16), (f"{p}.ffn_gate.bias", (F,), F32)]
    up, down = ("ffn_down", "ffn_up") if swapped_names else ("ffn_up", "ffn_down")
    ts += [(f"{p}.{up}.weight", (E, F), F16)]
    if ffn_bias: ts.append((f"{p}.{up}.bias", (F,), F32))
    ts += [(f"{p}.{down}.weight", (F, E), F16)]
    if ffn_bias: ts.append((f"{p}.{down}.bias", (E,), F32))
    return ts


SPECS = {}
def spec(name):
    def d(f): SPECS[name] = f; return f
    return d


@spec("llava-1.5-7b")
def llava15():
    # openai/clip-vit-large-patch14-336 + llava-v1.5-7b mm_projector (mlp2x_gelu), legacy converter
    E, F, L, P, S = 1024, 4096, 23, 14, 336
    n_pos = (S // P) ** 2 + 1
    kv = dict(s={"clip.projector_type": "mlp", "general.description": "image encoder for LLaVA",
                 "general.name": "openai/clip-vit-large-patch14-336"},
              b={"clip.has_text_encoder": False, "clip.has_vision_encoder": True, "clip.has_llava_projector": True,
                 "clip.use_gelu": False},
              u={"general.file_type": 1, "clip.vision.image_size": S, "clip.vision.patch_size": P,
                 "clip.vision.embedding_length": E, "clip.vision.feed_forward_length": F,
                 "clip.vision.projection_dim": 768, "clip.vision.attention.head_count": 16,
                 "clip.vision.block_count": L},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-5},
              a={"clip.vision.image_mean": CLIP_MEAN, "clip.vision.image_std": CLIP_STD})
    ts = [("mm.0.weight", (E, 4096), F16), ("mm.0.bias", (4096,), F32),
          ("mm.2.weight", (4096, 4096), F16), ("mm.2.bias", (4096,), F32),
          ("v.class_embd", (E,), F32), ("v.patch_embd.weight", (P, P, 3, E), F16),
          ("v.position_embd.weight", (E, n_pos), F16),
          ("v.pre_ln.weight", (E,), F32), ("v.pre_ln.bias", (E,), F32)]
    for i in range(L):
        ts += vit_block(i, E, F, swapped_names=True)
    return kv, ts, dict(name="llama-2-7b-text-stub", n_embd=4096, n_head=32)


@spec("qwen2-vl-2b")
def qwen2vl2b():
    E, F, L, P = 1280, 5120, 32, 14
    OUT = 1536
    kv = dict(s={"clip.projector_type": "qwen2vl_merger", "general.name": "Qwen2-VL-2B-Instruct"},
              b={"clip.has_vision_encoder": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": 560,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": 1536,  # converter quirk: vision hidden_size (=1536) written as n_ff
                 "clip.vision.block_count": L, "clip.vision.attention.head_count": 16},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-6},
              a={"clip.vision.image_mean": CLIP_MEAN, "clip.vision.image_std": CLIP_STD})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.weight.1", (P, P, 3, E), F16)]
    for i in range(L):
        ts += vit_block(i, E, F)
    ts += [("v.post_ln.weight", (E,), F32), ("v.post_ln.bias", (E,), F32),
           ("mm.0.weight", (4 * E, 4 * E), F16), ("mm.0.bias", (4 * E,), F32),
           ("mm.2.weight", (4 * E, OUT), F16), ("mm.2.bias", (OUT,), F32)]
    return kv, ts, dict(name="qwen2-1.5b-text-stub", n_embd=OUT, n_head=12)


@spec("qwen2.5-vl-3b")
def qwen25vl3b():
    E, F, L, P = 1280, 3420, 32, 14
    OUT = 2048
    kv = dict(s={"clip.projector_type": "qwen2.5vl_merger", "general.name": "Qwen2.5-VL-3B-Instruct"},
              b={"clip.has_vision_encoder": True, "clip.use_silu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": 560,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 16, "clip.vision.n_wa_pattern": 8},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-6},
              a={"clip.vision.image_mean": CLIP_MEAN, "clip.vision.image_std": CLIP_STD})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.weight.1", (P, P, 3, E), F16)]
    for i in range(L):
        ts += vit_block(i, E, F, ln_bias=False, gated=True)  # RMSNorm, SiLU-gated MLP with biases
    ts += [("v.post_ln.weight", (E,), F32),
           ("mm.0.weight", (4 * E, 4 * E), F16), ("mm.0.bias", (4 * E,), F32),
           ("mm.2.weight", (4 * E, OUT), F16), ("mm.2.bias", (OUT,), F32)]
    return kv, ts, dict(name="qwen2.5-3b-text-stub", n_embd=OUT, n_head=16)


def siglip(E, F, L, P, S, *, post_ln=True):
    n_pos = (S // P) ** 2
    ts = [("v.patch_embd.weight", (P, P, 3, E), F32), ("v.patch_embd.bias", (E,), F32),
          ("v.position_embd.weight", (E, n_pos), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
    if post_ln:
        ts += [("v.post_ln.weight", (E,), F32), ("v.post_ln.bias", (E,), F32)]
    return ts


@spec("gemma-3-4b")
def gemma3_4b():
    E, F, L, P, S, OUT = 1152, 4304, 27, 14, 896, 2560
    kv = dict(s={"clip.projector_type": "gemma3", "general.name": "gemma-3-4b-it"},
              b={"clip.has_vision_encoder": True, "clip.use_gelu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": S,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 16},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-6},
              a={"clip.vision.image_mean": [0.5] * 3, "clip.vision.image_std": [0.5] * 3})
    ts = siglip(E, F, L, P, S)
    ts += [("mm.input_projection.weight", (OUT, E), F16), ("mm.soft_emb_norm.weight", (E,), F32)]
    return kv, ts, dict(name="gemma-3-4b-text-stub", n_embd=OUT, n_head=8)


@spec("smolvlm-instruct")
def smolvlm():
    # HuggingFaceTB/SmolVLM-Instruct (idefics3, SigLIP so400m @384, scale_factor 3, longest_edge 1536)
    E, F, L, P, S, OUT, SF = 1152, 4304, 27, 14, 384, 2048, 3
    kv = dict(s={"clip.projector_type": "idefics3", "general.name": "SmolVLM-Instruct"},
              b={"clip.has_vision_encoder": True, "clip.use_gelu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": S,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 16, "clip.vision.projector.scale_factor": SF,
                 "clip.vision.preproc_image_size": 1536},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-6},
              a={"clip.vision.image_mean": [0.5] * 3, "clip.vision.image_std": [0.5] * 3})
    ts = siglip(E, F, L, P, S)
    ts += [("mm.model.fc.weight", (E * SF * SF, OUT), F16)]
    return kv, ts, dict(name="smollm-1.7b-text-stub", n_embd=OUT, n_head=32)


@spec("smolvlm-256m")
def smolvlm256():
    # HuggingFaceTB/SmolVLM-256M-Instruct (idefics3, SigLIP base-patch16-512, scale_factor 4, longest_edge 2048)
    E, F, L, P, S, OUT, SF = 768, 3072, 12, 16, 512, 576, 4
    kv = dict(s={"clip.projector_type": "idefics3", "general.name": "SmolVLM-256M-Instruct"},
              b={"clip.has_vision_encoder": True, "clip.use_gelu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": S,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 12, "clip.vision.projector.scale_factor": SF,
                 "clip.vision.preproc_image_size": 2048},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-6},
              a={"clip.vision.image_mean": [0.5] * 3, "clip.vision.image_std": [0.5] * 3})
    ts = siglip(E, F, L, P, S)
    ts += [("mm.model.fc.weight", (E * SF * SF, OUT), F16)]
    return kv, ts, dict(name="smollm2-135m-text-stub", n_embd=OUT, n_head=9)


def rms_block(i, E, F, *, gated=True):
    """Pixtral-style block: RMS norms without bias, no attention biases, SiLU-gated FFN."""
    p = f"v.blk.{i}"
    ts = [(f"{p}.ln1.weight", (E,), F32), (f"{p}.ln2.weight", (E,), F32)]
    for a in ("attn_q", "attn_k", "attn_v", "attn_out"):
        ts.append((f"{p}.{a}.weight", (E, E), F16))
    if gated:
        ts.append((f"{p}.ffn_gate.weight", (E, F), F16))
    ts += [(f"{p}.ffn_up.weight", (E, F), F16), (f"{p}.ffn_down.weight", (F, E), F16)]
    return ts


def pixtral_kv(name, E, F, L, P, S, OUT, merge=None):
    u = {"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": S,
         "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
         "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
         "clip.vision.attention.head_count": 16}
    if merge:
        u["clip.vision.spatial_merge_size"] = merge
    return dict(s={"clip.projector_type": "pixtral", "general.name": name},
                b={"clip.has_vision_encoder": True, "clip.use_silu": True}, u=u,
                f={"clip.vision.attention.layer_norm_epsilon": 1e-5},
                a={"clip.vision.image_mean": CLIP_MEAN, "clip.vision.image_std": CLIP_STD})


@spec("pixtral-12b")
def pixtral12b():
    # mistral-community/pixtral-12b: vision_config hidden 1024, intermediate 4096, 24 layers,
    # patch 16, image 1024; text Mistral-NeMo (5120); projector linear_1/linear_2 with biases
    E, F, L, P, S, OUT = 1024, 4096, 24, 16, 1024, 5120
    kv = pixtral_kv("pixtral-12b", E, F, L, P, S, OUT)
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.pre_ln.weight", (E,), F32)]
    for i in range(L):
        ts += rms_block(i, E, F)
    ts += [("mm.1.weight", (E, OUT), F16), ("mm.1.bias", (OUT,), F32),
           ("mm.2.weight", (OUT, OUT), F16), ("mm.2.bias", (OUT,), F32),
           ("v.token_embd.img_break", (OUT,), F32)]
    return kv, ts, dict(name="mistral-nemo-text-stub", n_embd=OUT, n_head=32)


@spec("mistral-small-3.1-24b")
def mistral_small31():
    # mistralai/Mistral-Small-3.1-24B-Instruct-2503: pixtral tower with patch 14, image 1540,
    # spatial_merge_size 2 (patch merger 4096 -> 1024, input RMS norm), projector without biases
    E, F, L, P, S, OUT, M = 1024, 4096, 24, 14, 1540, 5120, 2
    kv = pixtral_kv("Mistral-Small-3.1-24B-Instruct-2503", E, F, L, P, S, OUT, merge=M)
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.pre_ln.weight", (E,), F32)]
    for i in range(L):
        ts += rms_block(i, E, F)
    ts += [("mm.input_norm.weight", (E,), F32), ("mm.patch_merger.weight", (E * M * M, E), F16),
           ("mm.1.weight", (E, OUT), F16), ("mm.2.weight", (OUT, OUT), F16),
           ("v.token_embd.img_break", (OUT,), F32)]
    return kv, ts, dict(name="mistral-small-24b-text-stub", n_embd=OUT, n_head=32)


@spec("internvl3-2b")
def internvl3_2b():
    # OpenGVLab/InternVL3-2B: InternViT-300M-448px-V2.5 (1024, 4096, 24 layers, patch 14, 448,
    # class token, layer scale), downsample 0.5 (scale 2), mlp1 LayerNorm + 2 linears to Qwen2.5-1.5B
    E, F, L, P, S, OUT, SF = 1024, 4096, 24, 14, 448, 1536, 2
    kv = dict(s={"clip.projector_type": "internvl", "general.name": "InternVL3-2B"},
              b={"clip.has_vision_encoder": True, "clip.use_gelu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": S,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 16, "clip.vision.projector.scale_factor": SF},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-6},
              a={"clip.vision.image_mean": [0.485, 0.456, 0.406], "clip.vision.image_std": [0.229, 0.224, 0.225]})
    n_pos = (S // P) ** 2 + 1
    ts = [("v.class_embd", (E,), F32), ("v.patch_embd.weight", (P, P, 3, E), F16),
          ("v.patch_embd.bias", (E,), F32), ("v.position_embd.weight", (E, n_pos), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
        ts += [(f"v.blk.{i}.ls1.weight", (E,), F32), (f"v.blk.{i}.ls2.weight", (E,), F32)]
    W = E * SF * SF
    ts += [("mm.model.mlp.0.weight", (W,), F32), ("mm.model.mlp.0.bias", (W,), F32),
           ("mm.model.mlp.1.weight", (W, OUT), F16), ("mm.model.mlp.1.bias", (OUT,), F32),
           ("mm.model.mlp.3.weight", (OUT, OUT), F16), ("mm.model.mlp.3.bias", (OUT,), F32)]
    return kv, ts, dict(name="qwen2.5-1.5b-text-stub", n_embd=OUT, n_head=12)


@spec("qwen3-vl-2b")
def qwen3vl2b():
    # Qwen/Qwen3-VL-2B-Instruct vision_config: hidden 1024, intermediate 4096, depth 24, 16 heads,
    # patch 16, spatial merge 2, out_hidden 2048, num_position_embeddings 2304, deepstack [5, 11, 17]
    E, F, L, P, OUT, DS = 1024, 4096, 24, 16, 2048, (5, 11, 17)
    kv = dict(s={"clip.projector_type": "qwen3vl_merger", "general.name": "Qwen3-VL-2B-Instruct"},
              b={"clip.has_vision_encoder": True, "clip.use_gelu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": 768,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 16, "clip.vision.spatial_merge_size": 2},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-6},
              a={"clip.vision.image_mean": [0.5] * 3, "clip.vision.image_std": [0.5] * 3})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.weight.1", (P, P, 3, E), F16),
          ("v.patch_embd.bias", (E,), F32), ("v.position_embd.weight", (E, 2304), F32)]
    for i in range(L):
        p = f"v.blk.{i}"
        ts += [(f"{p}.ln1.weight", (E,), F32), (f"{p}.ln1.bias", (E,), F32),
               (f"{p}.attn_qkv.weight", (E, 3 * E), F16), (f"{p}.attn_qkv.bias", (3 * E,), F32),
               (f"{p}.attn_out.weight", (E, E), F16), (f"{p}.attn_out.bias", (E,), F32),
               (f"{p}.ln2.weight", (E,), F32), (f"{p}.ln2.bias", (E,), F32),
               (f"{p}.ffn_up.weight", (E, F), F16), (f"{p}.ffn_up.bias", (F,), F32),
               (f"{p}.ffn_down.weight", (F, E), F16), (f"{p}.ffn_down.bias", (E,), F32)]
        if i in DS:
            d = f"v.deepstack.{i}"
            ts += [(f"{d}.norm.weight", (4 * E,), F32), (f"{d}.norm.bias", (4 * E,), F32),
                   (f"{d}.fc1.weight", (4 * E, 4 * E), F16), (f"{d}.fc1.bias", (4 * E,), F32),
                   (f"{d}.fc2.weight", (4 * E, OUT), F16), (f"{d}.fc2.bias", (OUT,), F32)]
    ts += [("v.post_ln.weight", (E,), F32), ("v.post_ln.bias", (E,), F32),
           ("mm.0.weight", (4 * E, 4 * E), F16), ("mm.0.bias", (4 * E,), F32),
           ("mm.2.weight", (4 * E, OUT), F16), ("mm.2.bias", (OUT,), F32)]
    return kv, ts, dict(name="qwen3-1.7b-text-stub", n_embd=OUT, n_head=16)


@spec("minicpm-v-2.6")
def minicpmv26():
    # openbmb/MiniCPM-V-2_6: SigLIP-400M (1152, 4304, 27 layers, patch 14) at 448, 70x70 learned
    # positions; resampler with 64 queries to Qwen2-7B's 3584 (minicpmv_version 3)
    E, F, L, P, S, OUT, Q = 1152, 4304, 27, 14, 448, 3584, 64
    kv = dict(s={"clip.projector_type": "resampler", "general.name": "MiniCPM-V-2_6"},
              b={"clip.has_vision_encoder": True, "clip.use_gelu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": 0, "clip.vision.image_size": S,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 16},
              i={"clip.minicpmv_version": 3},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-6},
              a={"clip.vision.image_mean": [0.5] * 3, "clip.vision.image_std": [0.5] * 3})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.bias", (E,), F32),
          ("v.position_embd.weight", (E, 4900), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
    ts += [("v.post_ln.weight", (E,), F32), ("v.post_ln.bias", (E,), F32),
           ("resampler.pos_embed_k", (OUT, 4900), F32), ("resampler.query", (OUT, Q), F32),
           ("resampler.proj.weight", (OUT, OUT), F16), ("resampler.kv.weight", (E, OUT), F16)]
    for a in ("q", "k", "v", "out"):
        ts += [(f"resampler.attn.{a}.weight", (OUT, OUT), F16), (f"resampler.attn.{a}.bias", (OUT,), F32)]
    for n in ("q", "kv", "post"):
        ts += [(f"resampler.ln_{n}.weight", (OUT,), F32), (f"resampler.ln_{n}.bias", (OUT,), F32)]
    return kv, ts, dict(name="qwen2-7b-text-stub", n_embd=OUT, n_head=28)


@spec("llama-4-scout")
def llama4_scout():
    # meta-llama/Llama-4-Scout-17B-16E-Instruct vision_config: hidden 1408, intermediate 5632,
    # 34 layers, 16 heads, patch 14, image 336, pixel_shuffle_ratio 0.5, projector 4096 -> 5120
    E, F, L, P, S, MID, OUT = 1408, 5632, 34, 14, 336, 4096, 5120
    kv = dict(s={"clip.projector_type": "llama4", "general.name": "Llama-4-Scout-17B-16E-Instruct"},
              b={"clip.has_vision_encoder": True, "clip.use_gelu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": S,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 16, "clip.vision.projector.scale_factor": 2},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-5},
              a={"clip.vision.image_mean": [0.5] * 3, "clip.vision.image_std": [0.5] * 3})
    ts = [("v.patch_embd.weight", (P * P * 3, E), F16), ("v.class_embd", (E,), F32),
          ("v.position_embd.weight", (E, (S // P) ** 2 + 1), F32),
          ("v.pre_ln.weight", (E,), F32), ("v.pre_ln.bias", (E,), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
    ts += [("v.post_ln.weight", (E,), F32), ("v.post_ln.bias", (E,), F32),
           ("mm.model.mlp.1.weight", (E * 4, MID), F16), ("mm.model.mlp.2.weight", (MID, MID), F16),
           ("mm.model.fc.weight", (MID, OUT), F16)]
    return kv, ts, dict(name="llama-4-scout-text-stub", n_embd=OUT, n_head=40)


@spec("kimi-vl-a3b")
def kimivl_a3b():
    # moonshotai/Kimi-VL-A3B-Instruct MoonViT: hidden 1152, intermediate 4304, 27 layers, patch 14,
    # 64x64 learned positions, 2x2 merge; projector LayerNorm + 4608 -> 4608 -> 2048
    E, F, L, P, OUT, M = 1152, 4304, 27, 14, 2048, 2
    kv = dict(s={"clip.projector_type": "kimivl", "general.name": "Kimi-VL-A3B-Instruct"},
              b={"clip.has_vision_encoder": True, "clip.use_gelu": True},
              u={"general.file_type": 1, "clip.vision.projection_dim": OUT, "clip.vision.image_size": 896,
                 "clip.vision.patch_size": P, "clip.vision.embedding_length": E,
                 "clip.vision.feed_forward_length": F, "clip.vision.block_count": L,
                 "clip.vision.attention.head_count": 16, "clip.vision.projector.scale_factor": M},
              f={"clip.vision.attention.layer_norm_epsilon": 1e-5},
              a={"clip.vision.image_mean": [0.5] * 3, "clip.vision.image_std": [0.5] * 3})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.bias", (E,), F32),
          ("v.position_embd.weight", (E, 64 * 64), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
    ts += [("v.post_ln.weight", (E,), F32), ("v.post_ln.bias", (E,), F32),
           ("mm.input_norm.weight", (E,), F32), ("mm.input_norm.bias", (E,), F32),
           ("mm.1.weight", (E * M * M, E * M * M), F16), ("mm.1.bias", (E * M * M,), F32),
           ("mm.2.weight", (E * M * M, OUT), F16), ("mm.2.bias", (OUT,), F32)]
    return kv, ts, dict(name="moonlight-text-stub", n_embd=OUT, n_head=16)


def write_sparse(path, w, tensors):
    for tname, shape, qt in tensors:
        npdt = np.float16 if qt == F16 else np.float32
        w.add_tensor_info(tname, tuple(reversed(shape)), np.dtype(npdt), nbytes(shape, qt), raw_dtype=qt)
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    f = w.fout[0]
    w.write_padding(f, f.tell())
    start = f.tell()
    total = sum(GGUFWriter.ggml_pad(nbytes(s, q), w.data_alignment) for _, s, q in tensors)
    f.truncate(start + total)
    w.close()
    return start


def write_mmproj(name):
    kv, ts, text = SPECS[name]()
    path = os.path.join(MODELS, f"mmproj-{name}-f16.gguf")
    w = GGUFWriter(path, "clip")
    for k, v in kv["s"].items(): w.add_string(k, v)
    for k, v in kv["b"].items(): w.add_bool(k, v)
    for k, v in kv["u"].items(): w.add_uint32(k, v)
    for k, v in kv.get("i", {}).items(): w.add_int32(k, v)
    for k, v in kv["f"].items(): w.add_float32(k, v)
    for k, v in kv["a"].items(): w.add_array(k, v)
    data_off = write_sparse(path, w, ts)
    # header-only copy (cut at data offset)
    with open(path, "rb") as f:
        head = f.read(data_off)
    with open(os.path.join(HEADERS, os.path.basename(path)), "wb") as f:
        f.write(head)
    tensor_bytes = sum(nbytes(s, q) for _, s, q in ts)
    n_params = sum(int(np.prod(s)) for _, s, _ in ts)
    print(f"wrote {path}: size={os.path.getsize(path)} data_offset={data_off} n_tensors={len(ts)} "
          f"tensor_bytes={tensor_bytes} params={n_params}", flush=True)
    return dict(projector=name, file=path, header=os.path.join(HEADERS, os.path.basename(path)),
                data_offset=data_off, n_tensors=len(ts), sum_tensor_nbytes=tensor_bytes, n_params=n_params,
                text=text)


def write_text_stub(text):
    """llama-arch, 1 layer, 512-token SPM vocab, correct n_embd. Loaded vocab_only by the probe."""
    E, H, V = text["n_embd"], text["n_head"], 512
    path = os.path.join(MODELS, f"{text['name']}-F16.gguf")
    w = GGUFWriter(path, "llama")
    w.add_name(text["name"])
    w.add_context_length(4096); w.add_embedding_length(E); w.add_block_count(1)
    w.add_feed_forward_length(4 * E); w.add_head_count(H); w.add_head_count_kv(H)
    w.add_layer_norm_rms_eps(1e-6); w.add_rope_freq_base(10000.0); w.add_file_type(1)
    special = {0: ("<unk>", 2), 1: ("<s>", 3), 2: ("</s>", 3)}
    extra = ["<image>", "</image>", "<start_of_image>", "<end_of_image>", "<fake_token_around_image>",
             "<global-img>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    for j, t in enumerate(extra):
        special[3 + j] = (t, 4)
    tokens, scores, types = [], [], []
    nbyte = 0
    for i in range(V):
        if i in special: t, ty = special[i]
        elif nbyte < 256: t, ty = "<0x%02X>" % nbyte, 6; nbyte += 1
        else: t, ty = "tok%d" % i, 1
        tokens.append(t); scores.append(-float(i)); types.append(ty)
    w.add_tokenizer_model("llama"); w.add_tokenizer_pre("default")
    w.add_token_list(tokens); w.add_token_scores(scores); w.add_token_types(types)
    w.add_bos_token_id(1); w.add_eos_token_id(2); w.add_unk_token_id(0)
    F = 4 * E
    ts = [("token_embd.weight", (E, V), F16), ("output_norm.weight", (E,), F32),
          ("blk.0.attn_norm.weight", (E,), F32), ("blk.0.attn_q.weight", (E, E), F16),
          ("blk.0.attn_k.weight", (E, E), F16), ("blk.0.attn_v.weight", (E, E), F16),
          ("blk.0.attn_output.weight", (E, E), F16), ("blk.0.ffn_norm.weight", (E,), F32),
          ("blk.0.ffn_gate.weight", (E, F), F16), ("blk.0.ffn_up.weight", (E, F), F16),
          ("blk.0.ffn_down.weight", (F, E), F16)]
    write_sparse(path, w, ts)
    print(f"wrote {path}", flush=True)
    return path


if __name__ == "__main__":
    os.makedirs(MODELS, exist_ok=True); os.makedirs(HEADERS, exist_ok=True)
    manifest = []
    for name in sys.argv[1:] or SPECS:
        m = write_mmproj(name)
        m["text_model"] = write_text_stub(m["text"])
        manifest.append(m)
    # Named projectors are added to (or replace their entry in) an existing manifest.
    path = os.path.join(WORK, "models.json")
    if sys.argv[1:] and os.path.exists(path):
        fresh = {m["projector"] for m in manifest}
        manifest = [m for m in json.load(open(path)) if m["projector"] not in fresh] + manifest
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)
