//! Static inventories (cluster or single-worker JSON) and the composite probe's merging.

use std::path::Path;

use async_trait::async_trait;
use inferkit_core::{Device, Error, Memory, Vendor, WorkerInventory};
use inferkit_probe::static_inventory::{load_cluster, parse_cluster};
use inferkit_probe::{CompositeProbe, DeviceProbe, StaticProbe};

const CLUSTER: &str = r#"{"workers": [
  {"name": "w1", "os": "linux", "arch": "amd64", "labels": {"zone": "a"}, "cpu_cores": 32,
   "ram": {"total": 137438953472, "used": 8589934592},
   "devices": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3",
                "memory": {"total": 85520809984, "used": 0}, "compute_capability": "9.0"}],
   "allocations": [{"name": "qwen-0", "devices": {"0": 21474836480}, "ram": 0}]},
  {"name": "w2", "os": "linux", "arch": "arm64", "cpu_cores": 192,
   "ram": {"total": 1649267441664, "used": 0},
   "devices": [{"index": 0, "vendor": "ascend", "name": "Ascend910B3",
                "memory": {"total": 68719476736, "used": 3556769792}, "physical_index": 4}]}
]}"#;

fn device(index: u32, vendor: Vendor, name: &str) -> Device {
    Device {
        index,
        vendor,
        name: name.into(),
        memory: Memory {
            total: 1 << 34,
            used: 0,
            reserved: None,
        },
        compute_capability: None,
        uuid: None,
        pci_bus_id: None,
        driver_version: None,
        runtime_version: None,
        physical_index: None,
        partition: None,
        health: None,
    }
}

#[test]
fn a_cluster_file_loads_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    std::fs::write(&path, CLUSTER).unwrap();
    let cluster = load_cluster(&path).unwrap();
    assert_eq!(cluster.workers.len(), 2);
    let w2 = cluster.worker("w2").unwrap();
    assert_eq!(w2.devices[0].physical_index, Some(4));
    assert_eq!(
        cluster.worker("w1").unwrap().allocated_on_device(0),
        20 << 30
    );
}

#[test]
fn a_single_worker_as_probe_json_prints_it_is_a_one_worker_cluster() {
    let worker = WorkerInventory {
        name: "gpu-7".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        cpu_cores: 64,
        ram: Memory {
            total: 256 << 30,
            used: 10 << 30,
            reserved: None,
        },
        devices: vec![device(0, Vendor::Nvidia, "NVIDIA L40S")],
        ..Default::default()
    };
    let text = serde_json::to_string_pretty(&worker).unwrap();
    let cluster = parse_cluster(&text, Path::new("probe.json")).unwrap();
    assert_eq!(cluster.workers, [worker]);
}

