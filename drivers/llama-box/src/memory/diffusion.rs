//! Image models (stable-diffusion.cpp inside llama-box): weights per component and the
//! compute buffer of each stage for the largest image llama-box will generate.
//!
//! Components are found by tensor-name prefix (sd.cpp GGUFs carry no metadata): the diffusion
//! model (`model.diffusion_model.*`, or FLUX/SD3 blocks), the VAE (`first_stage_model.*`, of
//! which text-to-image loads the decoder) and the text encoders (`cond_stage_model.*`, SDXL's
//! `conditioner.*`, `text_encoders.*`), plus the component files given separately. Images of a batch are generated one after another, so the batch does
//! not change any buffer.

use inferkit_core::gguf::{GgufModel, TensorInfo};
use inferkit_core::{Error, ErrorBand, FigureBasis, Result};
use serde::{Deserialize, Serialize};

use super::mmdit::Mmdit;
use crate::params::ImageSettings;

/// sd.cpp's VAE tile: 32×32 latents, 256×256 pixels.
const VAE_TILE_PIXELS: u64 = 256 * 256;

/// Which diffusion architecture a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffusionFamily {
    /// Stable Diffusion 1.x (UNet, CLIP ViT-L text encoder).
    Sd1,
    /// Stable Diffusion 2.x (UNet, OpenCLIP ViT-H).
    Sd2,
    /// SDXL (UNet without attention at the top level).
    Sdxl,
    /// SD3.x (MMDiT).
    Sd3,
    /// FLUX.1 (double/single-stream DiT).
    Flux,
}

/// Bytes of one component of an image model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageBytes {
    /// Weights.
    pub weights: u64,
    /// Compute buffer.
    pub compute: u64,
}

/// Memory of an image model for given image settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffusionEstimate {
    /// Detected architecture.
    pub family: DiffusionFamily,
    /// Diffusion model (UNet or DiT).
    pub diffusion: StageBytes,
    /// VAE decoder.
    pub vae: StageBytes,
    /// Text encoders (CLIP, T5).
    pub text_encoders: StageBytes,
    /// How far the total may be off: weights within 1 %, compute within 10 % (every family is
    /// measured against stable-diffusion.cpp), weighted by their shares.
    pub error_band: ErrorBand,
}

impl DiffusionEstimate {
    /// Reads the components of `model` and sizes their compute for `image`, with flash
    /// attention in the diffusion model when `flash_attn`. `separate` are the component files
    /// given beside it (text encoders, VAE): their tensors count with the stage their names
    /// belong to, bare encoder files as text encoders.
    pub fn new(
        model: &GgufModel,
        separate: &[&GgufModel],
        image: &ImageSettings,
        flash_attn: bool,
    ) -> Result<Self> {
        let family = detect(model)?;
        let bytes = |select: fn(&str) -> bool| {
            let own = model.tensors().iter().filter(|t| select(&t.name));
            let given = separate.iter().flat_map(|m| {
                let vae = is_vae_file(m);
                m.tensors().iter().filter(move |t| {
                    if vae {
                        select(&t.name)
                    } else {
                        select("text_encoders.")
                    }
                })
            });
            own.chain(given)
                .map(|t| resident_bytes(t, family))
                .sum::<u64>()
        };
        let pixels = u64::from(image.width) * u64::from(image.height);
        let mut estimate = DiffusionEstimate {
            family,
            diffusion: StageBytes {
                weights: bytes(is_diffusion_tensor),
                compute: diffusion_compute(model, family, image, flash_attn),
            },
            vae: StageBytes {
                weights: bytes(is_vae_decoder_tensor),
                compute: vae_compute(family, pixels, image.vae_tiling),
            },
            text_encoders: StageBytes {
                weights: bytes(is_text_encoder_tensor),
                compute: text_encoder_compute(family),
            },
            error_band: ErrorBand::new(0, FigureBasis::MeasuredArchitecture),
        };
        estimate.error_band = estimate.band();
        Ok(estimate)
    }

