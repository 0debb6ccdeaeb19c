//! Reading a model's facts from a hub: requests, bytes and wall time against the loopback hub
//! with 20 ms injected before every reply, for a 5-shard GGUF model and a 30-shard safetensors
//! model, cold (empty header cache) and from the header cache.
//!
//! `cargo bench -p inferkit-sources --bench remote_plan` prints, before divan's timings, one
//! line per model with the requests made, the bytes the servers wrote, the header bytes the
//! facts need, the round trips on the critical path as the servers saw them (requests sent
//! one after another; independent of the machine's load) and the wall time of one cold read,
//! also in round trips of 20 ms.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use inferkit_formats::gguf::{GgufHeader, ReadOptions};
use inferkit_sources::{ModelRef, Origin, Resolver, SourceOptions};
use support::hub::{FakeHub, Repo, read_fixture, source_options};

const DELAY: Duration = Duration::from_millis(20);
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const GGUF: &str = "hf://bench/Qwen2.5-1.5B-Instruct-GGUF:F16";
const SAFETENSORS: &str = "hf://bench/Qwen2.5-72B-Instruct";

struct Bench {
    runtime: tokio::runtime::Runtime,
    hub: FakeHub,
    /// Header bytes per model (what the facts need).
    header_bytes: [(&'static str, u64, usize); 2],
}

fn bench() -> &'static Bench {
    static BENCH: OnceLock<Bench> = OnceLock::new();
    BENCH.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let hub = runtime.block_on(FakeHub::start(DELAY));
        let (gguf, gguf_headers) = split_gguf(5);
        hub.add("bench/Qwen2.5-1.5B-Instruct-GGUF", gguf);
        let (st, st_headers) = safetensors_repo(30);
        hub.add("bench/Qwen2.5-72B-Instruct", st);
        Bench {
            runtime,
            hub,
            header_bytes: [(GGUF, gguf_headers, 5), (SAFETENSORS, st_headers, 30 + 3)],
        }
    })
}

fn options(hub: &FakeHub, cache: &Path) -> SourceOptions {
    source_options(&hub.hub.url(), cache)
}

fn resolve(cache: &Path, reference: &str) -> Origin {
    let b = bench();
    let resolver = Resolver::new(options(&b.hub, cache)).expect("client");
    let reference = ModelRef::parse(reference).expect("reference");
    b.runtime
        .block_on(resolver.resolve(&reference))
        .expect("resolved")
        .origin
}

fn main() {
    let b = bench();
    for (reference, header_bytes, files) in b.header_bytes {
        let cache = tempfile::tempdir().expect("tempdir");
        b.hub.reset();
        let start = Instant::now();
        assert_eq!(resolve(cache.path(), reference), Origin::Network);
        let cold = start.elapsed();
        let (requests, bytes) = (b.hub.requests(), b.hub.body_bytes());
        let round_trips = b.hub.round_trips();
        b.hub.reset();
        let start = Instant::now();
        assert_eq!(resolve(cache.path(), reference), Origin::HeaderCache);
        let cached = start.elapsed();
        let budget = header_bytes as f64 * 1.25 + 65536.0 * files as f64;
        eprintln!(
            "{reference}: cold {requests} requests, {bytes} bytes written for {header_bytes} header bytes \
             ({:.2}x; target <= 1.25x + 64 KiB/file = {:.0} bytes: {}), {round_trips} round trips on the \
             critical path (target 4), {:.0} ms = {:.1} round trips of 20 ms; cached {} requests, {:.2} ms",
            bytes as f64 / header_bytes as f64,
            budget,
            if (bytes as f64) <= budget {
                "met"
            } else {
                "missed"
            },
            cold.as_secs_f64() * 1e3,
            cold.as_secs_f64() / DELAY.as_secs_f64(),
            b.hub.requests(),
            cached.as_secs_f64() * 1e3,
        );
    }
    divan::main();
}

#[divan::bench(args = [GGUF, SAFETENSORS])]
fn cold(bencher: divan::Bencher, reference: &str) {
    bencher
        .with_inputs(|| tempfile::tempdir().expect("tempdir"))
        .bench_local_values(|cache| resolve(cache.path(), reference));
}

#[divan::bench(args = [GGUF, SAFETENSORS])]
fn cached(bencher: divan::Bencher, reference: &str) {
    let cache = tempfile::tempdir().expect("tempdir");
    resolve(cache.path(), reference);
    bencher.bench_local(|| resolve(cache.path(), reference));
}

