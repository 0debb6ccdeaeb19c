#!/usr/bin/env python3
"""Write zero-weight (sparse) single-file checkpoints in the ORIGINAL (LDM/SGM/BFL/SAI) key layout
for SD1.5, SD2.1/SD-Turbo, SDXL, a depth-reduced FLUX.1-schnell-like transformer and the SD3.5
medium/large MMDiTs (full depth: sd.cpp derives the width from it), plus CLIP-L/G and T5-XXL.
With GEN_GGUF=1 the same tensors go to a sparse F16 GGUF and its header (NAME.f16.gguf.header).

No torch needed: shapes are enumerated from the public architecture configs
(ldm openaimodel UNet, AutoencoderKL, HF CLIPTextModel, OpenCLIP text tower, BFL flux).
Data section is a hole (truncate), so files are sparse; dtype F16 (or F32 where noted).
Usage: gen_models.py OUTDIR [sd15 sd21 sdxl flux_reduced ...]
"""
import json, os, struct, sys
from collections import OrderedDict

DT_SIZE = {"F16": 2, "F32": 4, "BF16": 2}


class W:
    def __init__(self):
        self.t = OrderedDict()

    def add(self, name, shape, dtype="F16"):
        assert name not in self.t, name
        self.t[name] = (list(shape), dtype)

    def lin(self, p, o, i, bias=True):
        self.add(p + ".weight", [o, i])
        if bias:
            self.add(p + ".bias", [o])

    def conv(self, p, o, i, k, bias=True):
        self.add(p + ".weight", [o, i, k, k])
        if bias:
            self.add(p + ".bias", [o])

    def norm(self, p, c):
        self.add(p + ".weight", [c])
        self.add(p + ".bias", [c])

    def write(self, path, meta=None):
        hdr = OrderedDict()
        if meta:
            hdr["__metadata__"] = meta
        off = 0
        for n, (s, dt) in self.t.items():
            nb = DT_SIZE[dt]
            for d in s:
                nb *= d
            hdr[n] = {"dtype": dt, "shape": s, "data_offsets": [off, off + nb]}
            off += nb
        h = json.dumps(hdr, separators=(",", ":")).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            f.truncate(8 + len(h) + off)  # sparse zeros
        return off


def write_gguf(w, path):
    """The same tensors as a sparse GGUF (what `sd-cli -M convert --type f16` writes for an F16
    checkpoint: original names, no metadata); returns the data offset, where its header ends."""
    import gguf
    import numpy as np
    g = gguf.GGUFWriter(path, "")
    qt = {"F16": gguf.GGMLQuantizationType.F16, "F32": gguf.GGMLQuantizationType.F32}
    total = 0
    for n, (shape, dt) in w.t.items():
        nb = DT_SIZE[dt] * int(np.prod(shape))
        g.add_tensor_info(n, tuple(shape), np.dtype(np.float16 if dt == "F16" else np.float32), nb,
                          raw_dtype=qt[dt])
        total += gguf.GGUFWriter.ggml_pad(nb, g.data_alignment)
    g.write_header_to_file(path)
    g.write_kv_data_to_file()
    g.write_ti_data_to_file()
    f = g.fout[0]
    g.write_padding(f, f.tell())
    start = f.tell()
    f.truncate(start + total)
    g.close()
    return start


# ---------------- UNet (ldm.modules.diffusionmodules.openaimodel) ----------------
def resblock(w, p, cin, cout, emb):
    w.norm(p + ".in_layers.0", cin)
    w.conv(p + ".in_layers.2", cout, cin, 3)
    w.lin(p + ".emb_layers.1", cout, emb)
    w.norm(p + ".out_layers.0", cout)
    w.conv(p + ".out_layers.3", cout, cout, 3)
    if cin != cout:
        w.conv(p + ".skip_connection", cout, cin, 1)


