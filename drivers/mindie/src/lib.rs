//! # inferkit-mindie
//!
//! The Ascend MindIE driver of inferkit. MindIE takes no command-line flags: this driver
//! accepts GPUStack 0.7.1's MindIE parameters (`--max-seq-len`, `--npu-memory-fraction`, ...),
//! checks them, and translates them into MindIE's service `config.json`, an overlay of the
//! model's own config files (for `--dtype`, rope and generation overrides) and the daemon's
//! environment. It sizes a model on Ascend NPUs (weights, KV cache and workspace within
//! `--npu-memory-fraction` of each NPU) and claims the architectures MindIE lists as supported.
//!
//! What it does not do:
//!
//! * GPUStack's speculative-decoding, split-fuse, buffered-response and explicit
//!   parallel-size parameters are refused with a clear error, not translated.
//! * GPUStack sources the `set_env.sh` scripts of the MindIE packages before starting the
//!   daemon; a launch spec carries no shell, so the CANN/MindIE library environment
//!   (`LD_LIBRARY_PATH`, `PYTHONPATH`, ...) must already be in the launcher's environment, as
//!   it is in Huawei's MindIE container images.
//! * Multi-node instances need the RoCE address of every NPU for the HCCL rank table; device
//!   probes do not report them, so they are configured with [`MindIe::with_device_ip`], and
//!   without them the driver declares no multi-worker capability. Where something else writes
//!   the rank table when the instance starts (Ascend Operator, for the AscendJob that
//!   `inferkit-kube` exports), [`MindIe::with_rank_table_at_run_time`] plans across workers
//!   without the addresses; such a plan cannot be run by `inferkit serve` alone.
//!
//! ```no_run
//! use inferkit_core::{Backend, ModelFacts, ModelSpec};
//! use inferkit_mindie::MindIe;
//!
//! let spec = ModelSpec::local("/models/Qwen2.5-72B-Instruct");
//! let facts = ModelFacts::read(&spec.source)?;
//! let selection = MindIe::new().select(&facts, &spec);
//! println!("{:?}: {}", selection.claim, selection.reason);
//! # Ok::<(), inferkit_core::Error>(())
//! ```
#![warn(missing_docs)]

mod architectures;
mod flags;
mod launch;
mod memory;
mod params;
mod select;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use inferkit_core::{
    Arch, Assignment, Backend, Capabilities, Category, DeviceId, LaunchSpec, ModelFacts,
    ModelFormat, ModelSpec, Os, Platform, Prepared, ResourceEstimator, Result, Selection,
    SubordinateGrouping, Vendor,
};
use serde::{Deserialize, Serialize};

pub use launch::RANK_TABLE_FILE;
pub use memory::shape::{Chip, Shape};
pub use memory::{HOST_BASE_RAM, MindieDetails, MindieEstimator, NPU_WORKSPACE};
pub use params::{MAX_DERIVED_SEQ_LEN, Params, RunDtype};

/// The backend id.
const ID: &str = "ascend-mindie";

/// Huawei's default Ascend install root (CANN and MindIE `.run` packages install under it).
pub const DEFAULT_ASCEND_ROOT: &str = "/usr/local/Ascend";

/// The Ascend MindIE backend driver.
///
/// A plain value: the Ascend root MindIE is installed under and, for multi-node instances, the
/// RoCE address of each NPU (the HCCL rank table needs them and device probes do not report
/// them), or the choice to leave the rank table to whatever writes it at run time. With
/// neither, the driver serves one worker only and says so in its capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MindIe {
    /// The Ascend root holding `mindie/<version>/mindie-service`.
    pub ascend_root: String,
    /// RoCE address of each NPU (`hccn_tool -i <id> -ip -g`), by worker and device index.
    pub device_ips: BTreeMap<DeviceId, String>,
    /// Multi-node instances read a rank table written at run time by Ascend Operator instead
    /// of one the plan carries ([`MindIe::with_rank_table_at_run_time`]).
    #[serde(default)]
    pub rank_table_at_run_time: bool,
}

impl Default for MindIe {
    fn default() -> Self {
        MindIe {
            ascend_root: DEFAULT_ASCEND_ROOT.to_string(),
            device_ips: BTreeMap::new(),
            rank_table_at_run_time: false,
        }
    }
}

impl MindIe {
    /// The driver for MindIE under [`DEFAULT_ASCEND_ROOT`], single worker.
    pub fn new() -> Self {
        MindIe::default()
    }

