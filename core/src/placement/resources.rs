//! What placement may claim: allocatable memory per device and per host, and the final check.
//!
//! # The allocatable rule
//!
//! `allocatable = total − max(used, allocated) − reserve`, per device and for host RAM, where
//! `used` is what the probe measured and `allocated` is the sum of the existing allocations'
//! claims on that device.
//!
//! Subtracting `used + allocated` would count every running instance twice: on a probed worker
//! `used` already contains the memory of the instances that `allocated` describes. Subtracting
//! `allocated` alone misses processes the platform does not know about (hard case 3: a 4 GB
//! instance outside the platform made a 42.9 GiB split overflow a 4090). `max(used, allocated)`
//! equals "claims plus unclaimed measured usage" (`allocated + max(used − allocated, 0)`): it
//! keeps the full claim of an instance that has not grown to its claim yet (a llama.cpp KV
//! cache is allocated lazily) and the measured usage of everything else. The reserve (1 GiB
//! per device by default, as GPUStack and llama.cpp's `--fit` margin) covers driver contexts
//! and estimate error (hard case 2).
//!
//! Unified memory (Apple silicon): the device memory is host memory, so a device's allocatable
//! is capped by the host's, and the final check counts device claims against host RAM too.

use std::collections::BTreeMap;

use crate::estimate::{DeviceSlot, HostSlot, ResourceEstimate};
use crate::inventory::{Cluster, Device, DeviceId, Vendor, WorkerInventory};
use crate::placement::gib;
use crate::{Error, Result};

/// Bytes placement may claim on `device`: total − max(used, existing allocations) − reserve.
/// See the [module documentation](self) for why.
pub fn device_allocatable(worker: &WorkerInventory, device: &Device, reserve: u64) -> u64 {
    let allocatable = device_uncommitted(worker, device, reserve);
    if is_unified(worker) {
        allocatable.min(host_allocatable(worker, reserve))
    } else {
        allocatable
    }
}

/// The allocatable rule on the device's own memory, before any unified-memory cap.
fn device_uncommitted(worker: &WorkerInventory, device: &Device, reserve: u64) -> u64 {
    let allocated = worker.allocated_on_device(device.index);
    uncommitted(device.memory.total, device.memory.used, allocated, reserve)
}

/// Bytes of host RAM placement may claim: total − max(used, existing allocations) − reserve.
pub fn host_allocatable(worker: &WorkerInventory, reserve: u64) -> u64 {
    uncommitted(
        worker.ram.total,
        worker.ram.used,
        worker.allocated_ram(),
        reserve,
    )
}

/// The allocatable rule itself: `total − max(used, allocated) − reserve`, never negative.
fn uncommitted(total: u64, used: u64, allocated: u64, reserve: u64) -> u64 {
    total
        .saturating_sub(used.max(allocated))
        .saturating_sub(reserve)
}

/// Whether the worker's accelerators share host memory (Apple silicon).
fn is_unified(worker: &WorkerInventory) -> bool {
    worker.devices.iter().any(|d| d.vendor == Vendor::Apple)
}

/// Memory reserves applied to every device and host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reserves {
    pub device: u64,
    pub ram: u64,
}

/// One eligible device of a worker, reduced to what the search needs.
#[derive(Debug, Clone)]
pub(crate) struct DeviceView {
    /// Position in `WorkerInventory::devices`.
    pub position: usize,
    pub index: u32,
    pub allocatable: u64,
    /// Device class (vendor, product, total memory, compute capability), for pruning.
    pub class: u32,
    /// Existing instances of this model on the device.
    pub current: u32,
    /// Existing instances of other models on the device.
    pub others: u32,
}

/// One eligible worker with its eligible devices, largest allocatable first.
#[derive(Debug, Clone)]
pub(crate) struct WorkerView<'c> {
    pub worker: &'c WorkerInventory,
    pub ram_allocatable: u64,
    /// Device memory is host memory (Apple silicon): device claims count against RAM too.
    pub unified: bool,
    /// Eligible devices, by allocatable descending, then index.
    pub devices: Vec<DeviceView>,
    /// Existing instances of this model on the worker.
    pub current: u32,
    /// Existing instances of other models on the worker.
    pub others: u32,
    /// How many of [`Self::devices`], from the first, one process may hold together: those
    /// before the first MIG instance, or that instance alone (a CUDA process enumerates one).
    pub one_process_devices: usize,
}

