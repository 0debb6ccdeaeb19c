//! Placement scores: GPUStack 0.7.1's spread and binpack scorers (behaviour spec §3.7), 0..100,
//! higher is better.

use serde::{Deserialize, Serialize};

use crate::placement::resources::{DeviceView, WorkerView};

/// How placement chooses among candidates that fit equally well.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PlacementStrategy {
    /// Prefer workers and devices with fewer instances (GPUStack's default).
    #[default]
    Spread,
    /// Prefer the candidate that fills its devices the most, keeping large devices free.
    Binpack,
}

impl PlacementStrategy {
    /// The snake_case name used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementStrategy::Spread => "spread",
            PlacementStrategy::Binpack => "binpack",
        }
    }
}

/// GPUStack's maximum score.
const MAX_SCORE: f64 = 100.0;

/// The spread score of placing on `devices` of `worker` (none: CPU only). The devices are
/// an iterator, not a list: single-device placement scores every device of a fleet.
pub(crate) fn spread<'d>(
    worker: &WorkerView<'_>,
    devices: impl IntoIterator<Item = &'d DeviceView>,
) -> f64 {
    if worker.current == 0 && worker.others == 0 {
        return MAX_SCORE;
    }
    let base = base_score(worker.current, worker.others);
    let mut devices = devices.into_iter().peekable();
    if devices.peek().is_none() {
        return base + instance_share(10.0, worker.current, worker.others);
    }
    // Each device weighs 10 / (devices + 1), so a worker with instances never reaches 100.
    let per_device = 10.0 / (worker.worker.devices.len() as f64 + 1.0);
    base + devices
        .map(|d| instance_share(per_device, d.current, d.others))
        .sum::<f64>()
}

/// 100 without instances, 90 with only other models, 80 with only this model, 70 with both.
fn base_score(current: u32, others: u32) -> f64 {
    match (current > 0, others > 0) {
        (false, false) => 100.0,
        (false, true) => 90.0,
        (true, false) => 80.0,
        (true, true) => 70.0,
    }
}

/// The part of `weight` a device (or host) keeps given the instances already on it; this
/// model's own instances weigh five times more than others' (GPUStack's 0.2 factor).
fn instance_share(weight: f64, current: u32, others: u32) -> f64 {
    let (c, o) = (f64::from(current), f64::from(others));
    match (current > 0, others > 0) {
        (false, false) => weight,
        (false, true) => weight / (o + 1.0),
        (true, false) => weight / (c + 1.0),
        (true, true) => weight / ((c + 1.0) + (o + 1.0) * 0.2),
    }
}

/// The binpack score of one worker's part of a candidate: how full its RAM and fullest
/// device get, devices weighing twice as much as RAM.
pub(crate) fn binpack_worker(
    ram_claim: u64,
    ram_allocatable: u64,
    device_claims: &[(u64, u64)],
) -> f64 {
    let ram = ratio(ram_claim, ram_allocatable);
    if device_claims.is_empty() {
        return ram;
    }
    device_claims
        .iter()
        .map(|&(claim, allocatable)| (ram + 2.0 * ratio(claim, allocatable)) / 3.0)
        .fold(0.0, f64::max)
}

/// Combines the main worker's binpack score with its subordinates' (main weighs 5, each
/// subordinate 1). GPUStack multiplies the subordinates' sum by their count once more, which
/// counts them twice; this is the weighted mean it meant.
pub(crate) fn binpack_combined(main: f64, subordinates: &[f64]) -> f64 {
    let n = subordinates.len() as f64;
    (main * 5.0 + subordinates.iter().sum::<f64>()) / (5.0 + n)
}

fn ratio(claim: u64, allocatable: u64) -> f64 {
    if allocatable == 0 {
        0.0
    } else {
        claim as f64 / allocatable as f64 * MAX_SCORE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binpack_matches_gpustack_arithmetic() {
        // 20 GiB of 40 GiB on the device, no RAM: (0 + 2 × 50) / 3.
        let score = binpack_worker(0, 64, &[(20, 40)]);
        assert!((score - 100.0 / 3.0).abs() < 1e-9);
        // A CPU candidate: RAM share only.
        assert!((binpack_worker(16, 64, &[]) - 25.0).abs() < 1e-9);
    }

    #[test]
    fn shares_shrink_with_instances() {
        assert_eq!(instance_share(5.0, 0, 0), 5.0);
        assert_eq!(instance_share(5.0, 0, 1), 2.5);
        assert_eq!(instance_share(5.0, 1, 0), 2.5);
        assert!((instance_share(6.0, 1, 1) - 6.0 / 2.4).abs() < 1e-9);
        assert_eq!(binpack_combined(60.0, &[30.0]), 55.0);
    }
}
