//! Launch specifications: one `mindieservice_daemon` per node, subordinate nodes first.
//!
//! The daemon takes no arguments; each process gets its service config, the rank table
//! (multi-node) and the model overlay (overrides) as launch files, and the environment of
//! [`env`]. Relative paths in the config and the environment are relative to the run
//! directory, where the launcher writes the files and starts the process.

pub(crate) mod env;
mod overlay;
mod service_config;

use std::collections::BTreeMap;

use inferkit_core::{
    Assignment, DeviceId, Error, HealthCheck, LaunchArgument, LaunchFile, LaunchSpec, ModelFacts,
    ModelSpec, ProcessRole, Result, RunTimeFile,
};
use serde_json::{Value, json};

use self::env::{MultiNode, NodeEnv};
use self::overlay::{OVERLAY_DIR, pretty};
use self::service_config::NodeConfig;
use crate::memory::shape::{self, Chip, Shape};
use crate::params::Params;

/// The service config, relative to the run directory.
pub(crate) const CONFIG_FILE: &str = "mindie-config.json";

/// The HCCL rank table of a multi-node instance, relative to the run directory: what
/// `RANK_TABLE_FILE` and `RANKTABLEFILE` name in every process's environment.
pub const RANK_TABLE_FILE: &str = "ranktable.json";

/// What writes the rank table of a plan made with [`crate::MindIe::with_rank_table_at_run_time`]
/// (MindCluster's Ascend Operator writes it into the `rings-config-` ConfigMap of an AscendJob
/// once every pod has its NPUs).
const RANK_TABLE_WRITER: &str =
    "Ascend Operator, for an AscendJob on Kubernetes (`inferkit plan --format kubernetes`)";

/// MindIE's readiness endpoint on the management port (hiascend `mindie_service0080`,
/// Triton-compatible health API: 200 once every node serves).
pub(crate) const HEALTH_PATH: &str = "/v2/health/ready";

/// Where MindIE is installed and where a multi-node rank table comes from.
#[derive(Debug, Clone)]
pub(crate) struct Install<'a> {
    /// The Ascend root holding `mindie/<version>/` (`/usr/local/Ascend`).
    pub root: &'a str,
    /// The rank table of multi-node instances.
    pub rank_table: RankTable<'a>,
}

/// Where the rank table of a multi-node instance comes from.
#[derive(Debug, Clone)]
pub(crate) enum RankTable<'a> {
    /// The plan writes it, from the RoCE address of each NPU.
    Planned(&'a BTreeMap<DeviceId, String>),
    /// Ascend Operator writes it when the pods start; the plan names it only.
    AtRunTime,
}

/// The role of a node other than the main one: a MindIE daemon serving part of the model.
const NODE_ROLE: &str = "subordinate";

/// One node of the instance: a worker and its NPUs.
struct Node<'a> {
    worker: &'a str,
    address: &'a str,
    devices: Vec<u32>,
    port: u16,
    role: ProcessRole,
}

/// What every node of one instance shares.
struct Instance<'a> {
    spec: &'a ModelSpec,
    params: Params,
    chip: Chip,
    max_seq_len: u64,
    /// `<root>/mindie/<version>/mindie-service`.
    install_path: String,
    /// The model directory MindIE loads: the user's, or the overlay.
    weight_path: String,
    overlay: Vec<LaunchFile>,
    /// Rank table (`None`: written at run time) and inter-node port, for multi-node
    /// instances.
    multi_node: Option<(Option<Value>, u16)>,
    world_size: usize,
}

/// Every process of `assignment`, subordinates first and the main node last.
pub(crate) fn launch_specs(
    install: &Install,
    facts: &ModelFacts,
    spec: &ModelSpec,
    assignment: &Assignment,
) -> Result<Vec<LaunchSpec>> {
    let nodes = nodes(assignment);
    let instance = Instance::new(install, facts, spec, assignment, &nodes)?;
    nodes.iter().map(|node| instance.process(node)).collect()
}

impl<'a> Instance<'a> {
    fn new(
        install: &Install,
        facts: &ModelFacts,
        spec: &'a ModelSpec,
        assignment: &Assignment,
        nodes: &[Node],
    ) -> Result<Self> {
        let hf = shape::hf(facts)?;
        let chip = Chip::of_all(&assignment.devices)?;
        // The estimate's parameters first, so that the user's own values (if any) win.
        let mut tokens = LaunchArgument::argv(&assignment.estimate.launch_parameters);
        tokens.extend(spec.backend_parameters.iter().cloned());
        let params = Params::parse(&tokens)?;
        let shape = Shape::of(hf)?;
        shape::run_dtype(&params, &shape, chip)?;
        let overlay = overlay::build(&params, params.dtype, hf, facts.directory.as_ref())?;
        let weight_path = match overlay {
            Some(_) => OVERLAY_DIR.to_string(),
            None => overlay::absolute(&hf.dir)?.display().to_string(),
        };
        let multi_node = match (assignment.subordinates.first(), &install.rank_table) {
            (Some(first), RankTable::Planned(device_ips)) => {
                Some((Some(rank_table(device_ips, nodes)?), first.port))
            }
            (Some(first), RankTable::AtRunTime) => Some((None, first.port)),
            (None, _) => None,
        };
        let version = spec.backend_version.as_deref().unwrap_or("latest");
        Ok(Instance {
            spec,
            max_seq_len: params.resolved_seq_len(shape.max_position_embeddings)?,
            params,
            chip,
            install_path: format!("{}/mindie/{version}/mindie-service", install.root),
            weight_path,
            overlay: overlay.unwrap_or_default(),
            multi_node,
            world_size: assignment.devices.len(),
        })
    }