def spatial_transformer(w, p, ch, depth, ctx, linear):
    w.norm(p + ".norm", ch)
    if linear:
        w.lin(p + ".proj_in", ch, ch)
    else:
        w.conv(p + ".proj_in", ch, ch, 1)
    for d in range(depth):
        b = f"{p}.transformer_blocks.{d}"
        for a, kv in (("attn1", ch), ("attn2", ctx)):
            w.lin(f"{b}.{a}.to_q", ch, ch, bias=False)
            w.lin(f"{b}.{a}.to_k", ch, kv, bias=False)
            w.lin(f"{b}.{a}.to_v", ch, kv, bias=False)
            w.lin(f"{b}.{a}.to_out.0", ch, ch)
        w.lin(f"{b}.ff.net.0.proj", ch * 8, ch)  # GEGLU: 2 * 4ch
        w.lin(f"{b}.ff.net.2", ch, ch * 4)
        for n in ("norm1", "norm2", "norm3"):
            w.norm(f"{b}.{n}", ch)
    if linear:
        w.lin(p + ".proj_out", ch, ch)
    else:
        w.conv(p + ".proj_out", ch, ch, 1)


def unet(w, P, mc, mult, nres, attn_depth, mid_depth, ctx, linear, adm=None, in_ch=4, out_ch=4):
    emb = mc * 4
    w.lin(P + "time_embed.0", emb, mc)
    w.lin(P + "time_embed.2", emb, emb)
    if adm:
        w.lin(P + "label_emb.0.0", emb, adm)
        w.lin(P + "label_emb.0.2", emb, emb)
    w.conv(P + "input_blocks.0.0", mc, in_ch, 3)
    chans = [mc]
    ch = mc
    idx = 1
    for lvl, m in enumerate(mult):
        for _ in range(nres):
            resblock(w, f"{P}input_blocks.{idx}.0", ch, m * mc, emb)
            ch = m * mc
            if attn_depth[lvl] > 0:
                spatial_transformer(w, f"{P}input_blocks.{idx}.1", ch, attn_depth[lvl], ctx, linear)
            chans.append(ch)
            idx += 1
        if lvl != len(mult) - 1:
            w.conv(f"{P}input_blocks.{idx}.0.op", ch, ch, 3)
            chans.append(ch)
            idx += 1
    resblock(w, P + "middle_block.0", ch, ch, emb)
    spatial_transformer(w, P + "middle_block.1", ch, mid_depth, ctx, linear)
    resblock(w, P + "middle_block.2", ch, ch, emb)
    idx = 0
    for lvl, m in list(enumerate(mult))[::-1]:
        for i in range(nres + 1):
            ich = chans.pop()
            resblock(w, f"{P}output_blocks.{idx}.0", ch + ich, m * mc, emb)
            ch = m * mc
            layer = 1
            if attn_depth[lvl] > 0:
                spatial_transformer(w, f"{P}output_blocks.{idx}.1", ch, attn_depth[lvl], ctx, linear)
                layer = 2
            if lvl and i == nres:
                w.conv(f"{P}output_blocks.{idx}.{layer}.conv", ch, ch, 3)
            idx += 1
    w.norm(P + "out.0", mc)
    w.conv(P + "out.2", out_ch, mc, 3)


# ---------------- AutoencoderKL (ldm.modules.diffusionmodules.model) ----------------
def vae_resnet(w, p, cin, cout):
    w.norm(p + ".norm1", cin)
    w.conv(p + ".conv1", cout, cin, 3)
    w.norm(p + ".norm2", cout)
    w.conv(p + ".conv2", cout, cout, 3)
    if cin != cout:
        w.conv(p + ".nin_shortcut", cout, cin, 1)


def vae_attn(w, p, c):
    w.norm(p + ".norm", c)
    for n in ("q", "k", "v", "proj_out"):
        w.conv(p + "." + n, c, c, 1)


