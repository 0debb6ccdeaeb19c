//! `kubectl get nodes -o json` of real clusters (tests/fixtures/kubernetes/README.md) read as
//! the cluster planning takes.

use std::path::{Path, PathBuf};

use inferkit_core::Vendor;
use inferkit_probe::kubernetes::{from_lists, load};
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kubernetes")
        .join(name)
}

fn read(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// An RKE2 node with the GPU Operator: GPU Feature Discovery labels one NVIDIA A16-4Q vGPU
/// of 4096 MiB, compute capability 8.6.
#[test]
fn gpu_feature_discovery_labels_give_the_gpu() {
    let read = load(&fixture("nodes-rke2-nvidia-a16.json"), None).unwrap();
    assert!(read.excluded.is_empty(), "{:?}", read.excluded);
    let [worker] = &read.cluster.workers[..] else {
        panic!("{:?}", read.cluster.workers)
    };
    assert_eq!(worker.name, "nori");
    assert_eq!(worker.address.as_deref(), Some("0.202.61.70"));
    assert_eq!(
        (worker.os.as_str(), worker.arch.as_str()),
        ("linux", "amd64")
    );
    assert_eq!(worker.cpu_cores, 2);
    assert_eq!(worker.ram.total, 16_367_668 * 1024);
    let [gpu] = &worker.devices[..] else {
        panic!("{:?}", worker.devices)
    };
    assert_eq!(gpu.vendor, Vendor::Nvidia);
    assert_eq!(gpu.name, "NVIDIA-A16-4Q");
    assert_eq!(gpu.memory.total, 4096 << 20);
    assert_eq!(gpu.compute_capability.as_deref(), Some("8.6"));
    assert_eq!(gpu.driver_version.as_deref(), Some("550.90.07"));
    assert_eq!(gpu.runtime_version.as_deref(), Some("12.4"));
    assert_eq!(worker.labels["nvidia.com/gpu.product"], "NVIDIA-A16-4Q");
}

/// Three AKS CPU nodes, the third cordoned: it is left out with the reason.
#[test]
fn a_cordoned_node_is_left_out_with_the_reason() {
    let read = load(&fixture("nodes-aks-cpu-one-cordoned.json"), None).unwrap();
    let names: Vec<&str> = read
        .cluster
        .workers
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "aks-agentpool-30520393-vmss000000",
            "aks-agentpool-30520393-vmss000001"
        ]
    );
    let [excluded] = &read.excluded[..] else {
        panic!("{:?}", read.excluded)
    };
    assert_eq!(excluded.name, "aks-agentpool-30520393-vmss000002");
    assert!(excluded.reason.contains("cordoned"), "{}", excluded.reason);
    let worker = &read.cluster.workers[0];
    assert!(worker.devices.is_empty());
    // 1900m of allocatable CPU is one whole core to plan with.
    assert_eq!(worker.cpu_cores, 1);
    assert_eq!(worker.address.as_deref(), Some("10.240.0.4"));
}

#[test]
fn a_not_ready_node_is_left_out_with_its_message() {
    let mut nodes = read("nodes-rke2-nvidia-a16.json");
    for condition in nodes["items"][0]["status"]["conditions"]
        .as_array_mut()
        .unwrap()
    {
        if condition["type"] == "Ready" {
            condition["status"] = json!("Unknown");
            condition["message"] = json!("Kubelet stopped posting node status.");
        }
    }
    let text = nodes.to_string();
    let read = from_lists(&text, Path::new("nodes.json"), None).unwrap();
    assert!(read.cluster.workers.is_empty());
    assert_eq!(
        read.excluded[0].reason,
        "NotReady (Ready=Unknown: Kubelet stopped posting node status.)"
    );
}

/// Running pods' requests are allocations: whole devices by count (a device plugin gives a
/// pod whole devices), host memory from their memory requests; finished pods hold nothing.
#[test]
fn running_pods_hold_devices_by_count() {
    let mut nodes = read("nodes-rke2-nvidia-a16.json");
    nodes["items"][0]["status"]["allocatable"]["nvidia.com/gpu"] = json!("4");
    let pod = |name: &str, phase: &str, gpus: &str| {
        json!({"metadata": {"name": name, "namespace": "ml"},
               "spec": {"nodeName": "nori", "containers": [{"resources": {
                   "limits": {"nvidia.com/gpu": gpus}, "requests": {"memory": "2Gi"}}}]},
               "status": {"phase": phase}})
    };
    let pods = json!({"items": [pod("a", "Running", "2"), pod("b", "Succeeded", "1"),
                                pod("c", "Pending", "1")]});
    let read = from_lists(
        &nodes.to_string(),
        Path::new("nodes.json"),
        Some((&pods.to_string(), Path::new("pods.json"))),
    )
    .unwrap();
    let worker = &read.cluster.workers[0];
    assert_eq!(worker.devices.len(), 4);
    let held: Vec<(&str, Vec<&str>)> = worker
        .allocations
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.devices.keys().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(held, [("ml/a", vec!["0", "1"]), ("ml/c", vec!["2"])]);
    assert_eq!(worker.allocations[0].devices["0"], 4096 << 20);
    assert_eq!(worker.ram.used, 4 * GIB);
}

