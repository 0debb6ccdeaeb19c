//! LeaderWorkerSet (`leaderworkerset.x-k8s.io/v1`), the custom resource multi-node inference
//! runs on: one leader pod and `size - 1` worker pods per group, created and restarted
//! together, each worker told its leader's address in `LWS_LEADER_ADDRESS`.
//!
//! The fields inferkit writes, as the v1 API reference of kubernetes-sigs/lws defines them
//! (`api/leaderworkerset/v1/leaderworkerset_types.go`); fields it never sets are left out.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// `apiVersion` of the v1 API.
pub const API_VERSION: &str = "leaderworkerset.x-k8s.io/v1";
/// `kind` of the resource.
pub const KIND: &str = "LeaderWorkerSet";
/// Label LWS puts on every pod of a set, with the set's name.
pub const SET_NAME_LABEL: &str = "leaderworkerset.sigs.k8s.io/name";
/// Label LWS puts on every pod with its index in the group (`0` for the leader).
pub const WORKER_INDEX_LABEL: &str = "leaderworkerset.sigs.k8s.io/worker-index";
/// Variable LWS sets in every container: the leader pod's stable DNS name.
pub const LEADER_ADDRESS_VARIABLE: &str = "LWS_LEADER_ADDRESS";

/// A LeaderWorkerSet object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderWorkerSet {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// The desired groups.
    pub spec: LeaderWorkerSetSpec,
}

impl LeaderWorkerSet {
    /// A set with this metadata and spec.
    pub fn new(metadata: ObjectMeta, spec: LeaderWorkerSetSpec) -> Self {
        LeaderWorkerSet {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            metadata,
            spec,
        }
    }
}

/// `spec` of a LeaderWorkerSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderWorkerSetSpec {
    /// Number of groups (model replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The pods of one group.
    pub leader_worker_template: LeaderWorkerTemplate,
    /// When the workers of a group are created.
    pub startup_policy: StartupPolicy,
}

/// The pods of one group: a leader and `size - 1` identical workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderWorkerTemplate {
    /// The leader pod (index 0); the worker template when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_template: Option<PodTemplateSpec>,
    /// Every other pod of the group.
    pub worker_template: PodTemplateSpec,
    /// Pods per group, the leader included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i32>,
    /// What a failing pod does to its group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
}

/// `restartPolicy` of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Any pod restarting recreates the whole group: a distributed engine cannot take one
    /// member back in the middle of a run.
    RecreateGroupOnPodRestart,
    /// Pods restart alone.
    None,
}

/// `startupPolicy` of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartupPolicy {
    /// Workers are created once the leader pod exists: the leader waits for them (a Ray head
    /// waiting for its nodes, a server waiting for its RPC servers).
    LeaderCreated,
    /// Workers are created once the leader is ready: they connect to a running leader.
    LeaderReady,
}
