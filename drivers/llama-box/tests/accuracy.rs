//! Replays every measurement of real llama.cpp (commit 0c1e57098) in
//! `tests/fixtures/llamacpp-memory/` against the memory model and checks it within the issue's
//! tolerances, a measured architecture's rows within far less ([`MEASURED`]). Run with
//! `--nocapture` to see the error table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inferkit_core::gguf::GgufModel;
use inferkit_core::{Components, DeviceId, DeviceSlot, FigureBasis, HostSlot, Layout, Vendor};
use inferkit_llama_box::llamacpp::{CacheType, FlashAttn, LlamaSettings};
use inferkit_llama_box::llamacpp::{LlamaCppModel, architecture_band};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn rows(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("llamacpp-memory").join(file))
        .expect("measurement file");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json row"))
        .collect()
}

fn open(header: &str) -> GgufModel {
    GgufModel::open(fixtures().join("gguf").join(header)).expect("fixture header")
}

fn settings_of(row: &Value) -> LlamaSettings {
    let s = &row["settings"];
    let num = |k: &str| u32::try_from(s[k].as_u64().expect(k)).expect(k);
    let cache = |k: &str| CacheType::from_name(s[k].as_str().expect(k)).expect(k);
    LlamaSettings {
        ctx_size: num("n_ctx"),
        n_parallel: num("n_seq_max"),
        n_batch: num("n_batch"),
        n_ubatch: num("n_ubatch"),
        type_k: cache("type_k"),
        type_v: cache("type_v"),
        flash_attn: match s["flash_attn"].as_str() {
            Some("on") => FlashAttn::On,
            Some("off") => FlashAttn::Off,
            _ => FlashAttn::Auto,
        },
        swa_full: s["swa_full"].as_bool().unwrap_or(false),
        kv_unified: s["kv_unified"].as_bool().unwrap_or(false),
        embeddings: s["embeddings"].as_bool().unwrap_or(false),
        no_kv_offload: s["offload_kqv"].as_bool() == Some(false),
        use_mmap: row["use_mmap"].as_bool().unwrap_or(true),
        repack: row["cpu_repack"].as_bool().unwrap_or(true),
        ..LlamaSettings::default()
    }
}

/// Compute and total tolerances of a measured architecture's rows: 0.01%. The issue asks for
/// compute within 5% and totals within 2%; every measured row is within 0.01% of llama.cpp's
/// buffers (the replay follows its graph allocator allocation by allocation), and holding them
/// there makes a fix undone fail here even where its rows would stay within the band
/// (without the MoE selection bias, `exp_probs_b`, rows move by up to 0.17%).
const MEASURED: (f64, f64) = (0.0001, 0.0001);

/// Compute and total tolerances of an architecture's rows, host and devices alike: `measured`
/// for an architecture the estimator declares measured; an architecture declared only graph
/// derived must keep every total within the band it declares (the band is a claim about the
/// total; its compute error is reported in the table).
fn tolerances(arch: &str, measured: (f64, f64)) -> (f64, f64) {
    let band = architecture_band(arch);
    match band.basis {
        FigureBasis::MeasuredArchitecture => measured,
        _ => (f64::INFINITY, f64::from(band.percent) / 100.0),
    }
}

fn architecture(model: &GgufModel) -> String {
    model.architecture().expect("architecture").to_owned()
}

fn buffer(row: &Value, key: &str) -> u64 {
    row["buffers"][key].as_u64().unwrap_or(0)
}

fn rpc_device(index: u32) -> DeviceSlot {
    DeviceSlot {
        id: DeviceId {
            worker: "rpc".into(),
            index,
        },
        vendor: Vendor::Other("rpc".into()),
        name: format!("rpc{index}"),
        total: 16 << 30,
        allocatable: 16 << 30,
        remote: true,
        compute_capability: None,
        reserved: None,
    }
}

/// Largest and mean relative error per component, the largest per architecture, and the rows
/// over tolerance.
#[derive(Default)]
struct Table {
    errors: BTreeMap<String, Vec<f64>>,
    /// Architecture → component → (rows, largest error).
    by_arch: BTreeMap<String, BTreeMap<String, (usize, f64)>>,
    /// Architecture of the rows checked next.
    arch: String,
    failures: Vec<String>,
}