#[test]
fn a_broken_list_names_the_file() {
    let err = from_lists("{\"items\": [", Path::new("nodes.json"), None).unwrap_err();
    assert!(err.to_string().contains("nodes.json"), "{err}");
    let mut nodes = read("nodes-rke2-nvidia-a16.json");
    nodes["items"][0]["status"]["allocatable"]["cpu"] = json!("lots");
    let read = from_lists(&nodes.to_string(), Path::new("nodes.json"), None).unwrap();
    assert!(
        read.excluded[0].reason.contains("cpu: `lots`"),
        "{:?}",
        read.excluded
    );
}

/// MIG under GPU Feature Discovery's single strategy (NVIDIA's captured labels, fixture
/// README): `nvidia.com/gpu` counts the seven 1g.5gb instances of an A100, each a device of
/// the instance's 4864 MiB.
#[test]
fn mig_single_strategy_devices_have_the_instance_memory() {
    let read = load(&fixture("nodes-gfd-a100-mig-single.json"), None).unwrap();
    let [worker] = &read.cluster.workers[..] else {
        panic!("{:?} {:?}", read.cluster.workers, read.excluded)
    };
    assert_eq!(worker.devices.len(), 7);
    let instance = &worker.devices[6];
    assert_eq!(instance.name, "A100-SXM4-40GB-MIG-1g.5gb");
    assert_eq!(instance.memory.total, 4864 << 20);
    assert_eq!(instance.compute_capability.as_deref(), Some("8.0"));
    assert_eq!(
        instance
            .vendor
            .device_plugin_resource(&instance.name)
            .as_deref(),
        Some("nvidia.com/gpu")
    );
    assert!(
        read.notes.iter().any(|n| n.contains("single strategy")),
        "{:?}",
        read.notes
    );
}

/// MIG under the mixed strategy (NVIDIA's captured labels): one resource per profile. The
/// capture labels the 3g profile `mig-3g.21gb` while the node offers `mig-3g.20gb`: that
/// resource has no memory label and is left out with a note, not guessed.
#[test]
fn mig_mixed_strategy_devices_are_offered_per_profile() {
    let nodes = read("nodes-gfd-a100-mig-mixed.json");
    let pod = json!({"metadata": {"name": "small", "namespace": "ml"},
        "spec": {"nodeName": "dgx-a100-mig-mixed", "containers": [{"resources": {
            "limits": {"nvidia.com/mig-2g.10gb": "1"}}}]},
        "status": {"phase": "Running"}});
    let pods = json!({"items": [pod]});
    let read = from_lists(
        &nodes.to_string(),
        Path::new("nodes.json"),
        Some((&pods.to_string(), Path::new("pods.json"))),
    )
    .unwrap();
    let worker = &read.cluster.workers[0];
    let devices: Vec<(u32, &str, u64)> = worker
        .devices
        .iter()
        .map(|d| (d.index, d.name.as_str(), d.memory.total >> 20))
        .collect();
    assert_eq!(
        devices,
        [
            (0, "A100-SXM4-40GB MIG 1g.5gb", 4864),
            (1, "A100-SXM4-40GB MIG 2g.10gb", 9984)
        ]
    );
    let resources: Vec<Option<String>> = worker
        .devices
        .iter()
        .map(|d| d.vendor.device_plugin_resource(&d.name))
        .collect();
    assert_eq!(
        resources,
        [
            Some("nvidia.com/mig-1g.5gb".to_string()),
            Some("nvidia.com/mig-2g.10gb".to_string())
        ]
    );
    // The pod holds the 2g.10gb instance, not the first device.
    let held: Vec<&str> = worker.allocations[0]
        .devices
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(held, ["1"]);
    assert!(
        read.notes
            .iter()
            .any(|n| n.contains("nvidia.com/mig-3g.20gb left out")
                && n.contains("nvidia.com/mig-3g.20gb.memory")),
        "{:?}",
        read.notes
    );
}

