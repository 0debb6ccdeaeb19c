//! An application plans a model with inferkit and prints what it would start.
//!
//! ```text
//! cargo run --example plan_and_print [-- MODEL [CLUSTER.json]]
//! ```
//!
//! Without arguments it plans a model header shipped in `tests/fixtures` on the example
//! cluster `examples/clusters/h100x8.json`. The `inferkit` command-line tool (crate `cli/`)
//! does the same with more output.

use std::path::PathBuf;

use inferkit::{Cluster, ModelSpec, PlanOptions, default_registry, plan};

fn main() -> Result<(), inferkit::Error> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let model = args
        .next()
        .unwrap_or_else(|| "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf".into());
    let cluster = args
        .next()
        .unwrap_or_else(|| "examples/clusters/h100x8.json".into());

    let cluster = Cluster::from_json_file(&cluster)?;
    let spec = ModelSpec::local(model);
    let plan = plan(
        &default_registry(),
        &spec,
        &cluster,
        &PlanOptions::default(),
    )?;

    println!(
        "{} on {} ({})",
        plan.model,
        plan.backend,
        plan.placement.mode.as_str()
    );
    for worker in &plan.placement.workers {
        for device in &worker.devices {
            let gib = device.vram as f64 / (1u64 << 30) as f64;
            println!(
                "  {}:{} {} claims {gib:.2} GiB",
                worker.name, device.index, device.name
            );
        }
    }
    for process in &plan.processes {
        println!("{}: {}", process.worker, process.command_line());
    }
    Ok(())
}