impl Table {
    fn check(&mut self, what: &str, row: &str, got: u64, want: u64, tolerance: f64) {
        let error = if want == 0 {
            if got == 0 { 0.0 } else { 1.0 }
        } else {
            (got as f64 - want as f64).abs() / want as f64
        };
        let arch = self.by_arch.entry(self.arch.clone()).or_default();
        let (rows, max) = arch.entry(what.to_owned()).or_default();
        *rows += 1;
        *max = max.max(error);
        self.errors.entry(what.to_owned()).or_default().push(error);
        if error > tolerance {
            self.failures.push(format!(
                "{row}: {what} {got} vs measured {want} ({:+.2}%)",
                (got as f64 / want.max(1) as f64 - 1.0) * 100.0
            ));
        }
    }

    fn print(&self, title: &str) {
        println!(
            "\n{title}\n{:<18} {:>6} {:>10} {:>10}",
            "component", "rows", "max err", "mean err"
        );
        for (what, errors) in &self.errors {
            let max = errors.iter().cloned().fold(0.0, f64::max);
            let mean = errors.iter().sum::<f64>() / errors.len() as f64;
            println!(
                "{what:<18} {:>6} {:>9.3}% {:>9.3}%",
                errors.len(),
                max * 100.0,
                mean * 100.0
            );
        }
        if self.by_arch.keys().any(|arch| !arch.is_empty()) {
            println!(
                "\n| architecture | rows | max compute error | max total error |\n|---|---|---|---|"
            );
        }
        for (arch, components) in self.by_arch.iter().filter(|(arch, _)| !arch.is_empty()) {
            let (rows, compute) = components.get("compute").copied().unwrap_or_default();
            let total = components
                .iter()
                .filter(|(what, _)| what.contains("total"))
                .map(|(_, &(_, max))| max)
                .fold(0.0, f64::max);
            println!(
                "| {arch} | {rows} | {:.1}% | {:.1}% |",
                compute * 100.0,
                total * 100.0
            );
        }
        for failure in &self.failures {
            println!("  over tolerance: {failure}");
        }
    }
}

fn label(row: &Value) -> String {
    format!(
        "{} {} mmap={} ngl={} ts={} {}",
        row["model"].as_str().unwrap_or("?"),
        row["file_type"].as_str().unwrap_or("?"),
        row["use_mmap"],
        row["n_gpu_layers"],
        row["tensor_split"],
        row["settings"]
    )
}

/// The measured KV cache plus recurrent state of one buffer. The state is logged only as MiB
/// with two decimals: it must round to the printed value, and then counts as the estimate's
/// (a hybrid's attention KV beside it is exact bytes).
fn cache_and_state(name: &str, got_kv: u64, attention_kv: u64, state_mib: Option<f64>) -> u64 {
    match state_mib {
        Some(mib) => {
            let state = got_kv.saturating_sub(attention_kv);
            let got = state as f64 / (1u64 << 20) as f64;
            assert!(
                (got - mib).abs() <= 0.005 + 1e-9,
                "{name}: state {got} MiB vs {mib}"
            );
            state + attention_kv
        }
        None => attention_kv,
    }
}

/// The host's weight buffers: plain, repacked, mapped, and the AMX buffer type a CPU with AMX
/// tiles adds (F16 and some quantized matmul weights, at their plain size).
fn cpu_weights(row: &Value) -> u64 {
    [
        "model:CPU",
        "model:CPU_REPACK",
        "model:CPU_Mapped",
        "model:AMX",
    ]
    .iter()
    .map(|k| buffer(row, k))
    .sum()
}

#[test]
fn cpu_backend_measurements_match() {
    cpu_rows_match("measurements.jsonl");
}

/// The architecture set (`tools/measure/llamacpp`): real models' shapes with few layers.
#[test]
fn cpu_backend_architecture_measurements_match() {
    cpu_rows_match("measurements-archs.jsonl");
}

