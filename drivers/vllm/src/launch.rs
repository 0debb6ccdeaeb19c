//! Launch specifications: `vllm serve` for the main process and, across workers, the Ray head
//! and Ray workers it runs on.

use std::collections::BTreeMap;

use inferkit_core::{
    Assignment, DeviceSlot, Error, HealthCheck, LaunchArgument, LaunchSpec, Layout, ModelSpec,
    ProcessRole, Result, Subordinate, Vendor,
};

use crate::params::{PARALLEL_FLAGS, Params};

/// Program name of vLLM's CLI.
pub(crate) const PROGRAM: &str = "vllm";

/// Readiness endpoint of vLLM's OpenAI server.
const HEALTH_PATH: &str = "/health";

/// Role of the Ray head started on the main worker before `vllm serve`.
pub const RAY_HEAD: &str = "ray_head";

/// Role of a Ray node joining the head from another worker.
pub const RAY_WORKER: &str = "ray_worker";

/// The address vLLM takes as its node's (`vllm.utils.get_ip`); across nodes it must be the
/// address Ray knows the node by, or vLLM finds no GPU of Ray's on the driver's node when the
/// machine has several interfaces (vLLM's distributed-serving docs set it on every node).
const HOST_IP_VARIABLE: &str = "VLLM_HOST_IP";

/// Everything the launch needs.
pub(crate) struct LaunchInput<'a> {
    pub spec: &'a ModelSpec,
    pub assignment: &'a Assignment,
    pub params: &'a Params,
    /// What follows `serve`: the model directory, GGUF file or repository id.
    pub model: String,
    /// What every process needs to fetch the model (ModelScope's switch), before the spec's
    /// own environment.
    pub hub_env: BTreeMap<String, String>,
    /// The repository's revision, when `model` is a repository id read at one.
    pub revision: Option<String>,
    /// The Ascend 310P rules apply.
    pub ascend_310p: bool,
    /// Also write GPUStack's placement group (its patched vLLM only).
    pub gpustack_placement_bundles: bool,
}

/// The processes of one deployment: Ray head and workers first (across workers), `vllm serve`
/// last.
pub(crate) fn launch_specs(input: &LaunchInput) -> Result<Vec<LaunchSpec>> {
    let assignment = input.assignment;
    let main_devices: Vec<&DeviceSlot> = assignment
        .devices
        .iter()
        .filter(|d| d.id.worker == assignment.worker)
        .collect();
    let vendor = main_devices
        .first()
        .map(|d| d.vendor.clone())
        .unwrap_or(Vendor::Nvidia);
    let main_indexes: Vec<u32> = main_devices.iter().map(|d| d.id.index).collect();
    let mut specs = Vec::new();
    let mut env = visible_devices(&vendor, &main_indexes);
    env.extend(rdna3_override(&main_devices));
    if let Some(head_port) = ray_head_port(assignment)? {
        let head = RayNode {
            worker: &assignment.worker,
            address: ray_address(&assignment.worker, &assignment.address)?,
            devices: &main_indexes,
            port: head_port,
        };
        specs.push(ray_node(input, &head, &vendor, None));
        for sub in &assignment.subordinates {
            let node = RayNode {
                worker: &sub.worker,
                address: ray_address(&sub.worker, &sub.address)?,
                devices: &sub.devices,
                port: sub.port,
            };
            specs.push(ray_node(input, &node, &vendor, Some(&head)));
        }
        env.insert(HOST_IP_VARIABLE.to_string(), head.address.to_string());
        if input.gpustack_placement_bundles {
            env.extend(ray_placement_env(assignment, &main_indexes, &vendor));
        }
    }
    env.extend(input.hub_env.clone());
    env.extend(input.params.env_secrets());
    env.extend(input.spec.env.clone());
    let mut process = LaunchSpec::new(
        assignment.worker.clone(),
        ProcessRole::Main,
        PROGRAM.to_string(),
        serve_args(input)?,
    );
    process.env = env;
    process.health = Some(HealthCheck {
        port: assignment.port,
        path: Some(HEALTH_PATH.to_string()),
    });
    specs.push(process);
    Ok(specs)
}