/// Time-sliced GPUs, counted as replicas or offered as `nvidia.com/gpu.shared`: a node of
/// them is left out, saying why no memory can be counted on.
#[test]
fn time_sliced_gpus_are_left_out_with_the_reason() {
    let mut replicas = read("nodes-rke2-nvidia-a16.json");
    replicas["items"][0]["metadata"]["labels"]["nvidia.com/gpu.replicas"] = json!("4");
    let mut shared = read("nodes-rke2-nvidia-a16.json");
    let allocatable = shared["items"][0]["status"]["allocatable"]
        .as_object_mut()
        .unwrap();
    let gpus = allocatable.remove("nvidia.com/gpu").unwrap();
    allocatable.insert("nvidia.com/gpu.shared".to_string(), gpus);
    for nodes in [replicas, shared] {
        let read = from_lists(&nodes.to_string(), Path::new("nodes.json"), None).unwrap();
        assert!(read.cluster.workers.is_empty());
        let reason = &read.excluded[0].reason;
        assert!(reason.contains("time-sliced"), "{reason}");
        assert!(reason.contains("without limit"), "{reason}");
    }
}

/// A real Ascend 910B4 node (`kubectl get node -o yaml`, README): MindCluster's device plugin
/// offers six whole 910B4 NPUs as `huawei.com/Ascend910` (two more chips are cut into vNPUs,
/// `huawei.com/Ascend910-5c.1cpu.8g`) and HAMi's plugin 32 virtual NPUs as
/// `huawei.com/Ascend910B4`. The whole NPUs are devices of the 910B4's 32 GiB; the shares are
/// left out with a note; the captured pod holding one NPU is an allocation.
#[test]
fn an_ascend_node_offers_its_whole_npus_and_leaves_out_the_shares() {
    let read = load(
        &fixture("nodes-ascend-910b4-hami.json"),
        Some(&fixture("pods-ascend-910b4-hami.json")),
    )
    .unwrap();
    assert!(read.excluded.is_empty(), "{:?}", read.excluded);
    let [worker] = &read.cluster.workers[..] else {
        panic!("{:?}", read.cluster.workers)
    };
    assert_eq!(worker.name, "wenxue-master");
    assert_eq!(worker.address.as_deref(), Some("10.0.6.149"));
    assert_eq!(
        (worker.os.as_str(), worker.arch.as_str()),
        ("linux", "arm64")
    );
    assert_eq!(worker.cpu_cores, 256);
    assert_eq!(worker.ram.total, 526_904_468 * 1024);
    assert_eq!(worker.devices.len(), 6);
    for (index, npu) in worker.devices.iter().enumerate() {
        assert_eq!(npu.index as usize, index);
        assert_eq!(npu.vendor, Vendor::Ascend);
        assert_eq!(npu.name, "Ascend910B4");
        assert_eq!(npu.memory.total, 32 * GIB);
        assert_eq!(
            npu.vendor.device_plugin_resource(&npu.name).as_deref(),
            Some("huawei.com/Ascend910")
        );
    }
    for share in [
        "huawei.com/Ascend910-5c.1cpu.8g (2)",
        "huawei.com/Ascend910B4 (32)",
    ] {
        assert!(
            read.notes
                .iter()
                .any(|n| n.contains(share) && n.contains("not whole devices")),
            "{share}: {:?}",
            read.notes
        );
    }
    let [held] = &worker.allocations[..] else {
        panic!("{:?}", worker.allocations)
    };
    assert_eq!(held.name, "default/emb-model-server");
    let claimed: Vec<(&str, u64)> = held.devices.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(claimed, [("0", 32 * GIB)]);
}

/// An MI300X node under AMD's GPU Operator (its node labeller's labels and `amd.com/gpu: 8` as
/// Red Hat's guide prints them, README): eight GPUs of the labelled 191 GiB, named by the
/// device id the labeller gives (it writes no product name).
#[test]
fn an_amd_node_offers_its_gpus_with_the_labelled_memory() {
    let read = load(&fixture("nodes-amd-mi300x-labeller.json"), None).unwrap();
    let [worker] = &read.cluster.workers[..] else {
        panic!("{:?} {:?}", read.cluster.workers, read.excluded)
    };
    assert_eq!(worker.devices.len(), 8);
    for gpu in &worker.devices {
        assert_eq!(gpu.vendor, Vendor::Amd);
        assert_eq!(gpu.name, "AMD GPU 74b5");
        assert_eq!(gpu.memory.total, 191 * GIB);
        assert_eq!(
            gpu.vendor.device_plugin_resource(&gpu.name).as_deref(),
            Some("amd.com/gpu")
        );
    }
}