    /// The daemon of one node.
    fn process(&self, node: &Node) -> Result<LaunchSpec> {
        let mut process = LaunchSpec::new(
            node.worker.to_string(),
            node.role.clone(),
            format!("{}/bin/mindieservice_daemon", self.install_path),
            Vec::new(),
        );
        process.env = self.env(node)?;
        process.files = self.files(node);
        if let Some((None, _)) = self.multi_node {
            process.run_time_files = vec![RunTimeFile {
                path: RANK_TABLE_FILE.into(),
                written_by: RANK_TABLE_WRITER.to_string(),
            }];
        }
        process.health = node.role.is_main().then(|| HealthCheck {
            port: node.port,
            path: Some(HEALTH_PATH.to_string()),
        });
        Ok(process)
    }

    /// The service config, the rank table and the overlay.
    fn files(&self, node: &Node) -> Vec<LaunchFile> {
        let config = service_config::render(
            &self.params,
            &NodeConfig {
                model_name: &self.spec.name,
                weight_path: &self.weight_path,
                local_devices: node.devices.len(),
                port: node.port,
                multi_node_port: self.multi_node.as_ref().map(|(_, port)| *port),
                max_seq_len: self.max_seq_len,
            },
        );
        let mut files = vec![text_file(CONFIG_FILE, &config)];
        if let Some((Some(table), _)) = &self.multi_node {
            files.push(text_file(RANK_TABLE_FILE, table));
        }
        files.extend(self.overlay.iter().cloned());
        files
    }

    fn env(&self, node: &Node) -> Result<BTreeMap<String, String>> {
        let node_env = NodeEnv {
            params: &self.params,
            install_path: &self.install_path,
            config_path: CONFIG_FILE,
            devices: &node.devices,
            chip: self.chip,
            multi_node: self.multi_node.as_ref().map(|_| MultiNode {
                world_size: self.world_size,
                rank_table: RANK_TABLE_FILE,
                address: node.address,
            }),
        };
        env::build(&node_env, &self.spec.env)
    }
}

fn text_file(path: &str, value: &Value) -> LaunchFile {
    LaunchFile {
        path: path.into(),
        content: pretty(value),
        link_to: None,
    }
}

/// The main node (its NPUs are the assignment's devices on its worker) and one node per
/// subordinate worker; subordinates first.
fn nodes(assignment: &Assignment) -> Vec<Node<'_>> {
    let main_devices = assignment
        .devices
        .iter()
        .filter(|d| d.id.worker == assignment.worker)
        .map(|d| d.id.index)
        .collect();
    assignment
        .subordinates
        .iter()
        .map(|s| Node {
            worker: &s.worker,
            address: &s.address,
            devices: s.devices.clone(),
            // Every node serves on the main port and talks to the others on the first
            // subordinate's port (GPUStack's `ports[0]` and `ports[1]`); they are on different
            // workers, so the numbers do not collide.
            port: assignment.port,
            role: ProcessRole::subordinate(NODE_ROLE),
        })
        .chain(std::iter::once(Node {
            worker: &assignment.worker,
            address: &assignment.address,
            devices: main_devices,
            port: assignment.port,
            role: ProcessRole::Main,
        }))
        .collect()
}

/// The HCCL rank table: main server first, ranks numbered across servers in that order.
/// Every NPU needs its RoCE address (`hccn_tool -i <id> -ip -g`), which device probes do not
/// report; they are configured on the driver ([`crate::MindIe::with_device_ip`]).
fn rank_table(device_ips: &BTreeMap<DeviceId, String>, nodes: &[Node]) -> Result<Value> {
    let servers: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.role.is_main())
        .chain(nodes.iter().filter(|n| !n.role.is_main()))
        .collect();
    let mut rank = 0usize;
    let mut server_list = Vec::new();
    for server in &servers {
        let mut devices = Vec::new();
        for &index in &server.devices {
            let id = DeviceId {
                worker: server.worker.to_string(),
                index,
            };
            let ip = device_ips.get(&id).ok_or_else(|| {
                Error::unsupported(format!(
                    "MindIE across workers needs the RoCE address of NPU {id} for its rank \
                     table; configure it with MindIe::with_device_ip, or plan for Kubernetes \
                     (`inferkit plan --format kubernetes`), where Ascend Operator writes the \
                     rank table"
                ))
            })?;
            devices.push(json!({
                "device_id": index.to_string(),
                "device_ip": ip,
                "rank_id": rank.to_string(),
            }));
            rank += 1;
        }
        server_list.push(json!({
            "server_id": server.address,
            "container_ip": server.address,
            "device": devices,
        }));
    }
    Ok(json!({
        "version": "1.0",
        "server_count": servers.len().to_string(),
        "server_list": server_list,
        "status": "completed",
    }))
}