fn cpu_rows_match(file: &str) {
    let mut table = Table::default();
    let mut models: BTreeMap<String, GgufModel> = BTreeMap::new();
    for row in rows(file) {
        let header = row["header"].as_str().expect("header").to_owned();
        let gguf = models
            .entry(header.clone())
            .or_insert_with(|| open(&header));
        let name = label(&row);
        table.arch = architecture(gguf);
        let model = LlamaCppModel::new(gguf, &settings_of(&row));
        if row["ok"] == Value::Bool(false) {
            assert!(
                model.is_err(),
                "{name}: llama.cpp refused ({}) but the model accepted",
                row["error"]
            );
            continue;
        }
        let model = model.unwrap_or_else(|e| panic!("{name}: {e}"));
        let estimate = model
            .estimate(&[], &HostSlot::default(), &Layout::CpuOnly)
            .expect("estimate");
        let host: Components = estimate.host;
        table.check("weights", &name, host.weights, cpu_weights(&row), 0.001);
        let kv = cache_and_state(
            &name,
            host.kv,
            buffer(&row, "kv:CPU"),
            row["rs_mib_printed"].as_f64(),
        );
        table.check("kv", &name, host.kv, kv, 0.001);
        table.check(
            "output",
            &name,
            host.output,
            buffer(&row, "output:CPU"),
            0.001,
        );
        let (compute_tolerance, total_tolerance) = tolerances(&table.arch, MEASURED);
        table.check(
            "compute",
            &name,
            host.compute,
            buffer(&row, "compute:CPU"),
            compute_tolerance,
        );
        let measured_total =
            cpu_weights(&row) + kv + buffer(&row, "output:CPU") + buffer(&row, "compute:CPU");
        table.check(
            "total",
            &name,
            host.total(),
            measured_total,
            total_tolerance,
        );
    }
    table.print(&format!("CPU backend ({file})"));
    assert!(
        table.failures.is_empty(),
        "{} checks over tolerance",
        table.failures.len()
    );
}

/// The first four models' rows (one and two RPC devices, every split and offload count):
/// [`MEASURED`] on every device.
#[test]
fn offloaded_measurements_match() {
    offloaded_rows_match("measurements-offload.jsonl", MEASURED);
}

/// The architecture set over one and two RPC devices (partial and full offload, 1:1 and 3:1
/// splits, the cache on the host): [`MEASURED`] on every device.
#[test]
fn offloaded_architecture_measurements_match() {
    offloaded_rows_match("measurements-archs-offload.jsonl", MEASURED);
}