def vae(w, P, z=4, ch=128, mult=(1, 2, 4, 4), nres=2, quant_conv=True):
    E = P + "encoder."
    w.conv(E + "conv_in", ch, 3, 3)
    cin = ch
    for i, m in enumerate(mult):
        cout = ch * m
        for j in range(nres):
            vae_resnet(w, f"{E}down.{i}.block.{j}", cin, cout)
            cin = cout
        if i != len(mult) - 1:
            w.conv(f"{E}down.{i}.downsample.conv", cin, cin, 3)
    vae_resnet(w, E + "mid.block_1", cin, cin)
    vae_attn(w, E + "mid.attn_1", cin)
    vae_resnet(w, E + "mid.block_2", cin, cin)
    w.norm(E + "norm_out", cin)
    w.conv(E + "conv_out", 2 * z, cin, 3)
    if quant_conv:
        w.conv(P + "quant_conv", 2 * z, 2 * z, 1)
        w.conv(P + "post_quant_conv", z, z, 1)
    D = P + "decoder."
    bin_ = ch * mult[-1]
    w.conv(D + "conv_in", bin_, z, 3)
    vae_resnet(w, D + "mid.block_1", bin_, bin_)
    vae_attn(w, D + "mid.attn_1", bin_)
    vae_resnet(w, D + "mid.block_2", bin_, bin_)
    for i in reversed(range(len(mult))):
        cout = ch * mult[i]
        for j in range(nres + 1):
            vae_resnet(w, f"{D}up.{i}.block.{j}", bin_, cout)
            bin_ = cout
        if i != 0:
            w.conv(f"{D}up.{i}.upsample.conv", bin_, bin_, 3)
    w.norm(D + "norm_out", bin_)
    w.conv(D + "conv_out", 3, bin_, 3)


# ---------------- text encoders ----------------
def hf_clip(w, P, width, layers, mlp, proj=None, vocab=49408, ctx=77):
    T = P + "text_model."
    w.add(T + "embeddings.token_embedding.weight", [vocab, width])
    w.add(T + "embeddings.position_embedding.weight", [ctx, width])
    for l in range(layers):
        b = f"{T}encoder.layers.{l}"
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w.lin(f"{b}.self_attn.{n}", width, width)
        w.norm(b + ".layer_norm1", width)
        w.norm(b + ".layer_norm2", width)
        w.lin(b + ".mlp.fc1", mlp, width)
        w.lin(b + ".mlp.fc2", width, mlp)
    w.norm(T + "final_layer_norm", width)
    if proj:
        w.add(P + "text_projection.weight", [proj, width])


def open_clip(w, P, width, layers, mlp, proj, vocab=49408, ctx=77):
    w.add(P + "token_embedding.weight", [vocab, width])
    w.add(P + "positional_embedding", [ctx, width])
    for l in range(layers):
        b = f"{P}transformer.resblocks.{l}"
        w.norm(b + ".ln_1", width)
        w.add(b + ".attn.in_proj_weight", [3 * width, width])
        w.add(b + ".attn.in_proj_bias", [3 * width])
        w.lin(b + ".attn.out_proj", width, width)
        w.norm(b + ".ln_2", width)
        w.lin(b + ".mlp.c_fc", mlp, width)
        w.lin(b + ".mlp.c_proj", width, mlp)
    w.norm(P + "ln_final", width)
    w.add(P + "text_projection", [width, proj])
    w.add(P + "logit_scale", [])


