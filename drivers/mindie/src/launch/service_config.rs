//! The MindIE service `config.json` (`MIES_CONFIG_JSON_PATH`).
//!
//! Written whole from MindIE's documented schema (hiascend `mindie_service0285`,
//! `mindie_llm0004`) rather than patched into the installed template as GPUStack does, so the
//! file is the same wherever it is generated. Every parameter lands at its JSON path; unlike
//! GPUStack 0.7.1, `--token-timeout` and `--e2e-timeout` are written
//! (`ServerConfig.tokenTimeout` / `e2eTimeout`). TLS is off (GPUStack's choice: the platform
//! fronts the endpoint), so no certificate paths are written.

use serde_json::{Value, json};

use crate::params::Params;

/// Name of the MindIE engine backend (fixed by MindIE).
const BACKEND_NAME: &str = "mindieservice_llm_engine";

/// What a node's config depends on besides the parameters.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig<'a> {
    /// Served model name.
    pub model_name: &'a str,
    /// Model directory MindIE loads (the user's, or the overlay).
    pub weight_path: &'a str,
    /// NPUs of this node, as the process sees them after `ASCEND_RT_VISIBLE_DEVICES`.
    pub local_devices: usize,
    /// HTTP port (also the management and metrics port, as GPUStack configures it).
    pub port: u16,
    /// Port the nodes of a multi-node instance talk on; `None` for one node.
    pub multi_node_port: Option<u16>,
    /// The resolved sequence length.
    pub max_seq_len: u64,
}

/// The complete service config of one node.
pub(crate) fn render(params: &Params, node: &NodeConfig) -> Value {
    json!({
        "Version": "1.0.0",
        "LogConfig": { "logLevel": params.log_level },
        "ServerConfig": server(params, node),
        "BackendConfig": backend(params, node),
    })
}

fn server(params: &Params, node: &NodeConfig) -> Value {
    json!({
        "ipAddress": "0.0.0.0",
        "allowAllZeroIpListening": true,
        "port": node.port,
        "managementPort": node.port,
        "metricsPort": node.port,
        "maxLinkNum": params.max_link_num,
        "httpsEnabled": false,
        "fullTextEnabled": false,
        "inferMode": "standard",
        "interCommTLSEnabled": false,
        "openAiSupport": "vllm",
        "tokenTimeout": params.token_timeout,
        "e2eTimeout": params.e2e_timeout,
    })
}

fn backend(params: &Params, node: &NodeConfig) -> Value {
    // ASCEND_RT_VISIBLE_DEVICES renumbers the selected NPUs 0..n-1 for the process: the
    // config must use those ids (physical ids give `invalid device=6`, hard case 20).
    let logical: Vec<usize> = (0..node.local_devices).collect();
    let mut backend = json!({
        "backendName": BACKEND_NAME,
        "modelInstanceNumber": 1,
        "npuDeviceIds": [logical],
        "tokenizerProcessNumber": 8,
        "multiNodesInferEnabled": node.multi_node_port.is_some(),
        "interNodeTLSEnabled": false,
        "ModelDeployConfig": model_deploy(params, node),
        "ScheduleConfig": schedule(params, node),
    });
    if let Some(port) = node.multi_node_port {
        backend["multiNodesInferPort"] = json!(port);
    }
    backend
}

fn model_deploy(params: &Params, node: &NodeConfig) -> Value {
    let mut model = json!({
        "modelInstanceType": "Standard",
        "modelName": node.model_name,
        "modelWeightPath": node.weight_path,
        "worldSize": node.local_devices,
        "cpuMemSize": params.cpu_mem_size_gib,
        "npuMemSize": -1,
        "backendType": "atb",
        "trustRemoteCode": params.trust_remote_code,
    });
    if params.enable_prefix_caching {
        // A string holding JSON, as MindIE reads it.
        model["plugin_params"] = json!(r#"{"plugin_type":"prefix_cache"}"#);
    }
    json!({
        "maxSeqLen": node.max_seq_len,
        "maxInputTokenLen": params.max_input_token_len.unwrap_or(node.max_seq_len),
        "truncation": params.truncation,
        "ModelConfig": [model],
    })
}

fn schedule(params: &Params, node: &NodeConfig) -> Value {
    json!({
        "templateType": "Standard",
        "templateName": "Standard_LLM",
        "cacheBlockSize": params.cache_block_size,
        "maxPrefillBatchSize": params.max_prefill_batch_size,
        "maxPrefillTokens": node.max_seq_len,
        "prefillTimeMsPerReq": params.prefill_time_ms_per_req,
        "prefillPolicyType": params.prefill_policy_type,
        "decodeTimeMsPerReq": params.decode_time_ms_per_req,
        "decodePolicyType": params.decode_policy_type,
        "maxBatchSize": params.max_batch_size,
        "maxIterTimes": node.max_seq_len,
        "maxPreemptCount": params.max_preempt_count,
        "supportSelectBatch": params.support_select_batch,
        "maxQueueDelayMicroseconds": params.max_queue_delay_microseconds,
        "enablePrefixCache": params.enable_prefix_caching,
    })
}
