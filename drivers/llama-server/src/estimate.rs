//! llama-server's memory: the llama.cpp memory model of the llama-box driver, with the context
//! llama-server defaults to (the model's training context) explained, and the largest context
//! that keeps every layer on the accelerators offered when that default does not; and the host
//! prompt cache (`--cache-ram`) in host memory.

use inferkit_core::gguf::GgufModel;
use inferkit_core::{
    Error, EstimateRequest, FitRequest, HostSlot, Layout, ResourceEstimate, ResourceEstimator,
    Result,
};
use inferkit_llama_box::LlamaBoxEstimator;
use inferkit_llama_box::llamacpp::LlamaSettings;

use crate::flags::PromptCache;

/// Contexts offered are multiples of this (llama.cpp pads `n_ctx` to 256 cells).
const CONTEXT_STEP: u32 = 256;

/// What [`LlamaServerEstimator::context_offer`] found: the context to pass instead of the
/// default one, the finding that none keeps every layer on the accelerators, or no search
/// (the context was given, or there are no devices to fit on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContextOffer {
    /// The default context is not in use, or there are no devices: nothing to offer.
    NotAsked,
    /// The largest context, in tokens, with which every layer fits on the accelerators.
    Fits(u32),
    /// No context keeps every layer on the accelerators.
    NoneFits,
}

/// The llama.cpp memory model of one model with llama-server's settings.
#[derive(Debug, Clone)]
pub struct LlamaServerEstimator<'a> {
    model: LlamaBoxEstimator,
    gguf: &'a GgufModel,
    /// When the context is the model's training context (no `--ctx-size`): its KV cache's
    /// bytes, wherever it sits.
    default_context_kv: Option<u64>,
    /// Host bytes the prompt cache may hold (0 when it is off).
    prompt_cache: u64,
}

impl<'a> LlamaServerEstimator<'a> {
    /// The estimator of `gguf` run with `settings` (a `ctx_size` of 0 is llama-server's
    /// default: the model's training context) and `prompt_cache`.
    pub fn new(
        gguf: &'a GgufModel,
        settings: &LlamaSettings,
        prompt_cache: PromptCache,
    ) -> Result<Self> {
        let model = LlamaBoxEstimator::new(gguf, settings)?;
        // The whole KV cache: all of it in host memory, where nothing else holds a part.
        let whole_kv = || -> Result<u64> {
            let all_on_host = model.estimate(&EstimateRequest {
                devices: Vec::new(),
                host: HostSlot::default(),
                layout: Layout::CpuOnly,
            })?;
            Ok(all_on_host.host.kv)
        };
        let default_context_kv = match settings.ctx_size {
            0 => Some(whole_kv()?),
            _ => None,
        };
        let prompt_cache = match prompt_cache {
            PromptCache::Off => 0,
            PromptCache::UpTo(bytes) => bytes,
            // A context's worth of prompt tokens: the whole KV cache.
            PromptCache::Context => match default_context_kv {
                Some(kv) => kv,
                None => whole_kv()?,
            },
        };
        Ok(LlamaServerEstimator {
            model,
            gguf,
            default_context_kv,
            prompt_cache,
        })
    }

    /// Host bytes the prompt cache may hold.
    pub fn prompt_cache_bytes(&self) -> u64 {
        self.prompt_cache
    }

    /// `request` with the prompt cache's bytes taken from the host memory placement may claim,
    /// so that the llama.cpp model fits what is left.
    fn without_prompt_cache(&self, request: &FitRequest) -> FitRequest {
        let mut request = request.clone();
        request.host.allocatable = request.host.allocatable.saturating_sub(self.prompt_cache);
        request
    }

    /// `estimate` with the prompt cache counted in host memory (as KV: it holds saved KV
    /// states) and said.
    fn with_prompt_cache(&self, mut estimate: ResourceEstimate) -> ResourceEstimate {
        if self.prompt_cache == 0 {
            return estimate;
        }
        estimate.host.kv = estimate.host.kv.saturating_add(self.prompt_cache);
        estimate
            .details
            .insert("prompt_cache_bytes".into(), self.prompt_cache.into());
        estimate.notes.push(format!(
            "host memory: llama-server's prompt cache keeps the KV state of finished prompts, up \
             to {} MiB (`--cache-ram`; `--cache-ram 0` turns it off)",
            self.prompt_cache >> 20
        ));
        estimate
    }

    /// The total context llama.cpp resolves (`n_ctx`), which the launch passes as `-c`.
    pub fn context_size(&self) -> Option<u64> {
        self.model.context().map(|c| c.n_ctx)
    }

    /// Every layer on `request.devices`.
    fn full_offload(&self) -> Layout {
        let total = self.model.total_layers();
        Layout::Layers {
            offload_layers: total,
            total_layers: total,
            split: Vec::new(),
        }
    }

    /// Whether `estimate` keeps every layer on the accelerators.
    fn fully_offloaded(&self, estimate: &ResourceEstimate) -> bool {
        match &estimate.layout {
            Layout::Single => true,
            Layout::Layers {
                offload_layers,
                total_layers,
                ..
            } => offload_layers >= total_layers,
            _ => false,
        }
    }