/// The Qwen2.5-1.5B F16 header with its full-size tokenizer, split into `count` shards as
/// llama.cpp's gguf-split writes them (the first keeps all metadata, the others only the
/// `split.*` keys; tensors in order, offsets relative to each shard), and the total header
/// bytes.
fn split_gguf(count: u16) -> (Repo, u64) {
    let bytes = read_fixture("gguf/qwen2.5-1.5b-instruct-F16.tokenizer.header.gguf");
    let header = GgufHeader::from_slice(&bytes, Path::new("fixture"), &ReadOptions::default())
        .expect("fixture");
    let info_len =
        |t: &inferkit_formats::gguf::TensorInfo| 8 + t.name.len() + 4 + 8 * t.dims.len() + 4 + 8;
    let infos_start =
        header.header_end as usize - header.tensors.iter().map(info_len).sum::<usize>();
    let kv_bytes = &bytes[24..infos_start];
    let per = header.tensors.len().div_ceil(count as usize);
    let mut repo = Repo::new(COMMIT).file("README.md", b"# bench".to_vec());
    let mut total = 0;
    for (no, tensors) in header.tensors.chunks(per).enumerate() {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        let base_kvs = if no == 0 {
            header.metadata.len() as u64
        } else {
            0
        };
        out.extend_from_slice(&(base_kvs + 3).to_le_bytes());
        if no == 0 {
            out.extend_from_slice(kv_bytes);
        }
        kv_u16(&mut out, "split.no", no as u16);
        kv_u16(&mut out, "split.count", count);
        kv_i32(&mut out, "split.tensors.count", header.tensors.len() as i32);
        let first_offset = tensors[0].offset;
        for t in tensors {
            string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            out.extend_from_slice(&(t.offset - first_offset).to_le_bytes());
        }
        out.resize(out.len().next_multiple_of(32), 0);
        total += out.len() as u64;
        // Tensor data follows the header in a real file: 8 MiB of it, so that reading past
        // the header shows in the bytes.
        out.resize(out.len() + (8 << 20), 0);
        let name = format!("qwen2.5-1.5b-instruct-F16-{:05}-of-{count:05}.gguf", no + 1);
        repo = repo.file(&name, out);
    }
    (repo, total)
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn kv_u16(out: &mut Vec<u8>, key: &str, value: u16) {
    string(out, key);
    out.extend_from_slice(&2u32.to_le_bytes()); // GGUF_TYPE_UINT16
    out.extend_from_slice(&value.to_le_bytes());
}

fn kv_i32(out: &mut Vec<u8>, key: &str, value: i32) {
    string(out, key);
    out.extend_from_slice(&5u32.to_le_bytes()); // GGUF_TYPE_INT32
    out.extend_from_slice(&value.to_le_bytes());
}

/// Qwen2.5-72B-Instruct (its real config.json) with BF16 header-only shards holding its real
/// tensor shapes, spread over `count` files, with the index; and the total header bytes.
fn safetensors_repo(count: usize) -> (Repo, u64) {
    let (hidden, inter, kv, vocab, layers) = (8192u64, 29568u64, 1024u64, 152064u64, 80);
    let mut tensors: Vec<(String, Vec<u64>)> =
        vec![("model.embed_tokens.weight".into(), vec![vocab, hidden])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (name, shape) in [
            ("self_attn.q_proj.weight", vec![hidden, hidden]),
            ("self_attn.q_proj.bias", vec![hidden]),
            ("self_attn.k_proj.weight", vec![kv, hidden]),
            ("self_attn.k_proj.bias", vec![kv]),
            ("self_attn.v_proj.weight", vec![kv, hidden]),
            ("self_attn.v_proj.bias", vec![kv]),
            ("self_attn.o_proj.weight", vec![hidden, hidden]),
            ("mlp.gate_proj.weight", vec![inter, hidden]),
            ("mlp.up_proj.weight", vec![inter, hidden]),
            ("mlp.down_proj.weight", vec![hidden, inter]),
            ("input_layernorm.weight", vec![hidden]),
            ("post_attention_layernorm.weight", vec![hidden]),
        ] {
            tensors.push((format!("{p}.{name}"), shape));
        }
    }
    tensors.push(("model.norm.weight".into(), vec![hidden]));
    tensors.push(("lm_head.weight".into(), vec![vocab, hidden]));
    let per = tensors.len().div_ceil(count);
    let mut repo = Repo::new(COMMIT)
        .file(
            "config.json",
            read_fixture("hf/Qwen2.5-72B-Instruct/config.json"),
        )
        .file(
            "generation_config.json",
            read_fixture("hf/Qwen2.5-72B-Instruct/generation_config.json"),
        )
        .file("LICENSE", vec![b'x'; 7000]);
    let mut weight_map = Vec::new();
    let mut total_size = 0u64;
    let mut header_total = 0u64;
    for (i, chunk) in tensors.chunks(per).enumerate() {
        let name = format!("model-{:05}-of-{count:05}.safetensors", i + 1);
        let mut offset = 0u64;
        let mut entries = Vec::new();
        for (tensor, shape) in chunk {
            let bytes = shape.iter().product::<u64>() * 2;
            entries.push(format!(
                "\"{tensor}\":{{\"dtype\":\"BF16\",\"shape\":{shape:?},\"data_offsets\":[{offset},{}]}}",
                offset + bytes
            ));
            offset += bytes;
            weight_map.push(format!("\"{tensor}\":\"{name}\""));
        }
        total_size += offset;
        let json = format!(
            "{{\"__metadata__\":{{\"format\":\"pt\"}},{}}}",
            entries.join(",")
        );
        let mut file = (json.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(json.as_bytes());
        header_total += file.len() as u64;
        file.resize(file.len() + (256 << 10), 0);
        repo = repo.file(&name, file);
    }
    let index = format!(
        "{{\"metadata\":{{\"total_size\":{total_size}}},\"weight_map\":{{{}}}}}",
        weight_map.join(",")
    );
    header_total += index.len() as u64;
    (
        repo.file("model.safetensors.index.json", index.into_bytes()),
        header_total,
    )
}
