//! # inferkit-core
//!
//! The shared half of inferkit: the cluster inventory, the driver traits ([`Backend`],
//! [`ResourceEstimator`], [`DeviceProbe`]), placement, planning and launch specifications. Core
//! never names a driver; the `inferkit` facade crate composes the drivers into a [`Registry`].
//! The model readers live in `inferkit-formats` and are re-exported here ([`gguf`], [`hf`],
//! [`facts`], [`files`]); probes and the launcher are crates of their own (`inferkit-probe`,
//! `inferkit-launch`), so that planning compiles no async runtime.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
pub mod download;
pub mod estimate;
pub mod flags;
pub mod inventory;
pub mod launch;
pub mod model;
pub mod placement;
pub mod plan;
pub mod probe;
pub mod secret;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
pub mod units;
pub mod user_json;
pub mod vec_map;

pub use backend::{
    Arch, Assignment, Backend, Capabilities, Claim, Os, PlacementMode, Platform, Prepared,
    Registry, Selection, Subordinate, SubordinateGrouping, Unfit,
};
pub use download::{DownloadFile, DownloadStep};
pub use estimate::{
    Components, DeviceEstimate, DeviceSlot, ErrorBand, EstimateRequest, FigureBasis, FitRequest,
    HostSlot, LaunchArgument, Layout, ResourceEstimate, ResourceEstimator, details_map,
};
pub use inferkit_error::{Error, ErrorKind, Result};
pub use inferkit_formats::{DirectoryFacts, ModelFacts, ModelFormat};
pub use inferkit_formats::{facts, files, gguf, hf, hub, ollama, source};
pub use inventory::{
    Allocation, ChipFamily, Cluster, Device, DeviceId, Memory, Vendor, WorkerInventory,
};
pub use launch::{HealthCheck, LaunchFile, LaunchSpec, ProcessRole, RunTimeFile};
pub use model::{Category, ModelSource, ModelSpec};
pub use placement::{
    Candidate, DeviceRef, Placement, PlacementOptions, PlacementRequest, PlacementStrategy,
    Rejection, place,
};
pub use plan::{
    BackendChoice, DeploymentPlan, DeviceClaim, PlacementSummary, PlanOptions, WorkerClaim, plan,
    plan_with_facts, select_backend,
};
pub use probe::DeviceProbe;
pub use vec_map::VecMap;