# ---------------- FLUX (BFL layout) ----------------
def flux(w, P, depth, depth_single, hidden=3072, heads=24, mlp_ratio=4.0, in_ch=64, ctx=4096, vec=768, guidance=False):
    hd = hidden // heads
    mlp = int(hidden * mlp_ratio)
    w.lin(P + "img_in", hidden, in_ch)
    w.lin(P + "time_in.in_layer", hidden, 256)
    w.lin(P + "time_in.out_layer", hidden, hidden)
    w.lin(P + "vector_in.in_layer", hidden, vec)
    w.lin(P + "vector_in.out_layer", hidden, hidden)
    if guidance:
        w.lin(P + "guidance_in.in_layer", hidden, 256)
        w.lin(P + "guidance_in.out_layer", hidden, hidden)
    w.lin(P + "txt_in", hidden, ctx)
    for i in range(depth):
        b = f"{P}double_blocks.{i}"
        for s in ("img", "txt"):
            w.lin(f"{b}.{s}_mod.lin", 6 * hidden, hidden)
            w.lin(f"{b}.{s}_attn.qkv", 3 * hidden, hidden)
            w.add(f"{b}.{s}_attn.norm.query_norm.scale", [hd])
            w.add(f"{b}.{s}_attn.norm.key_norm.scale", [hd])
            w.lin(f"{b}.{s}_attn.proj", hidden, hidden)
            w.lin(f"{b}.{s}_mlp.0", mlp, hidden)
            w.lin(f"{b}.{s}_mlp.2", hidden, mlp)
    for i in range(depth_single):
        b = f"{P}single_blocks.{i}"
        w.lin(b + ".linear1", 3 * hidden + mlp, hidden)
        w.lin(b + ".linear2", hidden, hidden + mlp)
        w.add(b + ".norm.query_norm.scale", [hd])
        w.add(b + ".norm.key_norm.scale", [hd])
        w.lin(b + ".modulation.lin", 3 * hidden, hidden)
    w.lin(P + "final_layer.linear", in_ch, hidden)
    w.lin(P + "final_layer.adaLN_modulation.1", 2 * hidden, hidden)


# ---------------- SD3 / SD3.5 MMDiT (original SAI layout) ----------------
def mmdit_attn(w, p, hidden, qk_norm, pre_only):
    w.lin(p + ".qkv", 3 * hidden, hidden)
    if not pre_only:
        w.lin(p + ".proj", hidden, hidden)
    if qk_norm:
        w.add(p + ".ln_q.weight", [64])
        w.add(p + ".ln_k.weight", [64])


def mmdit(w, P, depth, x_self_layers=0, qk_norm=True, pos_embed_max=192):
    """MMDiT with `depth` joint blocks (hidden 64·depth, depth heads of 64, MLP ratio 4); the
    first `x_self_layers` image blocks carry a second self-attention (SD3.5's MMDiT-X); the
    last block's context half stops after its QKV (pre_only)."""
    h = 64 * depth
    w.add(P + "pos_embed", [1, pos_embed_max * pos_embed_max, h])
    w.conv(P + "x_embedder.proj", h, 16, 2)
    w.lin(P + "t_embedder.mlp.0", h, 256)
    w.lin(P + "t_embedder.mlp.2", h, h)
    w.lin(P + "y_embedder.mlp.0", h, 2048)
    w.lin(P + "y_embedder.mlp.2", h, h)
    w.lin(P + "context_embedder", h, 4096)
    for i in range(depth):
        for half in ("context_block", "x_block"):
            b = f"{P}joint_blocks.{i}.{half}"
            pre_only = half == "context_block" and i == depth - 1
            dual = half == "x_block" and i < x_self_layers
            mmdit_attn(w, b + ".attn", h, qk_norm, pre_only)
            if dual:
                mmdit_attn(w, b + ".attn2", h, qk_norm, False)
            if not pre_only:
                w.lin(b + ".mlp.fc1", 4 * h, h)
                w.lin(b + ".mlp.fc2", h, 4 * h)
            mods = 2 if pre_only else (9 if dual else 6)
            w.lin(b + ".adaLN_modulation.1", mods * h, h)
    w.lin(P + "final_layer.linear", 2 * 2 * 16, h)
    w.lin(P + "final_layer.adaLN_modulation.1", 2 * h, h)


def t5xxl(w, P="", layers=24, d=4096, ff=10240, heads=64, vocab=32128):
    # HF T5EncoderModel layout (as in comfyanonymous/flux_text_encoders t5xxl_fp16.safetensors)
    w.add(P + "shared.weight", [vocab, d])
    for l in range(layers):
        b = f"{P}encoder.block.{l}.layer"
        for n in ("q", "k", "v", "o"):
            w.add(f"{b}.0.SelfAttention.{n}.weight", [d, d])
        if l == 0:
            w.add(f"{b}.0.SelfAttention.relative_attention_bias.weight", [32, heads])
        w.add(f"{b}.0.layer_norm.weight", [d])
        w.add(f"{b}.1.DenseReluDense.wi_0.weight", [ff, d])
        w.add(f"{b}.1.DenseReluDense.wi_1.weight", [ff, d])
        w.add(f"{b}.1.DenseReluDense.wo.weight", [d, ff])
        w.add(f"{b}.1.layer_norm.weight", [d])
    w.add(P + "encoder.final_layer_norm.weight", [d])


