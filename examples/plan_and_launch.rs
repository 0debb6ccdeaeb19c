//! An application plans a model on this machine and starts it: the processes of the plan run
//! under inferkit's supervisor until Ctrl-C.
//!
//! ```text
//! cargo run --example plan_and_launch -- MODEL
//! ```
//!
//! The backend (llama-box, vLLM, ...) must be installed; the run directory is a temporary
//! directory that holds the launch files.

use inferkit::probe::{CompositeProbe, DeviceProbe};
use inferkit::process::Launcher;
use inferkit::{Cluster, ModelSpec, PlanOptions, default_registry, plan};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = std::env::args_os()
        .nth(1)
        .ok_or("usage: plan_and_launch MODEL")?;

    // This machine as a one-worker cluster.
    let worker = CompositeProbe::local().probe().await?;
    let worker_name = worker.name.clone();
    let cluster = Cluster {
        workers: vec![worker],
    };
    let plan = plan(
        &default_registry(),
        &ModelSpec::local(model),
        &cluster,
        &PlanOptions::default(),
    )?;
    for line in &plan.explanation {
        println!("- {line}");
    }

    let run_dir = tempfile::tempdir()?;
    let here = plan
        .processes
        .into_iter()
        .filter(|process| process.worker == worker_name)
        .collect();
    let supervisor = Launcher::default().start(here, run_dir.path()).await?;
    supervisor.wait_ready().await?;
    println!(
        "ready on port {}; Ctrl-C stops it",
        PlanOptions::default().placement.port
    );
    tokio::signal::ctrl_c().await?;
    supervisor.stop().await;
    Ok(())
}