    /// Whether the model with a context of `ctx` fits `request` with every layer offloaded.
    fn fits_with_context(&self, ctx: u32, request: &FitRequest) -> Result<bool> {
        let model = self.model.with_ctx_size(self.gguf, ctx)?;
        let request = self.without_prompt_cache(request);
        let estimate = model.estimate(&EstimateRequest {
            devices: request.devices.clone(),
            host: request.host.clone(),
            layout: self.full_offload(),
        })?;
        Ok(estimate.check_fits(&request.devices, &request.host).is_ok())
    }

    /// The largest context, a multiple of [`CONTEXT_STEP`] below the training context, with
    /// which every layer fits on the accelerators (memory grows with the context: binary
    /// search).
    fn largest_fitting_context(&self, request: &FitRequest) -> Result<Option<u32>> {
        let trained = self.context_size().unwrap_or(0);
        let (mut low, mut high) = (
            0u32,
            u32::try_from(trained / u64::from(CONTEXT_STEP)).unwrap_or(u32::MAX),
        );
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            match self.fits_with_context(mid * CONTEXT_STEP, request)? {
                true => low = mid,
                false => high = mid - 1,
            }
        }
        Ok((low > 0).then_some(low * CONTEXT_STEP))
    }

    /// What the default context costs, when the context is the default.
    fn context_cost(&self) -> Option<String> {
        let kv = self.default_context_kv?;
        Some(format!(
            "context: llama-server's default (-c 0) is the model's training context, {} \
             tokens, whose KV cache takes {} MiB",
            self.context_size().unwrap_or(0),
            kv >> 20
        ))
    }

    /// The context to offer instead of the default one. A search of estimates
    /// ([`Self::largest_fitting_context`]), run only when the default context is in use and
    /// there are devices.
    fn context_offer(&self, request: &FitRequest) -> Result<ContextOffer> {
        if self.default_context_kv.is_none() || request.devices.is_empty() {
            return Ok(ContextOffer::NotAsked);
        }
        Ok(match self.largest_fitting_context(request)? {
            Some(tokens) => ContextOffer::Fits(tokens),
            None => ContextOffer::NoneFits,
        })
    }
}

impl ResourceEstimator for LlamaServerEstimator<'_> {
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        Ok(self.with_prompt_cache(self.model.estimate(request)?))
    }

    fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        let fitted = self.model.fit(&self.without_prompt_cache(request));
        match fitted {
            // The context to ask for instead of the default, a search of estimates, is offered
            // once: on the chosen estimate (`annotate_chosen`), or when nothing fits
            // (`explain_refusal`).
            Ok(estimate) => Ok(self.with_prompt_cache(estimate)),
            Err(Error::DoesNotFit {
                needed,
                available,
                mut reason,
            }) => {
                if self.prompt_cache > 0 {
                    reason.push_str(&format!(
                        "; {} MiB of host memory are kept for llama-server's prompt cache \
                         (`--cache-ram`)",
                        self.prompt_cache >> 20
                    ));
                }
                if let Some(cost) = self.context_cost() {
                    reason = format!("{reason}; {cost}");
                }
                Err(Error::DoesNotFit {
                    needed,
                    available,
                    reason,
                })
            }
            Err(other) => Err(other),
        }
    }

    /// The default context's cost, and the context to ask for when it keeps layers off the
    /// accelerators: among the notes of llama.cpp's memory, before the prompt cache's, which
    /// `with_prompt_cache` puts last.
    fn annotate_chosen(&self, request: &FitRequest, estimate: &mut ResourceEstimate) -> Result<()> {
        let Some(mut note) = self.context_cost() else {
            return Ok(());
        };
        if !self.fully_offloaded(estimate) {
            match self.context_offer(request)? {
                ContextOffer::Fits(ctx) => note.push_str(&format!(
                    "; it keeps layers off the accelerators: the largest context with every \
                     layer on them is {ctx} tokens (pass `-c {ctx}`)"
                )),
                ContextOffer::NoneFits => {
                    note.push_str("; no context keeps every layer on the accelerators")
                }
                ContextOffer::NotAsked => {}
            }
        }
        let at = estimate
            .notes
            .len()
            .saturating_sub(usize::from(self.prompt_cache > 0));
        estimate.notes.insert(at, note);
        Ok(())
    }

    /// The context to ask for so that every layer fits on the largest device group placement
    /// refused: the search of estimates runs once per placement that finds nothing, not with
    /// every refused fit.
    fn explain_refusal(&self, request: &FitRequest) -> Result<Option<String>> {
        Ok(match self.context_offer(request)? {
            ContextOffer::Fits(ctx) => Some(format!(
                "the largest context that fits with every layer on the accelerators is {ctx} \
                 tokens (pass `-c {ctx}`)"
            )),
            ContextOffer::NoneFits => {
                Some("no context fits with every layer on the accelerators".to_string())
            }
            ContextOffer::NotAsked => None,
        })
    }
}