fn offloaded_rows_match(file: &str, measured: (f64, f64)) {
    let mut table = Table::default();
    let mut models: BTreeMap<String, GgufModel> = BTreeMap::new();
    for row in rows(file) {
        let header = row["header"].as_str().expect("header").to_owned();
        let gguf = models
            .entry(header.clone())
            .or_insert_with(|| open(&header));
        let name = label(&row);
        table.arch = architecture(gguf);
        let model =
            LlamaCppModel::new(gguf, &settings_of(&row)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let n_devices = row["rpc_servers"].as_u64().expect("rpc_servers") as u32;
        let devices: Vec<DeviceSlot> = (0..n_devices).map(rpc_device).collect();
        let split = row["tensor_split"]
            .as_array()
            .map(|s| s.iter().map(|v| v.as_u64().expect("share")).collect())
            .unwrap_or_default();
        let ngl = row["n_gpu_layers"].as_i64().expect("n_gpu_layers");
        let layout = Layout::Layers {
            offload_layers: u32::try_from(ngl).unwrap_or(model.total_layers()),
            total_layers: model.total_layers(),
            split,
        };
        let estimate = model
            .estimate(&devices, &HostSlot::default(), &layout)
            .expect("estimate");
        // Every device of an offloaded layout carries the architecture's own band, the one its
        // rows are held to here.
        for device in &estimate.devices {
            assert_eq!(
                device.error_band,
                Some(architecture_band(&table.arch)),
                "{name} [{}]: error band",
                device.name
            );
        }
        let mut parts: Vec<(String, Components)> = vec![("cpu".into(), estimate.host)];
        parts.extend(
            estimate
                .devices
                .iter()
                .map(|d| (d.name.clone(), d.components)),
        );
        for (device, got) in parts {
            let key = |kind: &str| format!("{kind}:{device}");
            let mut weights = buffer(&row, &key("model"));
            if device == "cpu" {
                weights += buffer(&row, "model:cpu_repack") + buffer(&row, "model:amx");
            }
            let at = format!("{name} [{device}]");
            let kv = cache_and_state(
                &at,
                got.kv,
                buffer(&row, &key("kv")),
                row["rs_mib_printed"][&device].as_f64(),
            );
            let (output, compute) = (buffer(&row, &key("output")), buffer(&row, &key("compute")));
            table.check("weights", &at, got.weights, weights, 0.001);
            table.check("kv", &at, got.kv, kv, 0.001);
            table.check("output", &at, got.output, output, 0.001);
            let (compute_tolerance, total_tolerance) = tolerances(&table.arch, measured);
            table.check("compute", &at, got.compute, compute, compute_tolerance);
            table.check(
                "device total",
                &at,
                got.total(),
                weights + kv + output + compute,
                total_tolerance,
            );
        }
    }
    table.print(&format!("Offloaded over RPC devices ({file})"));
    assert!(
        table.failures.is_empty(),
        "{} checks over tolerance",
        table.failures.len()
    );
}

#[test]
fn projector_measurements_match() {
    let mut table = Table::default();
    let rows = rows("measurements-mmproj.jsonl");
    // The need of the warm-up image, per projector and flash-attention setting: what a launch
    // must plan for even with --no-warmup.
    let warmup_need = |projector: &str, flash: &str| {
        rows.iter()
            .find(|r| {
                r["projector"] == projector
                    && r["settings"]["flash_attn"] == flash
                    && r["settings"]["warmup"] == true
            })
            .map(|r| buffer(r, "clip_compute_reserve:cpu"))
            .expect("a warm-up row")
    };
    for row in &rows {
        let flash = row["settings"]["flash_attn"].as_str().expect("flash_attn");
        let projector = row["projector"].as_str().expect("projector");
        let settings = LlamaSettings {
            flash_attn: match flash {
                "on" => FlashAttn::On,
                "off" => FlashAttn::Off,
                _ => FlashAttn::Auto,
            },
            ..LlamaSettings::default()
        };
        // Each vision model's text stub and projector sit together in fixtures/gguf/vlm/<name>/.
        let dir = format!("vlm/{}", row["projector"].as_str().expect("projector"));
        let text = open(&format!(
            "{dir}/{}",
            row["text_model_header"].as_str().expect("text")
        ));
        let mmproj = open(&format!(
            "{dir}/{}",
            row["mmproj_header"].as_str().expect("mmproj")
        ));
        let model = LlamaCppModel::new(&text, &settings)
            .and_then(|m| m.with_projector(&mmproj))
            .expect("model with projector");
        let estimate = model
            .estimate(&[], &HostSlot::default(), &Layout::CpuOnly)
            .expect("estimate");
        let got = &estimate.details["projector"];
        assert_eq!(got["device"], "cpu");
        let name = format!("{projector} {}", row["settings"]);
        let weights = got["weights"].as_u64().expect("weights");
        let compute = got["compute"].as_u64().expect("compute");
        // The estimate names the warm-up image and audio clip.cpp sized its buffers for (a
        // file with both encoders, Qwen2.5-Omni, warms each up).
        let audio = row["warmup_audio_frames"].as_u64();
        if let Some(frames) = audio {
            assert_eq!(
                got["warmup_audio"]["frames"], frames,
                "{name}: warm-up audio"
            );
        }
        if audio.is_none() || !row["warmup_image_size"].is_null() {
            assert_eq!(
                got["warmup_image"]["side"], row["warmup_image_size"][0],
                "{name}: warm-up image"
            );
        }
        table.check(
            "weights",
            &name,
            weights,
            buffer(row, "clip_weights:cpu"),
            0.0,
        );
        table.check(
            &format!("compute {projector}"),
            &name,
            compute,
            warmup_need(projector, flash),
            0.10,
        );
    }
    table.print("Projectors (measurements-mmproj.jsonl)");
    assert!(
        table.failures.is_empty(),
        "{} checks over tolerance",
        table.failures.len()
    );
}

#[test]
fn diffusion_measurements_match() {
    let dir = fixtures().join("llamacpp-memory/sdcpp");
    let text = std::fs::read_to_string(dir.join("measurements.jsonl")).expect("measurements");
    let mut table = Table::default();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).expect("json row");
        let args = row["sdcpp_args"].as_str().expect("args");
        // The header the run's files were converted to: named in the row, or the SD 1.5 GGUF
        // the arguments name (the single-file safetensors rows have no GGUF header to read).
        let headers = &row["headers"];
        let main = match headers["model"].as_str() {
            Some(h) => h.to_owned(),
            None => match ["sd15.f16", "sd15.q8_0", "sd15.q4_0"]
                .into_iter()
                .find(|f| args.contains(&format!("{f}.gguf")))
            {
                Some(f) => format!("{f}.gguf.header"),
                None => continue,
            },
        };
        let separate = |key: &str| headers[key].as_str().map(str::to_owned);
        let gguf = GgufModel::open(dir.join(&main)).expect("header");
        let settings = LlamaSettings {
            flash_attn: if row["diffusion_fa"] == true {
                FlashAttn::On
            } else {
                FlashAttn::Off
            },
            image: inferkit_llama_box::llamacpp::ImageSettings {
                width: row["width"].as_u64().expect("width") as u32,
                height: row["height"].as_u64().expect("height") as u32,
                vae_tiling: row["vae_tiling"] == true,
                components: inferkit_llama_box::llamacpp::ImageComponents {
                    clip_l: separate("clip_l"),
                    clip_g: separate("clip_g"),
                    t5xxl: separate("t5xxl"),
                    vae: separate("vae"),
                },
                ..Default::default()
            },
            ..LlamaSettings::default()
        };
        let model = LlamaCppModel::new(&gguf, &settings).expect("image model");
        let estimate = model
            .estimate(&[], &HostSlot::default(), &Layout::CpuOnly)
            .expect("estimate");
        let got = &estimate.details["diffusion"];
        let family = got["family"].as_str().expect("family");
        let name = format!("{family} {args}");
        // Measured families declare a band between the weights' 1 % and the compute's 10 %.
        let band = got["error_band"]["percent"].as_u64().expect("error band");
        assert!((1..=10).contains(&band), "{name}: band {band}%");
        // sd.cpp's buffer names per stage; text encoders' weights add up, their compute
        // buffers are the largest one.
        for (stage, descs) in [
            ("diffusion", &["unet", "flux", "mmdit"][..]),
            ("vae", &["vae"][..]),
            ("text_encoders", &["clip", "t5"][..]),
        ] {
            let weights: u64 = row["params_buffers"]
                .as_array()
                .expect("params buffers")
                .iter()
                .filter(|p| descs.iter().any(|d| p["desc"] == *d))
                .map(|p| p["bytes"].as_u64().expect("bytes"))
                .sum();
            let compute = descs
                .iter()
                .filter_map(|d| row["compute_buffer_max_by_component"][*d].as_u64())
                .max()
                .expect("compute");
            // The VAE decoder's and SD3's MMDiT's resident types are sd.cpp's own: exact but
            // for the buffer's alignment padding (tens of bytes).
            let exact_weights = stage == "vae" || (family == "sd3" && stage == "diffusion");
            table.check(
                &format!("{family} {stage} weights"),
                &name,
                got[stage]["weights"].as_u64().unwrap_or(0),
                weights,
                if exact_weights { 1e-6 } else { 0.01 },
            );
            // SD3's MMDiT is a replay of sd.cpp's graph, exact on every measured row.
            let tolerance = if family == "sd3" && stage == "diffusion" {
                0.0
            } else {
                0.10
            };
            table.check(
                &format!("{family} {stage} compute"),
                &name,
                got[stage]["compute"].as_u64().unwrap_or(0),
                compute,
                tolerance,
            );
        }
    }
    table.print("stable-diffusion.cpp (sdcpp/measurements.jsonl)");
    assert!(
        table.failures.is_empty(),
        "{} checks over tolerance",
        table.failures.len()
    );
}
