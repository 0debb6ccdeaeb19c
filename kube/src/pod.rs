//! One pod template per side of a plan: the main worker's processes (the leader, or the only
//! pod), and the subordinate processes of the other workers (one worker pod each).

use std::collections::BTreeMap;

use inferkit_core::launch::shell_quote;
use inferkit_core::secret::placeholder_variable;
use inferkit_core::{
    DeploymentPlan, DeviceClaim, DownloadStep, Error, HealthCheck, LaunchSpec, ProcessRole, Result,
    Vendor, WorkerClaim,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, HostPathVolumeSource, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::ascend_job::{self, CONTAINER_NAME, RANK_TABLE_DIR, RANK_TABLE_KEY};
use crate::download;
use crate::lws::{LEADER_ADDRESS_VARIABLE, SET_NAME_LABEL, WORKER_INDEX_LABEL};
use crate::{KubernetesOptions, ModelVolume, NAME_LABEL, name_labels, secret_env};

/// Node label holding the node's name.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// Working directory of a process with launch files: an `emptyDir` with the files mounted in.
const RUN_DIR: &str = "/inferkit/run";

/// The roles vLLM gives its Ray nodes (`inferkit_vllm::RAY_HEAD`, `RAY_WORKER`): a Ray head may
/// share the main process's pod, and Ray nodes need a larger `/dev/shm`.
const RAY_HEAD: &str = "ray_head";
const RAY_WORKER: &str = "ray_worker";
/// Variable holding the pod's IP, which replaces the worker's address in a pod.
const POD_IP_VARIABLE: &str = "INFERKIT_POD_IP";
/// Annotation saying which devices a pod asks for, and that any identical ones will do.
const DEVICES_ANNOTATION: &str = "inferkit.dev/devices";
/// Label telling the pod that serves the API (`server`) from the others (`worker`).
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The variable through which MindIE (and HCCL) read their rank table.
pub(crate) const RANK_TABLE_VARIABLE: &str = "RANK_TABLE_FILE";
/// MindIE's variable for the address of a server on bare metal, which a container deployment
/// must not set (MindIE install guide, "多机推理", hiascend `mindie_instg_0026`/`0027`: "容器部署时
/// 不配置"); a pod's address is `MIES_CONTAINER_IP`.
const HOST_IP_VARIABLE: &str = "HOST_IP";

/// The workload a plan becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// One worker: a Deployment of one pod.
    Deployment,
    /// Several workers that find each other by address: a LeaderWorkerSet.
    LeaderWorkerSet,
    /// Several workers sharing an HCCL rank table (MindIE across nodes): an AscendJob, whose
    /// operator writes the table.
    AscendJob,
}

/// Which pod template to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodRole {
    /// The main worker's processes.
    Leader,
    /// The template every subordinate process runs in.
    Worker,
}

/// A pod template and the ConfigMap of its launch files.
pub(crate) struct BuiltPod {
    pub template: PodTemplateSpec,
    pub config_map: Option<ConfigMap>,
}

/// Where a process of another pod is reached: the host and port that replace the plan's
/// `address:port` of it in a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    host: String,
    port: u16,
    leader: bool,
}

/// Builds the pod templates of one plan.
pub(crate) struct PodBuilder<'a> {
    plan: &'a DeploymentPlan,
    options: &'a KubernetesOptions,
    name: &'a str,
    image: &'a str,
    main_worker: &'a str,
    leader: Vec<&'a LaunchSpec>,
    subordinates: Vec<&'a LaunchSpec>,
    workload: Workload,
    /// The rank table the plan's processes read ([`RANK_TABLE_VARIABLE`]), as the plan names it.
    rank_table: Option<&'a str>,
    /// The plan's `(address, port)` of every process in a multi-pod plan → where it is reached
    /// from a pod.
    endpoints: BTreeMap<(String, u16), Endpoint>,
}

impl<'a> PodBuilder<'a> {
    pub fn new(
        plan: &'a DeploymentPlan,
        options: &'a KubernetesOptions,
        name: &'a str,
        image: &'a str,
        main_worker: &'a str,
    ) -> Result<Self> {
        let (leader, subordinates): (Vec<_>, Vec<_>) =
            plan.processes.iter().partition(|p| p.worker == main_worker);
        let rank_table = plan
            .processes
            .iter()
            .find_map(|p| p.env.get(RANK_TABLE_VARIABLE))
            .map(String::as_str);
        let workload = match (subordinates.is_empty(), rank_table) {
            (true, _) => Workload::Deployment,
            (false, None) => Workload::LeaderWorkerSet,
            (false, Some(_)) => Workload::AscendJob,
        };
        // A file written at run time has a writer on Kubernetes only where it is the rank
        // table of an AscendJob (Ascend Operator's).
        let unprovided = plan.processes.iter().find_map(|p| {
            p.run_time_files
                .iter()
                .find(|f| !operator_writes(workload, rank_table, &f.path))
        });
        if let Some(file) = unprovided {
            return Err(Error::unsupported(format!(
                "the plan expects {} to be written at run time by {}: the Kubernetes export \
                 provides only the HCCL rank table of an AscendJob",
                file.path.display(),
                file.written_by
            )));
        }
        let mut builder = PodBuilder {
            plan,
            options,
            name,
            image,
            main_worker,
            leader,
            subordinates,
            workload,
            rank_table,
            endpoints: BTreeMap::new(),
        };
        // The pods of an AscendJob find each other through the rank table, not by address.
        if builder.workload == Workload::LeaderWorkerSet {
            builder.endpoints = builder.endpoints()?;
        }
        Ok(builder)
    }