/// `serve MODEL`, the automatic flags, the estimate's flags, the user's flags, then the
/// platform's (last, so that nothing overrides them).
fn serve_args(input: &LaunchInput) -> Result<Vec<String>> {
    let params = input.params;
    let assignment = input.assignment;
    let mut args = vec!["serve".to_string(), input.model.clone()];
    if let Some(revision) = &input.revision
        && !params.has("--revision")
    {
        args.extend(["--revision".to_string(), revision.clone()]);
    }
    let user_parallel = PARALLEL_FLAGS.iter().any(|f| params.has(f));
    if let Layout::Parallel {
        tensor_parallel,
        pipeline_parallel,
    } = assignment.estimate.layout
        && !user_parallel
    {
        if tensor_parallel > 1 {
            args.extend([
                "--tensor-parallel-size".to_string(),
                tensor_parallel.to_string(),
            ]);
        }
        if pipeline_parallel > 1 {
            args.extend([
                "--pipeline-parallel-size".to_string(),
                pipeline_parallel.to_string(),
            ]);
        }
    }
    if !assignment.subordinates.is_empty() && !params.has("--distributed-executor-backend") {
        args.extend([
            "--distributed-executor-backend".to_string(),
            "ray".to_string(),
        ]);
    }
    if input.ascend_310p {
        // GPUStack's 310P rules: no graph capture, and the chip has no bfloat16.
        if params.switch("--enforce-eager").is_none() {
            args.push("--enforce-eager".to_string());
        }
        if !params.has("--dtype") {
            args.extend(["--dtype".to_string(), "float16".to_string()]);
        }
    }
    args.extend(LaunchArgument::argv(&assignment.estimate.launch_parameters));
    args.extend(params.tokens());
    args.extend([
        "--host".to_string(),
        "0.0.0.0".to_string(),
        "--port".to_string(),
        assignment.port.to_string(),
        "--served-model-name".to_string(),
        input.spec.name.clone(),
    ]);
    Ok(args)
}

/// `VENDOR_VISIBLE_DEVICES=<sorted indexes>`, the start of a process's environment.
fn visible_devices(vendor: &Vendor, indexes: &[u32]) -> BTreeMap<String, String> {
    let (variable, value) = vendor.visible_devices(indexes);
    BTreeMap::from([(variable.to_string(), value)])
}

/// ROCm has no kernels for RDNA3's gfx1101/gfx1102, which run gfx1100's when told to
/// (GPUStack sets this for vLLM on such AMD GPUs).
fn rdna3_override(devices: &[&DeviceSlot]) -> Option<(String, String)> {
    devices
        .iter()
        .any(|d| {
            d.vendor == Vendor::Amd
                && matches!(d.compute_capability.as_deref(), Some("gfx1101" | "gfx1102"))
        })
        .then(|| ("HSA_OVERRIDE_GFX_VERSION".to_string(), "11.0.0".to_string()))
}

/// Ray's resource name for the accelerators.
fn ray_resource(vendor: &Vendor) -> &'static str {
    match vendor {
        Vendor::Ascend => "NPU",
        _ => "GPU",
    }
}

/// The port of the Ray head's GCS server, when the deployment spans workers: the first
/// subordinate's port.
///
/// The plan gives an instance the ports `port..=port + subordinates` (the main process takes
/// `port`, subordinate `i` takes `port + i`, each on its own worker). On the main worker only
/// `port` is otherwise in use, so the head takes the first subordinate's number there and every
/// process of the instance stays inside its block; Ray's default, 6379, would collide with a
/// second instance's head on the same worker.
fn ray_head_port(assignment: &Assignment) -> Result<Option<u16>> {
    let Some(first) = assignment.subordinates.first() else {
        return Ok(None);
    };
    if first.port == assignment.port {
        return Err(Error::invalid_parameter(
            "port",
            format!(
                "the Ray head on {} needs a port other than the API's {}",
                assignment.worker, assignment.port
            ),
        ));
    }
    Ok(Some(first.port))
}

