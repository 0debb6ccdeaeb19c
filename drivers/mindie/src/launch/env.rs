//! The environment of a MindIE process (GPUStack 0.7.1 `ascend_mindie.py`, behaviour spec §2.4).
//!
//! Three layers: defaults the user may override, the user's `env`, and variables the platform
//! owns. A user value for a platform-owned variable is an error naming the variable (GPUStack
//! silently overwrote or removed them, so a user setting never took effect).

use std::collections::BTreeMap;

use inferkit_core::{Error, Result, Vendor};

use crate::memory::shape::Chip;
use crate::params::Params;

/// Variables that select devices or topology, or carry a parameter: set only by the driver.
/// GPUStack removes or overwrites each of them; the flag that controls it is named.
const OWNED: &[(&str, &str)] = &[
    ("MIES_CONFIG_JSON_PATH", "the generated service config"),
    (
        "MIES_INSTALL_PATH",
        "the MindIE installation the driver targets",
    ),
    ("ASCEND_RT_VISIBLE_DEVICES", "the NPUs placement assigned"),
    ("NPU_VISIBLE_DEVICES", "the NPUs placement assigned"),
    ("NPU_DEVICE_IDS", "the NPUs placement assigned"),
    ("WORLD_SIZE", "the NPUs placement assigned"),
    ("RANKTABLEFILE", "the generated rank table"),
    ("RANK_TABLE_FILE", "the generated rank table"),
    ("MIES_CONTAINER_IP", "the worker address"),
    ("MIES_CONTAINER_MANAGEMENT_IP", "the worker address"),
    ("HOST_IP", "the worker address"),
    ("NPU_MEMORY_FRACTION", "--npu-memory-fraction"),
    ("MINDIE_LOG_LEVEL", "--log-level"),
    ("MIES_SERVICE_MONITOR_MODE", "--metrics"),
    (
        "MIES_USE_MB_SWAPPER",
        "--cpu-mem-size with --max-preempt-count",
    ),
    (
        "MINDIE_ASYNC_SCHEDULING_ENABLE",
        "--enforce-eager / --max-batch-size",
    ),
    ("ASCEND_LAUNCH_BLOCKING", "--enforce-eager"),
    ("ATB_OPERATION_EXECUTE_ASYNC", "--enforce-eager"),
];

/// Settings GPUStack forces for every MindIE process (continuous batching, the ATB backend,
/// logs to stdout only so that the platform collects them).
const FORCED: &[(&str, &str)] = &[
    ("MIES_RECOMPUTE_THRESHOLD", "0.5"),
    ("MINDIE_LLM_RECOMPUTE_THRESHOLD", "0.5"),
    ("MINDIE_LLM_CONTINUOUS_BATCHING", "1"),
    ("MINDIE_CHECK_INPUTFILES_PERMISSION", "0"),
    ("MINDIE_LLM_FRAMEWORK_BACKEND", "ATB"),
    ("MINDIE_LOG_TO_STDOUT", "1"),
    ("MIES_CERTS_LOG_TO_STDOUT", "1"),
    ("MINDIE_LLM_LOG_TO_STDOUT", "1"),
    ("MINDIE_LLM_PYTHON_LOG_TO_STDOUT", "1"),
    ("ATB_LOG_TO_STDOUT", "1"),
    ("LOG_TO_STDOUT", "1"),
    ("ASDOPS_LOG_TO_STDOUT", "1"),
    ("OCK_LOG_TO_STDOUT", "1"),
    ("MINDIE_LOG_TO_FILE", "0"),
    ("MIES_CERTS_LOG_TO_FILE", "0"),
    ("MINDIE_LLM_LOG_TO_FILE", "0"),
    ("MINDIE_LLM_PYTHON_LOG_TO_FILE", "0"),
    ("ATB_LOG_TO_FILE", "0"),
    ("LOG_TO_FILE", "0"),
    ("ASDOPS_LOG_TO_FILE", "0"),
    ("OCK_LOG_TO_FILE", "0"),
    ("ASCEND_SLOG_PRINT_TO_STDOUT", "1"),
    ("MINDIE_RT_LOG_PRINT_TO_STDOUT", "1"),
    ("TORCH_AIE_PRINT_TO_STDOUT", "1"),
    ("ASCEND_SLOG_PRINT_TO_FILE", "0"),
    ("MINDIE_RT_LOG_PRINT_TO_FILE", "0"),
    ("TORCH_AIE_PRINT_TO_FILE", "0"),
];

/// GPUStack's defaults, kept when the user sets the variable.
const DEFAULTS: &[(&str, &str)] = &[
    ("OMP_NUM_THREADS", "1"),
    ("TASK_QUEUE_ENABLE", "2"),
    ("ATB_LAYER_INTERNAL_TENSOR_REUSE", "1"),
    ("INF_NAN_MODE_ENABLE", "0"),
    ("ATB_LLM_ENABLE_AUTO_TRANSPOSE", "0"),
    ("ATB_CONVERT_NCHW_TO_ND", "1"),
    ("ATB_WORKSPACE_MEM_ALLOC_ALG_TYPE", "3"),
    ("ATB_WORKSPACE_MEM_ALLOC_GLOBAL", "1"),
    ("PYTORCH_NPU_ALLOC_CONF", "expandable_segments:True"),
    ("MIES_CERTS_LOG_LEVEL", "INFO"),
    ("MINDIE_LLM_LOG_LEVEL", "WARN"),
    ("MINDIE_LLM_PYTHON_LOG_LEVEL", "WARN"),
    ("ASCEND_GLOBAL_LOG_LEVEL", "3"),
    ("ASCEND_SLOG_LEVEL", "WARN"),
    ("MINDIE_RT_LOG_LEVEL", "3"),
    ("ATB_LOG_LEVEL", "ERROR"),
    ("ATB_STREAM_SYNC_EVERY_KERNEL_ENABLE", "0"),
    ("LOG_LEVEL", "ERROR"),
    ("ASDOPS_LOG_LEVEL", "ERROR"),
    ("OCK_LOG_LEVEL", "ERROR"),
    ("TORCH_AIE_LOG_LEVEL", "3"),
];