    /// The processes that run in worker pods, in the order of their worker index (1, 2, ...).
    pub fn subordinates(&self) -> &[&'a LaunchSpec] {
        &self.subordinates
    }

    /// The workload the plan becomes.
    pub fn workload(&self) -> Workload {
        self.workload
    }

    /// Labels selecting the pod that serves the API. In an AscendJob that is the Master pod,
    /// which the operator ranks 0, making it MindIE's master node (see [`ascend_job`]).
    pub fn leader_selector(&self) -> BTreeMap<String, String> {
        match self.workload {
            Workload::Deployment => {
                BTreeMap::from([(NAME_LABEL.to_string(), self.name.to_string())])
            }
            Workload::LeaderWorkerSet => BTreeMap::from([
                (SET_NAME_LABEL.to_string(), self.name.to_string()),
                (WORKER_INDEX_LABEL.to_string(), "0".to_string()),
            ]),
            Workload::AscendJob => BTreeMap::from([
                (NAME_LABEL.to_string(), self.name.to_string()),
                (COMPONENT_LABEL.to_string(), "server".to_string()),
            ]),
        }
    }

    /// The `ring-controller.atlas` label of the plan's NPUs, for an AscendJob.
    pub fn ring_controller(&self) -> Result<&'static str> {
        let chip = self
            .plan
            .placement
            .workers
            .iter()
            .flat_map(|w| &w.devices)
            .map(|d| d.name.as_str())
            .next()
            .unwrap_or_default();
        ascend_job::ring_controller(chip).ok_or_else(|| {
            Error::unsupported(format!(
                "the plan shares an HCCL rank table across workers on {chip:?}, which \
                 MindCluster's Ascend Operator writes rank tables for only on Ascend 910 \
                 products (ring-controller.atlas ascend-910 or ascend-910b)"
            ))
        })
    }

    /// Leader processes are reached at `$(LWS_LEADER_ADDRESS)` on their own ports; worker `i`
    /// at its stable pod name `NAME-0-i.NAME.NAMESPACE` (LeaderWorkerSet's headless Service),
    /// on the first worker's port, since all workers share one template.
    fn endpoints(&self) -> Result<BTreeMap<(String, u16), Endpoint>> {
        let mut endpoints = BTreeMap::new();
        for process in &self.leader {
            if let Some(port) = health_port(process) {
                let endpoint = Endpoint {
                    host: format!("$({LEADER_ADDRESS_VARIABLE})"),
                    port,
                    leader: true,
                };
                let address = self.address_of(&process.worker)?.to_string();
                endpoints.insert((address, port), endpoint);
            }
        }
        let worker_port = health_port(self.subordinates[0]);
        for (i, process) in self.subordinates.iter().enumerate() {
            let (Some(port), Some(worker_port)) = (health_port(process), worker_port) else {
                continue;
            };
            let host = format!(
                "{name}-0-{index}.{name}.{namespace}",
                name = self.name,
                index = i + 1,
                namespace = self.options.namespace
            );
            let endpoint = Endpoint {
                host,
                port: worker_port,
                leader: false,
            };
            let address = self.address_of(&process.worker)?.to_string();
            if endpoints
                .insert((address.clone(), port), endpoint)
                .is_some()
            {
                return Err(Error::unsupported(format!(
                    "two processes of the plan listen on {address}:{port}: their pods cannot be \
                     told apart"
                )));
            }
        }
        Ok(endpoints)
    }

    /// The pod template of `role`, with the ConfigMap of its launch files.
    pub fn pod(&self, role: PodRole) -> Result<BuiltPod> {
        let (processes, worker, config_map_name) = match role {
            PodRole::Leader => (
                self.leader.clone(),
                self.main_worker,
                format!("{}-files", self.name),
            ),
            PodRole::Worker => {
                let first = self.uniform_worker()?;
                (
                    vec![first],
                    first.worker.as_str(),
                    format!("{}-worker-files", self.name),
                )
            }
        };
        let claim = self.worker_claim(worker)?;
        let devices = match role {
            PodRole::Leader => claim.devices.len(),
            PodRole::Worker => self.device_count(processes[0], claim),
        };
        let resource = accelerator_resource(claim)?;
        if let Some(device) = claim.devices.first()
            && devices > 1
            && device
                .vendor
                .as_ref()
                .is_some_and(|v| v.is_mig_instance(&device.name))
        {
            return Err(Error::unsupported(format!(
                "the plan spreads a process on {} over {devices} MIG instances ({}): a CUDA \
                 process uses one MIG instance",
                claim.name, device.name
            )));
        }
        let mut container = self.container(&processes, role, resource.as_deref())?;
        container.resources = resources(role, claim, devices, resource.as_deref());
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        if self.workload == Workload::AscendJob {
            // The operator reads NPU *requests* from the job's templates, which no API server
            // defaults from limits (a custom resource), to rank the Master pod 0.
            if let Some(resources) = &mut container.resources {
                let limits = resources.limits.clone().unwrap_or_default();
                resources.requests.get_or_insert_default().extend(limits);
            }
            // The whole ConfigMap as a directory: the kubelet updates such a mount when the
            // operator rewrites the table (it never updates a subPath mount).
            volumes.push(Volume {
                name: "rank-table".to_string(),
                config_map: Some(ConfigMapVolumeSource {
                    name: self.rank_table_config_map(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(mount("rank-table", RANK_TABLE_DIR, true));
        }
        let uses_ray = processes
            .iter()
            .any(|p| p.role.is_subordinate(RAY_HEAD) || p.role.is_subordinate(RAY_WORKER));
        if devices > 1 || uses_ray {
            // NCCL between a pod's GPUs and Ray's object store live in /dev/shm, which a
            // container gets only 64 MiB of by default.
            volumes.push(Volume {
                name: "dshm".to_string(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".to_string()),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(mount("dshm", "/dev/shm", false));
        }
        let mut init_containers = Vec::new();
        let steps = self.downloads(&processes);
        let model = self.options.model_volume.as_ref();
        let into_model = steps.iter().any(|s| download::in_model_volume(s, model));
        if let Some(model) = model {
            volumes.push(model_volume(model, into_model));
            mounts.push(mount("model", model.mount_path(), true));
        }
        if !steps.is_empty() {
            let mut download_mounts = Vec::new();
            if let Some(model) = model.filter(|_| into_model) {
                download_mounts.push(mount("model", model.mount_path(), false));
            }
            let mut caches: Vec<&std::path::Path> = steps
                .iter()
                .filter(|s| !download::in_model_volume(s, model))
                .map(|s| s.cache.as_path())
                .collect();
            caches.sort();
            caches.dedup();
            for (i, cache) in caches.into_iter().enumerate() {
                let name = match i {
                    0 => "model-cache".to_string(),
                    _ => format!("model-cache-{i}"),
                };
                let path = cache.display().to_string();
                volumes.push(Volume {
                    name: name.clone(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                });
                mounts.push(mount(&name, &path, true));
                download_mounts.push(mount(&name, &path, false));
            }
            init_containers.push(download::init_container(
                &steps,
                self.options,
                download_mounts,
                into_model,
            )?);
        }
        let config_map = self.launch_files(
            &processes,
            &config_map_name,
            &mut container,
            &mut volumes,
            &mut mounts,
        )?;
        self.check_no_node_address(&container, config_map.as_ref())?;
        container.volume_mounts = (!mounts.is_empty()).then_some(mounts);
        let waits = self.peer_waits(&processes);
        if !waits.is_empty() {
            init_containers.push(self.wait_container(&waits));
        }
        let mut labels = name_labels(self.name);
        if self.workload == Workload::AscendJob {
            labels.insert(
                ascend_job::RING_CONTROLLER_LABEL.to_string(),
                self.ring_controller()?.to_string(),
            );
        }
        labels.insert(
            COMPONENT_LABEL.to_string(),
            match role {
                PodRole::Leader => "server",
                PodRole::Worker => "worker",
            }
            .to_string(),
        );
        let annotations = self.device_annotation(claim, devices, resource.as_deref());
        let spec = PodSpec {
            containers: vec![container],
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            volumes: (!volumes.is_empty()).then_some(volumes),
            tolerations: (!self.options.tolerations.is_empty())
                .then(|| self.options.tolerations.clone()),
            node_selector: self.node_selector(role),
            affinity: self.worker_affinity(role),
            ..PodSpec::default()
        };
        Ok(BuiltPod {
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(spec),
            },
            config_map,
        })
    }

    /// The download steps whose files the processes of a pod read.
    fn downloads(&self, processes: &[&LaunchSpec]) -> Vec<&'a DownloadStep> {
        self.plan
            .downloads
            .iter()
            .filter(|step| processes.iter().any(|p| step.workers.contains(&p.worker)))
            .collect()
    }

    /// Refuses a pod that would still name a node's IP address (a rank table listing the
    /// nodes, a placement group naming them): in a pod the process has the pod's address, so
    /// such a manifest would start and then fail to find its peers.
    fn check_no_node_address(
        &self,
        container: &Container,
        config_map: Option<&ConfigMap>,
    ) -> Result<()> {
        let values = container
            .command
            .iter()
            .chain(&container.args)
            .flatten()
            .chain(
                container
                    .env
                    .iter()
                    .flatten()
                    .filter_map(|e| e.value.as_ref()),
            )
            .chain(
                config_map
                    .and_then(|c| c.data.as_ref())
                    .into_iter()
                    .flat_map(|d| d.values()),
            );
        let addresses: Vec<&str> = self
            .plan
            .placement
            .workers
            .iter()
            .filter_map(|w| w.address.as_deref())
            .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
            .collect();
        for value in values {
            if let Some(address) = addresses.iter().find(|a| value.contains(**a)) {
                return Err(Error::unsupported(format!(
                    "the plan's processes name the node address {address} where a pod cannot \
                     stand in for it (`{}`): this plan is not exported to Kubernetes",
                    shorten(value)
                )));
            }
        }
        Ok(())
    }

    /// The first subordinate, once every other one is shown to run the same process in a pod
    /// of the same shape (LeaderWorkerSet has one worker template).
    fn uniform_worker(&self) -> Result<&'a LaunchSpec> {
        let first = self.subordinates[0];
        let shape = |process: &LaunchSpec| -> Result<_> {
            let claim = self.worker_claim(&process.worker)?;
            let mut args = self.pod_args(process)?;
            if let (Some(own), Some(shared)) = (health_port(process), health_port(first)) {
                let own = own.to_string();
                for arg in &mut args {
                    if *arg == own {
                        *arg = shared.to_string();
                    }
                }
            }
            let device = claim.devices.first().map(|d| d.name.clone());
            Ok((
                process.program.clone(),
                args,
                self.device_count(process, claim),
                device,
            ))
        };
        let expected = shape(first)?;
        for process in &self.subordinates[1..] {
            if shape(process)? != expected {
                return Err(Error::unsupported(format!(
                    "the worker pods of a LeaderWorkerSet share one template, but the {} process \
                     on {} and the one on {} differ in program, arguments or devices",
                    process.role.as_str(),
                    first.worker,
                    process.worker
                )));
            }
        }
        Ok(first)
    }

    fn worker_claim(&self, worker: &str) -> Result<&'a WorkerClaim> {
        self.plan
            .placement
            .workers
            .iter()
            .find(|w| w.name == worker)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "the plan runs a process on {worker}, which its placement does not list"
                ))
            })
    }

    /// Devices one subordinate process drives: those its visible-devices variable lists, else
    /// all of its worker's.
    fn device_count(&self, process: &LaunchSpec, claim: &WorkerClaim) -> usize {
        let listed = claim
            .devices
            .first()
            .and_then(|d| d.vendor.as_ref())
            .and_then(|vendor| process.env.get(vendor.visible_devices_env()))
            .map(|list| list.split(',').filter(|s| !s.trim().is_empty()).count());
        listed.unwrap_or(claim.devices.len())
    }

    /// The one container of a pod. Several processes (a Ray head before `vllm serve`) run in
    /// one shell, each non-final one without `--block` so that it returns once it is up.
    /// `resource` is the device-plugin resource the pod asks for.
    fn container(
        &self,
        processes: &[&LaunchSpec],
        role: PodRole,
        resource: Option<&str>,
    ) -> Result<Container> {
        let Some((last, before)) = processes.split_last() else {
            return Err(Error::unsupported("a pod without a process"));
        };
        let (command, args) = if before.is_empty() {
            (vec![last.program.clone()], self.pod_args(last)?)
        } else {
            let mut steps = Vec::new();
            for process in before {
                if !process.role.is_subordinate(RAY_HEAD) {
                    return Err(Error::unsupported(format!(
                        "{} runs a {} process next to its main process; only a Ray head can \
                         share the main process's pod",
                        process.worker,
                        process.role.as_str()
                    )));
                }
                let args: Vec<String> = self
                    .pod_args(process)?
                    .into_iter()
                    .filter(|a| a != "--block")
                    .collect();
                steps.push(command_line(&process.program, &args));
            }
            steps.push(format!(
                "exec {}",
                command_line(&last.program, &self.pod_args(last)?)
            ));
            (
                vec!["sh".to_string(), "-c".to_string(), steps.join(" && ")],
                Vec::new(),
            )
        };
        let words: Vec<String> = command.iter().chain(&args).cloned().collect();
        let (command, args) = match self.workload {
            // `sh -c SCRIPT PROGRAM ARGS...`: the script waits for the rank table, then runs
            // `"$0" "$@"`.
            Workload::AscendJob => (
                vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    ascend_job::WAIT_SCRIPT.to_string(),
                ],
                command.into_iter().chain(args).collect(),
            ),
            _ => (command, args),
        };
        let health = last.health.as_ref();
        let ports: Vec<ContainerPort> = processes
            .iter()
            .filter_map(|p| Some((&p.role, health_port(p)?)))
            .map(|(role, port)| ContainerPort {
                name: Some(port_name(role)),
                container_port: i32::from(port),
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            })
            .collect();
        Ok(Container {
            name: match (self.workload, role) {
                (Workload::AscendJob, _) => CONTAINER_NAME.to_string(),
                (_, PodRole::Leader) => self.plan.backend.clone(),
                (_, PodRole::Worker) => port_name(&last.role),
            },
            image: Some(self.image.to_string()),
            command: Some(command),
            args: (!args.is_empty()).then_some(args),
            env: self.env(processes, &words, resource)?,
            ports: (!ports.is_empty()).then_some(ports),
            startup_probe: health.map(|h| probe(h, 10, 360)),
            readiness_probe: health.map(|h| probe(h, 10, 3)),
            liveness_probe: health.map(|h| probe(h, 30, 3)),
            ..Container::default()
        })
    }

    /// A process's arguments as its pod runs them: other processes' `address:port` replaced by
    /// where their pods are reached, the worker's own address by the pod's
    /// (`$(INFERKIT_POD_IP)`), secret placeholders by `$(VARIABLE)`; the kubelet fills these
    /// in from the container's environment.
    fn pod_args(&self, process: &LaunchSpec) -> Result<Vec<String>> {
        let own = self.address_of(&process.worker)?;
        Ok(process
            .args
            .iter()
            .map(|arg| {
                let arg = arg.replace("$(", "$$(");
                match placeholder_variable(&arg) {
                    Some(variable) => format!("$({variable})"),
                    None => arg
                        .split(',')
                        .map(|item| self.rewrite_item(item, own))
                        .collect::<Vec<_>>()
                        .join(","),
                }
            })
            .collect())
    }

    /// One comma-separated item of an argument, rewritten for a pod.
    fn rewrite_item(&self, item: &str, own: &str) -> String {
        if item == own {
            return format!("$({POD_IP_VARIABLE})");
        }
        if let Some((host, port)) = item.rsplit_once(':') {
            if host == own {
                return format!("$({POD_IP_VARIABLE}):{port}");
            }
            if let Some(endpoint) = self.endpoint_of(item) {
                return format!("{}:{}", endpoint.host, endpoint.port);
            }
        }
        item.to_string()
    }

    /// The endpoint an `address:port` item names: the port of a process of the plan, on the
    /// address of that process's worker.
    fn endpoint_of(&self, item: &str) -> Option<&Endpoint> {
        let (host, port) = item.rsplit_once(':')?;
        self.endpoints
            .get(&(host.to_string(), port.parse::<u16>().ok()?))
    }

    /// The address of `worker` in the plan (its name in plans that did not record it).
    fn address_of(&self, worker: &str) -> Result<&'a str> {
        let claim = self.worker_claim(worker)?;
        Ok(claim.address.as_deref().unwrap_or(&claim.name))
    }

    /// Endpoints of other pods a pod's processes name: its init container waits for them.
    fn peer_waits(&self, processes: &[&LaunchSpec]) -> Vec<Endpoint> {
        let leader_pod = processes.iter().any(|p| p.worker == self.main_worker);
        let mut waits: Vec<Endpoint> = processes
            .iter()
            .flat_map(|p| p.args.iter())
            .flat_map(|arg| arg.split(','))
            .filter_map(|item| self.endpoint_of(item))
            .filter(|endpoint| endpoint.leader != leader_pod)
            .cloned()
            .collect();
        waits.dedup();
        waits
    }

    /// An init container, in the backend's image, that returns once every endpoint accepts
    /// connections: the pods of a group start together, and a process that connects to a peer
    /// at start must not find it missing (LeaderWorkerSet would recreate the whole group).
    fn wait_container(&self, waits: &[Endpoint]) -> Container {
        let script = waits
            .iter()
            .map(|e| {
                format!(
                    "until (exec 3<>/dev/tcp/{}/{}) 2>/dev/null; do echo waiting for {}:{}; sleep 2; done",
                    e.host, e.port, e.host, e.port
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Container {
            name: "wait-for-peers".to_string(),
            image: Some(self.image.to_string()),
            command: Some(vec!["bash".to_string(), "-c".to_string(), script]),
            ..Container::default()
        }
    }

    /// The processes' environment: the visible-devices variable left to the device plugin,
    /// the worker's address replaced by the pod's IP, secret placeholders read from the user's
    /// Secret, and `HF_TOKEN` from it too when a Secret is named.
    fn env(
        &self,
        processes: &[&LaunchSpec],
        args: &[String],
        resource: Option<&str>,
    ) -> Result<Option<Vec<EnvVar>>> {
        let visible = self.vendor_variables();
        let mut merged: BTreeMap<String, String> = BTreeMap::new();
        for process in processes {
            for (key, value) in &process.env {
                if visible.contains(&key.as_str()) {
                    continue;
                }
                if let Some(previous) = merged.insert(key.clone(), value.clone())
                    && previous != *value
                {
                    return Err(Error::unsupported(format!(
                        "the processes of {} set {key} differently, and share one container",
                        process.worker
                    )));
                }
            }
        }
        // (variable in the container, key in the Secret)
        let mut secrets: BTreeMap<String, String> = merged
            .iter()
            .filter_map(|(key, value)| {
                Some((key.clone(), placeholder_variable(value)?.to_string()))
            })
            .collect();
        for process in processes {
            for variable in process.args.iter().filter_map(|a| placeholder_variable(a)) {
                secrets.insert(variable.to_string(), variable.to_string());
            }
        }
        match (&self.options.secret, secrets.keys().next()) {
            (Some(_), _) => {
                secrets
                    .entry("HF_TOKEN".to_string())
                    .or_insert_with(|| "HF_TOKEN".to_string());
            }
            (None, Some(variable)) => {
                return Err(Error::invalid_parameter(
                    "secret",
                    format!(
                        "the plan reads {variable} from the environment: name the Secret that \
                         holds it (`--secret NAME`, with a key {variable})"
                    ),
                ));
            }
            (None, None) => {}
        }
        let own = self.address_of(&processes[0].worker)?;
        let pod_ip_used = args
            .iter()
            .any(|a| a.contains(&format!("$({POD_IP_VARIABLE})")));
        let mut env = Vec::new();
        if pod_ip_used {
            env.push(pod_ip_env(POD_IP_VARIABLE.to_string()));
        }
        let rank_table_path = format!("{RANK_TABLE_DIR}/{RANK_TABLE_KEY}");
        let ascend_job = self.workload == Workload::AscendJob;
        for (name, value) in merged {
            if secrets.contains_key(&name) || (ascend_job && name == HOST_IP_VARIABLE) {
                continue;
            }
            env.push(if value == own {
                pod_ip_env(name)
            } else if ascend_job && Some(value.as_str()) == self.rank_table {
                // Every variable naming the plan's rank table (MindIE reads two) names the
                // operator's instead.
                plain_env(name, rank_table_path.clone())
            } else {
                plain_env(name, value)
            });
        }
        if ascend_job {
            env.push(plain_env(
                ascend_job::WAIT_VARIABLE.to_string(),
                ascend_job::DEFAULT_WAIT_SECONDS.to_string(),
            ));
            if let Some(resource) = resource {
                // Ascend Docker Runtime mounts the NPUs this variable lists, which Volcano
                // writes into the pod's annotation of the resource (MindCluster YAML
                // parameter table, `ASCEND_VISIBLE_DEVICES` ... `fieldRef`; a MindIE job gets
                // no such variable from the operator).
                env.push(EnvVar {
                    name: "ASCEND_VISIBLE_DEVICES".to_string(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: format!("metadata.annotations['{resource}']"),
                            ..ObjectFieldSelector::default()
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                });
            }
        }
        if let Some(secret) = &self.options.secret {
            env.extend(
                secrets
                    .into_iter()
                    .map(|(name, key)| secret_env(secret, name, key)),
            );
        }
        Ok((!env.is_empty()).then_some(env))
    }

    /// The visible-devices variables of the plan's vendors: a device plugin sets the devices a
    /// container sees, numbered from 0, so a host index from the plan would point elsewhere.
    fn vendor_variables(&self) -> Vec<&'static str> {
        self.plan
            .placement
            .workers
            .iter()
            .flat_map(|w| &w.devices)
            .filter_map(|d| d.vendor.as_ref())
            .map(Vendor::visible_devices_env)
            .collect()
    }

    /// Launch files as a ConfigMap, each file mounted by `subPath` into the process's working
    /// directory (an `emptyDir`, so the process may write next to them).
    fn launch_files(
        &self,
        processes: &[&LaunchSpec],
        name: &str,
        container: &mut Container,
        volumes: &mut Vec<Volume>,
        mounts: &mut Vec<VolumeMount>,
    ) -> Result<Option<ConfigMap>> {
        // The plan's own rank table names the plan's nodes: an AscendJob mounts the operator's.
        let files: Vec<_> = processes
            .iter()
            .flat_map(|p| &p.files)
            .filter(|f| !operator_writes(self.workload, self.rank_table, &f.path))
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        // The working directory first: a runtime mounts in this order, and the files go into it.
        mounts.push(mount("run", RUN_DIR, false));
        let mut data = BTreeMap::new();
        for file in files {
            if let Some(target) = &file.link_to {
                return Err(Error::unsupported(format!(
                    "the plan links {} to {}: symbolic-link launch files are not exported",
                    file.path.display(),
                    target.display()
                )));
            }
            let path = file.path.to_string_lossy().to_string();
            let key: String = path
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-._".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if data.insert(key.clone(), file.content.clone()).is_some() {
                return Err(Error::unsupported(format!(
                    "two launch files map to the ConfigMap key {key}"
                )));
            }
            mounts.push(VolumeMount {
                name: "launch-files".to_string(),
                mount_path: format!("{RUN_DIR}/{path}"),
                sub_path: Some(key),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
        volumes.push(Volume {
            name: "launch-files".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.to_string(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        volumes.push(Volume {
            name: "run".to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        container.working_dir = Some(RUN_DIR.to_string());
        let mut meta = crate::metadata(name, self.options);
        meta.name = Some(name.to_string());
        Ok(Some(ConfigMap {
            metadata: meta,
            data: Some(data),
            ..ConfigMap::default()
        }))
    }

    /// The leader pinned to the main worker's node; the user's labels on every pod.
    fn node_selector(&self, role: PodRole) -> Option<BTreeMap<String, String>> {
        let mut selector = self.options.node_selector.clone();
        if self.options.pin_to_nodes && role == PodRole::Leader {
            selector.insert(HOSTNAME_LABEL.to_string(), self.main_worker.to_string());
        }
        (!selector.is_empty()).then_some(selector)
    }

    /// Worker pods share one template: they are kept to the plan's other nodes by node
    /// affinity, and, when the plan has one subordinate per node, one per node.
    fn worker_affinity(&self, role: PodRole) -> Option<Affinity> {
        if role != PodRole::Worker || !self.options.pin_to_nodes {
            return None;
        }
        let mut nodes: Vec<String> = self.subordinates.iter().map(|p| p.worker.clone()).collect();
        nodes.sort();
        nodes.dedup();
        let one_per_node = nodes.len() == self.subordinates.len();
        Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.to_string(),
                            operator: "In".to_string(),
                            values: Some(nodes),
                        }]),
                        ..NodeSelectorTerm::default()
                    }],
                }),
                ..NodeAffinity::default()
            }),
            pod_anti_affinity: one_per_node.then(|| PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            match self.workload {
                                Workload::AscendJob => NAME_LABEL,
                                _ => SET_NAME_LABEL,
                            }
                            .to_string(),
                            self.name.to_string(),
                        )])),
                        ..LabelSelector::default()
                    }),
                    topology_key: HOSTNAME_LABEL.to_string(),
                    ..PodAffinityTerm::default()
                }]),
                ..PodAntiAffinity::default()
            }),
            ..Affinity::default()
        })
    }

    fn device_annotation(
        &self,
        claim: &WorkerClaim,
        devices: usize,
        resource: Option<&str>,
    ) -> Option<BTreeMap<String, String>> {
        let (resource, device) = (resource?, claim.devices.first()?);
        Some(BTreeMap::from([(
            DEVICES_ANNOTATION.to_string(),
            format!(
                "{devices} x {} as {resource}: any of the node's identical devices",
                device.name
            ),
        )]))
    }

    /// What the export changed from the plan, for the user to read.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let pinned: Vec<String> = self
            .plan
            .placement
            .workers
            .iter()
            .filter(|w| !w.devices.is_empty())
            .map(|w| {
                let indexes: Vec<String> = w.devices.iter().map(|d| d.index.to_string()).collect();
                format!("{} devices {}", w.name, indexes.join(","))
            })
            .collect();
        if !pinned.is_empty() {
            notes.push(format!(
                "devices are requested by count: the device plugin chooses which of a node's \
                 identical devices a pod gets, so the plan's indexes ({}) are not kept",
                pinned.join("; ")
            ));
        }
        match self.workload {
            Workload::Deployment => {}
            Workload::LeaderWorkerSet => notes.push(format!(
                "{} worker pod(s) reach the leader at $({LEADER_ADDRESS_VARIABLE}) and are \
                 reached at their stable pod names; the plan's worker addresses are not used",
                self.subordinates.len()
            )),
            Workload::AscendJob => notes.push(format!(
                "an AscendJob of 1 Master and {} Worker pod(s) sharing the HCCL rank table \
                 that Ascend Operator writes into the ConfigMap {}, mounted at \
                 {RANK_TABLE_DIR}/{RANK_TABLE_KEY}: each pod waits (at most {}s) until it is \
                 completed, then starts with RANK_TABLE_FILE naming it and MIES_CONTAINER_IP set \
                 to its pod IP; the plan's rank table, worker addresses and NPU device_ip are \
                 not used. The cluster needs MindCluster: Ascend Operator (the AscendJob \
                 resource and the rank table), Volcano (gang scheduling, the schedulerName of \
                 the job, in the queue {}, which must exist), Ascend Device Plugin (the NPUs and their device_ip) and Ascend \
                 Docker Runtime. The Service selects the Master pod, which the operator ranks 0 \
                 and MindIE makes its master node, the one that takes requests",
                self.subordinates.len(),
                self.rank_table_config_map(),
                ascend_job::DEFAULT_WAIT_SECONDS,
                self.options.volcano_queue,
            )),
        }
        if !self.plan.downloads.is_empty() {
            let model = self.options.model_volume.as_ref();
            let kept = match self
                .plan
                .downloads
                .iter()
                .all(|s| download::in_model_volume(s, model))
            {
                true => "into the model volume, where they stay for the next pod",
                false => {
                    "into an emptyDir, again whenever a pod is recreated (a model volume mounted \
                     at the cache keeps them)"
                }
            };
            notes.push(format!(
                "the {} init container ({}) downloads the model's files, {}, {kept}",
                "download-model",
                self.options.download_image,
                download::checks(&self.plan.downloads)
            ));
        } else if self.options.model_volume.is_none() {
            notes.push(
                "no model volume: the image, or the backend's own download, must provide the \
                 model files the command line names"
                    .to_string(),
            );
        }
        notes
    }
}

