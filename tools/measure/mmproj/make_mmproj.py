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
    """One pre-norm ViT block (ggml ne order); `swapped_names`: the legacy converter's up/down swap."""
    p = f"v.blk.{i}"
    ts = norm(f"{p}.ln1", E, ln_bias)
    for a in ("attn_q", "attn_k", "attn_v", "attn_out"):
        ts += linear(f"{p}.{a}", E, E)
    ts += norm(f"{p}.ln2", E, ln_bias)
    if gated:
        ts += linear(f"{p}.ffn_gate", E, F)
    up, down = ("ffn_down", "ffn_up") if swapped_names else ("ffn_up", "ffn_down")
    return ts + linear(f"{p}.{up}", E, F, ffn_bias) + linear(f"{p}.{down}", F, E, ffn_bias)


SPECS = {}
def spec(name):
    def d(f): SPECS[name] = f; return f
    return d


def clip_kv(name, ptype, *, E, F, L, heads, OUT, eps, S=None, P=None, mean=CLIP_MEAN, std=CLIP_STD,
            modality="vision", flags=None, u=None, i=None, s=None):
    """The metadata of one encoder (`clip.vision.*` or `clip.audio.*`) as the converters write it:
    projector type, the tower's sizes, its flags (`use_gelu`, ...), extra integers in `u`/`i`."""
    m = f"clip.{modality}"
    ints = {"general.file_type": 1, f"{m}.projection_dim": OUT, f"{m}.embedding_length": E,
            f"{m}.feed_forward_length": F, f"{m}.block_count": L, f"{m}.attention.head_count": heads}
    if S is not None:
        ints |= {f"{m}.image_size": S, f"{m}.patch_size": P}
    kv = dict(s={"clip.projector_type": ptype, "general.name": name} | (s or {}),
              b={f"clip.has_{modality}_encoder": True} | (flags or {}),
              u=ints | (u or {}), i=i or {}, f={f"{m}.attention.layer_norm_epsilon": eps}, a={})
    if modality == "vision":
        kv["a"] = {"clip.vision.image_mean": mean, "clip.vision.image_std": std}
    return kv


def norm(name, E, bias=True):
    return [(f"{name}.weight", (E,), F32)] + ([(f"{name}.bias", (E,), F32)] if bias else [])


def linear(name, n_in, n_out, bias=True):
    return [(f"{name}.weight", (n_in, n_out), F16)] + ([(f"{name}.bias", (n_out,), F32)] if bias else [])


