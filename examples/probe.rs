//! Prints the local machine's inventory: host CPU and RAM and every accelerator found.
//!
//! ```text
//! cargo run --example probe            # human-readable
//! cargo run --example probe -- --json  # one worker in the cluster JSON format
//! ```
//!
//! The JSON is one worker object (`name, os, arch, labels, cpu_cores, ram, devices,
//! allocations`). `inferkit::probe::static_inventory::load_cluster` reads it as a
//! one-worker cluster; to combine several machines, put the objects in `{"workers": [...]}`.

mod common;

use std::process::ExitCode;

/// What the command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Human,
    Json,
}

const USAGE: &str =
    "usage: probe [--json]\n  --json  print the inventory as one worker of the cluster JSON format";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Output>, String> {
    let mut output = Output::Human;
    for arg in args {
        match arg.as_str() {
            "--json" => output = Output::Json,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(Some(output))
}

#[cfg(feature = "host-probe")]
#[tokio::main]
async fn main() -> ExitCode {
    use inferkit::probe::{CompositeProbe, DeviceProbe};

    let output = match common::parse_command_line(USAGE, parse_args) {
        Ok(parsed) => parsed,
        Err(exit) => return exit,
    };
    let worker = match CompositeProbe::local().probe().await {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("probe failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match output {
        Output::Json => match serde_json::to_string_pretty(&worker) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("cannot serialise the inventory: {e}");
                return ExitCode::FAILURE;
            }
        },
        Output::Human => print_human(&worker),
    }
    ExitCode::SUCCESS
}

#[cfg(not(feature = "host-probe"))]
fn main() -> ExitCode {
    if let Err(exit) = common::parse_command_line(USAGE, parse_args) {
        return exit;
    }
    eprintln!("this example needs the `host-probe` feature (on by default)");
    ExitCode::from(2)
}

#[cfg(feature = "host-probe")]
fn print_human(worker: &inferkit_core::WorkerInventory) {
    println!("worker   {} ({}/{})", worker.name, worker.os, worker.arch);
    let brand = worker.cpu_brand.as_deref().unwrap_or("unknown CPU");
    println!("cpu      {brand}, {} logical cores", worker.cpu_cores);
    println!("ram      {}", memory(&worker.ram));
    if worker.devices.is_empty() {
        println!("devices  no GPU found");
        return;
    }
    println!("devices  {}", worker.devices.len());
    for device in &worker.devices {
        println!("  {}", describe(device));
    }
}

#[cfg(feature = "host-probe")]
fn describe(device: &inferkit_core::Device) -> String {
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
#[cfg(feature = "host-probe")]
fn memory(memory: &inferkit_core::Memory) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    format!(
        "{:.1} GiB total, {:.1} GiB used, {:.1} GiB free",
        memory.total as f64 / GIB,
        memory.used as f64 / GIB,
        memory.free() as f64 / GIB
    )
}