impl PodBuilder<'_> {
    /// The ConfigMap Ascend Operator writes this job's rank table into.
    pub fn rank_table_config_map(&self) -> String {
        format!("{}{}", ascend_job::RANK_TABLE_CONFIG_MAP_PREFIX, self.name)
    }
}

/// Whether `path` is the HCCL rank table that Ascend Operator writes into an AscendJob's pods,
/// which the export mounts in place of the plan's own (that names the plan's nodes) and which
/// needs no other writer at run time.
fn operator_writes(workload: Workload, rank_table: Option<&str>, path: &std::path::Path) -> bool {
    workload == Workload::AscendJob && Some(path.to_string_lossy().as_ref()) == rank_table
}

/// Accelerators by count, and on the leader the host memory the plan claims as a request
/// (not a limit: the estimate is not a ceiling worth an OOM kill).
fn resources(
    role: PodRole,
    claim: &WorkerClaim,
    devices: usize,
    resource: Option<&str>,
) -> Option<ResourceRequirements> {
    let limits: BTreeMap<String, Quantity> = resource
        .filter(|_| devices > 0)
        .map(|resource| (resource.to_string(), Quantity(devices.to_string())))
        .into_iter()
        .collect();
    let requests: BTreeMap<String, Quantity> = (role == PodRole::Leader && claim.ram > 0)
        .then(|| ("memory".to_string(), Quantity(mebibytes(claim.ram))))
        .into_iter()
        .collect();
    (!limits.is_empty() || !requests.is_empty()).then(|| ResourceRequirements {
        limits: (!limits.is_empty()).then_some(limits),
        requests: (!requests.is_empty()).then_some(requests),
        ..ResourceRequirements::default()
    })
}