#[test]
fn malformed_json_reports_file_and_offset() {
    let text = "{\"workers\": [{\"name\": \"w1\", \"cpu_cores\": \"many\"}]}";
    match parse_cluster(text, Path::new("c.json")).unwrap_err() {
        Error::Parse { file, offset, what } => {
            assert_eq!(file, Path::new("c.json"));
            assert!(offset > 0 && offset <= text.len() as u64, "{offset}");
            assert!(what.contains("invalid type"), "{what}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let single = "{\"name\": \"w1\", \"ram\": {\"total\": -1}}";
    assert!(matches!(
        parse_cluster(single, Path::new("w.json")),
        Err(Error::Parse { .. })
    ));
}

/// Files in both formats are told apart in the one pass that parses them, whatever key a
/// worker object starts with; errors name the file, the byte offset of the bad value and the
/// nearest known key of a misspelt one.
#[test]
fn files_in_both_formats_are_told_apart_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("worker.json");
    std::fs::write(
        &worker,
        r#"{"ram": {"total": "64GiB"}, "name": "w9", "devices": []}"#,
    )
    .unwrap();
    let cluster = load_cluster(&worker).unwrap();
    assert_eq!(cluster.workers.len(), 1);
    assert_eq!(cluster.workers[0].name, "w9");
    assert_eq!(cluster.workers[0].ram.total, 64 << 30);

    let bad = dir.path().join("bad.json");
    let text = "{\"workers\": [\n  {\"name\": \"w1\", \"cpu_cores\": \"many\"}]}";
    std::fs::write(&bad, text).unwrap();
    match load_cluster(&bad).unwrap_err() {
        Error::Parse { file, offset, what } => {
            assert_eq!(file, bad);
            let value_at = text.find("\"many\"").unwrap() as u64;
            assert!(
                (value_at..=value_at + 6).contains(&offset),
                "{offset}, value at {value_at}"
            );
            assert!(what.contains("invalid type"), "{what}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }

    let misspelt = dir.path().join("misspelt.json");
    std::fs::write(&misspelt, r#"{"name": "w1", "cpu_core": 8}"#).unwrap();
    let err = load_cluster(&misspelt).unwrap_err().to_string();
    assert!(err.contains("(did you mean `cpu_cores`?)"), "{err}");
    for text in ["{}", "[]", r#"{"workers": [], "name": "w"}"#] {
        std::fs::write(&misspelt, text).unwrap();
        assert!(
            matches!(load_cluster(&misspelt), Err(Error::Parse { .. })),
            "{text}"
        );
    }
}

#[tokio::test]
async fn static_probe_needs_exactly_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    std::fs::write(&path, CLUSTER).unwrap();
    let err = StaticProbe::from_json_file(&path).unwrap_err();
    assert!(
        err.to_string().contains("expected one worker, found 2"),
        "{err}"
    );

    let one = dir.path().join("w1.json");
    let w1 = load_cluster(&path).unwrap().workers.remove(0);
    std::fs::write(&one, serde_json::to_string(&w1).unwrap()).unwrap();
    let probe = StaticProbe::from_json_file(&one).unwrap();
    assert_eq!(probe.probe().await.unwrap(), w1);
}

/// A vendor tool that is installed but broken.
struct Broken;

#[async_trait]
impl DeviceProbe for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    async fn probe(&self) -> inferkit_core::Result<WorkerInventory> {
        Err(Error::Probe {
            probe: "broken".into(),
            reason: "driver/library version mismatch".into(),
        })
    }
}

fn vendor_only(devices: Vec<Device>) -> StaticProbe {
    StaticProbe::new(WorkerInventory {
        name: "ignored".into(),
        devices,
        ..Default::default()
    })
}

#[tokio::test]
async fn composite_takes_the_host_from_the_host_probe_and_devices_from_vendors() {
    let host = WorkerInventory {
        name: "box".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        cpu_cores: 16,
        cpu_brand: Some("AMD EPYC 9654".into()),
        ram: Memory {
            total: 64 << 30,
            used: 1 << 30,
            reserved: None,
        },
        ..Default::default()
    };
    let probe = CompositeProbe::new(StaticProbe::new(host.clone()))
        .with_vendor(vendor_only(vec![
            device(0, Vendor::Nvidia, "NVIDIA RTX A6000"),
            device(1, Vendor::Nvidia, "NVIDIA RTX A6000"),
        ]))
        .with_vendor(vendor_only(vec![]))
        .with_vendor(vendor_only(vec![device(
            0,
            Vendor::Amd,
            "AMD Radeon PRO W7900",
        )]));
    let worker = probe.probe().await.unwrap();
    assert_eq!(worker.name, "box");
    assert_eq!(worker.cpu_brand, host.cpu_brand);
    assert_eq!(worker.ram, host.ram);
    let devices: Vec<(u32, &str)> = worker
        .devices
        .iter()
        .map(|d| (d.index, d.vendor.as_str()))
        .collect();
    // Each vendor keeps its runtime's numbering.
    assert_eq!(devices, [(0, "nvidia"), (1, "nvidia"), (0, "amd")]);
}

#[tokio::test]
async fn a_failing_vendor_probe_fails_the_composite_and_is_named() {
    let probe = CompositeProbe::new(StaticProbe::new(WorkerInventory::default()))
        .with_vendor(vendor_only(vec![]))
        .with_vendor(Broken);
    assert_eq!(probe.vendor_names(), ["static", "broken"]);
    match probe.probe().await.unwrap_err() {
        Error::Probe { probe, reason } => {
            assert_eq!(probe, "broken");
            assert!(reason.contains("mismatch"));
        }
        other => panic!("expected a probe error, got {other:?}"),
    }
}

/// The file is parsed as it is read (issue 18; the memory this saves is measured by
/// `cargo bench --bench fleet`, not here): the result is that of parsing its text, and what
/// follows the cluster and errors after the first buffer are still found at their offset.
#[test]
fn a_file_read_as_it_is_parsed_is_the_text_parsed() {
    let fleet =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clusters/fleet-1000x8.json");
    let text = std::fs::read_to_string(&fleet).unwrap();
    let cluster = load_cluster(&fleet).unwrap();
    assert_eq!(cluster.workers.len(), 1000);
    assert_eq!(cluster, parse_cluster(&text, &fleet).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.json");
    // Past the first 64 KiB read: a misspelt key in the last worker, then text after the end.
    let at = text.rfind("\"cpu_cores\"").unwrap();
    let mut misspelt = text.clone();
    misspelt.replace_range(at..at + 11, "\"cpu_core\"");
    std::fs::write(&path, &misspelt).unwrap();
    let at = at as u64;
    match load_cluster(&path).unwrap_err() {
        Error::Parse { offset, what, .. } => {
            assert!((at..at + 12).contains(&offset), "{offset} vs {at}");
            assert!(what.contains("did you mean `cpu_cores`"), "{what}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    std::fs::write(&path, format!("{text} {{}}")).unwrap();
    match load_cluster(&path).unwrap_err() {
        Error::Parse { offset, what, .. } => {
            assert_eq!(offset, text.len() as u64 + 1, "{what}");
            assert!(what.contains("trailing characters"), "{what}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// A fleet file is read in chunks, each worker parsed from the chunk's bytes (issue 18). The
/// chunked reader ([`Cluster::read_worker_list`](inferkit_core::Cluster::read_worker_list))
/// reads all 1000 workers itself, the 700th (past the first chunk) included, and a value of
/// the wrong type there makes it give up (`None`) rather than return the workers before it;
/// the readers that fall back to the parser of the whole document then report the file, the
/// byte offset of that value and serde's message, as that parser reports it.
#[test]
fn an_error_in_the_nth_worker_names_the_file_and_its_offset() {
    use inferkit_core::Cluster;
    let fleet =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clusters/fleet-1000x8.json");
    let text = std::fs::read_to_string(&fleet).unwrap();
    let worker = text.match_indices("{\"name\":\"node-").nth(699).unwrap().0;
    assert!(worker > inferkit_core::files::CHUNK, "past the first chunk");
    let value = worker + text[worker..].find("\"cpu_cores\":").unwrap() + 12;
    let end = value + text[value..].find(',').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.json");

    // The chunked reader itself reads the whole fleet, and the 700th worker's value.
    let whole = parse_cluster(&text, &fleet).unwrap();
    let chunked = Cluster::read_worker_list(&fleet).unwrap();
    assert_eq!(
        chunked.as_ref(),
        Some(&whole),
        "the chunked reader reads the fleet"
    );
    let mut other = text.clone();
    other.replace_range(value..end, "7");
    std::fs::write(&path, &other).unwrap();
    let chunked = Cluster::read_worker_list(&path).unwrap().unwrap();
    assert_eq!(chunked.workers[699].cpu_cores, 7);
    assert_eq!(chunked, parse_cluster(&other, &path).unwrap());

    let mut bad = text.clone();
    bad.replace_range(value..end, "\"many\"");
    std::fs::write(&path, &bad).unwrap();
    assert_eq!(Cluster::read_worker_list(&path).unwrap(), None);
    let whole = parse_cluster(&bad, &path).unwrap_err();
    for read in [
        load_cluster(&path).unwrap_err(),
        Cluster::from_json_file(&path).unwrap_err(),
    ] {
        let Error::Parse { file, offset, what } = &read else {
            panic!("expected a parse error, got {read:?}");
        };
        assert_eq!(file, &path);
        assert!(
            (value as u64..=value as u64 + 6).contains(offset),
            "{offset}, value at {value}"
        );
        assert!(what.starts_with("invalid type: string \"many\""), "{what}");
        assert_eq!(read, whole);
    }
}

/// A file longer than a cluster file may be is refused before it is read (a sparse file of
/// 256 MiB and one byte reads as that many zeros).
#[test]
fn a_file_over_the_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(inferkit_core::inventory::MAX_CLUSTER_FILE + 1)
        .unwrap();
    match load_cluster(&path).unwrap_err() {
        Error::Parse { offset, what, .. } => {
            assert_eq!(offset, inferkit_core::inventory::MAX_CLUSTER_FILE);
            assert!(what.starts_with("longer than the"), "{what}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}