    /// The band of the whole estimate: 1 % on weights and 10 % on compute, as a share of the
    /// total (rounded up, at least 1 %).
    fn band(&self) -> ErrorBand {
        let (compute_percent, basis) = (10, FigureBasis::MeasuredArchitecture);
        let stages = [self.diffusion, self.vae, self.text_encoders];
        let weights: u64 = stages.iter().map(|s| s.weights).sum();
        let compute: u64 = stages.iter().map(|s| s.compute).sum();
        let total = u128::from(weights + compute).max(1);
        let off = u128::from(weights) + u128::from(compute) * compute_percent;
        let percent = u32::try_from(off.div_ceil(total)).unwrap_or(100).max(1);
        ErrorBand::new(percent, basis)
    }
}

/// Bytes a tensor takes once loaded: its size in the file, except where sd.cpp picks the type
/// itself (`ggml_extend.hpp`'s `init_params`), whatever the file's types: the VAE decoder's 1-D
/// tensors (convolution biases, norm weights) are F32; the MMDiT's learned positions are F32
/// (`MMDiT::init_params`), and so, in SD3's MMDiT, are every 1-D tensor and the linears built
/// with `force_f32` (the timestep, pooled-text and context embedders, the final projection),
/// while its patch convolution is F16 (measured: off by the buffer's alignment padding at most).
fn resident_bytes(t: &TensorInfo, family: DiffusionFamily) -> u64 {
    let elements = t.dims.iter().product::<u64>();
    if t.name.ends_with("diffusion_model.pos_embed") {
        return elements * 4;
    }
    if is_vae_decoder_tensor(&t.name) && t.dims.len() == 1 {
        return elements * 4;
    }
    if family == DiffusionFamily::Sd3 && t.name.starts_with("model.diffusion_model.") {
        if t.dims.len() == 1 || MMDIT_F32_LINEARS.iter().any(|l| t.name.contains(l)) {
            return elements * 4;
        }
        if t.name.ends_with("x_embedder.proj.weight") {
            return elements * 2;
        }
    }
    t.bytes
}

/// SD3's MMDiT linears sd.cpp builds with `force_f32` (`mmdit.hpp`).
const MMDIT_F32_LINEARS: [&str; 4] = [
    "diffusion_model.t_embedder.",
    "diffusion_model.y_embedder.",
    "diffusion_model.context_embedder.",
    "diffusion_model.final_layer.linear.",
];

/// Whether a separate component file is a VAE (it has a decoder); any other is a text encoder.
fn is_vae_file(model: &GgufModel) -> bool {
    model
        .tensors()
        .iter()
        .any(|t| is_vae_decoder_tensor(&t.name))
}

fn is_diffusion_tensor(name: &str) -> bool {
    name.starts_with("model.diffusion_model.")
        || name.starts_with("double_blocks.")
        || name.starts_with("single_blocks.")
        || name.starts_with("joint_blocks.")
}

fn is_vae_decoder_tensor(name: &str) -> bool {
    name.starts_with("first_stage_model.decoder.")
        || name.starts_with("first_stage_model.post_quant_conv.")
        || name.starts_with("decoder.")
}

fn is_text_encoder_tensor(name: &str) -> bool {
    name.starts_with("cond_stage_model.")
        || name.starts_with("conditioner.")
        || name.starts_with("text_encoders.")
}

fn tensor<'a>(model: &'a GgufModel, name: &str) -> Option<&'a TensorInfo> {
    model.tensor(name)
}

/// The family by sentinel tensors, as sd.cpp's `get_sd_version` does.
fn detect(model: &GgufModel) -> Result<DiffusionFamily> {
    let has = |name: &str| tensor(model, name).is_some();
    let prefix = |p: &str| model.tensors().iter().any(|t| t.name.contains(p));
    if prefix("double_blocks.") {
        return Ok(DiffusionFamily::Flux);
    }
    if prefix("joint_blocks.") {
        return Ok(DiffusionFamily::Sd3);
    }
    if has("model.diffusion_model.output_blocks.5.1.transformer_blocks.1.attn1.to_v.weight")
        || prefix("model.diffusion_model.label_emb")
    {
        return Ok(DiffusionFamily::Sdxl);
    }
    let cross = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_v.weight";
    match tensor(model, cross).and_then(|t| t.dims.first().copied()) {
        Some(1024) => Ok(DiffusionFamily::Sd2),
        Some(_) => Ok(DiffusionFamily::Sd1),
        None => Err(Error::unsupported(format!(
            "{}: not a diffusion model stable-diffusion.cpp recognises",
            model.path().display()
        ))),
    }
}

