//! Image models (stable-diffusion.cpp inside llama-box): weights per component and the
//! compute buffer of each stage for the largest image llama-box will generate.
//!
//! Components are found by tensor-name prefix (sd.cpp GGUFs carry no metadata): the diffusion
//! model (`model.diffusion_model.*`, or FLUX/SD3 blocks), the VAE (`first_stage_model.*`, of
//! which text-to-image loads the decoder) and the text encoders (`cond_stage_model.*`,
//! `text_encoders.*`). Images of a batch are generated one after another, so the batch does
//! not change any buffer.

use inferkit_core::gguf::{GgufModel, TensorInfo};
use inferkit_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::params::ImageSettings;

/// Bytes per output pixel of an untiled VAE decode per base channel of the decoder: the
/// decoder's top-resolution activations (3 f32 values per channel pixel) plus one more f32
/// (`(3·4 + 1)·channels`, the figure gguf-parser-go uses; measured exactly for SD 1.5's
/// 512-channel decoder: 6656 B per pixel).
const VAE_BYTES_PER_PIXEL_CHANNEL: u64 = 13;
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
}

impl DiffusionEstimate {
    /// Reads the components of `model` and sizes their compute for `image`, with flash
    /// attention in the diffusion model when `flash_attn`.
    pub fn new(model: &GgufModel, image: &ImageSettings, flash_attn: bool) -> Result<Self> {
        let family = detect(model)?;
        let bytes = |select: fn(&str) -> bool| {
            model
                .tensors()
                .iter()
                .filter(|t| select(&t.name))
                .map(|t| t.bytes)
                .sum::<u64>()
        };
        let pixels = u64::from(image.width) * u64::from(image.height);
        Ok(DiffusionEstimate {
            family,
            diffusion: StageBytes {
                weights: bytes(is_diffusion_tensor),
                compute: diffusion_compute(model, family, pixels, flash_attn),
            },
            vae: StageBytes {
                weights: bytes(is_vae_decoder_tensor),
                compute: vae_compute(model, pixels, image.vae_tiling),
            },
            text_encoders: StageBytes {
                weights: bytes(is_text_encoder_tensor),
                compute: text_encoder_compute(family),
            },
        })
    }
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
    name.starts_with("cond_stage_model.") || name.starts_with("text_encoders.")
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

/// Compute of the diffusion model for an image of `pixels`.
///
/// UNets (SD 1.x/2.x/XL): without flash attention the peak is the softmax matrix of the
/// highest-resolution self-attention (`heads × tokens² × 4` bytes; tokens = latent pixels at
/// that level) plus about eight f32 activations of the top level (`channels × pixels/64 × 4`);
/// with flash attention about 24.6 such activations (f16 Q/K/V copies, attention output and
/// the ResBlock working set). Checked on SD 1.5 (within 2 %); the per-pixel slope with flash
/// attention agrees with gguf-parser-go's fits for SD 2.x and SDXL (513 and 500 B/px).
///
/// DiTs (SD3, FLUX): gguf-parser-go's regressions in x = pixels, which do not depend on flash
/// attention (`gguf-parser-go` §9, from measured runs).
fn diffusion_compute(model: &GgufModel, family: DiffusionFamily, pixels: u64, fa: bool) -> u64 {
    let x = pixels as f64;
    let polynomial = |c0: f64, c1: f64, c2: f64| (c0 + c1 * x + c2 * x * x).max(0.0) as u64;
    let (heads, downscale) = match family {
        // SD 1.x: 8 heads at the top level (latent = pixels / 8²).
        DiffusionFamily::Sd1 => (8, 8),
        // SD 2.x: 64-wide heads, 320 channels at the top level.
        DiffusionFamily::Sd2 => (5, 8),
        // SDXL: the first attention is one level down (640 channels, 64-wide heads).
        DiffusionFamily::Sdxl => (10, 16),
        DiffusionFamily::Sd3 => {
            return polynomial(17_441_103.472_6, 281.695_681_980_6, 0.001_465_123_3);
        }
        DiffusionFamily::Flux => {
            return polynomial(46_511_668.674_2, 997.775_880_779_2, 0.001_457_339_3);
        }
    };
    // One top-level f32 activation: channels × latent pixels × 4 bytes.
    let activation = unet_channels(model) * (pixels / 64) * 4;
    if fa {
        return activation * 246 / 10;
    }
    let tokens = pixels / (downscale * downscale);
    heads * tokens * tokens * 4 + 8 * activation
}

/// VAE decode: linear in pixels untiled, one tile's worth when tiled.
fn vae_compute(model: &GgufModel, pixels: u64, tiling: bool) -> u64 {
    let channels = [
        "first_stage_model.decoder.conv_in.weight",
        "decoder.conv_in.weight",
    ]
    .iter()
    .find_map(|n| tensor(model, n))
    .and_then(|t| t.dims.get(3).copied())
    .unwrap_or(512);
    let pixels = if tiling {
        pixels.min(VAE_TILE_PIXELS)
    } else {
        pixels
    };
    pixels * VAE_BYTES_PER_PIXEL_CHANNEL * channels
}

/// Text encoders run on 77 (CLIP) or 256/77 (T5) tokens: small, constant buffers. Per
/// encoder: the FFN intermediate and the residual stream next to the attention matrix, in
/// f32 (SD 1.5's CLIP: within 2 % of the measured buffer).
fn text_encoder_compute(family: DiffusionFamily) -> u64 {
    // (hidden, ffn, heads, tokens) of each encoder the family loads.
    let encoders: &[(u64, u64, u64, u64)] = match family {
        DiffusionFamily::Sd1 => &[(768, 3072, 12, 77)],
        DiffusionFamily::Sd2 => &[(1024, 4096, 16, 77)],
        DiffusionFamily::Sdxl => &[(768, 3072, 12, 77), (1280, 5120, 20, 77)],
        DiffusionFamily::Sd3 => &[
            (768, 3072, 12, 77),
            (1280, 5120, 20, 77),
            (4096, 10240, 64, 77),
        ],
        DiffusionFamily::Flux => &[(768, 3072, 12, 77), (4096, 10240, 64, 256)],
    };
    encoders
        .iter()
        .map(|&(hidden, ffn, heads, tokens)| {
            (ffn + hidden) * tokens * 4 + heads * tokens * tokens * 4
        })
        .max()
        .unwrap_or(0)
}
