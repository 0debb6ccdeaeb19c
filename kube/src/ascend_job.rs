//! AscendJob (`mindxdl.gitee.com/v1`, short name `acjob`), the custom resource of MindCluster's
//! Ascend Operator, which MindIE documents for running MindIE Server across nodes on
//! Kubernetes: one pod per node, each asking for its NPUs, and a rank table (`hccl.json`) the
//! operator writes once every pod has its chips and its IP.
//!
//! The fields inferkit writes, as Ascend/mind-cluster defines them
//! (`component/ascend-operator/pkg/api/v1/ascendjob_types.go`, the `RunPolicy` and
//! `ReplicaSpec` of kubeflow/common it embeds, and the CRD `ascendjobs.mindxdl.gitee.com` in
//! `component/ascend-operator/build/ascend-operator.yaml`, commit e8935cf); the MindIE Server
//! job's labels and fields as MindCluster's MindIE Motor guide writes them (hiascend.com
//! mindcluster 730 `dl_bestpractice_007.html`, `mxdlug_appendices_020.html`; Ascend/mind-cluster
//! `docs/en/scheduling/usage/mindie_motor_best_practice/01_deploying_mindie_motor.md`).
//! Fields inferkit never sets are left out.
//!
//! How a MindIE instance across nodes runs under it (sources in Ascend/mind-cluster,
//! `component/ascend-operator/pkg/`):
//! - Volcano schedules the job's pods as one gang (`minAvailable`) and writes the chips it
//!   chose into each pod's annotations; Ascend Device Plugin mounts them and adds their RoCE
//!   `device_ip`.
//! - The operator numbers the pods (`hccl/rankIndex`): when the Master replica asks for NPUs,
//!   the Master pod is rank 0 and Worker `i` is rank `i + 1` (`controllers/v1/annotation.go`
//!   `setHcclRankIndex`, `utils.go` `checkNonWorkerRplMountChips`). Only the container named
//!   [`CONTAINER_NAME`] counts, and only its resource *requests*.
//! - It gives each NPU `rank_id = rankIndex × NPUs per pod + i` and lists the servers by rank
//!   (`ranktable/common/common.go`), so the Master pod holds `rank_id` 0, which MindIE makes
//!   its master node, the one instance that takes requests (MindIE install guide, "多机推理",
//!   hiascend `mindie_instg_0027`): the Service selects the Master pod.
//! - It writes the table into the ConfigMap `rings-config-<job>`, key `hccl.json`, which the
//!   user creates with `status: initializing` (`controllers/v1/pod.go` `writeRanktableToCm`;
//!   `docs/en/scheduling/api/hccl.json_file_description.md`); mounted as a directory at
//!   [`RANK_TABLE_DIR`], the file turns `completed` in the running pods.
//!
//! The operator refuses a job (`controllers/v1/ascendjob_validate.go`) unless its replica
//! types are those of its `framework` label (`Master` and `Worker` for `pytorch`), the Master
//! has one replica, every template has a container named [`CONTAINER_NAME`] with an image,
//! `successPolicy` is empty or `AllWorkers`, and, with gang scheduling, the Volcano queue
//! exists.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// `apiVersion` of the resource.
pub const API_VERSION: &str = "mindxdl.gitee.com/v1";
/// `kind` of the resource.
pub const KIND: &str = "AscendJob";
/// The container the operator reads NPU requests from and injects variables into
/// (`api.DefaultContainerName`, `component/ascend-common/api/default_name.go`).
pub const CONTAINER_NAME: &str = "ascend";
/// Prefix of the ConfigMap the operator writes a job's rank table into (`configmapPrefix`,
/// `controllers/v1/consts.go`).
pub const RANK_TABLE_CONFIG_MAP_PREFIX: &str = "rings-config-";
/// Key of the rank table in that ConfigMap (`hccl.json`).
pub const RANK_TABLE_KEY: &str = "hccl.json";
/// Where the pods mount that ConfigMap: the path MindCluster's documentation fixes.
pub const RANK_TABLE_DIR: &str = "/user/serverid/devindex/config";
/// Label naming the chip product of a job and of its rank-table ConfigMap.
pub const RING_CONTROLLER_LABEL: &str = "ring-controller.atlas";
/// Label marking an AscendJob as one of MindIE Motor (with [`APP_LABEL`]): the operator then
/// injects only MindIE's variables, not a training framework's (`controllers/v1/env.go`
/// `setEnv`, `utils/job.go` `IsMindIEEPJob`).
pub const JOB_ID_LABEL: &str = "jobID";
/// Label giving the job's MindIE Motor role.
pub const APP_LABEL: &str = "app";
/// The MindIE Motor role of a MindIE Server instance.
pub const MINDIE_SERVER_APP: &str = "mindie-ms-server";