/// At most 80 characters of `text`, for an error message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

fn health_port(process: &LaunchSpec) -> Option<u16> {
    process.health.as_ref().map(|h| h.port)
}

fn command_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Port names: `http` for the API, the subordinate's kind otherwise (`rpc_server` →
/// `rpc-server`), as Kubernetes allows them: at most 15 lowercase letters, digits and dashes.
fn port_name(role: &ProcessRole) -> String {
    match role {
        ProcessRole::Main => "http".to_string(),
        ProcessRole::Subordinate { kind } => kind
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            })
            .take(15)
            .collect(),
    }
}

/// The extended resource a device plugin offers the worker's devices as: NVIDIA's (whole GPUs,
/// MIG profiles) and AMD's GPU plugins, Huawei's Ascend plugin (one resource per chip family).
/// `None` for a worker without devices; an error when its devices differ, since a count
/// cannot say which.
fn accelerator_resource(claim: &WorkerClaim) -> Result<Option<String>> {
    let Some(first) = claim.devices.first() else {
        return Ok(None);
    };
    if let Some(other) = claim.devices.iter().find(|d| d.name != first.name) {
        return Err(Error::unsupported(format!(
            "{} uses a {} and a {}: a pod asks for devices by count and cannot say which",
            claim.name, first.name, other.name
        )));
    }
    device_resource(first).map(Some)
}

