#!/usr/bin/env python3
"""Zero-weight GGUF files with real models' hyper-parameters, tensors laid out by llama.cpp itself.

For each model in SPECS (published config.json values, mapped the way llama.cpp's converter
maps them, with fewer repeating layers: compute buffers do not grow with the layer count):

1. write a metadata-only GGUF (hyper-parameters + a placeholder tokenizer at the real vocabulary
   size);
2. hand it to llama.cpp's `llama_model_init_from_user` (the API `tests/test-llama-archs.cpp`
   uses), whose per-architecture `load_arch_tensors` creates every tensor with its exact shape;
   the data callback only records each tensor's name and shape (nothing is written);
3. drop the optional tensors a converted checkpoint of that model does not have (`drop`), and
   write the model as a sparse file: 2-D and larger weights F16, vectors and the tensors llama.cpp
   needs in F32 (router, SSM parameters) F32, data all zero;
4. write the committed fixture: the same header without the tokenizer arrays
   (`<arch>.vocab_size` keeps the vocabulary size), cut at the aligned start of the data.

Usage: LLAMA_CPP_LIB_PATH=.../build/bin python make_models.py OUT_DIR FIXTURE_DIR [--only NAME ...]
"""
import argparse
import ctypes
import json
import os
import re
import subprocess
import sys

import numpy as np
import gguf
from gguf import GGUFWriter, GGUFValueType as VT, GGMLQuantizationType as QT

F16, F32 = QT.F16, QT.F32

# Tensors llama.cpp reads as F32 whatever the file type (as convert_hf_to_gguf.py keeps them).
F32_NAMES = re.compile(r"(ffn_gate_inp|exp_probs_b|ssm_a|ssm_d|ssm_conv1d|ssm_dt|ssm_norm|attn_sinks|"
                       r"time_mix_|channel_mix_|rope_freqs|_norm)")


def M(name, arch, layers, vocab, kv, tied=True, drop=(), tok="spm", source="", special=None, fuse_qkv=False,
      layout_experts=None, dense_layers=(), keep_cls=False):
    return dict(name=name, arch=arch, layers=layers, vocab=vocab, kv=kv, tied=tied, drop=list(drop),
                tok=tok, source=source, special=special or {}, fuse_qkv=fuse_qkv, layout_experts=layout_experts,
                dense_layers=list(dense_layers), keep_cls=keep_cls)


NO_BIAS = r"\.bias$"
# Hybrids keep the SSM's own biases (conv1d, dt), which llama.cpp requires.
NO_PROJ_BIAS = r"(attn_\w+|ffn_\w+|output)\.bias$"
# Optional heads every decoder can load that no converted chat checkpoint carries.
COMMON_DROP = [r"^cls", r"^output\.bias", r"rope_factors", r"_s\.weight$", r"\.(input_)?scale$",
               r"rope_freqs", r"^ffn_gate_inp_shexp", r"^dense_"]

# Architectures whose LM head has a bias (Phi-2, Phi-3.5-MoE).
OUTPUT_BIAS = ("phi2", "phimoe")