impl<'c> WorkerView<'c> {
    /// Builds the view of `worker`, keeping only the devices `eligible` accepts.
    pub fn new(
        worker: &'c WorkerInventory,
        mut eligible: impl FnMut(&Device) -> bool,
        reserves: Reserves,
        model_name: &str,
        classes: &mut DeviceClasses,
    ) -> Result<Self> {
        let counts = InstanceCounts::of(worker, model_name)?;
        let unified = is_unified(worker);
        let ram_allocatable = host_allocatable(worker, reserves.ram);
        let mut devices: Vec<DeviceView> = worker
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| eligible(d))
            .map(|(position, d)| {
                let (current, others) = counts.on_device(d.index);
                // `device_uncommitted`, from the claims counted above rather than a search of
                // the allocations by the index's name for every device.
                let allocated = counts.allocated_on(d.index);
                let mut allocatable =
                    uncommitted(d.memory.total, d.memory.used, allocated, reserves.device);
                // Unlike `device_allocatable`, the cap keeps the RAM reserve: it is host RAM.
                if unified {
                    allocatable = allocatable.min(ram_allocatable);
                }
                DeviceView {
                    position,
                    index: d.index,
                    allocatable,
                    class: classes.id(d),
                    current,
                    others,
                }
            })
            .collect();
        devices.sort_by(|a, b| {
            b.allocatable
                .cmp(&a.allocatable)
                .then(a.index.cmp(&b.index))
        });
        let one_process_devices = devices
            .iter()
            .position(|d| worker.devices[d.position].is_mig_instance())
            .map_or(devices.len(), |first| first.max(1));
        Ok(WorkerView {
            worker,
            ram_allocatable,
            unified,
            devices,
            current: counts.current,
            others: counts.others,
            one_process_devices,
        })
    }

    /// The device slot handed to an estimator.
    pub fn slot(&self, device: &DeviceView, remote: bool) -> DeviceSlot {
        let d = &self.worker.devices[device.position];
        DeviceSlot {
            id: DeviceId {
                worker: self.worker.name.clone(),
                index: d.index,
            },
            vendor: d.vendor.clone(),
            name: d.name.clone(),
            total: d.memory.total,
            allocatable: device.allocatable,
            remote,
            compute_capability: d.compute_capability.clone(),
            reserved: d.memory.reserved,
        }
    }

    /// The host slot handed to an estimator.
    pub fn host(&self) -> HostSlot {
        HostSlot {
            worker: self.worker.name.clone(),
            total: self.worker.ram.total,
            allocatable: self.ram_allocatable,
            os: Some(self.worker.os.clone()),
        }
    }

    /// Product name of an eligible device.
    pub fn device_name(&self, device: &DeviceView) -> &str {
        &self.worker.devices[device.position].name
    }
}

/// Interns device classes: devices of one class behave alike for an estimator, which lets the
/// search probe a few of them instead of all.
#[derive(Debug, Default)]
pub(crate) struct DeviceClasses {
    /// By total memory: (vendor, product name, compute capability) and the class id. Ids are
    /// handed out in order of first appearance, so they do not depend on hashing.
    /// (A tree, not a hash map: a fleet has a handful of totals, and the tree finds one in
    /// fewer steps than hashing takes.)
    by_total: BTreeMap<u64, Vec<ClassEntry>>,
    count: u32,
}

/// Vendor, product name, compute capability, and the class id.
type ClassEntry = (Vendor, String, Option<String>, u32);

impl DeviceClasses {
    /// The class id of `device`; allocates only for a new class.
    fn id(&mut self, device: &Device) -> u32 {
        let alike = self.by_total.entry(device.memory.total).or_default();
        let found = alike.iter().find(|(vendor, name, cc, _)| {
            *vendor == device.vendor && *name == device.name && *cc == device.compute_capability
        });
        if let Some(&(_, _, _, id)) = found {
            return id;
        }
        let id = self.count;
        self.count = self.count.saturating_add(1);
        alike.push((
            device.vendor.clone(),
            device.name.clone(),
            device.compute_capability.clone(),
            id,
        ));
        id
    }
}

/// Instances already on one worker, counted once for the spread score.
struct InstanceCounts {
    /// (device index, bytes, is this model), one entry per device an allocation names.
    claims: Vec<(u32, u64, bool)>,
    current: u32,
    others: u32,
}