/// The UNet's base channel count (`input_blocks.0.0` convolution outputs), 320 for SD/SDXL.
fn unet_channels(model: &GgufModel) -> u64 {
    tensor(model, "model.diffusion_model.input_blocks.0.0.weight")
        .and_then(|t| t.dims.get(3).copied())
        .unwrap_or(320)
}

/// Tokens FLUX's T5 prompt is padded to in stable-diffusion.cpp (the measured T5 and DiT
/// buffers are sized for 512 text tokens).
const FLUX_TEXT_TOKENS: u64 = 512;

/// Compute of the diffusion model for an image of `pixels`, from the graph's largest live
/// tensors, checked against stable-diffusion.cpp's measured buffers
/// (`tests/fixtures/llamacpp-memory/sdcpp/measurements.jsonl`, 512² to 1536²).
///
/// UNets (SD 1.x/2.x/XL). With flash attention the peak is in the top level's ResBlocks:
/// 24.7 f32 activations of `channels × pixels/64` (measured 24.61-24.69 for all three). Without
/// it, the softmax matrix of the first attention level (`heads × tokens² × 4`; tokens = latent
/// pixels at that level: the top level for SD 1.x/2.x, one level down for SDXL) plus what
/// lives beside it, which the measurements show linear in pixels: 161.375 B per pixel and
/// 7.69 MB plus the cross-attention context (SD 1.x/2.x, exact at 512², 768², 1024²); SDXL
/// 132.4 B per pixel and 60.1 MB (within 1.3 %).
///
/// FLUX: tokens = pixels/256 image patches + 512 text tokens. Without flash attention, the
/// single-stream block's score matrix (24 heads × tokens² × 4) beside its fused
/// QKV-and-MLP projection (`(3·3072 + 12288) × tokens × 4`), within 1.7 %; with it, linear in
/// the image tokens: 732.5 B per pixel and 51.1 MB (fitted at 512², 768², 1024², within 0.6 %).
///
/// SD3/3.5 (MMDiT): the graph replayed with ggml's allocator, see [`Mmdit`] (SD3 medium, SD3.5
/// medium and large, 512² to 1536², flash attention on and off: exact on all 24 rows).
fn diffusion_compute(
    model: &GgufModel,
    family: DiffusionFamily,
    image: &ImageSettings,
    fa: bool,
) -> u64 {
    let (width, height) = (u64::from(image.width), u64::from(image.height));
    let pixels = width * height;
    let x = pixels as f64;
    let activation = unet_channels(model) * (pixels / 64) * 4;
    let unet = |heads: u64, downscale: u64, per_pixel: f64, constant: f64| {
        let with_fa = activation * 247 / 10;
        if fa {
            return with_fa;
        }
        let tokens = pixels / (downscale * downscale);
        let beside = (per_pixel * x + constant) as u64;
        (heads * tokens * tokens * 4 + beside).max(with_fa)
    };
    match family {
        // 8 heads at the top level, 768-wide context.
        DiffusionFamily::Sd1 => unet(8, 8, 161.375, 7_687_776.0 + 77.0 * 768.0 * 4.0),
        // 64-wide heads (5 at 320 channels), 1024-wide context.
        DiffusionFamily::Sd2 => unet(5, 8, 161.375, 7_687_776.0 + 77.0 * 1024.0 * 4.0),
        // The first attention is one level down: 640 channels, 10 heads.
        DiffusionFamily::Sdxl => unet(10, 16, 132.4, 60_122_471.0),
        DiffusionFamily::Flux => {
            if fa {
                return (732.5 * x + 51_097_198.0) as u64;
            }
            let tokens = pixels / 256 + FLUX_TEXT_TOKENS;
            24 * tokens * tokens * 4 + (3 * 3072 + 12288) * tokens * 4
        }
        DiffusionFamily::Sd3 => Mmdit::read(model).compute(width, height, fa),
    }
}

