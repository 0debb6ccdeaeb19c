//! JSON documents at scale (issue 18, point 6): planning on a fleet of 100,000 workers × 8 GPUs
//! read from its file, as `inferkit plan --cluster FILE` does (target: under 2 s), and the peak
//! heap memory of reading a 152 MB fleet file and a 58 MB `config.json` (target: under 3× the
//! file).
//!
//! ```text
//! cargo bench --bench fleet
//! ```
//!
//! Before the timings, the peak heap memory of one run of each benchmark is printed with its
//! ratio to the input's size (a counting global allocator around the system one; the process's
//! resident memory adds the allocator's own overhead and the program).
//!
//! The inputs are written to Cargo's temporary directory for benchmarks (`target/tmp/`) when
//! missing or older than this file or the file they are made from, and stay there for
//! measuring the command itself:
//!
//! * `fleet-100000x8.json` (152 MB): `examples/clusters/fleet-1000x8.json` (written by
//!   `examples/clusters/make_fleet.py`: H100, A100 and L40S nodes with realistic existing
//!   allocations) repeated 100 times under new worker names;
//! * `config-60mb/config.json` (58 MB): Llama-3.1-8B-Instruct's `config.json` with an
//!   `id2label` and a `label2id` of 1.2 million labels each, as classification models carry
//!   them (objects of many small entries: what a parsed JSON tree costs most for).
//!
//! ```text
//! /usr/bin/time -f "%e s %U user %M KB" target/release/inferkit plan \
//!     --cluster target/tmp/fleet-100000x8.json \
//!     tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf
//! /usr/bin/time -f "%e s %U user %M KB" target/release/inferkit inspect target/tmp/config-60mb
//! ```
//!
//! * `read`: the fleet file into a [`Cluster`].
//! * `read_and_plan`: that, then a plan of Qwen2.5-0.5B-Instruct Q4_K_M on llama-box over all
//!   800,000 GPUs.
//! * `read_config`: the 58 MB `config.json`'s directory as `inspect` opens it (the typed
//!   config; no weights).
//! * `plan_llama_server`: a plan of Llama-3.2-1B F16 on llama-server at its default context
//!   (the model's 131,072 tokens, which adds the context note) over the fleet; the fleet, the
//!   registry and the GGUF header are read beforehand and not timed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use divan::Bencher;
use inferkit::hf::HfModel;
use inferkit::{
    Cluster, ModelFacts, ModelSpec, PlacementMode, PlanOptions, Registry, default_registry,
    plan_with_facts,
};

#[path = "support/peak_alloc.rs"]
mod peak_alloc;
use peak_alloc::{PeakAlloc, peak_extra};

#[global_allocator]
static ALLOC: divan::AllocProfiler<PeakAlloc> = divan::AllocProfiler::new(PeakAlloc);

fn main() {
    print_peak_memory();
    divan::main();
}

/// Copies of the 1,000-worker fleet.
const COPIES: usize = 100;

/// Labels in each of the big config's `id2label` and `label2id`.
const LABELS: usize = 1_200_000;

/// The file the fleet is made from.
const BASE_FLEET: &str = "examples/clusters/fleet-1000x8.json";

/// The `config.json` the big one is made from.
const BASE_CONFIG: &str = "tests/fixtures/hf/Llama-3.1-8B-Instruct/config.json";

/// The fleet file, written on first use when stale.
static FLEET: LazyLock<PathBuf> = LazyLock::new(|| {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-100000x8.json");
    refresh(&path, BASE_FLEET, write_fleet);
    path
});

/// The directory of the big `config.json`, written on first use when stale.
static CONFIG_DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-60mb");
    std::fs::create_dir_all(&dir).expect("config directory");
    refresh(&dir.join("config.json"), BASE_CONFIG, write_config);
    dir
});

/// Writes `path` with `write` unless it is newer than this file (which makes it) and `base`
/// (which it is made from). It is written under another name and renamed into place, so that
/// an interrupted run leaves no partial file that a later one would take as fresh.
fn refresh(path: &Path, base: &str, write: fn(&Path)) {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let fresh = modified(path).is_some_and(|written| {
        [Path::new(file!()), Path::new(base)]
            .into_iter()
            .all(|source| modified(source).is_some_and(|changed| changed < written))
    });
    if !fresh {
        let partial = path.with_extension("partial");
        write(&partial);
        std::fs::rename(&partial, path).expect("rename the written file into place");
    }
}