def build(name, out):
    w = W()
    if name == "sd15":  # runwayml v1-5 (v1-inference.yaml)
        unet(w, "model.diffusion_model.", 320, [1, 2, 4, 4], 2, [1, 1, 1, 0], 1, 768, False)
        vae(w, "first_stage_model.")
        hf_clip(w, "cond_stage_model.transformer.", 768, 12, 3072)
    elif name == "sd21":  # stabilityai sd-turbo / v2-1 (v2-inference-v.yaml)
        unet(w, "model.diffusion_model.", 320, [1, 2, 4, 4], 2, [1, 1, 1, 0], 1, 1024, True)
        vae(w, "first_stage_model.")
        open_clip(w, "cond_stage_model.model.", 1024, 24, 4096, 1024)
    elif name == "sdxl":  # sdxl base / sdxl-turbo (sd_xl_base.yaml)
        unet(w, "model.diffusion_model.", 320, [1, 2, 4], 2, [0, 2, 10], 10, 2048, True, adm=2816)
        vae(w, "first_stage_model.")
        hf_clip(w, "conditioner.embedders.0.transformer.", 768, 12, 3072)
        open_clip(w, "conditioner.embedders.1.model.", 1280, 32, 5120, 1280)
    elif name.startswith("flux_reduced"):  # FLUX.1-schnell per-block shapes, depth 19/38 -> 2/4
        flux(w, "model.diffusion_model.", 2, 4)
    elif name == "flux_full":
        flux(w, "model.diffusion_model.", 19, 38)
    elif name == "flux_ae":
        vae(w, "", z=16, quant_conv=False)
    elif name == "sd3.5_medium":  # stabilityai/stable-diffusion-3.5-medium: MMDiT-X, 24 blocks, 13 dual
        mmdit(w, "model.diffusion_model.", 24, x_self_layers=13, pos_embed_max=384)
        vae(w, "first_stage_model.", z=16, quant_conv=False)  # SD3's 16-channel VAE
    elif name == "sd3_medium":  # stabilityai/stable-diffusion-3-medium: 24 blocks, no Q/K norms
        mmdit(w, "model.diffusion_model.", 24, qk_norm=False)
        vae(w, "first_stage_model.", z=16, quant_conv=False)
    elif name == "sd3.5_large":  # stabilityai/stable-diffusion-3.5-large: 38 blocks
        mmdit(w, "model.diffusion_model.", 38)
        vae(w, "first_stage_model.", z=16, quant_conv=False)
    elif name == "clip_g":  # OpenCLIP ViT-bigG/14 text tower in HF CLIPTextModelWithProjection layout
        hf_clip(w, "", 1280, 32, 5120, proj=1280)
    elif name == "clip_l":
        hf_clip(w, "", 768, 12, 3072, proj=768)
    elif name == "t5xxl":
        t5xxl(w)
    elif name == "t5xxl_reduced":  # T5-XXL per-layer shapes, depth 24 -> 2 (compute is per layer)
        t5xxl(w, layers=2)
    else:
        raise SystemExit("unknown " + name)
    if os.environ.get("GEN_GGUF"):
        path = os.path.join(out, name + ".f16.gguf")
        start = write_gguf(w, path)
        with open(path, "rb") as f, open(path + ".header", "wb") as h:
            h.write(f.read(start))
        print(f"{path}: {len(w.t)} tensors, header {start} bytes")
        return
    path = os.path.join(out, name + ".safetensors")
    nbytes = w.write(path, {"format": "pt", "generator": "zero-weight sdcpp ground truth"})
    n = sum(1 for _ in w.t)
    print(f"{path}: {n} tensors, {nbytes} data bytes")


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for n in sys.argv[2:]:
        build(n, out)
