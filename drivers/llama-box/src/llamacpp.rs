//! What every driver of a llama.cpp server shares, as one API: llama-box is the first such
//! driver, `inferkit-llama-server` (upstream `llama-server` with `ggml-rpc-server`) the second.
//!
//! - Arguments: [`Args`] parses and checks a llama.cpp command line against a flag table
//!   ([`Syntax`] says how it is written) and applies it to the [`LlamaSettings`] that decide
//!   memory use.
//! - Model: [`detect_categories`] says what a GGUF file is and refuses what llama.cpp cannot
//!   serve; [`choose_mmproj`] picks the projector that goes with it.
//! - Memory: [`LlamaCppModel`] is llama.cpp's memory use per device and component, read once
//!   from a GGUF header and the settings; [`LlamaBoxEstimator`](crate::LlamaBoxEstimator) wraps
//!   it as a placement estimator.
//! - Launch: the placement-derived parts of a command line that do not depend on the server
//!   ([`platform_args`], [`tensor_split`], [`remote_devices`], [`visibility_env`]), the layering
//!   of argument lists that replace each other's settings ([`layer`]), and the checks on user
//!   arguments a platform owns ([`check_user_args`], [`check_user_gpu_layers`],
//!   [`check_user_main_gpu`], [`check_ascend_order`]). RPC servers offering a remote device run
//!   with the role [`RPC_SERVER`].
//!
//! Everything else in this crate is llama-box's own.

pub use crate::flags::{Arg, Args, Syntax};
pub use crate::launch::{
    GpuLayers, RPC_SERVER, check_ascend_order, check_user_args, check_user_gpu_layers,
    check_user_main_gpu, gpu_layers, layer, platform_args, remote_devices, tensor_split,
    visibility_env,
};
pub use crate::memory::{
    ContextSize, DiffusionEstimate, DiffusionFamily, LlamaCppModel, StageBytes, WarmupAudio,
    WarmupImage, architecture_band,
};
pub use crate::params::{
    CacheType, FlashAttn, ImageComponents, ImageSettings, LlamaSettings, Pooling, RopeScaling,
    RopeSettings, TensorOverride,
};
pub use crate::select::{choose_mmproj, detect_categories};