/// Writes [`COPIES`] copies of `fleet-1000x8.json`, worker names suffixed with the copy.
fn write_fleet(path: &Path) {
    let base = Cluster::from_json_file(Path::new(BASE_FLEET))
        .expect("run examples/clusters/make_fleet.py");
    let mut out = BufWriter::new(File::create(path).expect("fleet file"));
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

/// Writes Llama-3.1-8B-Instruct's `config.json` with [`LABELS`] labels in `id2label` and
/// `label2id`.
fn write_config(path: &Path) {
    let base = std::fs::read_to_string(BASE_CONFIG).expect("fixture");
    let head = base.trim_end().strip_suffix('}').expect("a JSON object");
    let mut out = BufWriter::new(File::create(path).expect("config file"));
    write!(out, "{head},\n  \"id2label\": {{").unwrap();
    for n in 0..LABELS {
        let sep = if n == 0 { "" } else { "," };
        write!(out, "{sep}\"{n}\": \"LABEL_{n}\"").unwrap();
    }
    write!(out, "}},\n  \"label2id\": {{").unwrap();
    for n in 0..LABELS {
        let sep = if n == 0 { "" } else { "," };
        write!(out, "{sep}\"LABEL_{n}\": {n}").unwrap();
    }
    out.write_all(b"}\n}\n").unwrap();
    out.flush().unwrap();
}

fn read_fleet() -> Cluster {
    Cluster::from_json_file(&FLEET).expect("the fleet")
}

/// Reads the fleet and plans Qwen2.5-0.5B-Instruct Q4_K_M on it with llama-box.
fn read_and_plan() -> inferkit::DeploymentPlan {
    let registry = default_registry();
    let spec = ModelSpec::local("tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let facts = ModelFacts::read(&spec.source).expect("fixture");
    let fleet = read_fleet();
    assert_eq!(fleet.workers.len(), COPIES * 1000);
    let plan =
        plan_with_facts(&registry, &facts, &spec, &fleet, &PlanOptions::default()).expect("a plan");
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    plan
}

/// Llama-3.2-1B F16 with llama-server at its default context, and the registry: built and
/// read once, so that `plan_llama_server` times the plan alone.
struct LlamaServerCase {
    registry: Registry,
    spec: ModelSpec,
    facts: ModelFacts,
}

impl LlamaServerCase {
    fn new() -> Self {
        let mut spec = ModelSpec::local("tests/fixtures/gguf/llama-3.2-1b-F16.header.gguf");
        spec.backend = Some("llama-server".into());
        let facts = ModelFacts::read(&spec.source).expect("fixture");
        LlamaServerCase {
            registry: default_registry(),
            spec,
            facts,
        }
    }

    /// Plans the model on `fleet`.
    fn plan(&self, fleet: &Cluster) -> inferkit::DeploymentPlan {
        let options = PlanOptions::default();
        let plan = plan_with_facts(&self.registry, &self.facts, &self.spec, fleet, &options)
            .expect("a plan");
        assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
        plan
    }
}

/// The model directory of the big `config.json`, as `inspect` opens it.
fn read_config() -> HfModel {
    HfModel::open(&CONFIG_DIR).expect("the config")
}

fn print_peak_memory() {
    let fleet = std::fs::metadata(&*FLEET).expect("fleet file").len();
    let config = std::fs::metadata(CONFIG_DIR.join("config.json"))
        .expect("config file")
        .len();
    println!("peak heap memory of one run, against its input (target: under 3x):");
    let rows = [
        ("read", fleet, peak_extra(read_fleet)),
        ("read_and_plan", fleet, peak_extra(read_and_plan)),
        ("read_config", config, peak_extra(read_config)),
    ];
    for (name, input, peak) in rows {
        println!(
            "  {name:<14} {:>7.1} MB of {:>6.1} MB: {:.2}x",
            peak as f64 / 1e6,
            input as f64 / 1e6,
            peak as f64 / input as f64
        );
    }
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn read(bencher: Bencher) {
    bencher.bench(read_fleet);
}

#[divan::bench(name = "read_and_plan", sample_count = 5, sample_size = 1)]
fn plan(bencher: Bencher) {
    bencher.bench(read_and_plan);
}

#[divan::bench(name = "read_config", sample_count = 5, sample_size = 1)]
fn config(bencher: Bencher) {
    bencher.bench(read_config);
}

#[divan::bench(name = "plan_llama_server", sample_count = 5, sample_size = 1)]
fn llama_server(bencher: Bencher) {
    let case = LlamaServerCase::new();
    bencher
        .with_inputs(read_fleet)
        .bench_refs(|fleet| case.plan(fleet));
}
