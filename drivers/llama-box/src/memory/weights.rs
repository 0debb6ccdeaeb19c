//! Weight bytes per layer and where they land: device buffers, the host's plain or
//! memory-mapped buffer, and the CPU backend's repacked copies.

use std::ops::Range;

use inferkit_core::gguf::GgmlType;
use inferkit_core::{Error, Result};

use super::shape::{ModelShape, TensorLayer, Weight};
use crate::params::LlamaSettings;

/// Alignment of weight buffers (CPU and RPC-on-CPU `TENSOR_ALIGNMENT`; CUDA uses 128, a
/// difference of at most 96 bytes per tensor, left out).
const ALIGNMENT: u64 = 32;

fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// Host bytes of a group of tensors, split the way the host buffers hold them.
#[derive(Debug, Clone, Copy, Default)]
struct HostPart {
    /// Tensors in the plain (or mapped) CPU buffer, padded.
    plain: u64,
    /// Tensors repacked into `CPU_REPACK`.
    repack: u64,
    /// File range `[start, end)` of the plain tensors of shard 0 (for mmap).
    range: Option<(u64, u64)>,
    /// Plain bytes in other shards (counted as their size under mmap).
    other_shards: u64,
}

impl HostPart {
    fn add(&mut self, w: &Weight, repack: bool) {
        if repack {
            self.repack += padded(w.bytes);
            return;
        }
        self.plain += padded(w.bytes);
        if w.shard != 0 {
            self.other_shards += w.bytes;
            return;
        }
        let (start, end) = (w.offset, w.offset + w.bytes);
        self.range = Some(match self.range {
            Some((s, e)) => (s.min(start), e.max(end)),
            None => (start, end),
        });
    }

    fn merge(&mut self, other: &HostPart) {
        self.plain += other.plain;
        self.repack += other.repack;
        self.other_shards += other.other_shards;
        self.range = match (self.range, other.range) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (a, b) => a.or(b),
        };
    }

    /// Host memory of these tensors: the mapped range plus repacked copies with mmap, the
    /// padded sizes without.
    fn bytes(&self, mmap: bool) -> u64 {
        if mmap {
            self.range.map_or(0, |(s, e)| e - s) + self.other_shards + self.repack
        } else {
            self.plain + self.repack
        }
    }
}

/// Weight sizes precomputed per layer.
#[derive(Debug, Clone)]
pub(crate) struct WeightTable {
    mmap: bool,
    /// Per repeating layer: bytes when on a device (overridden tensors excluded).
    device: Vec<u64>,
    /// Per repeating layer: host buffers when the layer stays on the host.
    host: Vec<HostPart>,
    /// Per repeating layer: tensors forced to the host by `--override-tensor` when offloaded.
    forced: Vec<HostPart>,
    input: HostPart,
    output_host: HostPart,
    output_device: u64,
}

/// `ggml_repack_get_optimal_repack_type` on x86-64 with AVX2 (the CPU llama-box ships for):
/// Q4_0 and Q4_K matrices with a multiple of 8 rows are repacked to 8×8 interleaved blocks.
fn repackable(ggml_type: GgmlType, rows: u64) -> bool {
    matches!(ggml_type, GgmlType::Q4_0 | GgmlType::Q4K) && rows > 1 && rows.is_multiple_of(8)
}

/// Only matmul weights are repacked: embeddings are read with GET_ROWS.
fn repacks(w: &Weight, enabled: bool) -> bool {
    enabled && w.layer != TensorLayer::Input && repackable(w.ggml_type, w.rows)
}

impl WeightTable {
    pub fn new(shape: &ModelShape, settings: &LlamaSettings) -> Result<WeightTable> {
        let overrides = compile_overrides(settings)?;
        let n = shape.n_layer();
        let mut table = WeightTable {
            mmap: settings.use_mmap,
            device: vec![0; n],
            host: vec![HostPart::default(); n],
            forced: vec![HostPart::default(); n],
            input: HostPart::default(),
            output_host: HostPart::default(),
            output_device: 0,
        };
        for w in &shape.weights {
            let repack = repacks(w, settings.repack);
            let to_host = overrides.iter().any(|re| re.is_match(&w.name));
            match w.layer {
                TensorLayer::Input => table.input.add(w, false),
                TensorLayer::Repeating(i) => {
                    table.host[i].add(w, repack);
                    if to_host {
                        table.forced[i].add(w, repack);
                    } else {
                        table.device[i] += padded(w.bytes);
                    }
                }
                TensorLayer::Output => {
                    table.output_host.add(w, repack);
                    table.output_device += padded(w.bytes);
                }
            }
        }
        if let (true, Some((bytes, ggml_type, rows))) = (shape.tied_output, shape.token_embd) {
            // The LM head reads token_embd: a second copy on the output device, and on the
            // host only when it is repacked (otherwise the same tensor is shared).
            table.output_device += padded(bytes);
            if settings.repack && repackable(ggml_type, rows) {
                table.output_host.repack += padded(bytes);
            }
        }
        Ok(table)
    }

    /// Host weight bytes with `layers` on the host and the output layer there or not.
    pub fn host_bytes(&self, layers: Range<usize>, output_on_host: bool) -> u64 {
        let mut part = self.input;
        for (i, host) in self.host.iter().enumerate() {
            if layers.contains(&i) {
                part.merge(host);
            } else {
                part.merge(&self.forced[i]);
            }
        }
        if output_on_host {
            part.merge(&self.output_host);
        }
        part.bytes(self.mmap)
    }

    /// Device weight bytes of `layers`.
    pub fn device_bytes(&self, layers: Range<usize>) -> u64 {
        super::saturating_sum(&self.device[layers])
    }

    /// The output layer on a device (tied embeddings included).
    pub fn output_device_bytes(&self) -> u64 {
        self.output_device
    }
}

/// `--override-tensor` rules that keep tensors in host memory. Rules naming a device buffer
/// are refused: where a tensor lands on another device is not modelled.
fn compile_overrides(settings: &LlamaSettings) -> Result<Vec<regex_lite::Regex>> {
    settings
        .override_tensors
        .iter()
        .map(|rule| {
            if !rule.buffer_type.to_ascii_uppercase().starts_with("CPU") {
                return Err(Error::unsupported(format!(
                    "--override-tensor {}={}: only host (CPU) targets are estimated",
                    rule.pattern, rule.buffer_type
                )));
            }
            regex_lite::Regex::new(&rule.pattern).map_err(|e| {
                Error::invalid_parameter("--override-tensor", format!("{}: {e}", rule.pattern))
            })
        })
        .collect()
}