impl InstanceCounts {
    fn of(worker: &WorkerInventory, model_name: &str) -> Result<Self> {
        let mut counts = InstanceCounts {
            claims: Vec::new(),
            current: 0,
            others: 0,
        };
        for allocation in &worker.allocations {
            let is_current = is_instance_of(&allocation.name, model_name);
            if is_current {
                counts.current += 1;
            } else {
                counts.others += 1;
            }
            for (key, bytes) in &allocation.devices {
                // Only the canonical spelling: the allocatable rule finds claims by
                // `index.to_string()` (`WorkerInventory::allocated_on_device`), so a key such as
                // `01` would count as an instance here yet never be subtracted.
                let index = parse_device_key(key).ok_or_else(|| {
                    Error::invalid_parameter(
                        "allocations",
                        format!(
                            "worker {}: allocation `{}` names device `{key}`, which is not a \
                             device index",
                            worker.name, allocation.name
                        ),
                    )
                })?;
                counts.claims.push((index, *bytes, is_current));
            }
        }
        Ok(counts)
    }

    /// Bytes the allocations claim on device `index`: [`WorkerInventory::allocated_on_device`]
    /// (each allocation names a device once, by the key parsed here).
    fn allocated_on(&self, index: u32) -> u64 {
        self.claims
            .iter()
            .filter(|(i, _, _)| *i == index)
            .fold(0u64, |acc, (_, bytes, _)| acc.saturating_add(*bytes))
    }

    fn on_device(&self, index: u32) -> (u32, u32) {
        self.claims
            .iter()
            .filter(|(i, bytes, _)| *i == index && *bytes > 0)
            .fold(
                (0, 0),
                |(c, o), (_, _, current)| {
                    if *current { (c + 1, o) } else { (c, o + 1) }
                },
            )
    }
}

/// A device index spelled as `u32::to_string` spells it: decimal digits only (no sign, no
/// space), no leading zero. Checked on the text, without spelling the index again: a fleet's
/// allocations name hundreds of thousands of devices (issue 18).
fn parse_device_key(key: &str) -> Option<u32> {
    let canonical =
        key.bytes().all(|b| b.is_ascii_digit()) && (key == "0" || !key.starts_with('0'));
    if canonical { key.parse().ok() } else { None }
}