fn device_resource(device: &DeviceClaim) -> Result<String> {
    let vendor = device.vendor.as_ref().ok_or_else(|| {
        Error::unsupported(format!(
            "the plan does not name the vendor of {}: plan again with this version",
            device.name
        ))
    })?;
    vendor.device_plugin_resource(&device.name).ok_or_else(|| {
        Error::unsupported(format!(
            "no Kubernetes device-plugin resource is known for {vendor} devices ({})",
            device.name
        ))
    })
}

/// A probe of the plan's health check. Startup allows `failures × period` seconds for the
/// model to load (an hour for the startup probe) before liveness takes over.
fn probe(health: &HealthCheck, period: i32, failures: i32) -> Probe {
    let port = IntOrString::Int(i32::from(health.port));
    let (http_get, tcp_socket) = match &health.path {
        Some(path) => (
            Some(HTTPGetAction {
                path: Some(path.clone()),
                port,
                ..HTTPGetAction::default()
            }),
            None,
        ),
        None => (
            None,
            Some(TCPSocketAction {
                port,
                ..TCPSocketAction::default()
            }),
        ),
    };
    Probe {
        http_get,
        tcp_socket,
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The model volume; a claim is read-only unless the download init container writes to it
/// (the backend's own mount is read-only either way).
fn model_volume(model: &ModelVolume, written: bool) -> Volume {
    match model {
        ModelVolume::HostPath { path } => Volume {
            name: "model".to_string(),
            host_path: Some(HostPathVolumeSource {
                path: path.clone(),
                type_: Some("Directory".to_string()),
            }),
            ..Volume::default()
        },
        ModelVolume::PersistentVolumeClaim { claim, .. } => Volume {
            name: "model".to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: (!written).then_some(true),
            }),
            ..Volume::default()
        },
    }
}

fn plain_env(name: String, value: String) -> EnvVar {
    EnvVar {
        name,
        value: Some(value),
        ..EnvVar::default()
    }
}

/// The pod's own IP, in place of its worker's address.
fn pod_ip_env(name: String) -> EnvVar {
    EnvVar {
        name,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "status.podIP".to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Bytes as a memory quantity in MiB, rounded up.
fn mebibytes(bytes: u64) -> String {
    format!("{}Mi", bytes.div_ceil(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ray_roles_are_the_ones_vllm_launches() {
        assert_eq!(RAY_HEAD, inferkit::vllm::RAY_HEAD);
        assert_eq!(RAY_WORKER, inferkit::vllm::RAY_WORKER);
    }

    #[test]
    fn port_names_are_kubernetes_names_of_the_role() {
        assert_eq!(port_name(&ProcessRole::Main), "http");
        let rpc = ProcessRole::subordinate(inferkit::llama_box::llamacpp::RPC_SERVER);
        assert_eq!(port_name(&rpc), "rpc-server");
        let long = ProcessRole::subordinate("Very_Long.Driver_Role");
        assert_eq!(port_name(&long), "very-long-drive");
    }
}