/// Multi-node defaults (HCCL over RoCE between the servers).
const MULTI_NODE_DEFAULTS: &[(&str, &str)] = &[
    ("ATB_LLM_HCCL_ENABLE", "1"),
    ("ATB_LLM_COMM_BACKEND", "hccl"),
    ("HCCL_CONNECT_TIMEOUT", "7200"),
    ("HCCL_EXEC_TIMEOUT", "0"),
    ("HCCL_RDMA_PCIE_DIRECT_POST_NOSTRICT", "TRUE"),
];

/// The multi-node part of a process's environment.
#[derive(Debug, Clone)]
pub(crate) struct MultiNode<'a> {
    /// NPUs over all nodes.
    pub world_size: usize,
    /// The rank table, relative to the run directory.
    pub rank_table: &'a str,
    /// This node's address.
    pub address: &'a str,
}

/// What one process's environment depends on.
#[derive(Debug, Clone)]
pub(crate) struct NodeEnv<'a> {
    /// The parameters.
    pub params: &'a Params,
    /// `<root>/mindie/<version>/mindie-service`.
    pub install_path: &'a str,
    /// The service config, relative to the run directory.
    pub config_path: &'a str,
    /// Device indexes of this node, as the worker numbers them.
    pub devices: &'a [u32],
    /// The chip generation.
    pub chip: Chip,
    /// Multi-node settings; `None` for one node.
    pub multi_node: Option<MultiNode<'a>>,
}

/// The environment of one process: defaults, then the user's `env`, then what the platform
/// owns. Errors when `user` sets a variable the platform owns.
pub(crate) fn build(
    node: &NodeEnv,
    user: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    check_user(node.params, user)?;
    let mut env = pairs(DEFAULTS);
    if node.multi_node.is_some() {
        env.extend(pairs(MULTI_NODE_DEFAULTS));
        // GPUStack sets AIV expansion except on 310P (`CANN_CHIP`).
        if node.chip != Chip::Ascend310P {
            env.insert("HCCL_OP_EXPANSION_MODE".into(), "AIV".into());
        }
    }
    if node.params.enforce_eager {
        env.insert("TASK_QUEUE_ENABLE".into(), "0".into());
    }
    env.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(pairs(FORCED));
    env.extend(owned(node));
    Ok(env)
}

/// Refuses user variables the platform owns or fixes.
pub(crate) fn check_user(params: &Params, user: &BTreeMap<String, String>) -> Result<()> {
    if params.enforce_eager && user.contains_key("TASK_QUEUE_ENABLE") {
        return Err(Error::invalid_parameter(
            "env TASK_QUEUE_ENABLE",
            "conflicts with --enforce-eager, which turns the task queue off",
        ));
    }
    for name in user.keys() {
        if let Some((_, by)) = OWNED.iter().find(|(owned, _)| owned == name) {
            return Err(Error::invalid_parameter(
                format!("env {name}"),
                format!("is set by inferkit's MindIE driver from {by}; remove it"),
            ));
        }
        if FORCED.iter().any(|(forced, _)| forced == name) {
            return Err(Error::invalid_parameter(
                format!("env {name}"),
                "is a MindIE runtime setting the platform fixes (logging to stdout, \
                 continuous batching, the ATB backend); remove it",
            ));
        }
    }
    Ok(())
}

fn owned(node: &NodeEnv) -> BTreeMap<String, String> {
    let params = node.params;
    let (visible_variable, visible) = Vendor::Ascend.visible_devices(node.devices);
    let eager = params.enforce_eager;
    // Asynchronous scheduling is off for small batches (GPUStack: max batch ≤ 50) and in
    // eager mode.
    let asynchronous = !eager && params.max_batch_size > 50;
    let mut env = BTreeMap::from([
        ("MIES_CONFIG_JSON_PATH".into(), node.config_path.into()),
        ("MIES_INSTALL_PATH".into(), node.install_path.into()),
        (visible_variable.into(), visible),
        (
            "NPU_MEMORY_FRACTION".into(),
            params.npu_memory_fraction.to_string(),
        ),
        ("MINDIE_LOG_LEVEL".into(), params.log_level.to_uppercase()),
        ("MIES_SERVICE_MONITOR_MODE".into(), flag(params.metrics)),
        (
            "MIES_USE_MB_SWAPPER".into(),
            flag(params.cpu_mem_size_gib > 0),
        ),
        ("MINDIE_ASYNC_SCHEDULING_ENABLE".into(), flag(asynchronous)),
        ("ATB_OPERATION_EXECUTE_ASYNC".into(), flag(!eager)),
    ]);
    if eager {
        env.insert("ASCEND_LAUNCH_BLOCKING".into(), "1".into());
    }
    if let Some(multi) = &node.multi_node {
        env.extend([
            ("WORLD_SIZE".into(), multi.world_size.to_string()),
            ("RANKTABLEFILE".into(), multi.rank_table.into()),
            ("RANK_TABLE_FILE".into(), multi.rank_table.into()),
            ("MIES_CONTAINER_IP".into(), multi.address.into()),
            ("HOST_IP".into(), multi.address.into()),
        ]);
    }
    env
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_string()
}

fn pairs(table: &[(&str, &str)]) -> BTreeMap<String, String> {
    table
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