    /// The same driver for MindIE installed under another Ascend root.
    pub fn with_ascend_root(mut self, root: impl Into<String>) -> Self {
        self.ascend_root = root.into();
        self
    }

    /// The same driver knowing the RoCE address of one NPU (needed on every NPU of a
    /// multi-node instance).
    pub fn with_device_ip(mut self, device: DeviceId, ip: impl Into<String>) -> Self {
        self.device_ips.insert(device, ip.into());
        self
    }

    /// The same driver planning across workers without the NPUs' RoCE addresses, for targets
    /// where Ascend Operator writes the HCCL rank table when the pods start (an AscendJob on
    /// Kubernetes, `inferkit plan --format kubernetes`). A multi-node plan then carries no
    /// rank table: each process names [`RANK_TABLE_FILE`] in its environment and lists it
    /// among its [run-time files](inferkit_core::LaunchSpec::run_time_files), so `inferkit
    /// serve` refuses to start it until the file is in the run directory. Addresses given with
    /// [`MindIe::with_device_ip`] are then not used.
    pub fn with_rank_table_at_run_time(mut self) -> Self {
        self.rank_table_at_run_time = true;
        self
    }

    /// The user's parameters, parsed and checked.
    pub fn params(spec: &ModelSpec) -> Result<Params> {
        Params::parse(&spec.backend_parameters)
    }
}

impl Backend for MindIe {
    fn id(&self) -> &'static str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        static SINGLE_WORKER: LazyLock<Capabilities> = LazyLock::new(|| capabilities(false));
        static MULTI_WORKER: LazyLock<Capabilities> = LazyLock::new(|| capabilities(true));
        match self.rank_table_at_run_time || !self.device_ips.is_empty() {
            true => &MULTI_WORKER,
            false => &SINGLE_WORKER,
        }
    }

    fn select(&self, facts: &ModelFacts, spec: &ModelSpec) -> Selection {
        select::select(facts, spec)
    }

    fn prepare<'a>(
        &'a self,
        facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> Result<Box<dyn Prepared + 'a>> {
        let params = Self::params(spec)?;
        launch::env::check_user(&params, &spec.env)?;
        let mut warnings = Vec::new();
        if params.rope_scaling.is_some() && params.max_seq_len.is_none() {
            warnings.push(format!(
                "--rope-scaling without --max-seq-len: the context stays capped at {MAX_DERIVED_SEQ_LEN} tokens"
            ));
        }
        let model = memory::shape::hf(facts)?;
        Ok(Box::new(PreparedMindIe {
            backend: self,
            facts,
            spec,
            warnings,
            estimator: MindieEstimator::new(model, params, &spec.env)?,
        }))
    }
}

/// What MindIE can do: multi-node only when the driver knows the NPUs' RoCE addresses or
/// leaves the rank table to run time.
fn capabilities(multi_worker: bool) -> Capabilities {
    let mut caps = Capabilities::default();
    caps.formats = vec![ModelFormat::Safetensors];
    caps.vendors = vec![Vendor::Ascend];
    caps.platforms = Platform::every(&[Os::Linux], &[Arch::Amd64, Arch::Arm64]);
    // gpustack-inference-backends.md: LLMs and VLMs; embedding models not yet.
    caps.categories = vec![Category::Llm];
    caps.multi_device = true;
    caps.multi_worker = multi_worker;
    caps.default_worker_selector = BTreeMap::from([("os".to_string(), "linux".to_string())]);
    if multi_worker {
        caps.subordinates = SubordinateGrouping::PerRemoteWorker;
    }
    // --npu-memory-fraction is MindIE's own headroom.
    caps.own_device_headroom = true;
    caps
}

/// A MindIE deployment of one model: its checked parameters inside the memory model.
struct PreparedMindIe<'a> {
    backend: &'a MindIe,
    facts: &'a ModelFacts,
    spec: &'a ModelSpec,
    warnings: Vec<String>,
    estimator: MindieEstimator<'a>,
}

impl Prepared for PreparedMindIe<'_> {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn estimator(&self) -> &dyn ResourceEstimator {
        &self.estimator
    }

    fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
        let rank_table = match self.backend.rank_table_at_run_time {
            true => launch::RankTable::AtRunTime,
            false => launch::RankTable::Planned(&self.backend.device_ips),
        };
        let install = launch::Install {
            root: &self.backend.ascend_root,
            rank_table,
        };
        launch::launch_specs(&install, self.facts, self.spec, assignment)
    }
}
