//! Planning on a fleet of 100,000 workers × 8 GPUs read from its file, as
//! `inferkit plan --cluster FILE` does (issue 18: under 2 s, and peak memory under 3× the file).
//!
//! ```text
//! cargo bench --bench fleet
//! ```
//!
//! The fleet is `examples/clusters/fleet-1000x8.json` (written by
//! `examples/clusters/make_fleet.py`: H100, A100 and L40S nodes with realistic existing
//! allocations) repeated 100 times under new worker names, written once to a temporary file
//! of about 150 MB. `make_fleet.py --workers 100000 --out FILE` writes a fleet of the same mix
//! for measuring the command itself, peak memory included:
//!
//! ```text
//! /usr/bin/time -f "%e s %M KB" inferkit plan --cluster FILE \
//!     tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf
//! ```
//!
//! * `read`: the cluster file into a [`Cluster`].
//! * `read_and_plan`: that, then a plan of Qwen2.5-0.5B-Instruct Q4_K_M on llama-box over all
//!   800,000 GPUs.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use divan::Bencher;
use inferkit::{
    Cluster, ModelFacts, ModelSpec, PlacementMode, PlanOptions, default_registry, plan_with_facts,
};

fn main() {
    divan::main();
}

/// Copies of the 1,000-worker fleet.
const COPIES: usize = 100;

/// The fleet file, written on first use into a directory removed when the benchmark ends.
static FLEET: LazyLock<(tempfile::TempDir, PathBuf)> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("fleet-100000x8.json");
    write_fleet(&path);
    (dir, path)
});

/// Writes [`COPIES`] copies of `fleet-1000x8.json`, worker names suffixed with the copy.
fn write_fleet(path: &Path) {
    let base = Cluster::from_json_file(Path::new("examples/clusters/fleet-1000x8.json"))
        .expect("run examples/clusters/make_fleet.py");
    let mut out = BufWriter::new(std::fs::File::create(path).expect("fleet file"));
    out.write_all(b"{\"workers\": [\n").unwrap();
    for copy in 0..COPIES {
        for (n, worker) in base.workers.iter().enumerate() {
            let mut worker = worker.clone();
            worker.name = format!("{}-{copy:02}", worker.name);
            if copy + n > 0 {
                out.write_all(b",\n").unwrap();
            }
            serde_json::to_writer(&mut out, &worker).unwrap();
        }
    }
    out.write_all(b"\n]}\n").unwrap();
    out.flush().unwrap();
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn read(bencher: Bencher) {
    let path = &FLEET.1;
    bencher.bench(|| Cluster::from_json_file(path).expect("the fleet"));
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn read_and_plan(bencher: Bencher) {
    let path = &FLEET.1;
    let registry = default_registry();
    let spec = ModelSpec::local("tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let facts = ModelFacts::read(&spec.source).expect("fixture");
    let options = PlanOptions::default();
    bencher.bench(|| {
        let fleet = Cluster::from_json_file(path).expect("the fleet");
        assert_eq!(fleet.workers.len(), COPIES * 1000);
        let plan = plan_with_facts(&registry, &facts, &spec, &fleet, &options).expect("a plan");
        assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
        plan
    });
}
