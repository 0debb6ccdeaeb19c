//! `inferkit probe`: this machine's inventory.

use std::io::Write;
use std::path::PathBuf;

use inferkit::WorkerInventory;
use inferkit::probe::kubernetes;

use crate::cluster_arg::probe_local;
use crate::output::{Failure, Output};

/// Prints this machine's inventory: host CPU and RAM, and every accelerator found (NVIDIA
/// through NVML, Ascend through npu-smi, AMD through rocm-smi).
///
/// With --json it is one worker of the cluster JSON format (name, os, arch, labels,
/// cpu_cores, ram, devices, allocations), which `inferkit plan --cluster` reads as a
/// one-worker cluster; to combine machines, put the objects in {"workers": [...]}.
///
/// With --kubernetes it reads a Kubernetes cluster from `kubectl get nodes -o json` instead
/// and prints the cluster JSON (one worker per schedulable node; the nodes left out and why
/// on stderr).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the inventory as one worker of the cluster JSON format.
    #[arg(long)]
    pub json: bool,

    /// The output of `kubectl get nodes -o json`: print the cluster JSON of its schedulable
    /// nodes (devices from the device plugins' resources and labels) instead of probing.
    #[arg(long, value_name = "NODES.json")]
    pub kubernetes: Option<PathBuf>,

    /// With --kubernetes: the output of `kubectl get pods -A -o json`; the devices and memory
    /// that running pods request become allocations.
    #[arg(long, value_name = "PODS.json", requires = "kubernetes")]
    pub pods: Option<PathBuf>,
}

/// Runs `probe`.
pub fn run(args: &Args, out: &mut Output) -> Result<(), Failure> {
    if let Some(nodes) = &args.kubernetes {
        let read = kubernetes::load(nodes, args.pods.as_deref())?;
        for node in &read.excluded {
            eprintln!("note: node {} left out: {}", node.name, node.reason);
        }
        for note in &read.notes {
            eprintln!("note: {note}");
        }
        return out.json(&read.cluster);
    }
    let worker = probe_local()?;
    if args.json {
        out.json(&worker)
    } else {
        print_human(out, &worker)?;
        Ok(())
    }
}

fn print_human(out: &mut Output, worker: &WorkerInventory) -> std::io::Result<()> {
    writeln!(
        out,
        "worker   {} ({}/{})",
        worker.name, worker.os, worker.arch
    )?;
    let brand = worker.cpu_brand.as_deref().unwrap_or("unknown CPU");
    writeln!(out, "cpu      {brand}, {} logical cores", worker.cpu_cores)?;
    writeln!(out, "ram      {}", memory(&worker.ram))?;
    if worker.devices.is_empty() {
        writeln!(
            out,
            "devices  no GPU found (no NVIDIA driver through NVML, no npu-smi, no rocm-smi; \
             -vv shows what each probe said)"
        )?;
        return Ok(());
    }
    writeln!(out, "devices  {}", worker.devices.len())?;
    for device in &worker.devices {
        writeln!(out, "  {}", describe(device))?;
    }
    Ok(())
}

fn describe(device: &inferkit::Device) -> String {
    let mut line = format!(
        "[{}] {} {}: {}",
        device.index,
        device.vendor,
        device.name,
        memory(&device.memory)
    );
    let details = [
        ("compute", device.compute_capability.as_deref()),
        ("uuid", device.uuid.as_deref()),
        ("bus", device.pci_bus_id.as_deref()),
        ("driver", device.driver_version.as_deref()),
        ("runtime", device.runtime_version.as_deref()),
    ];
    for (label, value) in details {
        if let Some(value) = value {
            line.push_str(&format!(", {label} {value}"));
        }
    }
    if let Some(physical) = device.physical_index {
        line.push_str(&format!(", physical {physical}"));
    }
    if let Some(partition) = &device.partition {
        line.push_str(&format!(
            ", MIG {} of GPU {}",
            partition.profile, partition.parent_index
        ));
    }
    line
}

/// `total, used, free` in GiB (display only; the inventory holds bytes).
fn memory(memory: &inferkit::Memory) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    format!(
        "{:.1} GiB total, {:.1} GiB used, {:.1} GiB free",
        memory.total as f64 / GIB,
        memory.used as f64 / GIB,
        memory.free() as f64 / GIB
    )
}
