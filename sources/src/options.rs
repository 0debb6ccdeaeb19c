//! Where to look and how: hub endpoints and tokens, caches, offline mode.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use inferkit_formats::hub::Hub;
use serde::{Deserialize, Serialize};

use crate::local_cache::CacheDirs;

/// The Hugging Face hub's own address (`HF_ENDPOINT` names a mirror instead).
pub const HF_DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// ModelScope's own endpoint, used when `MODELSCOPE_ENDPOINT` is not set.
pub const MS_DEFAULT_ENDPOINT: &str = "https://www.modelscope.cn";

/// A hub's address and the token sent to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubEndpoint {
    /// Base URL (`https://huggingface.co`, a mirror such as `https://hf-mirror.com`).
    pub url: String,
    /// The environment variable the token was read from, for plans and messages (the value
    /// itself is never serialised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_var: Option<String>,
    /// The token.
    #[serde(skip)]
    pub token: Option<Secret>,
}

impl HubEndpoint {
    /// An endpoint without a token.
    pub fn new(url: impl Into<String>) -> Self {
        HubEndpoint {
            url: url.into(),
            token_var: None,
            token: None,
        }
    }

    /// The endpoint from `url_var` (else `default`) with the token of the first of
    /// `token_vars` that is set.
    pub fn from_env(url_var: &str, default: &str, token_vars: &[&str]) -> Self {
        let url = env(url_var).unwrap_or_else(|| default.to_string());
        let found = token_vars
            .iter()
            .find_map(|name| env(name).map(|value| (name.to_string(), Secret(value))));
        HubEndpoint {
            url,
            token_var: found.as_ref().map(|(name, _)| name.clone()),
            token: found.map(|(_, token)| token),
        }
    }

    /// The host part of the URL, with its port (names the endpoint in the header cache; for
    /// an Ollama registry, the folder of Ollama's store its manifests are filed under).
    pub fn host(&self) -> &str {
        inferkit_formats::source::url_host(&self.url)
    }

    #[cfg(feature = "http")]
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.0.as_str())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_string())
}

/// A token: printed as `***`, never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything that decides where models are read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceOptions {
    /// Use caches only: no network request is made, and a missing file is an error naming it.
    pub offline: bool,
    /// The other tools' caches, searched first.
    pub caches: CacheDirs,
    /// The fetched-header cache; `None` keeps nothing between runs.
    pub header_cache: Option<PathBuf>,
    /// How long a branch or tag resolved before is trusted without asking the hub again (a
    /// commit hash is trusted forever; offline mode trusts any age).
    pub ref_max_age: Duration,
    /// Hugging Face: `HF_ENDPOINT`, `HF_TOKEN` or `HUGGING_FACE_HUB_TOKEN`.
    pub huggingface: HubEndpoint,
    /// ModelScope: `MODELSCOPE_ENDPOINT`, `MODELSCOPE_API_TOKEN`.
    pub modelscope: HubEndpoint,
    /// The Ollama registry for names without a host (`https://registry.ollama.ai`).
    pub ollama: HubEndpoint,
    /// Network settings.
    #[cfg(feature = "http")]
    pub http: HttpOptions,
}

impl SourceOptions {
    /// The endpoint of `hub`.
    pub(crate) fn hub_endpoint(&self, hub: Hub) -> &HubEndpoint {
        match hub {
            Hub::HuggingFace => &self.huggingface,
            Hub::ModelScope => &self.modelscope,
        }
    }

    /// The settings of this environment: endpoints and tokens from the usual variables, the
    /// tools' caches where they keep them, the header cache under `~/.cache/inferkit`, online,
    /// refs trusted for ten minutes.
    pub fn from_env() -> Self {
        SourceOptions {
            offline: false,
            caches: CacheDirs::from_env(),
            header_cache: crate::header_cache::default_root(),
            ref_max_age: Duration::from_secs(600),
            huggingface: HubEndpoint::from_env(
                "HF_ENDPOINT",
                HF_DEFAULT_ENDPOINT,
                &["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"],
            ),
            modelscope: HubEndpoint::from_env(
                "MODELSCOPE_ENDPOINT",
                MS_DEFAULT_ENDPOINT,
                &["MODELSCOPE_API_TOKEN"],
            ),
            ollama: HubEndpoint::from_env("OLLAMA_REGISTRY", "https://registry.ollama.ai", &[]),
            #[cfg(feature = "http")]
            http: HttpOptions::default(),
        }
    }
}

/// Network settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpOptions {
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// Longest time for a whole metadata request (listings, manifests, headers); downloads
    /// are bounded by `read_timeout` only.
    pub request_timeout: Duration,
    /// Attempts after the first on 429, 5xx, timeouts and dropped connections.
    pub retries: u32,
    /// First back-off; doubled on each retry.
    pub backoff: Duration,
    /// Longest wait honoured from a `Retry-After` header (and longest back-off).
    pub max_wait: Duration,
    /// Use `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (curl's rules).
    pub env_proxy: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            retries: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
            env_proxy: true,
        }
    }
}