/// An AscendJob object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AscendJob {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// Name, namespace, labels (`framework`, `app`, `jobID`, `ring-controller.atlas`).
    pub metadata: ObjectMeta,
    /// The desired pods.
    pub spec: AscendJobSpec,
}

impl AscendJob {
    /// A job with this metadata and spec.
    pub fn new(metadata: ObjectMeta, spec: AscendJobSpec) -> Self {
        AscendJob {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            metadata,
            spec,
        }
    }
}

/// `spec` of an AscendJob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AscendJobSpec {
    /// Gang scheduling and lifetime of the job.
    pub run_policy: RunPolicy,
    /// When the job counts as succeeded (`AllWorkers`: every pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_policy: Option<String>,
    /// The scheduler of the pods (`volcano` for gang scheduling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// The pods, by replica type.
    pub replica_specs: BTreeMap<ReplicaType, ReplicaSpec>,
}

/// `spec.runPolicy` (kubeflow/common `RunPolicy`), the part inferkit sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunPolicy {
    /// Volcano's gang: the job starts when this many pods can be placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_policy: Option<SchedulingPolicy>,
}

/// `spec.runPolicy.schedulingPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulingPolicy {
    /// Pods that must be placed together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<i32>,
    /// The Volcano queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

/// The replica types of an AscendJob with the PyTorch framework label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ReplicaType {
    /// The pod ranked 0: the MindIE master node.
    Master,
    /// The pods ranked 1, 2, ...
    Worker,
}

/// One replica type's pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSpec {
    /// Number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// `Always`, `OnFailure`, `Never` or `ExitCode`; overrides the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// The pod.
    pub template: PodTemplateSpec,
}

/// The `ring-controller.atlas` value of an Ascend chip, as MindCluster's YAML parameter table
/// gives it: `ascend-910b` for the Atlas A2 and A3 products (910B, 910_93), `ascend-910` for
/// the Atlas 800 training servers (910); `None` for the 310 families, which HCCL rank tables
/// across servers do not cover (MindIE multi-node runs on Atlas 800I A2 and A3 only,
/// `mindie_instg_0027`).
pub fn ring_controller(chip: &str) -> Option<&'static str> {
    let chip = chip.to_ascii_lowercase();
    if chip.contains("310") {
        None
    } else if chip.contains("910b") || chip.contains("910_93") || chip.contains("910c") {
        Some("ascend-910b")
    } else if chip.contains("910") {
        Some("ascend-910")
    } else {
        None
    }
}

/// The start step of a pod reading the rank table: a POSIX `sh` script run as
/// `sh -c SCRIPT PROGRAM ARGS...` that waits, at most `$INFERKIT_RANK_TABLE_WAIT_SECONDS`,
/// until `$RANK_TABLE_FILE` says `"status": "completed"` (the operator writes it compact, the
/// ConfigMap starts as `{"status":"initializing"}`), then `exec`s the program. MindIE reads the
/// table once, at start: an incomplete table would fail the instance. The script holds no
/// `$(`, which the kubelet would read as a reference to a container variable.
pub const WAIT_SCRIPT: &str = r#"waited=0
limit="${INFERKIT_RANK_TABLE_WAIT_SECONDS:?}"
until grep -Eq '"status"[[:space:]]*:[[:space:]]*"completed"' "$RANK_TABLE_FILE" 2>/dev/null; do
  if [ "$waited" -ge "$limit" ]; then
    echo "inferkit: $RANK_TABLE_FILE is not completed after ${limit}s: Ascend Operator writes it once Volcano has placed every pod of the job and Ascend Device Plugin has given each its NPUs" >&2
    exit 1
  fi
  echo "inferkit: waiting for Ascend Operator to complete $RANK_TABLE_FILE"
  sleep 2
  waited=`expr "$waited" + 2`
done
exec "$0" "$@"
"#;

/// Variable bounding the wait, in seconds.
pub const WAIT_VARIABLE: &str = "INFERKIT_RANK_TABLE_WAIT_SECONDS";

/// The default bound: scheduling a gang and mounting NPUs takes seconds to minutes.
pub const DEFAULT_WAIT_SECONDS: u32 = 900;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_controller_label_follows_the_chip_generation() {
        assert_eq!(ring_controller("Ascend910B4"), Some("ascend-910b"));
        assert_eq!(ring_controller("Ascend910_9382"), Some("ascend-910b"));
        assert_eq!(ring_controller("Ascend910"), Some("ascend-910"));
        assert_eq!(ring_controller("Ascend310P3"), None);
    }
}