def clip_vit_l_336(n_layer=23):
    """openai/clip-vit-large-patch14-336 through the legacy converter (last layer dropped)."""
    E, F, P, S = 1024, 4096, 14, 336
    ts = [("v.class_embd", (E,), F32), ("v.patch_embd.weight", (P, P, 3, E), F16),
          ("v.position_embd.weight", (E, (S // P) ** 2 + 1), F16)] + norm("v.pre_ln", E)
    for i in range(n_layer):
        ts += vit_block(i, E, F, swapped_names=True)
    return ts


LEGACY_CLIP = dict(s={"general.description": "image encoder for LLaVA"},
                   flags={"clip.has_text_encoder": False, "clip.has_llava_projector": True,
                          "clip.use_gelu": False})


@spec("llava-1.5-7b")
def llava15():
    # openai/clip-vit-large-patch14-336 + llava-v1.5-7b mm_projector (mlp2x_gelu), legacy converter
    kv = clip_kv("openai/clip-vit-large-patch14-336", "mlp", E=1024, F=4096, L=23, heads=16, OUT=768,
                 eps=1e-5, S=336, P=14, **LEGACY_CLIP)
    ts = linear("mm.0", 1024, 4096) + linear("mm.2", 4096, 4096) + clip_vit_l_336()
    return kv, ts, dict(name="llama-2-7b-text-stub", n_embd=4096, n_head=32)


@spec("mobilevlm-1.7b")
def mobilevlm():
    # mtgoogle/MobileVLM-1.7B: CLIP ViT-L/14-336 + LDP (MobileNetV3-style blocks) to
    # MobileLLaMA-1.4B (2048); pointwise/depthwise convolutions squeezed to F16 by the converter
    H = 2048
    kv = clip_kv("MobileVLM-1.7B", "ldp", E=1024, F=4096, L=23, heads=16, OUT=H, eps=1e-5, S=336,
                 P=14, **LEGACY_CLIP)
    ts = clip_vit_l_336() + linear("mm.model.mlp.1", 1024, H) + linear("mm.model.mlp.3", H, H)
    for b in (1, 2):
        p = f"mm.model.mb_block.{b}.block"
        ts += [(f"{p}.0.0.weight", (3, 3, H), F16)] + norm(f"{p}.0.1", H)
        ts += [(f"{p}.1.fc1.weight", (H, H // 4), F16), (f"{p}.1.fc1.bias", (H // 4,), F32),
               (f"{p}.1.fc2.weight", (H // 4, H), F16), (f"{p}.1.fc2.bias", (H,), F32)]
        ts += [(f"{p}.2.0.weight", (H, H), F16)] + norm(f"{p}.2.1", H)
    return kv, ts, dict(name="mobilellama-1.4b-text-stub", n_embd=H, n_head=16)


@spec("mobilevlm-v2-1.7b")
def mobilevlm_v2():
    # mtgoogle/MobileVLM_V2-1.7B: CLIP ViT-L/14-336 + LDPv2 (MLP, 2x2 average pool, PEG) to 2048
    H = 2048
    kv = clip_kv("MobileVLM_V2-1.7B", "ldpv2", E=1024, F=4096, L=23, heads=16, OUT=H, eps=1e-5,
                 S=336, P=14, **LEGACY_CLIP)
    ts = clip_vit_l_336() + linear("mm.model.mlp.0", 1024, H) + linear("mm.model.mlp.2", H, H)
    ts += [("mm.model.peg.0.weight", (3, 3, H), F16), ("mm.model.peg.0.bias", (H,), F32)]
    return kv, ts, dict(name="mobilellama-1.4b-text-stub", n_embd=H, n_head=16)


@spec("glm-edge-v-2b")
def glm_edge_v():
    # THUDM/glm-edge-v-2b: SigLIP (1152, 4304, 27 layers, patch 14) at 672, adapter: 2x2 stride-2
    # convolution to the text width 2048, GLU (linear, LayerNorm, GELU, gate/up 6144, down), BOI/EOI
    E, F, L, P, S, H, FF = 1152, 4304, 27, 14, 672, 2048, 6144
    kv = clip_kv("glm-edge-v-2b", "adapter", E=E, F=F, L=L, heads=16, OUT=H, eps=1e-6, S=S, P=P,
                 mean=[0.5] * 3, std=[0.5] * 3, flags={"clip.use_gelu": True})
    ts = siglip(E, F, L, P, S)
    ts += [("adapter.conv.weight", (2, 2, E, H), F16), ("adapter.conv.bias", (H,), F32)]
    ts += linear("adapter.linear.linear", H, H, bias=False) + norm("adapter.linear.norm1", H)
    ts += linear("adapter.linear.dense_h_to_4h", H, FF, bias=False)
    ts += linear("adapter.linear.gate", H, FF, bias=False)
    ts += linear("adapter.linear.dense_4h_to_h", FF, H, bias=False)
    ts += [("adapter.boi", (H,), F32), ("adapter.eoi", (H,), F32)]
    return kv, ts, dict(name="glm-edge-1.5b-text-stub", n_embd=H, n_head=16)


def qwen_vl_kv(name, ptype, E, F, L, OUT, **kw):
    return clip_kv(name, ptype, E=E, F=F, L=L, heads=16, OUT=OUT, eps=1e-6, P=14, S=560, **kw)


@spec("qwen2-vl-2b")
def qwen2vl2b():
    E, F, L, P = 1280, 5120, 32, 14
    OUT = 1536
    # converter quirk: vision hidden_size (=1536) written as n_ff
    kv = qwen_vl_kv("Qwen2-VL-2B-Instruct", "qwen2vl_merger", E, 1536, L, OUT)
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.weight.1", (P, P, 3, E), F16)]
    for i in range(L):
        ts += vit_block(i, E, F)
    ts += norm("v.post_ln", E) + linear("mm.0", 4 * E, 4 * E) + linear("mm.2", 4 * E, OUT)
    return kv, ts, dict(name="qwen2-1.5b-text-stub", n_embd=OUT, n_head=12)


@spec("qwen2.5-vl-3b")
def qwen25vl3b():
    E, F, L, P = 1280, 3420, 32, 14
    OUT = 2048
    kv = qwen_vl_kv("Qwen2.5-VL-3B-Instruct", "qwen2.5vl_merger", E, F, L, OUT,
                    flags={"clip.use_silu": True}, u={"clip.vision.n_wa_pattern": 8})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.weight.1", (P, P, 3, E), F16)]
    for i in range(L):
        ts += vit_block(i, E, F, ln_bias=False, gated=True)  # RMSNorm, SiLU-gated MLP with biases
    ts += norm("v.post_ln", E, bias=False) + linear("mm.0", 4 * E, 4 * E) + linear("mm.2", 4 * E, OUT)
    return kv, ts, dict(name="qwen2.5-3b-text-stub", n_embd=OUT, n_head=16)


def siglip(E, F, L, P, S, *, post_ln=True):
    n_pos = (S // P) ** 2
    ts = [("v.patch_embd.weight", (P, P, 3, E), F32), ("v.patch_embd.bias", (E,), F32),
          ("v.position_embd.weight", (E, n_pos), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
    if post_ln:
        ts += norm("v.post_ln", E)
    return ts


def siglip_kv(name, ptype, E, F, L, P, S, OUT, heads=16, **kw):
    return clip_kv(name, ptype, E=E, F=F, L=L, heads=heads, OUT=OUT, eps=1e-6, S=S, P=P,
                   mean=[0.5] * 3, std=[0.5] * 3, flags={"clip.use_gelu": True}, **kw)


@spec("gemma-3-4b")
def gemma3_4b():
    E, F, L, P, S, OUT = 1152, 4304, 27, 14, 896, 2560
    kv = siglip_kv("gemma-3-4b-it", "gemma3", E, F, L, P, S, OUT)
    ts = siglip(E, F, L, P, S)
    ts += [("mm.input_projection.weight", (OUT, E), F16), ("mm.soft_emb_norm.weight", (E,), F32)]
    return kv, ts, dict(name="gemma-3-4b-text-stub", n_embd=OUT, n_head=8)


def smolvlm_spec(name, E, F, L, P, S, OUT, SF, heads, longest_edge):
    kv = siglip_kv(name, "idefics3", E, F, L, P, S, OUT, heads=heads,
                   u={"clip.vision.projector.scale_factor": SF,
                      "clip.vision.preproc_image_size": longest_edge})
    return kv, siglip(E, F, L, P, S) + [("mm.model.fc.weight", (E * SF * SF, OUT), F16)]


@spec("smolvlm-instruct")
def smolvlm():
    # HuggingFaceTB/SmolVLM-Instruct (idefics3, SigLIP so400m @384, scale_factor 3, longest_edge 1536)
    kv, ts = smolvlm_spec("SmolVLM-Instruct", 1152, 4304, 27, 14, 384, 2048, 3, 16, 1536)
    return kv, ts, dict(name="smollm-1.7b-text-stub", n_embd=2048, n_head=32)


@spec("smolvlm-256m")
def smolvlm256():
    # HuggingFaceTB/SmolVLM-256M-Instruct (idefics3, SigLIP base-patch16-512, scale_factor 4, longest_edge 2048)
    kv, ts = smolvlm_spec("SmolVLM-256M-Instruct", 768, 3072, 12, 16, 512, 576, 4, 12, 2048)
    return kv, ts, dict(name="smollm2-135m-text-stub", n_embd=576, n_head=9)


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
    return clip_kv(name, "pixtral", E=E, F=F, L=L, heads=16, OUT=OUT, eps=1e-5, S=S, P=P,
                   flags={"clip.use_silu": True},
                   u={"clip.vision.spatial_merge_size": merge} if merge else None)


def pixtral_tower(E, F, L, P):
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.pre_ln.weight", (E,), F32)]
    for i in range(L):
        ts += rms_block(i, E, F)
    return ts


@spec("pixtral-12b")
def pixtral12b():
    # mistral-community/pixtral-12b: vision_config hidden 1024, intermediate 4096, 24 layers,
    # patch 16, image 1024; text Mistral-NeMo (5120); projector linear_1/linear_2 with biases
    E, F, L, P, S, OUT = 1024, 4096, 24, 16, 1024, 5120
    kv = pixtral_kv("pixtral-12b", E, F, L, P, S, OUT)
    ts = pixtral_tower(E, F, L, P) + linear("mm.1", E, OUT) + linear("mm.2", OUT, OUT)
    ts += [("v.token_embd.img_break", (OUT,), F32)]
    return kv, ts, dict(name="mistral-nemo-text-stub", n_embd=OUT, n_head=32)


@spec("mistral-small-3.1-24b")
def mistral_small31():
    # mistralai/Mistral-Small-3.1-24B-Instruct-2503: pixtral tower with patch 14, image 1540,
    # spatial_merge_size 2 (patch merger 4096 -> 1024, input RMS norm), projector without biases
    E, F, L, P, S, OUT, M = 1024, 4096, 24, 14, 1540, 5120, 2
    kv = pixtral_kv("Mistral-Small-3.1-24B-Instruct-2503", E, F, L, P, S, OUT, merge=M)
    ts = pixtral_tower(E, F, L, P)
    ts += [("mm.input_norm.weight", (E,), F32), ("mm.patch_merger.weight", (E * M * M, E), F16)]
    ts += linear("mm.1", E, OUT, bias=False) + linear("mm.2", OUT, OUT, bias=False)
    ts += [("v.token_embd.img_break", (OUT,), F32)]
    return kv, ts, dict(name="mistral-small-24b-text-stub", n_embd=OUT, n_head=32)


@spec("internvl3-2b")
def internvl3_2b():
    # OpenGVLab/InternVL3-2B: InternViT-300M-448px-V2.5 (1024, 4096, 24 layers, patch 14, 448,
    # class token, layer scale), downsample 0.5 (scale 2), mlp1 LayerNorm + 2 linears to Qwen2.5-1.5B
    E, F, L, P, S, OUT, SF = 1024, 4096, 24, 14, 448, 1536, 2
    kv = clip_kv("InternVL3-2B", "internvl", E=E, F=F, L=L, heads=16, OUT=OUT, eps=1e-6, S=S, P=P,
                 mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], flags={"clip.use_gelu": True},
                 u={"clip.vision.projector.scale_factor": SF})
    n_pos = (S // P) ** 2 + 1
    ts = [("v.class_embd", (E,), F32), ("v.patch_embd.weight", (P, P, 3, E), F16),
          ("v.patch_embd.bias", (E,), F32), ("v.position_embd.weight", (E, n_pos), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
        ts += [(f"v.blk.{i}.ls1.weight", (E,), F32), (f"v.blk.{i}.ls2.weight", (E,), F32)]
    W = E * SF * SF
    ts += norm("mm.model.mlp.0", W) + linear("mm.model.mlp.1", W, OUT) + linear("mm.model.mlp.3", OUT, OUT)
    return kv, ts, dict(name="qwen2.5-1.5b-text-stub", n_embd=OUT, n_head=12)


@spec("qwen3-vl-2b")
def qwen3vl2b():
    # Qwen/Qwen3-VL-2B-Instruct vision_config: hidden 1024, intermediate 4096, depth 24, 16 heads,
    # patch 16, spatial merge 2, out_hidden 2048, num_position_embeddings 2304, deepstack [5, 11, 17]
    E, F, L, P, OUT, DS = 1024, 4096, 24, 16, 2048, (5, 11, 17)
    kv = clip_kv("Qwen3-VL-2B-Instruct", "qwen3vl_merger", E=E, F=F, L=L, heads=16, OUT=OUT, eps=1e-6,
                 S=768, P=P, mean=[0.5] * 3, std=[0.5] * 3, flags={"clip.use_gelu": True},
                 u={"clip.vision.spatial_merge_size": 2})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.weight.1", (P, P, 3, E), F16),
          ("v.patch_embd.bias", (E,), F32), ("v.position_embd.weight", (E, 2304), F32)]
    for i in range(L):
        p = f"v.blk.{i}"
        ts += norm(f"{p}.ln1", E) + linear(f"{p}.attn_qkv", E, 3 * E) + linear(f"{p}.attn_out", E, E)
        ts += norm(f"{p}.ln2", E) + linear(f"{p}.ffn_up", E, F) + linear(f"{p}.ffn_down", F, E)
        if i in DS:
            d = f"v.deepstack.{i}"
            ts += norm(f"{d}.norm", 4 * E) + linear(f"{d}.fc1", 4 * E, 4 * E) + linear(f"{d}.fc2", 4 * E, OUT)
    ts += norm("v.post_ln", E) + linear("mm.0", 4 * E, 4 * E) + linear("mm.2", 4 * E, OUT)
    return kv, ts, dict(name="qwen3-1.7b-text-stub", n_embd=OUT, n_head=16)


@spec("minicpm-v-2.6")
def minicpmv26():
    # openbmb/MiniCPM-V-2_6: SigLIP-400M (1152, 4304, 27 layers, patch 14) at 448, 70x70 learned
    # positions; resampler with 64 queries to Qwen2-7B's 3584 (minicpmv_version 3)
    E, F, L, P, S, OUT, Q = 1152, 4304, 27, 14, 448, 3584, 64
    kv = siglip_kv("MiniCPM-V-2_6", "resampler", E, F, L, P, S, 0, i={"clip.minicpmv_version": 3})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.bias", (E,), F32),
          ("v.position_embd.weight", (E, 4900), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
    ts += norm("v.post_ln", E)
    ts += [("resampler.pos_embed_k", (OUT, 4900), F32), ("resampler.query", (OUT, Q), F32),
           ("resampler.proj.weight", (OUT, OUT), F16), ("resampler.kv.weight", (E, OUT), F16)]
    for a in ("q", "k", "v", "out"):
        ts += linear(f"resampler.attn.{a}", OUT, OUT)
    for n in ("q", "kv", "post"):
        ts += norm(f"resampler.ln_{n}", OUT)
    return kv, ts, dict(name="qwen2-7b-text-stub", n_embd=OUT, n_head=28)


@spec("llama-4-scout")
def llama4_scout():
    # meta-llama/Llama-4-Scout-17B-16E-Instruct vision_config: hidden 1408, intermediate 5632,
    # 34 layers, 16 heads, patch 14, image 336, pixel_shuffle_ratio 0.5, projector 4096 -> 5120
    E, F, L, P, S, MID, OUT = 1408, 5632, 34, 14, 336, 4096, 5120
    kv = clip_kv("Llama-4-Scout-17B-16E-Instruct", "llama4", E=E, F=F, L=L, heads=16, OUT=OUT, eps=1e-5,
                 S=S, P=P, mean=[0.5] * 3, std=[0.5] * 3, flags={"clip.use_gelu": True},
                 u={"clip.vision.projector.scale_factor": 2})
    ts = [("v.patch_embd.weight", (P * P * 3, E), F16), ("v.class_embd", (E,), F32),
          ("v.position_embd.weight", (E, (S // P) ** 2 + 1), F32)] + norm("v.pre_ln", E)
    for i in range(L):
        ts += vit_block(i, E, F)
    ts += norm("v.post_ln", E) + linear("mm.model.mlp.1", E * 4, MID, bias=False)
    ts += linear("mm.model.mlp.2", MID, MID, bias=False) + linear("mm.model.fc", MID, OUT, bias=False)
    return kv, ts, dict(name="llama-4-scout-text-stub", n_embd=OUT, n_head=40)


@spec("kimi-vl-a3b")
def kimivl_a3b():
    # moonshotai/Kimi-VL-A3B-Instruct MoonViT: hidden 1152, intermediate 4304, 27 layers, patch 14,
    # 64x64 learned positions, 2x2 merge; projector LayerNorm + 4608 -> 4608 -> 2048
    E, F, L, P, OUT, M = 1152, 4304, 27, 14, 2048, 2
    kv = clip_kv("Kimi-VL-A3B-Instruct", "kimivl", E=E, F=F, L=L, heads=16, OUT=OUT, eps=1e-5, S=896,
                 P=P, mean=[0.5] * 3, std=[0.5] * 3, flags={"clip.use_gelu": True},
                 u={"clip.vision.projector.scale_factor": M})
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.bias", (E,), F32),
          ("v.position_embd.weight", (E, 64 * 64), F32)]
    for i in range(L):
        ts += vit_block(i, E, F)
    ts += norm("v.post_ln", E) + norm("mm.input_norm", E)
    ts += linear("mm.1", E * M * M, E * M * M) + linear("mm.2", E * M * M, OUT)
    return kv, ts, dict(name="moonlight-text-stub", n_embd=OUT, n_head=16)


def whisper_encoder(E=1280, F=5120, L=32, n_mel=128, n_ctx=1500):
    """A Whisper large-v3 encoder as convert_hf_to_gguf writes it (`a.*`): two F16 convolutions
    with (1, E) biases, learned positions, pre-norm blocks without a K bias, a final norm."""
    ts = [("a.conv1d.1.weight", (3, n_mel, E), F16), ("a.conv1d.1.bias", (1, E), F32),
          ("a.conv1d.2.weight", (3, E, E), F16), ("a.conv1d.2.bias", (1, E), F32),
          ("a.position_embd.weight", (E, n_ctx), F32)]
    for i in range(L):
        p = f"a.blk.{i}"
        ts += norm(f"{p}.ln1", E) + linear(f"{p}.attn_q", E, E) + linear(f"{p}.attn_k", E, E, bias=False)
        ts += linear(f"{p}.attn_v", E, E) + linear(f"{p}.attn_out", E, E) + norm(f"{p}.ln2", E)
        ts += linear(f"{p}.ffn_up", E, F) + linear(f"{p}.ffn_down", F, E)
    return ts + norm("a.post_ln", E)


def audio_kv(name, ptype, OUT, stack=None):
    # Whisper large-v3: 1280 wide, 5120 FFN, 32 layers, 20 heads, 128 mel bins
    return clip_kv(name, ptype, modality="audio", E=1280, F=5120, L=32, heads=20, OUT=OUT, eps=1e-5,
                   u={"clip.audio.num_mel_bins": 128} | ({"clip.audio.projector.stack_factor": stack} if stack else {}))


@spec("ultravox-v0.5-llama-3.2-1b")
def ultravox():
    # fixie-ai/ultravox-v0_5-llama-3_2-1b: whisper-large-v3-turbo encoder, 8 frames stacked,
    # RMS norm, 10240 -> 4096 SwiGLU (2048), RMS norm, 2048 -> Llama-3.2-1B's 2048, no biases
    kv = audio_kv("ultravox-v0_5-llama-3_2-1b", "ultravox", 2048, stack=8)
    ts = whisper_encoder() + norm("mm.a.norm_pre", 10240, bias=False)
    ts += linear("mm.a.mlp.1", 10240, 4096, bias=False) + norm("mm.a.norm_mid", 2048, bias=False)
    ts += linear("mm.a.mlp.2", 2048, 2048, bias=False)
    return kv, ts, dict(name="llama-3.2-1b-text-stub", n_embd=2048, n_head=32)


@spec("qwen2-audio-7b")
def qwen2_audio():
    # Qwen/Qwen2-Audio-7B-Instruct: whisper-large-v3 encoder, 2x average pool, one linear to 4096
    kv = audio_kv("Qwen2-Audio-7B-Instruct", "qwen2a", 4096)
    ts = whisper_encoder() + linear("mm.a.fc", 1280, 4096)
    return kv, ts, dict(name="qwen-7b-text-stub", n_embd=4096, n_head=32)


@spec("voxtral-mini-3b")
def voxtral():
    # mistralai/Voxtral-Mini-3B-2507: whisper-large-v3 encoder, 2x average pool, 4 frames stacked,
    # 5120 -> 3072 GELU -> 3072 (Ministral-3B's width), no biases
    kv = audio_kv("Voxtral-Mini-3B-2507", "voxtral", 3072, stack=4)
    ts = whisper_encoder() + linear("mm.a.mlp.1", 5120, 3072, bias=False)
    ts += linear("mm.a.mlp.2", 3072, 3072, bias=False)
    return kv, ts, dict(name="ministral-3b-text-stub", n_embd=3072, n_head=32)


@spec("qwen2.5-omni-7b")
def qwen25omni7b():
    # Qwen/Qwen2.5-Omni-7B (thinker_config): Qwen2.5-VL-7B's vision tower (1280 wide, 3420 FFN,
    # 32 layers, full attention at 7/15/23/31) and a Whisper-large-v3-shaped audio encoder (the
    # converter adds its sinusoidal positions, 1500 x 1280), both projected to the 3584-wide
    # text model; one file, projector type qwen2.5o (conversion/qwenvl.py Qwen25OmniModel)
    E, F, L, P, OUT = 1280, 3420, 32, 14, 3584
    vision = qwen_vl_kv("Qwen2.5-Omni-7B", "qwen2.5o", E, F, L, OUT,
                        flags={"clip.use_silu": True}, u={"clip.vision.n_wa_pattern": 8})
    audio = audio_kv("Qwen2.5-Omni-7B", "qwen2.5o", OUT)
    kv = {k: vision[k] | audio[k] for k in vision}
    ts = [("v.patch_embd.weight", (P, P, 3, E), F16), ("v.patch_embd.weight.1", (P, P, 3, E), F16)]
    for i in range(L):
        ts += vit_block(i, E, F, ln_bias=False, gated=True)
    ts += norm("v.post_ln", E, bias=False) + linear("mm.0", 4 * E, 4 * E) + linear("mm.2", 4 * E, OUT)
    ts += whisper_encoder() + linear("mm.a.fc", 1280, OUT)
    return kv, ts, dict(name="qwen2.5-7b-text-stub", n_embd=OUT, n_head=28)


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
