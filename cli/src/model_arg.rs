//! The MODEL argument, in one place: every subcommand turns it into a [`Model`] (spec, facts
//! and the local files the readers open) here.
//!
//! The argument is a path on this machine (a GGUF file, any shard of a split model, a
//! header-only GGUF, or a model directory) or a reference read without downloading the model:
//! `hf://ORG/NAME[@REVISION][:QUANT]`, `hf://ORG/NAME[@REVISION]/PATH/IN/REPO`, `ms://...`,
//! `ollama://NAME[:TAG]` or an `http(s)://` URL of a GGUF file (see `inferkit-sources`). A
//! relative path is made absolute, because the launched processes run in their own run
//! directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use inferkit::{Error, ModelFacts, ModelSpec, Result};
use inferkit_sources::{
    HF_DEFAULT_ENDPOINT, MS_DEFAULT_ENDPOINT, ModelRef, Resolver, SourceOptions, resolve_cached,
};

use crate::download::PlannedDownload;

/// The model a subcommand works on.
#[derive(Debug)]
pub struct Model {
    /// The spec the subcommands start from (every option left to inferkit).
    pub spec: ModelSpec,
    /// What its files say.
    pub facts: ModelFacts,
    /// A local file or folder holding the model or its headers: the path given, a download
    /// tool's cache, or inferkit's cache of fetched headers.
    pub files: PathBuf,
    /// The download a plan needs first: a hub GGUF model on no disk of this machine.
    pub download: Option<PlannedDownload>,
    /// What a backend fetching the repository itself needs to reach it as this plan did
    /// ([`hub_env`]).
    pub hub_env: BTreeMap<String, String>,
}

/// Reads the model the MODEL argument names; `offline` reads caches only. A path must exist,
/// so that a typo is reported as such rather than as a format error.
pub fn read(argument: &str, offline: bool) -> Result<Model> {
    let reference = ModelRef::parse(argument)?;
    if let ModelRef::Local { path } = &reference {
        let spec = ModelSpec::local(path);
        let path = spec.source.local_path().unwrap_or(path).to_path_buf();
        std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        let facts = ModelFacts::read(&spec.source)?;
        return Ok(Model {
            spec,
            facts,
            files: path,
            download: None,
            hub_env: BTreeMap::new(),
        });
    }
    let options = SourceOptions {
        offline,
        ..SourceOptions::from_env()
    };
    let resolved = match resolve_cached(&reference, &options)? {
        Some(resolved) => resolved,
        None => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::unsupported(format!("cannot start the HTTP client: {e}")))?;
            let resolver = Resolver::new(options.clone())?;
            runtime.block_on(resolver.resolve(&reference))?
        }
    };
    let download = crate::download::planned(&resolved, &reference, &options);
    let hub_env = match (&download, &resolved.facts.path) {
        (None, None) => hub_env(&reference, &options),
        _ => BTreeMap::new(),
    };
    let facts = resolved.facts;
    let files = header_files(&facts).ok_or_else(|| {
        Error::unsupported(format!("{argument}: no file of the model could be read"))
    })?;
    Ok(Model {
        spec: ModelSpec::from_source(facts.source.clone()),
        facts,
        files,
        download,
        hub_env,
    })
}

/// The environment a backend that downloads a repository itself (vLLM, vox-box) needs to fetch
/// it where this plan read it: the mirror, when the endpoint is not the hub's own, and the token
/// as a placeholder naming the variable it was read from (the launcher fills it in; the plan
/// never holds the token).
///
/// Hugging Face's libraries read `HF_ENDPOINT` and `HF_TOKEN`. ModelScope's SDK (which vLLM
/// calls with `VLLM_USE_MODELSCOPE`) reads the host from `MODELSCOPE_DOMAIN` and prepends
/// `https://` itself (`modelscope/hub/utils/utils.py`, `get_endpoint`), so an https mirror is
/// given as its bare host (a plain-http one keeps its scheme: newer SDKs accept a whole URL
/// there); its tools take the token from `MODELSCOPE_API_TOKEN`.
fn hub_env(reference: &ModelRef, options: &SourceOptions) -> BTreeMap<String, String> {
    let (hub, default, endpoint_var, endpoint, token_var) = match reference {
        ModelRef::HuggingFace(_) => {
            let hub = &options.huggingface;
            let url = hub.url.clone();
            (hub, HF_DEFAULT_ENDPOINT, "HF_ENDPOINT", url, "HF_TOKEN")
        }
        ModelRef::ModelScope(_) => {
            let hub = &options.modelscope;
            let url = hub.url.trim_end_matches('/');
            let host = url.strip_prefix("https://").unwrap_or(url).to_string();
            (
                hub,
                MS_DEFAULT_ENDPOINT,
                "MODELSCOPE_DOMAIN",
                host,
                "MODELSCOPE_API_TOKEN",
            )
        }
        _ => return BTreeMap::new(),
    };
    let mut env = BTreeMap::new();
    if hub.url.trim_end_matches('/') != default {
        env.insert(endpoint_var.to_string(), endpoint);
    }
    if let Some(variable) = &hub.token_var {
        env.insert(
            token_var.to_string(),
            inferkit::secret::placeholder(variable),
        );
    }
    env
}

/// Where the readers find the model's files (or their headers) on this machine.
fn header_files(facts: &ModelFacts) -> Option<PathBuf> {
    if let Some(path) = &facts.path {
        return Some(path.clone());
    }
    if let Some(gguf) = &facts.gguf {
        return gguf.shards().first().map(|s| s.path.clone());
    }
    facts.hf.as_ref().map(|hf| hf.dir.clone())
}
