//! Which tensor-parallel sizes vLLM accepts for a model, and the layouts tried for a set of GPUs.

use inferkit_core::{DeviceSlot, Error, Result};

use crate::memory::shape::TextShape;

/// Architectures whose vision tower pads its attention heads to any TP size (vLLM's InternViT
/// adds dummy heads), so the tower never restricts TP.
const VISION_PADS_HEADS: &[&str] = &["InternVLChatModel", "InternVLForConditionalGeneration"];

/// Whether vLLM's attention layers accept `tp`: it divides the attention heads, and either
/// divides the KV heads or is a multiple of them (KV heads are then replicated). MLA models
/// have no KV-head constraint.
pub(crate) fn text_accepts(shape: &TextShape, tp: u64) -> bool {
    let kv = shape.kv_heads;
    let kv_ok = shape.mla.is_some() || kv.is_multiple_of(tp) || tp.is_multiple_of(kv);
    tp > 0 && shape.heads.is_multiple_of(tp) && kv_ok
}

/// Whether the vision tower accepts `tp` (its heads are sharded by the same TP group unless the
/// encoder runs data-parallel, `--mm-encoder-tp-mode data`).
pub(crate) fn vision_accepts(shape: &TextShape, tp: u64, encoder_data_parallel: bool) -> bool {
    let pads = shape
        .architectures
        .iter()
        .any(|a| VISION_PADS_HEADS.contains(&a.as_str()));
    match shape.vision {
        Some(v) if !pads && !encoder_data_parallel => v.heads % tp == 0,
        _ => true,
    }
}

/// Every TP size vLLM accepts for this model, ascending.
pub(crate) fn valid_sizes(shape: &TextShape, encoder_data_parallel: bool) -> Vec<u64> {
    (1..=shape.heads)
        .filter(|tp| text_accepts(shape, *tp) && vision_accepts(shape, *tp, encoder_data_parallel))
        .collect()
}

/// `Ok` when vLLM accepts `tp`, else an error naming the rule and the valid sizes.
pub(crate) fn check(shape: &TextShape, tp: u64, encoder_data_parallel: bool) -> Result<()> {
    let valid = valid_sizes(shape, encoder_data_parallel);
    if valid.contains(&tp) {
        return Ok(());
    }
    let list = valid
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let why = if !shape.heads.is_multiple_of(tp.max(1)) {
        format!("does not divide {} attention heads", shape.heads)
    } else if !text_accepts(shape, tp) {
        format!(
            "neither divides the {} KV heads nor is a multiple of them",
            shape.kv_heads
        )
    } else {
        let heads = shape.vision.map_or(0, |v| v.heads);
        format!("does not divide the vision tower's {heads} attention heads")
    };
    Err(Error::unsupported(format!(
        "tensor parallel {tp} {why}; valid sizes: {list}"
    )))
}

/// The TP × PP layout for `devices` when the user chose none: GPUs of one worker form one TP
/// group if vLLM accepts that size; several workers with equal GPU counts run TP within a
/// worker and PP across workers (GPUStack's rule); anything else falls back to the largest
/// accepted TP that divides the count, with the rest as pipeline stages.
pub(crate) fn auto_layout(
    shape: &TextShape,
    devices: &[DeviceSlot],
    encoder_data_parallel: bool,
) -> Result<(u64, u64)> {
    let n = devices.len().max(1) as u64;
    let workers = worker_counts(devices);
    let accepts =
        |tp: u64| text_accepts(shape, tp) && vision_accepts(shape, tp, encoder_data_parallel);
    if workers.len() > 1 && workers.iter().all(|c| *c == workers[0]) && accepts(workers[0]) {
        return Ok((workers[0], workers.len() as u64));
    }
    let tp = (1..=n)
        .rev()
        .find(|tp| n.is_multiple_of(*tp) && accepts(*tp) && (workers.len() == 1 || *tp == 1))
        .unwrap_or(1);
    let pp = n / tp;
    if pp > shape.layer_count() {
        return Err(Error::unsupported(format!(
            "{n} GPUs need {pp} pipeline stages but the model has only {} layers",
            shape.layer_count()
        )));
    }
    Ok((tp, pp))
}

/// GPUs per worker, in the order the workers first appear.
fn worker_counts(devices: &[DeviceSlot]) -> Vec<u64> {
    let mut order: Vec<(&str, u64)> = Vec::new();
    for d in devices {
        match order.iter_mut().find(|(w, _)| *w == d.id.worker) {
            Some((_, c)) => *c += 1,
            None => order.push((&d.id.worker, 1)),
        }
    }
    order.into_iter().map(|(_, c)| c).collect()
}