/// VAE decode: linear in pixels untiled (6656 B per pixel for the SD and FLUX decoders,
/// 7680 for SDXL's, measured exactly at 512² to 1536²), one 256×256 tile's worth when tiled.
fn vae_compute(family: DiffusionFamily, pixels: u64, tiling: bool) -> u64 {
    let per_pixel = match family {
        DiffusionFamily::Sdxl => 7680,
        _ => 6656,
    };
    let pixels = if tiling {
        pixels.min(VAE_TILE_PIXELS)
    } else {
        pixels
    };
    pixels * per_pixel
}

/// The text encoders stable-diffusion.cpp runs for a family.
#[derive(Clone, Copy)]
enum TextEncoder {
    /// CLIP ViT-L/14 (separate Q/K/V).
    ClipL,
    /// OpenCLIP ViT-H/14 (fused in-projection), SD 2.x.
    OpenClipH,
    /// OpenCLIP ViT-bigG/14 (fused in-projection), SDXL.
    OpenClipG,
    /// ViT-bigG/14 in the Hugging Face layout (separate Q/K/V), SD3's `clip_g`.
    ClipG,
    /// T5-XXL encoder over `tokens` tokens.
    T5Xxl { tokens: u64 },
}

impl TextEncoder {
    /// The encoder's compute buffer, from its largest live tensors over 77 tokens (CLIP): the
    /// FFN intermediate next to the residual stream and either the score matrix (CLIP-L) or
    /// the fused QKV projection (OpenCLIP), plus one row per token. Measured: CLIP-L 1,491,456,
    /// OpenCLIP-H 2,547,264, OpenCLIP-G 3,178,048 bytes (all within 0.01 %); T5-XXL over 512
    /// tokens 71,566,400 (64 heads × tokens² score matrix plus 4.46 MB), over 77 tokens
    /// 12,521,536.
    fn compute(self) -> u64 {
        const CLIP_TOKENS: u64 = 77;
        let per_token = match self {
            // FFN intermediate, residual, 12 heads of scores.
            TextEncoder::ClipL => 3072 + 768 + 12 * CLIP_TOKENS,
            // FFN intermediate, fused QKV, residual.
            TextEncoder::OpenClipH => 4096 + 4 * 1024,
            TextEncoder::OpenClipG => 5120 + 4 * 1280,
            // FFN intermediate, residual, 20 heads of scores (2,469,664 measured).
            TextEncoder::ClipG => 5120 + 1280 + 20 * CLIP_TOKENS,
            // Over SD3's 77-token chunk the FFN, not the score matrix, sets the buffer:
            // 12,521,536 bytes measured.
            TextEncoder::T5Xxl { tokens: 77 } => return 12_521_536,
            TextEncoder::T5Xxl { tokens } => return 64 * tokens * tokens * 4 + 4_457_536,
        };
        (per_token + CLIP_TOKENS + 1) * CLIP_TOKENS * 4
    }
}

/// The encoders each family runs; their buffers are kept side by side only when
/// stable-diffusion.cpp keeps them, so the stage reserves the largest.
fn text_encoder_compute(family: DiffusionFamily) -> u64 {
    let encoders: &[TextEncoder] = match family {
        DiffusionFamily::Sd1 => &[TextEncoder::ClipL],
        DiffusionFamily::Sd2 => &[TextEncoder::OpenClipH],
        DiffusionFamily::Sdxl => &[TextEncoder::ClipL, TextEncoder::OpenClipG],
        DiffusionFamily::Sd3 => &[
            TextEncoder::ClipL,
            TextEncoder::ClipG,
            TextEncoder::T5Xxl { tokens: 77 },
        ],
        DiffusionFamily::Flux => &[
            TextEncoder::ClipL,
            TextEncoder::T5Xxl {
                tokens: FLUX_TEXT_TOKENS,
            },
        ],
    };
    encoders.iter().map(|e| e.compute()).max().unwrap_or(0)
}