def llama4_scout(layers):
    """Llama 4 Scout (published config.json values) with `layers` repeating layers: one spec for
    the 4- and the 8-layer models, which differ only in their layer count."""
    return M(f"llama-4-scout-17b-16e-{layers}layer", "llama4", layers, 202048, dict(
        context_length=10485760, embedding_length=5120, feed_forward_length=16384, expert_feed_forward_length=8192,
        expert_count=16, expert_used_count=1, interleave_moe_layer_step=1,
        **{"attention.head_count": 40, "attention.head_count_kv": 8, "attention.key_length": 128,
           "attention.value_length": 128, "rope.dimension_count": 128, "rope.freq_base": 500000.0,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      tied=False, drop=[NO_BIAS], layout_experts=2, source="meta-llama/Llama-4-Scout-17B-16E-Instruct")

SPECS = [
    M("qwen3-0.6b", "qwen3", 4, 151936, dict(
        context_length=40960, embedding_length=1024, feed_forward_length=3072,
        **{"attention.head_count": 16, "attention.head_count_kv": 8, "attention.key_length": 128,
           "attention.value_length": 128, "rope.freq_base": 1e6, "attention.layer_norm_rms_epsilon": 1e-6}),
      drop=[NO_BIAS], source="Qwen/Qwen3-0.6B"),
    M("qwen3-30b-a3b-2layer", "qwen3moe", 2, 151936, dict(
        context_length=40960, embedding_length=2048, feed_forward_length=6144, expert_feed_forward_length=768,
        expert_count=128, expert_used_count=8,
        **{"attention.head_count": 32, "attention.head_count_kv": 4, "attention.key_length": 128,
           "attention.value_length": 128, "rope.freq_base": 1e6, "attention.layer_norm_rms_epsilon": 1e-6}),
      tied=False, drop=[NO_BIAS, r"ffn_(gate|up|down)\.weight", r"shexp"], source="Qwen/Qwen3-30B-A3B"),
    M("gemma-2-2b", "gemma2", 4, 256000, dict(
        context_length=8192, embedding_length=2304, feed_forward_length=9216,
        attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
        **{"attention.head_count": 8, "attention.head_count_kv": 4, "attention.key_length": 256,
           "attention.value_length": 256, "attention.layer_norm_rms_epsilon": 1e-6,
           "attention.sliding_window": 4096}),
      drop=[NO_BIAS], source="google/gemma-2-2b"),
    M("gemma-3-1b", "gemma3", 6, 262144, dict(
        context_length=32768, embedding_length=1152, feed_forward_length=6912,
        **{"attention.head_count": 4, "attention.head_count_kv": 1, "attention.key_length": 256,
           "attention.value_length": 256, "rope.freq_base": 1e6, "attention.layer_norm_rms_epsilon": 1e-6,
           "attention.sliding_window": 512}),
      drop=[NO_BIAS], source="google/gemma-3-1b-it"),
    M("phi-3-mini-4k-instruct", "phi3", 4, 32064, dict(
        context_length=4096, embedding_length=3072, feed_forward_length=8192,
        **{"attention.head_count": 32, "attention.head_count_kv": 32, "rope.dimension_count": 96,
           "rope.freq_base": 10000.0, "attention.layer_norm_rms_epsilon": 1e-5,
           "attention.sliding_window": 2047}),
      tied=False, drop=[NO_BIAS], source="microsoft/Phi-3-mini-4k-instruct", fuse_qkv=True,
      special={32000: "<|endoftext|>", 32007: "<|end|>"}),
    M("granite-3.1-2b", "granite", 4, 49155, dict(
        context_length=131072, embedding_length=2048, feed_forward_length=8192,
        embedding_scale=12.0, residual_scale=0.22, logit_scale=8.0,
        **{"attention.head_count": 32, "attention.head_count_kv": 8, "rope.freq_base": 5e6,
           "attention.layer_norm_rms_epsilon": 1e-5, "attention.scale": 0.015625}),
      drop=[NO_BIAS, r"exps|gate_inp|shexp"], source="ibm-granite/granite-3.1-2b-instruct"),
    M("granite-3.1-1b-a400m", "granitemoe", 4, 49155, dict(
        context_length=131072, embedding_length=1024, feed_forward_length=512, expert_feed_forward_length=512,
        expert_count=32, expert_used_count=8, embedding_scale=12.0, residual_scale=0.22, logit_scale=6.0,
        **{"attention.head_count": 16, "attention.head_count_kv": 8, "rope.freq_base": 1e7,
           "attention.layer_norm_rms_epsilon": 1e-6, "attention.scale": 0.015625}),
      drop=[NO_BIAS, r"ffn_(gate|up|down)\.weight", r"shexp"], source="ibm-granite/granite-3.1-1b-a400m-instruct"),
    M("smollm3-3b", "smollm3", 4, 128256, dict(
        context_length=65536, embedding_length=2048, feed_forward_length=11008,
        **{"attention.head_count": 16, "attention.head_count_kv": 4, "rope.freq_base": 5e6,
           "attention.layer_norm_rms_epsilon": 1e-6}),
      drop=[NO_BIAS], source="HuggingFaceTB/SmolLM3-3B"),
    M("glm-4-9b-0414", "glm4", 4, 151552, dict(
        context_length=32768, embedding_length=4096, feed_forward_length=13696,
        **{"attention.head_count": 32, "attention.head_count_kv": 2, "attention.key_length": 128,
           "attention.value_length": 128, "rope.dimension_count": 64, "rope.freq_base": 10000.0,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      tied=False, drop=[r"attn_output\.bias", r"ffn_.*\.bias", r"attn_qkv"], source="THUDM/GLM-4-9B-0414"),
    M("command-r7b-12-2024", "cohere2", 4, 256000, dict(
        context_length=8192, embedding_length=4096, feed_forward_length=14336, logit_scale=0.25,
        **{"attention.head_count": 32, "attention.head_count_kv": 8, "rope.freq_base": 50000.0,
           "attention.layer_norm_epsilon": 1e-5, "attention.sliding_window": 4096}),
      drop=[NO_BIAS], source="CohereForAI/c4ai-command-r7b-12-2024"),
    # transformers' CohereConfig defaults are c4ai-command-r-v01's shape (hidden 8192, 64
    # heads and KV heads, FFN 22528, logit scale 0.0625); its config.json adds rope_theta 8e6
    # and model_max_length 131072, the context the converter writes.
    M("command-r-v01-2layer", "command-r", 2, 256000, dict(
        context_length=131072, embedding_length=8192, feed_forward_length=22528, logit_scale=0.0625,
        **{"attention.head_count": 64, "attention.head_count_kv": 64, "rope.freq_base": 8e6,
           "attention.layer_norm_epsilon": 1e-5, "rope.scaling.type": "none"}),
      drop=[NO_BIAS, r"attn_(q|k)_norm"], source="CohereForAI/c4ai-command-r-v01"),
    # transformers' Ministral3Config defaults are Ministral 3 8B's text model (hidden 4096,
    # 32 heads, 8 KV heads, head 128, FFN 14336, untied); YaRN factor 16 over 16384 positions
    # and llama_4_scaling_beta 0.1, written as conversion/mistral3.py writes them.
    M("ministral-3-8b-2512", "mistral3", 4, 131072, dict(
        context_length=262144, embedding_length=4096, feed_forward_length=14336,
        **{"attention.head_count": 32, "attention.head_count_kv": 8, "attention.key_length": 128,
           "attention.value_length": 128, "rope.dimension_count": 128, "rope.freq_base": 1e6,
           "attention.layer_norm_rms_epsilon": 1e-5, "rope.scaling.type": "yarn",
           "rope.scaling.factor": 16.0, "rope.scaling.original_context_length": 16384,
           "rope.scaling.yarn_beta_fast": 32.0, "rope.scaling.yarn_beta_slow": 1.0,
           "rope.scaling.yarn_log_multiplier": 1.0, "attention.temperature_scale": 0.1}),
      tied=False, drop=[NO_BIAS, r"exps|gate_inp|shexp"], source="mistralai/Ministral-3-8B-Instruct-2512"),
    M("olmo-2-0425-1b", "olmo2", 4, 100352, dict(
        context_length=4096, embedding_length=2048, feed_forward_length=8192,
        **{"attention.head_count": 16, "attention.head_count_kv": 16, "rope.freq_base": 500000.0,
           "attention.layer_norm_rms_epsilon": 1e-6}),
      tied=False, drop=[NO_BIAS], source="allenai/OLMo-2-0425-1B"),
    M("exaone-3.5-2.4b", "exaone", 4, 102400, dict(
        context_length=32768, embedding_length=2560, feed_forward_length=7168,
        **{"attention.head_count": 32, "attention.head_count_kv": 8, "rope.freq_base": 1e6,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[NO_BIAS], source="LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct"),
    M("internlm2-chat-1.8b", "internlm2", 4, 92544, dict(
        context_length=32768, embedding_length=2048, feed_forward_length=8192,
        **{"attention.head_count": 16, "attention.head_count_kv": 8, "rope.freq_base": 1e6,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      tied=False, drop=[NO_BIAS], source="internlm/internlm2-chat-1_8b"),
    M("stablelm-2-1.6b", "stablelm", 4, 100352, dict(
        context_length=4096, embedding_length=2048, feed_forward_length=5632,
        **{"attention.head_count": 32, "attention.head_count_kv": 32, "rope.dimension_count": 16,
           "attention.layer_norm_epsilon": 1e-5}),
      tied=False, drop=[r"attn_output\.bias", r"ffn_.*\.bias", r"attn_(q|k)_norm"],
      source="stabilityai/stablelm-2-1_6b"),
    M("starcoder2-3b", "starcoder2", 4, 49152, dict(
        context_length=16384, embedding_length=3072, feed_forward_length=12288,
        **{"attention.head_count": 24, "attention.head_count_kv": 2, "rope.freq_base": 999999.4,
           "attention.layer_norm_epsilon": 1e-5}),
      source="bigcode/starcoder2-3b"),
    M("pythia-1.4b", "gptneox", 4, 50304, dict(
        context_length=2048, embedding_length=2048, feed_forward_length=8192, use_parallel_residual=True,
        **{"attention.head_count": 16, "rope.dimension_count": 32, "attention.layer_norm_epsilon": 1e-5}),
      tied=False, source="EleutherAI/pythia-1.4b", fuse_qkv=True),
    M("phi-2", "phi2", 4, 51200, dict(
        context_length=2048, embedding_length=2560, feed_forward_length=10240,
        **{"attention.head_count": 32, "attention.head_count_kv": 32, "rope.dimension_count": 32,
           "attention.layer_norm_epsilon": 1e-5}),
      tied=False, drop=[r"attn_qkv"], source="microsoft/phi-2"),
    M("gemma-2b", "gemma", 4, 256000, dict(
        context_length=8192, embedding_length=2048, feed_forward_length=16384,
        **{"attention.head_count": 8, "attention.head_count_kv": 1, "attention.key_length": 256,
           "attention.value_length": 256, "attention.layer_norm_rms_epsilon": 1e-6}),
      drop=[NO_BIAS], source="google/gemma-2b"),
    M("ernie-4.5-0.3b", "ernie4_5", 4, 103424, dict(
        context_length=131072, embedding_length=1024, feed_forward_length=3072,
        **{"attention.head_count": 16, "attention.head_count_kv": 2, "rope.freq_base": 500000.0,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[NO_BIAS, r"exps|gate_inp|shexp|exp_probs"], source="baidu/ERNIE-4.5-0.3B-PT"),
    M("olmoe-1b-7b-0924", "olmoe", 2, 50304, dict(
        context_length=4096, embedding_length=2048, feed_forward_length=1024, expert_feed_forward_length=1024,
        expert_count=64, expert_used_count=8,
        **{"attention.head_count": 16, "attention.head_count_kv": 16, "rope.freq_base": 10000.0,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      tied=False, drop=[NO_BIAS], source="allenai/OLMoE-1B-7B-0924"),
    M("deepseek-v2-lite-3layer", "deepseek2", 3, 102400, dict(
        context_length=163840, embedding_length=2048, feed_forward_length=10944, expert_feed_forward_length=1408,
        expert_count=64, expert_used_count=6, expert_shared_count=2, leading_dense_block_count=1,
        expert_weights_scale=1.0,
        **{"attention.head_count": 16, "attention.head_count_kv": 1, "attention.kv_lora_rank": 512,
           # V2-Lite has no query compression; llama.cpp tells Lite by its 27 layers, so a
           # 3-layer file says so with a zero rank.
           "attention.q_lora_rank": 0,
           "attention.key_length": 576, "attention.value_length": 512, "attention.key_length_mla": 192,
           "attention.value_length_mla": 128, "rope.dimension_count": 64, "rope.freq_base": 10000.0,
           "attention.layer_norm_rms_epsilon": 1e-6, "rope.scaling.type": "yarn", "rope.scaling.factor": 40.0,
           "rope.scaling.original_context_length": 4096, "rope.scaling.yarn_log_multiplier": 0.0707}),
      tied=False, drop=[NO_BIAS, r"attn_q_a", r"attn_q_b", r"exp_probs_b", r"attn_kv_b"],
      source="deepseek-ai/DeepSeek-V2-Lite"),
    M("gpt-oss-20b-2layer", "gpt-oss", 2, 201088, dict(
        context_length=131072, embedding_length=2880, feed_forward_length=2880, expert_feed_forward_length=2880,
        expert_count=32, expert_used_count=4,
        **{"attention.head_count": 64, "attention.head_count_kv": 8, "attention.key_length": 64,
           "attention.value_length": 64, "rope.freq_base": 150000.0, "attention.layer_norm_rms_epsilon": 1e-5,
           "attention.sliding_window": 128, "rope.scaling.type": "yarn", "rope.scaling.factor": 32.0,
           "rope.scaling.original_context_length": 4096}),
      tied=False, source="openai/gpt-oss-20b"),
    M("phi-3.5-moe-2layer", "phimoe", 2, 32064, dict(
        context_length=131072, embedding_length=4096, feed_forward_length=6400, expert_count=16,
        expert_used_count=2,
        **{"attention.head_count": 32, "attention.head_count_kv": 8, "rope.freq_base": 10000.0,
           "attention.layer_norm_epsilon": 1e-5, "attention.layer_norm_rms_epsilon": 1e-5,
           "rope.dimension_count": 128}),
      tied=False, source="microsoft/Phi-3.5-MoE-instruct", special={32000: "<|endoftext|>", 32007: "<|end|>"}),
    M("mamba-130m", "mamba", 4, 50280, dict(
        context_length=1048576, embedding_length=768, feed_forward_length=0,
        **{"attention.head_count": 0, "ssm.conv_kernel": 4, "ssm.inner_size": 1536, "ssm.state_size": 16,
           "ssm.time_step_rank": 48, "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[r"ssm_(in|out|x)\.bias", r"ssm_dt_norm", r"ssm_b_norm", r"ssm_c_norm"], source="state-spaces/mamba-130m-hf"),
    M("nomic-embed-text-v1.5", "nomic-bert", 4, 30522, dict(
        context_length=2048, embedding_length=768, feed_forward_length=3072, pooling_type=1,
        **{"attention.head_count": 12, "attention.layer_norm_epsilon": 1e-12, "attention.causal": False,
           "rope.freq_base": 1000.0}),
      tok="bert", drop=[r"(attn_(q|k|v|output)|ffn_(up|down|gate))\.bias$", r"exps|gate_inp"],
      source="nomic-ai/nomic-embed-text-v1.5", fuse_qkv=True),
    M("afm-4.5b", "arcee", 4, 128004, dict(
        context_length=65536, embedding_length=2560, feed_forward_length=18432,
        **{"attention.head_count": 20, "attention.head_count_kv": 4, "attention.key_length": 128,
           "attention.value_length": 128, "rope.freq_base": 10000.0, "attention.layer_norm_rms_epsilon": 1e-5}),
      tied=False, drop=[NO_BIAS], source="arcee-ai/AFM-4.5B"),
    M("seed-oss-36b-2layer", "seed_oss", 2, 155136, dict(
        context_length=524288, embedding_length=5120, feed_forward_length=27648,
        **{"attention.head_count": 80, "attention.head_count_kv": 8, "attention.key_length": 128,
           "attention.value_length": 128, "rope.freq_base": 1e7, "attention.layer_norm_rms_epsilon": 1e-6}),
      tied=False, drop=[r"attn_output\.bias", r"ffn_.*\.bias"], source="ByteDance-Seed/Seed-OSS-36B-Instruct"),
    M("exaone-4.0-1.2b", "exaone4", 4, 102400, dict(
        context_length=65536, embedding_length=2048, feed_forward_length=4096,
        **{"attention.head_count": 32, "attention.head_count_kv": 8, "attention.key_length": 64,
           "attention.value_length": 64, "rope.freq_base": 1e6, "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[NO_BIAS], source="LGAI-EXAONE/EXAONE-4.0-1.2B"),
    M("olmo-1b-0724", "olmo", 4, 50304, dict(
        context_length=4096, embedding_length=2048, feed_forward_length=8192,
        **{"attention.head_count": 16, "attention.head_count_kv": 16, "rope.freq_base": 10000.0,
           "attention.layer_norm_epsilon": 1e-5, "attention.clamp_kqv": 8.0}),
      drop=[NO_BIAS], source="allenai/OLMo-1B-0724-hf"),
    M("ernie-4.5-21b-a3b-3layer", "ernie4_5-moe", 3, 103424, dict(
        context_length=131072, embedding_length=2560, feed_forward_length=12288, expert_feed_forward_length=1536,
        expert_count=64, expert_used_count=6, expert_shared_count=2, leading_dense_block_count=1,
        interleave_moe_layer_step=1,
        **{"attention.head_count": 20, "attention.head_count_kv": 4, "rope.freq_base": 500000.0,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[NO_BIAS], source="baidu/ERNIE-4.5-21B-A3B-PT"),
    M("glm-4.5-air-2layer", "glm4moe", 2, 151552, dict(
        context_length=131072, embedding_length=4096, feed_forward_length=10944, expert_feed_forward_length=1408,
        expert_count=128, expert_used_count=8, expert_shared_count=1, leading_dense_block_count=1,
        expert_weights_scale=1.0, expert_weights_norm=True, expert_gating_func=2, nextn_predict_layers=0,
        **{"attention.head_count": 96, "attention.head_count_kv": 8, "attention.key_length": 128,
           "attention.value_length": 128, "rope.dimension_count": 64, "rope.freq_base": 1e6,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      tied=False, drop=[r"attn_output\.bias", r"ffn_.*\.bias", r"attn_(q|k)_norm", r"nextn"],
      source="zai-org/GLM-4.5-Air"),
    M("mamba2-130m", "mamba2", 4, 50288, dict(
        context_length=1048576, embedding_length=768, feed_forward_length=0,
        **{"attention.head_count": 0, "ssm.conv_kernel": 4, "ssm.inner_size": 1536, "ssm.state_size": 128,
           "ssm.time_step_rank": 24, "ssm.group_count": 1, "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[r"ssm_(in|out|x)\.bias"], source="state-spaces/mamba2-130m"),
    M("jina-embeddings-v2-base-en", "jina-bert-v2", 4, 30528, dict(
        context_length=8192, embedding_length=768, feed_forward_length=3072, pooling_type=1,
        **{"attention.head_count": 12, "attention.layer_norm_epsilon": 1e-12, "attention.causal": False}),
      tok="bert", drop=[r"^cls", r"attn_(q|k)_norm", r"ffn_(gate|up)\.bias"], source="jinaai/jina-embeddings-v2-base-en"),
    # BAAI/bge-m3 (XLMRobertaModel) at full depth as conversion/bert.py's XLMRobertaModel writes it:
    # architecture `bert`, the XLM-R (UGM) tokenizer with one token type, 8194 positions less
    # XLM-R's two padding rows (8192), biases everywhere, CLS pooling (its sentence-transformers
    # pooling config).
    M("bge-m3", "bert", 24, 250002, dict(
        context_length=8192, embedding_length=1024, feed_forward_length=4096, pooling_type=2,
        **{"attention.head_count": 16, "attention.layer_norm_epsilon": 1e-5, "attention.causal": False}),
      tok="ugm", source="BAAI/bge-m3"),
    # ModernBERT-base at full depth (transformers' ModernBertConfig defaults, which are its
    # config.json's shapes): 22 layers, every 3rd global from layer 0 (`global_attn_every_n_layers`),
    # the others over a 128-token window, RoPE bases 160000 / 10000, GeGLU FFN fused in `ffn_up`
    # (2 x 1152 rows), no biases, no norm before layer 0's attention (identity in the checkpoint),
    # keys as conversion/bert.py's ModernBertModel writes them. The checkpoint ships no
    # sentence-transformers pooling config; mean pooling (1) as the other encoders of the set.
    M("modernbert-base", "modern-bert", 22, 50368, dict(
        context_length=8192, embedding_length=768, feed_forward_length=1152, pooling_type=1,
        hidden_activation="gelu",
        **{"attention.head_count": 12, "attention.layer_norm_epsilon": 1e-5, "attention.causal": False,
           "attention.sliding_window": 128, "attention.sliding_window_pattern": 3,
           "rope.freq_base": 160000.0, "rope.freq_base_swa": 10000.0, "rope.scaling.type": "none"}),
      drop=[r"^blk\.0\.attn_norm\."], source="answerdotai/ModernBERT-base"),
    # A ModernBERT reranker (Alibaba-NLP/gte-reranker-modernbert-base: ModernBERT-base's shapes,
    # ModernBertForSequenceClassification with one label): the head as the converter maps it
    # (`head.dense` -> `cls`, no bias; `head.norm` -> `cls.norm`; `classifier` -> `cls.output`
    # with its bias), rank pooling as `--reranking` sets it, and no `classifier.pooling_type`
    # key, for which llama.cpp's loader picks mean pooling before the head.
    M("gte-reranker-modernbert-base", "modern-bert", 22, 50368, dict(
        context_length=8192, embedding_length=768, feed_forward_length=1152, pooling_type=4,
        hidden_activation="gelu",
        **{"attention.head_count": 12, "attention.layer_norm_epsilon": 1e-5, "attention.causal": False,
           "attention.sliding_window": 128, "attention.sliding_window_pattern": 3,
           "rope.freq_base": 160000.0, "rope.freq_base_swa": 10000.0, "rope.scaling.type": "none"}),
      drop=[r"^blk\.0\.attn_norm\.", r"^cls\.bias$"], keep_cls=True,
      source="Alibaba-NLP/gte-reranker-modernbert-base"),
    M("starcoderbase-1b", "starcoder", 4, 49152, dict(
        context_length=8192, embedding_length=2048, feed_forward_length=8192,
        **{"attention.head_count": 16, "attention.head_count_kv": 1, "attention.layer_norm_epsilon": 1e-5}),
      source="bigcode/starcoderbase-1b", fuse_qkv=True),
    # The architectures of issue 16's second batch (published config.json values).
    llama4_scout(4),
    M("gemma-3n-e2b", "gemma3n", 30, 262400, dict(
        context_length=32768, embedding_length=2048, feed_forward_length=8192, embedding_length_per_layer_input=256,
        **{"attention.head_count": 8, "attention.head_count_kv": 2, "attention.key_length": 256,
           "attention.value_length": 256, "rope.freq_base": 1e6, "rope.freq_base_swa": 10000.0,
           "attention.layer_norm_rms_epsilon": 1e-6, "attention.sliding_window": 512,
           "altup.active_idx": 0, "altup.num_inputs": 4, "attention.shared_kv_layers": 10,
           "activation_sparsity_scale": [1.6448533535003662] * 10 + [0.0] * 20}),
      drop=[NO_BIAS], source="google/gemma-3n-E2B-it"),
    M("qwen3-next-80b-a3b-4layer", "qwen3next", 4, 151936, dict(
        context_length=262144, embedding_length=2048, feed_forward_length=5120, expert_feed_forward_length=512,
        expert_shared_feed_forward_length=512, expert_count=512, expert_used_count=10, full_attention_interval=4,
        **{"attention.head_count": 16, "attention.head_count_kv": 2, "attention.key_length": 256,
           "attention.value_length": 256, "rope.dimension_count": 64, "rope.freq_base": 1e7,
           "attention.layer_norm_rms_epsilon": 1e-6, "ssm.conv_kernel": 4, "ssm.inner_size": 4096,
           "ssm.state_size": 128, "ssm.time_step_rank": 32, "ssm.group_count": 16}),
      tied=False, drop=[NO_PROJ_BIAS, r"ffn_(gate|up|down)\.weight"], layout_experts=10, source="Qwen/Qwen3-Next-80B-A3B-Instruct"),
    M("minicpm-2b", "minicpm", 4, 122753, dict(
        context_length=4096, embedding_length=2304, feed_forward_length=5760, embedding_scale=12.0,
        residual_scale=0.22135943621178655, logit_scale=0.1111111111111111,
        **{"attention.head_count": 36, "attention.head_count_kv": 36, "rope.dimension_count": 64,
           "rope.freq_base": 10000.0, "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[NO_BIAS, r"exps|gate_inp|shexp"], source="openbmb/MiniCPM-2B-sft-bf16"),
    M("minicpm3-4b", "minicpm3", 4, 73448, dict(
        context_length=32768, embedding_length=2560, feed_forward_length=6400,
        **{"attention.head_count": 40, "attention.head_count_kv": 40, "attention.q_lora_rank": 768,
           "attention.kv_lora_rank": 256, "attention.key_length": 96, "attention.value_length": 64,
           "rope.dimension_count": 32, "rope.freq_base": 10000.0, "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[NO_BIAS], source="openbmb/MiniCPM3-4B"),
    M("hunyuan-a13b-2layer", "hunyuan-moe", 2, 128167, dict(
        context_length=32768, embedding_length=4096, feed_forward_length=3072, expert_feed_forward_length=3072,
        expert_shared_feed_forward_length=3072, expert_count=64, expert_used_count=8,
        **{"attention.head_count": 32, "attention.head_count_kv": 8, "attention.key_length": 128,
           "attention.value_length": 128, "rope.dimension_count": 128, "rope.freq_base": 11158840.0,
           "attention.layer_norm_rms_epsilon": 1e-5}),
      drop=[NO_BIAS], layout_experts=8, source="tencent/Hunyuan-A13B-Instruct"),
    M("granite-4.0-h-tiny-4layer", "granitehybrid", 4, 100352, dict(
        context_length=131072, embedding_length=1536, feed_forward_length=512, expert_feed_forward_length=512,
        expert_shared_feed_forward_length=1024, expert_count=64, expert_used_count=6,
        embedding_scale=12.0, residual_scale=0.22, logit_scale=6.0,
        **{"attention.head_count": 12, "attention.head_count_kv": [0, 4, 0, 0],
           "attention.layer_norm_rms_epsilon": 1e-5, "attention.scale": 0.0078125,
           "rope.scaling.finetuned": False, "ssm.conv_kernel": 4, "ssm.inner_size": 3072,
           "ssm.state_size": 128, "ssm.time_step_rank": 48, "ssm.group_count": 1}),
      drop=[NO_PROJ_BIAS, r"ffn_(gate|up|down)\.weight"], layout_experts=6, source="ibm-granite/granite-4.0-h-tiny"),
    M("falcon-h1-0.5b", "falcon-h1", 4, 32784, dict(
        context_length=16384, embedding_length=1024, feed_forward_length=2048,
        **{"attention.head_count": 8, "attention.head_count_kv": 2, "attention.key_length": 64,
           "attention.value_length": 64, "rope.freq_base": 1e11, "attention.layer_norm_rms_epsilon": 1e-5,
           "ssm.conv_kernel": 4, "ssm.inner_size": 1536, "ssm.state_size": 128, "ssm.time_step_rank": 24,
           "ssm.group_count": 1}),
      tied=False, drop=[NO_PROJ_BIAS], source="tiiuae/Falcon-H1-0.5B-Instruct"),
    M("nemotron-nano-9b-v2-6layer", "nemotron_h", 6, 131072, dict(
        context_length=131072, embedding_length=4480, feed_forward_length=[0, 15680, 0, 0, 15680, 0],
        **{"attention.head_count": 40, "attention.head_count_kv": [0, 0, 0, 8, 0, 0], "attention.key_length": 128,
           "attention.value_length": 128, "attention.layer_norm_epsilon": 1e-5,
           "attention.layer_norm_rms_epsilon": 1e-5, "ssm.conv_kernel": 4, "ssm.inner_size": 10240,
           "ssm.state_size": 128, "ssm.time_step_rank": 128, "ssm.group_count": 8}),
      tied=False, drop=[NO_PROJ_BIAS], source="nvidia/NVIDIA-Nemotron-Nano-9B-v2"),
    M("jamba-mini-1.6-6layer", "jamba", 6, 65536, dict(
        context_length=262144, embedding_length=4096, feed_forward_length=14336, expert_count=16,
        expert_used_count=2,
        **{"attention.head_count": 32, "attention.head_count_kv": [0, 0, 0, 0, 8, 0],
           "attention.layer_norm_rms_epsilon": 1e-6, "ssm.conv_kernel": 4, "ssm.inner_size": 8192,
           "ssm.state_size": 16, "ssm.time_step_rank": 256}),
      tied=False, drop=[NO_PROJ_BIAS], layout_experts=2, source="ai21labs/AI21-Jamba-Mini-1.6"),
    M("rwkv6-finch-1b6", "rwkv6", 4, 65536, dict(
        context_length=1048576, embedding_length=2048, feed_forward_length=7168, **{"wkv.head_size": 64},
        time_mix_extra_dim=32, time_decay_extra_dim=64, rescale_every_n_layers=6,
        **{"attention.head_count": 0, "attention.layer_norm_epsilon": 1e-5}),
      tied=False, source="RWKV/v6-Finch-1B6-HF"),
    M("rwkv7-world-1.5b", "rwkv7", 4, 65536, dict(
        context_length=1048576, embedding_length=2048, feed_forward_length=8192, **{"wkv.head_size": 64},
        **{"attention.head_count": 0, "attention.layer_norm_epsilon": 1e-5, "attention.decay_lora_rank": 96,
           "attention.iclr_lora_rank": 96, "attention.value_residual_mix_lora_rank": 64,
           "attention.gate_lora_rank": 256}),
      tied=False, source="fla-hub/rwkv7-1.5B-world"),
    M("ling-lite-1.5-2layer", "bailingmoe", 2, 126464, dict(
        context_length=16384, embedding_length=2048, feed_forward_length=5632, expert_feed_forward_length=1408,
        expert_count=64, expert_used_count=6, expert_shared_count=2, expert_weights_norm=True,
        **{"attention.head_count": 16, "attention.head_count_kv": 4, "attention.key_length": 128,
           "attention.value_length": 128, "rope.dimension_count": 128, "rope.freq_base": 600000.0,
           "attention.layer_norm_rms_epsilon": 1e-6}),
      tied=False, drop=[NO_BIAS, r"ffn_(gate|up|down)\.weight"], layout_experts=6, source="inclusionAI/Ling-lite-1.5"),
    M("dots.llm1-3layer", "dots1", 3, 152064, dict(
        context_length=32768, embedding_length=4096, feed_forward_length=10944, expert_feed_forward_length=1408,
        expert_count=128, expert_used_count=6, expert_shared_count=2, leading_dense_block_count=1,
        expert_weights_scale=2.5, expert_weights_norm=True, expert_gating_func=2,
        **{"attention.head_count": 32, "attention.head_count_kv": 32, "attention.key_length": 128,
           "attention.value_length": 128, "rope.freq_base": 1e6, "attention.layer_norm_rms_epsilon": 1e-5}),
      tied=False, drop=[NO_BIAS], layout_experts=6, source="rednote-hilab/dots.llm1.inst"),
    # DeepSeek-V1 MoE (`deepseek`): a dense first layer (first_k_dense_replace 1), then routed
    # experts with two shared ones, softmax gating without normalising the top-k weights;
    # written as conversion/deepseek.py's DeepseekModel writes them (rope dimension = head
    # size, no rope scaling, expert weights scale 1.0).
    M("deepseek-moe-16b-3layer", "deepseek", 3, 102400, dict(
        context_length=4096, embedding_length=2048, feed_forward_length=10944, expert_feed_forward_length=1408,
        expert_count=64, expert_used_count=6, expert_shared_count=2, leading_dense_block_count=1,
        expert_weights_scale=1.0,
        **{"attention.head_count": 16, "attention.head_count_kv": 16, "rope.dimension_count": 128,
           "rope.freq_base": 10000.0, "attention.layer_norm_rms_epsilon": 1e-6, "rope.scaling.type": "none"}),
      tied=False, drop=[NO_BIAS], source="deepseek-ai/deepseek-moe-16b-base"),
    # ChatGLM3 (`chatglm`): fused QKV with its bias (add_qkv_bias), 2 KV groups
    # (multi_query_group_num), RoPE on half the head (conversion/chatglm.py: partial rotary
    # factor 0.5 of hidden/heads = 64), fused gate-up FFN (dense_h_to_4h, 2 x 13696), untied
    # output_layer, seq_length 8192, no rope_ratio (base 10000).
    M("chatglm3-6b", "chatglm", 4, 65024, dict(
        context_length=8192, embedding_length=4096, feed_forward_length=13696,
        **{"attention.head_count": 32, "attention.head_count_kv": 2, "rope.dimension_count": 64,
           "rope.freq_base": 10000.0, "attention.layer_norm_rms_epsilon": 1e-5}),
      tied=False, drop=[r"attn_output\.bias", r"ffn_.*\.bias"], fuse_qkv=True, source="THUDM/chatglm3-6b"),
    # GLM-4-9B-Chat in its original (not -hf) layout: the same `chatglm` builder, vocabulary
    # 151552 (padded_vocab_size), seq_length 131072, rope_ratio 500 (base 5e6), eps 1.5625e-07.
    M("glm-4-9b-chat", "chatglm", 4, 151552, dict(
        context_length=131072, embedding_length=4096, feed_forward_length=13696,
        **{"attention.head_count": 32, "attention.head_count_kv": 2, "rope.dimension_count": 64,
           "rope.freq_base": 5e6, "attention.layer_norm_rms_epsilon": 1.5625e-07}),
      tied=False, drop=[r"attn_output\.bias", r"ffn_.*\.bias"], fuse_qkv=True, source="THUDM/glm-4-9b-chat"),
    # Session 9's cuts for replay paths the cuts above leave out (issue 16). SmolLM3-3B with 8
    # layers: its NoPE layers (every 4th, 3 and 7) start a device's split at ngl 5.
    M("smollm3-3b-8layer", "smollm3", 8, 128256, dict(
        context_length=65536, embedding_length=2048, feed_forward_length=11008,
        **{"attention.head_count": 16, "attention.head_count_kv": 4, "rope.freq_base": 5e6,
           "attention.layer_norm_rms_epsilon": 1e-6}),
      drop=[NO_BIAS], source="HuggingFaceTB/SmolLM3-3B"),
    # Llama 4 Scout with 8 layers: full attention (no RoPE) on every 4th layer (3 and 7), chunked
    # on the others, so a split can start at a full-attention layer followed by chunked ones.
    llama4_scout(8),
    # Jamba Mini 1.6 as published: experts on every other layer (expert_layer_period 2,
    # expert_layer_offset 1: layers 1, 3, 5), a dense FFN on the others; attention on layer 4
    # (attn_layer_period 8, attn_layer_offset 4).
    M("jamba-mini-1.6-alt-6layer", "jamba", 6, 65536, dict(
        context_length=262144, embedding_length=4096, feed_forward_length=14336, expert_count=16,
        expert_used_count=2,
        **{"attention.head_count": 32, "attention.head_count_kv": [0, 0, 0, 0, 8, 0],
           "attention.layer_norm_rms_epsilon": 1e-6, "ssm.conv_kernel": 4, "ssm.inner_size": 8192,
           "ssm.state_size": 16, "ssm.time_step_rank": 256}),
      tied=False, drop=[NO_PROJ_BIAS], layout_experts=2, dense_layers=[0, 2, 4], source="ai21labs/AI21-Jamba-Mini-1.6"),
    M("t5-v1.1-xxl-encoder-4layer", "t5encoder", 4, 32128, dict(
        context_length=512, embedding_length=4096, feed_forward_length=10240,
        **{"attention.head_count": 64, "attention.key_length": 64, "attention.value_length": 64,
           "attention.layer_norm_rms_epsilon": 1e-6, "attention.relative_buckets_count": 32}),
      tied=False, drop=[NO_BIAS], source="google/t5-v1_1-xxl"),
    # Falcon as conversion/falcon.py writes it: context 2048 ("not in config.json"), FFN 4x
    # hidden, head count and KV head count (`n_head_kv`, default 1: multi-query), the layer
    # norm epsilon; no linear biases (`bias: false`); lm_head is in the checkpoint (untied).
    # falcon-7b: one layer norm per layer (ln_attn feeds attention and MLP).
    M("falcon-7b", "falcon", 4, 65024, dict(
        context_length=2048, embedding_length=4544, feed_forward_length=18176, tensor_data_layout="jploski",
        **{"attention.head_count": 71, "attention.head_count_kv": 1, "attention.layer_norm_epsilon": 1e-5}),
      tied=False, drop=[r"attn_norm_2"], source="tiiuae/falcon-7b"),
    # falcon-40b, the new decoder architecture: 8 KV heads (`num_kv_heads`), ln_attn and ln_mlp
    # (attn_norm_2 and attn_norm in llama.cpp's tensor names).
    M("falcon-40b-2layer", "falcon", 2, 65024, dict(
        context_length=2048, embedding_length=8192, feed_forward_length=32768, tensor_data_layout="jploski",
        **{"attention.head_count": 128, "attention.head_count_kv": 8, "attention.layer_norm_epsilon": 1e-5}),
      tied=False, source="tiiuae/falcon-40b"),
]
SPECS = {s["name"]: s for s in SPECS}


def add_kv(w, arch, key, val):
    full = f"{arch}.{key}"
    if isinstance(val, bool):
        w.add_bool(full, val)
    elif isinstance(val, int):
        w.add_uint32(full, val)
    elif isinstance(val, float):
        w.add_float32(full, val)
    elif isinstance(val, str):
        w.add_string(full, val)
    elif isinstance(val, list):
        sub = VT.UINT32 if all(isinstance(v, (int, bool)) for v in val) else VT.FLOAT32
        w.add_key_value(full, val, VT.ARRAY, sub_type=sub)
    else:
        raise TypeError(key)


def tokenizer(w, kind, n_vocab, special):
    if kind == "bert":
        special = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
        tokens = [special.get(i, f"tok{i}") for i in range(n_vocab)]
        w.add_tokenizer_model("bert")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types([3 if i in special else 1 for i in range(n_vocab)])
        w.add_token_type_count(2)
        w.add_unk_token_id(100); w.add_sep_token_id(102); w.add_pad_token_id(0)
        w.add_bos_token_id(101); w.add_mask_token_id(103)
        return
    if kind == "ugm":
        # XLM-RoBERTa's sentencepiece vocabulary as the converter writes it (`t5`, UGM): <s>,
        # <pad>, </s>, <unk> first, <mask> last, one token type.
        special = {0: "<s>", 1: "<pad>", 2: "</s>", 3: "<unk>", n_vocab - 1: "<mask>"}
        w.add_tokenizer_model("t5")
        w.add_tokenizer_pre("default")
        w.add_token_list([special.get(i, f"\u2581tok{i}") for i in range(n_vocab)])
        w.add_token_scores([0.0 if i in special else -float(i) for i in range(n_vocab)])
        w.add_token_types([2 if i == 3 else 3 if i in special else 1 for i in range(n_vocab)])
        w.add_token_type_count(1)
        w.add_bos_token_id(0); w.add_pad_token_id(1); w.add_eos_token_id(2); w.add_unk_token_id(3)
        w.add_mask_token_id(n_vocab - 1)
        return
    tokens, types = [], []
    for i in range(n_vocab):
        if i < 3:
            tokens.append(["<unk>", "<s>", "</s>"][i]); types.append(2 if i == 0 else 3)
        elif i < 259:
            tokens.append("<0x%02X>" % (i - 3)); types.append(6)
        elif i in special:
            tokens.append(special[i]); types.append(3)
        else:
            tokens.append(f"tok{i}"); types.append(1)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(n_vocab)])
    w.add_token_types(types)
    w.add_bos_token_id(1); w.add_eos_token_id(2); w.add_unk_token_id(0)


def metadata(w, spec, with_tokenizer):
    arch = spec["arch"]
    w.add_name(spec["name"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    add_kv(w, arch, "block_count", spec["layers"])
    for k, v in spec["kv"].items():
        add_kv(w, arch, k, v)
    if with_tokenizer:
        tokenizer(w, spec["tok"], spec["vocab"], spec["special"])
    else:
        add_kv(w, arch, "vocab_size", spec["vocab"])


# Expert tensors: the expert count is their last dimension (the router's output width).
EXPERT_TENSORS = re.compile(r"(_exps\.(weight|bias)|ffn_gate_inp\.(weight|bias)|exp_probs_b\.bias)$")


def layout(spec, scratch):
    """Tensor names and shapes as llama.cpp's load_arch_tensors creates them (in a subprocess).

    The virtual loader allocates (untouched) memory for every tensor, which a host cannot
    reserve for large expert sets; `layout_experts` lays such a model out with fewer experts and
    sets the expert dimension back to the real count."""
    real = spec["kv"].get("expert_count")
    if spec["layout_experts"]:
        spec = dict(spec, kv=dict(spec["kv"], expert_count=spec["layout_experts"]))
    meta = os.path.join(scratch, spec["name"] + ".meta.gguf")
    w = GGUFWriter(meta, spec["arch"])
    metadata(w, spec, True)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_ti_data_to_file(); w.close()
    p = subprocess.run([sys.executable, __file__, "--layout", meta], capture_output=True, text=True, timeout=600)
    os.unlink(meta)
    tensors = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not tensors:
        raise RuntimeError(f"{spec['name']}: llama.cpp refused the metadata:\n{p.stderr[-3000:]}")
    if spec["layout_experts"]:
        for t in tensors:
            if EXPERT_TENSORS.search(t["name"]) and t["ne"][-1] == spec["layout_experts"]:
                t["ne"][-1] = real
    return tensors


def layout_worker(meta):
    """Runs llama_model_init_from_user on the metadata and prints each tensor it creates."""
    import llama_cpp
    lib = llama_cpp.llama_cpp._lib
    base = ctypes.CDLL(os.path.join(os.environ["LLAMA_CPP_LIB_PATH"], "libggml-base.so"))

    class GgufInitParams(ctypes.Structure):
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

    base.gguf_init_from_file.restype = ctypes.c_void_p
    base.gguf_init_from_file.argtypes = [ctypes.c_char_p, GgufInitParams]
    base.ggml_get_name.restype = ctypes.c_char_p
    base.ggml_get_name.argtypes = [ctypes.c_void_p]
    ctx = base.gguf_init_from_file(meta.encode(), GgufInitParams(True, None))
    CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)

    def record(tensor, _):
        # struct ggml_tensor { enum ggml_type type; struct ggml_backend_buffer * buffer; int64_t ne[4]; ...}
        ne = (ctypes.c_int64 * 4).from_address(tensor + 16)
        dims = list(ne)
        while len(dims) > 1 and dims[-1] == 1:
            dims.pop()
        print(json.dumps({"name": base.ggml_get_name(tensor).decode(), "ne": dims}), flush=True)

    cb = CB(record)
    lib.llama_model_init_from_user.restype = ctypes.c_void_p
    lib.llama_model_init_from_user.argtypes = [ctypes.c_void_p, CB, ctypes.c_void_p, llama_cpp.llama_model_params]
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0
    model = lib.llama_model_init_from_user(ctx, cb, None, params)
    if not model:
        sys.exit(1)


def kept(spec, tensors):
    # A reranker keeps its classifier head (`keep_cls`).
    common = [d for d in COMMON_DROP if not (d == r"^output\.bias" and spec["arch"] in OUTPUT_BIAS)
              and not (d == r"^cls" and spec["keep_cls"])]
    drop = [re.compile(d) for d in spec["drop"] + common]
    out, seen = [], set()
    for t in tensors:
        name = t["name"]
        if name in seen:  # TENSOR_DUPLICATED: the tied output reads token_embd again
            continue
        seen.add(name)
        if spec["tied"] and name == "output.weight":
            continue
        if any(d.search(name) for d in drop):
            continue
        out.append(t)
    return out


def fused_qkv(tensors):
    """The converter's fused `attn_qkv` in place of split Q, K, V (llama.cpp's virtual loader
    skips the fused form, `TENSOR_SKIP_IF_VIRTUAL`, and llama.cpp loads either)."""
    by_name = {t["name"]: t for t in tensors}
    out = []
    for t in tensors:
        m = re.match(r"blk\.(\d+)\.attn_([qkv])\.(weight|bias)$", t["name"])
        if not m:
            out.append(t)
            continue
        layer, which, kind = m.groups()
        if which != "q":
            continue
        parts = [by_name[f"blk.{layer}.attn_{p}.{kind}"]["ne"] for p in "qkv"]
        rows = sum(ne[-1] for ne in parts)
        ne = [rows] if kind == "bias" else [parts[0][0], rows]
        out.append({"name": f"blk.{layer}.attn_qkv.{kind}", "ne": ne})
    return out


def dense_ffn(tensors, layers):
    """A dense FFN in place of the router and experts on `layers`: for an architecture whose
    router is optional (`ffn_gate_inp` TENSOR_NOT_REQUIRED, e.g. jamba.cpp's load_arch_tensors),
    the virtual loader creates experts on every layer; a checkpoint whose config alternates them
    has `ffn_gate`/`ffn_up` {n_embd, n_ff} and `ffn_down` {n_ff, n_embd} there instead, the
    experts' shapes without the expert dimension (the loader's else branch)."""
    out = []
    for t in tensors:
        m = re.match(r"blk\.(\d+)\.ffn_(gate_inp|gate_exps|up_exps|down_exps)\.weight$", t["name"])
        if not m or int(m.group(1)) not in layers:
            out.append(t)
        elif m.group(2) != "gate_inp":
            out.append({"name": f"blk.{m.group(1)}.ffn_{m.group(2)[:-5]}.weight", "ne": t["ne"][:2]})
    return out


def ggml_type(name, ne):
    if len(ne) == 1 or F32_NAMES.search(name):
        return F32
    return F16


def nbytes(ne, qt):
    return int(np.prod(ne)) * (2 if qt == F16 else 4)


def write(path, spec, tensors, with_tokenizer, with_data):
    w = GGUFWriter(path, spec["arch"])
    metadata(w, spec, with_tokenizer)
    for t in tensors:
        qt = ggml_type(t["name"], t["ne"])
        dtype = np.float16 if qt == F16 else np.float32
        w.add_tensor_info(t["name"], tuple(reversed(t["ne"])), np.dtype(dtype), nbytes(t["ne"], qt), raw_dtype=qt)
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    f = w.fout[0]
    w.write_padding(f, f.tell())
    if with_data:
        start = f.tell()
        total = sum(GGUFWriter.ggml_pad(nbytes(t["ne"], ggml_type(t["name"], t["ne"])), w.data_alignment)
                    for t in tensors)
        f.truncate(start + total)  # sparse, zero-filled tensor data
    w.close()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--layout":
        return layout_worker(sys.argv[2])
    ap = argparse.ArgumentParser()
    ap.add_argument("models_dir")
    ap.add_argument("fixtures_dir")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--skip-existing", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.models_dir, exist_ok=True)
    os.makedirs(args.fixtures_dir, exist_ok=True)
    for name in args.only or list(SPECS):
        spec = SPECS[name]
        if args.skip_existing and os.path.exists(os.path.join(args.fixtures_dir, f"{name}-F16.header.gguf")):
            continue
        try:
            tensors = kept(spec, layout(spec, args.models_dir))
            if spec["fuse_qkv"]:
                tensors = fused_qkv(tensors)
            if spec["dense_layers"]:
                tensors = dense_ffn(tensors, spec["dense_layers"])
        except Exception as e:  # report and go on with the next model
            print(f"FAILED {name}: {e}", flush=True)
            continue
        model = os.path.join(args.models_dir, f"{name}-F16.gguf")
        write(model, spec, tensors, with_tokenizer=True, with_data=True)
        write(os.path.join(args.fixtures_dir, f"{name}-F16.header.gguf"), spec, tensors,
              with_tokenizer=False, with_data=False)
        print(f"wrote {model}: {len(tensors)} tensors", flush=True)


if __name__ == "__main__":
    main()