/// The address of a worker's Ray node. Ray names its nodes by IP address
/// (`--node-ip-address`, the `node:IP` resources), so a worker without one in the cluster is
/// refused; its name is no substitute.
fn ray_address<'a>(worker: &str, address: &'a str) -> Result<&'a str> {
    if address.parse::<std::net::IpAddr>().is_ok() {
        return Ok(address);
    }
    let problem = if address == worker {
        "has no `address`".to_string()
    } else {
        format!("has `address` {address}, which is not an IP address")
    };
    Err(Error::invalid_parameter(
        "address",
        format!(
            "vLLM across workers runs Ray, which names every node by its IP address: worker \
             {worker} {problem}; set `address` of worker {worker} in the cluster to the IP \
             the other workers reach it at"
        ),
    ))
}

/// Where one Ray node runs and the port it is told to listen on: the GCS port for the head,
/// the node manager's for a worker.
struct RayNode<'a> {
    worker: &'a str,
    address: &'a str,
    devices: &'a [u32],
    port: u16,
}

/// A Ray node offering exactly the selected devices of its worker: the head on the main worker
/// (`head` is `None`), a worker joining it elsewhere. The launcher waits until its port accepts
/// connections before starting the next process.
fn ray_node(
    input: &LaunchInput,
    node: &RayNode,
    vendor: &Vendor,
    head: Option<&RayNode>,
) -> LaunchSpec {
    let mut args = vec!["start".to_string(), "--block".to_string()];
    match head {
        // No dashboard: it is not needed to serve and would hold one more fixed port (8265).
        None => args.extend([
            "--head".to_string(),
            "--port".to_string(),
            node.port.to_string(),
            "--include-dashboard=false".to_string(),
        ]),
        Some(head) => args.extend([
            "--address".to_string(),
            format!("{}:{}", head.address, head.port),
            "--node-manager-port".to_string(),
            node.port.to_string(),
        ]),
    }
    args.extend(["--node-ip-address".to_string(), node.address.to_string()]);
    let indexes = node.devices;
    let count = indexes.len();
    match vendor {
        Vendor::Ascend => args.extend(["--resources".to_string(), format!("{{\"NPU\": {count}}}")]),
        _ => args.extend(["--num-gpus".to_string(), count.to_string()]),
    }
    let mut env = visible_devices(vendor, indexes);
    env.insert(HOST_IP_VARIABLE.to_string(), node.address.to_string());
    env.extend(input.hub_env.clone());
    env.extend(input.spec.env.clone());
    {
        let mut process = LaunchSpec::new(
            node.worker.to_string(),
            ProcessRole::subordinate(if head.is_none() { RAY_HEAD } else { RAY_WORKER }),
            "ray",
            args,
        );
        process.env = env;
        process.health = Some(HealthCheck {
            port: node.port,
            path: None,
        });
        process
    }
}

/// The placement group GPUStack's vLLM reads: one bundle per *selected* device pinned to its
/// node, main worker first, and the bundle indices in the same order. (GPUStack 0.7.1 made a
/// bundle for every GPU of the main worker and offset the indices by that count, so a partial
/// selection pointed vLLM at GPUs it was not given; with Ray nodes that offer only the selected
/// devices the indices are simply 0..world.)
fn ray_placement_env(
    assignment: &Assignment,
    main: &[u32],
    vendor: &Vendor,
) -> BTreeMap<String, String> {
    let resource = ray_resource(vendor);
    let bundle = |address: &str| format!("{{\"{resource}\": 1, \"node:{address}\": 0.001}}");
    let nodes = std::iter::once((assignment.address.as_str(), main.len())).chain(
        assignment
            .subordinates
            .iter()
            .map(|s: &Subordinate| (s.address.as_str(), s.devices.len())),
    );
    let bundles: Vec<String> = nodes
        .flat_map(|(address, count)| std::iter::repeat_n(bundle(address), count))
        .collect();
    let indices: Vec<String> = (0..bundles.len()).map(|i| i.to_string()).collect();
    BTreeMap::from([
        (
            "GPUSTACK_RAY_PLACEMENT_GROUP_BUNDLES".to_string(),
            format!("[{}]", bundles.join(", ")),
        ),
        ("VLLM_RAY_BUNDLE_INDICES".to_string(), indices.join(", ")),
    ])
}