/// Whether an allocation named `instance` is an instance of the model `model` (`qwen` owns
/// `qwen` and `qwen-0`, not `qwen2-0`).
fn is_instance_of(instance: &str, model: &str) -> bool {
    instance == model
        || instance
            .strip_prefix(model)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// The invariant check on a chosen estimate, recomputed from the cluster alone (hard case 1):
/// no device is claimed beyond its allocatable memory, claims on one device are summed, and the
/// main worker's RAM holds the host claim (plus device claims on unified memory).
pub fn verify_claims(
    cluster: &Cluster,
    estimate: &ResourceEstimate,
    main_worker: &str,
    device_reserve: u64,
    ram_reserve: u64,
) -> Result<()> {
    let mut unified_claims = 0u64;
    for (id, claim) in claims_per_device(estimate) {
        let worker = cluster.worker(&id.worker).ok_or_else(|| {
            Error::invalid_parameter(
                "device",
                format!("worker {} is not in the cluster", id.worker),
            )
        })?;
        let device = worker.device(id.index).ok_or_else(|| {
            Error::invalid_parameter("device", format!("{id} is not a device of the cluster"))
        })?;
        let allocatable = device_allocatable(worker, device, device_reserve);
        if claim > allocatable {
            return Err(Error::DoesNotFit {
                needed: claim,
                available: allocatable,
                reason: format!(
                    "final check: {id} ({}) would be claimed {} but only {} is allocatable",
                    device.name,
                    gib(claim),
                    gib(allocatable)
                ),
            });
        }
        if id.worker == main_worker && is_unified(worker) {
            unified_claims = unified_claims.saturating_add(claim);
        }
    }
    let ram = estimate.host.total().saturating_add(unified_claims);
    verify_host_claim(cluster, main_worker, ram, ram_reserve)
}

/// The claims of an estimate (with their error bands) summed per device: two entries for one
/// device are one claim.
fn claims_per_device(estimate: &ResourceEstimate) -> BTreeMap<&DeviceId, u64> {
    let mut per_device: BTreeMap<&DeviceId, u64> = BTreeMap::new();
    for d in &estimate.devices {
        let sum = per_device.entry(&d.device).or_default();
        *sum = sum.saturating_add(d.held());
    }
    per_device
}

/// The final check of the main worker's host RAM against `ram` bytes claimed on it.
fn verify_host_claim(
    cluster: &Cluster,
    main_worker: &str,
    ram: u64,
    ram_reserve: u64,
) -> Result<()> {
    let worker = cluster.worker(main_worker).ok_or_else(|| {
        Error::invalid_parameter(
            "worker",
            format!("worker {main_worker} is not in the cluster"),
        )
    })?;
    let allocatable = host_allocatable(worker, ram_reserve);
    if ram > allocatable {
        return Err(Error::DoesNotFit {
            needed: ram,
            available: allocatable,
            reason: format!(
                "final check: host RAM of {main_worker} would be claimed {} but only {} is \
                 allocatable",
                gib(ram),
                gib(allocatable)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Allocation, Memory};

    const GIB: u64 = 1 << 30;

    fn worker_with(used: u64, allocated: u64) -> WorkerInventory {
        WorkerInventory {
            name: "w".into(),
            ram: Memory {
                total: 64 * GIB,
                used: 8 * GIB,
                reserved: None,
            },
            devices: vec![{
                let mut device =
                    Device::new(0, Vendor::Nvidia, "NVIDIA GeForce RTX 4090", 24 * GIB);
                device.memory.used = used;
                device.compute_capability = Some("8.9".into());
                device
            }],
            allocations: vec![Allocation {
                name: "other-0".into(),
                devices: [("0".to_string(), allocated)].into(),
                ram: 0,
            }],
            ..WorkerInventory::default()
        }
    }

    #[test]
    fn running_instance_is_not_counted_twice() {
        // A probed worker: the 4 GiB instance is both allocated and measured as used.
        let w = worker_with(4 * GIB, 4 * GIB);
        assert_eq!(device_allocatable(&w, &w.devices[0], GIB), 19 * GIB);
    }

    #[test]
    fn unclaimed_usage_and_unstarted_claims_both_count() {
        // Hard case 3: 4 GiB used by a process the platform does not know about.
        let w = worker_with(4 * GIB, 0);
        assert_eq!(device_allocatable(&w, &w.devices[0], GIB), 19 * GIB);
        // An instance claimed 10 GiB but has only touched 2 GiB so far.
        let w = worker_with(2 * GIB, 10 * GIB);
        assert_eq!(device_allocatable(&w, &w.devices[0], GIB), 13 * GIB);
    }

    #[test]
    fn allocation_keys_must_be_device_indices_as_the_allocatable_rule_spells_them() {
        let mut w = worker_with(4 * GIB, 4 * GIB);
        assert_eq!(InstanceCounts::of(&w, "qwen").unwrap().on_device(0), (0, 1));
        for key in ["01", "+0", "gpu0", " 0", "", "4294967296"] {
            w.allocations[0].devices = [(key.to_string(), 4 * GIB)].into();
            let err = InstanceCounts::of(&w, "qwen").err().expect(key);
            assert!(
                err.to_string().contains(&format!("device `{key}`")),
                "{err}"
            );
        }
    }

    /// The search's view of a worker finds each device's claims from the allocations it
    /// counted, and gets the allocatable memory of the rule itself.
    #[test]
    fn a_worker_view_has_the_allocatable_memory_of_the_rule() {
        let mut w = worker_with(4 * GIB, 4 * GIB);
        let mut second = w.devices[0].clone();
        second.index = 3;
        second.memory.used = GIB;
        w.devices.push(second);
        w.allocations[0].devices = [("0".into(), 6 * GIB), ("3".into(), 2 * GIB)].into();
        w.allocations.push(Allocation {
            name: "qwen-1".into(),
            devices: [("3".to_string(), 5 * GIB)].into(),
            ram: GIB,
        });
        let reserves = Reserves {
            device: GIB,
            ram: 2 * GIB,
        };
        let view = WorkerView::new(
            &w,
            |_| true,
            reserves,
            "qwen",
            &mut DeviceClasses::default(),
        )
        .unwrap();
        let allocatable: Vec<(u32, u64)> = view
            .devices
            .iter()
            .map(|d| (d.index, d.allocatable))
            .collect();
        assert_eq!(allocatable, [(0, 17 * GIB), (3, 16 * GIB)]);
        for d in &view.devices {
            let device = w.device(d.index).unwrap();
            assert_eq!(
                d.allocatable,
                device_allocatable(&w, device, GIB),
                "{}",
                d.index
            );
        }
    }

    #[test]
    fn instance_names_match_by_prefix_and_dash() {
        assert!(is_instance_of("qwen-0", "qwen"));
        assert!(is_instance_of("qwen", "qwen"));
        assert!(!is_instance_of("qwen2-0", "qwen"));
    }
}
