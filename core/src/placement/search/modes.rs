//! The placement modes, in GPUStack's order of preference, and manual selection.

use std::collections::BTreeMap;

use super::{Chosen, Group, MIG_ONE_PER_PROCESS, Members, Refused, Scored, Search, reason};
use crate::backend::PlacementMode::{CpuOffload, CpuOnly, MultiDevice, MultiWorker, SingleDevice};
use crate::backend::SubordinateGrouping;
use crate::estimate::Layout;
use crate::placement::Placement;
use crate::{Error, Result};

/// Workers tried for partial CPU offload, by free device memory (GPUStack tries every
/// combination on every worker; the layers offloaded only grow with free memory, so the
/// workers with the most free memory decide).
const MAX_OFFLOAD_WORKERS: usize = 16;

/// Device counts per worker tried one by one in multi-device mode before the count doubles:
/// more than any node has (8 GPUs, or 16 on the largest boards), so real inventories see
/// GPUStack's order exactly.
const LINEAR_DEVICE_COUNTS: usize = 16;

impl Search<'_> {
    pub(super) fn single_device(&mut self) -> Option<Chosen> {
        // Each class's list is allocated at its final size: grown as it fills, a list of
        // 800,000 devices ends up to twice as large, and the lists it outgrew stay in the
        // process's memory (issue 18: a 100,000-worker fleet). Class ids are numbered from 0,
        // so the lists are found by position, not by a search per device.
        let mut sizes: Vec<usize> = Vec::new();
        for device in self.views.iter().flat_map(|view| &view.devices) {
            let class = device.class as usize;
            if sizes.len() <= class {
                sizes.resize(class + 1, 0);
            }
            sizes[class] += 1;
        }
        let mut buckets: Vec<Vec<Group>> = sizes.into_iter().map(Vec::with_capacity).collect();
        for (v, view) in self.views.iter().enumerate() {
            for (d, device) in view.devices.iter().enumerate() {
                let group = Group {
                    main: v,
                    members: Members::one((v, d)),
                };
                buckets[device.class as usize].push(group);
            }
        }
        if buckets.is_empty() {
            self.reject(Refused::Mode { mode: SingleDevice }, "no eligible device");
            return None;
        }
        self.search_classes(buckets, true)
    }

    pub(super) fn multi_device(&mut self) -> Option<Chosen> {
        let most = self
            .views
            .iter()
            .map(|v| v.devices.len())
            .max()
            .unwrap_or(0);
        if most < 2 {
            return None;
        }
        if !self.caps.multi_device {
            let reason = format!(
                "{} does not split a model over devices",
                self.req.backend.id()
            );
            self.reject(Refused::Mode { mode: MultiDevice }, reason);
            return None;
        }
        let split_mig: Vec<String> = (0..self.views.len())
            .filter(|&v| self.views[v].one_process_devices < self.views[v].devices.len())
            .filter(|&v| self.views[v].devices.len() > 1)
            .map(|v| self.views[v].worker.name.clone())
            .collect();
        if !split_mig.is_empty() {
            let reason = format!(
                "{}: their MIG instances are not grouped with other devices ({MIG_ONE_PER_PROCESS})",
                MultiDevice.describe()
            );
            self.reject(Refused::Workers { names: split_mig }, reason);
        }
        // GPUStack tries k = 2, 3, ... up to the worker's device count; each try sizes k
        // devices, so trying every k is quadratic in devices per worker. Past the counts real
        // nodes have, the count doubles until a group fits, and a binary search between the
        // last miss and that fit finds the smallest k (groups only gain free memory with k).
        let mut miss = 1;
        let (mut hit, mut chosen) = device_counts(2, most).find_map(|k| {
            let chosen = self.largest_devices_per_worker(k).map(|c| (k, c));
            miss = if chosen.is_none() { k } else { miss };
            chosen
        })?;
        while hit - miss > 1 {
            let mid = miss + (hit - miss) / 2;
            match self.largest_devices_per_worker(mid) {
                Some(smaller) => (hit, chosen) = (mid, smaller),
                None => miss = mid,
            }
        }
        Some(chosen)
    }

    /// The best group of the `k` devices with the most free memory of one worker.
    fn largest_devices_per_worker(&mut self, k: usize) -> Option<Chosen> {
        let mut buckets: BTreeMap<Vec<u32>, Vec<Group>> = BTreeMap::new();
        for (v, view) in self.views.iter().enumerate() {
            if self.views[v].one_process_devices < k {
                continue;
            }
            let mut key: Vec<u32> = view.devices[..k].iter().map(|d| d.class).collect();
            key.sort_unstable();
            let members = self.largest_by_index(v, k);
            buckets.entry(key).or_default().push(Group {
                main: v,
                members: members.into(),
            });
        }
        self.search_classes(buckets.into_values().collect(), true)
    }

    pub(super) fn multi_worker(&mut self) -> Option<Chosen> {
        let with_devices = self.views.iter().filter(|v| !v.devices.is_empty()).count();
        if with_devices < 2 {
            return None;
        }
        if !self.distributed {
            let reason = if self.caps.multi_worker {
                "distributed inference across workers is off".to_string()
            } else {
                format!("{} does not run across workers", self.req.backend.id())
            };
            self.reject(Refused::Mode { mode: MultiWorker }, reason);
            return None;
        }
        let group = match self.caps.subordinates {
            SubordinateGrouping::PerRemoteDevice => self.grow_remote_devices(),
            SubordinateGrouping::PerRemoteWorker => self.grow_remote_workers(),
            SubordinateGrouping::None => None,
        }?;
        let score = self.score(&group, &[], 0);
        self.pick(
            vec![Scored {
                group,
                score,
                layers: 0,
            }],
            false,
        )
    }

    /// The worker with the most free device memory, plus the largest free devices of other
    /// workers, one at a time, until the model fits (llama.cpp RPC servers, listed first).
    fn grow_remote_devices(&mut self) -> Option<Group> {
        let main = (0..self.views.len())
            .filter(|&v| !self.views[v].devices.is_empty())
            .min_by(|&a, &b| self.most_free_first(a, b))?;
        let mut remote: Vec<(usize, usize)> = (0..self.views.len())
            .filter(|&v| v != main)
            .flat_map(|v| (0..self.views[v].devices.len()).map(move |d| (v, d)))
            .collect();
        let order = |&(v, d): &(usize, usize)| {
            let device = &self.views[v].devices[d];
            (
                std::cmp::Reverse(device.allocatable),
                self.name_rank[v],
                device.index,
            )
        };
        let keep = (self.req.options.max_remote_devices as usize).min(remote.len());
        let capped = keep < remote.len();
        if capped {
            remote.select_nth_unstable_by_key(keep, order);
            remote.truncate(keep);
        }
        remote.sort_by_key(order);
        // The main process holds the main worker's devices: one of them when it has MIG
        // instances.
        let local = self.largest_by_index(main, self.views[main].one_process_devices);
        let attempts = (1..=remote.len()).map(|n| Group {
            main,
            members: remote[..n].iter().chain(&local).copied().collect(),
        });
        let found = self.first_fitting(attempts.collect());
        if found.is_none() && capped {
            self.explanation.push(format!(
                "{}: stopped at {keep} remote devices (max_remote_devices)",
                MultiWorker.describe()
            ));
        }
        found
    }

    /// Whole workers with as many devices each, best first, until the model fits (Ray
    /// workers, MindIE nodes: every device of a worker takes part).
    fn grow_remote_workers(&mut self) -> Option<Group> {
        let mut by_count: BTreeMap<std::cmp::Reverse<usize>, Vec<usize>> = BTreeMap::new();
        let mut split_mig = Vec::new();
        for (v, view) in self.views.iter().enumerate() {
            if self.views[v].one_process_devices < view.devices.len() {
                split_mig.push(view.worker.name.clone());
            } else if !view.devices.is_empty() {
                by_count
                    .entry(std::cmp::Reverse(view.devices.len()))
                    .or_default()
                    .push(v);
            }
        }
        if !split_mig.is_empty() {
            let reason = format!(
                "{}: one process would hold each worker's MIG instances and other devices \
                 ({MIG_ONE_PER_PROCESS})",
                MultiWorker.describe()
            );
            self.reject(Refused::Workers { names: split_mig }, reason);
        }
        let max_workers = self.req.options.max_workers as usize;
        for (_, mut workers) in by_count {
            if workers.len() < 2 {
                continue;
            }
            workers.sort_by(|&a, &b| {
                let weakest = |v: usize| self.views[v].devices.last().map_or(0, |d| d.allocatable);
                weakest(b)
                    .cmp(&weakest(a))
                    .then_with(|| self.free_of(b).cmp(&self.free_of(a)))
                    .then(self.name_rank[a].cmp(&self.name_rank[b]))
            });
            workers.truncate(max_workers);
            let attempts = (2..=workers.len()).map(|n| Group {
                main: workers[0],
                members: workers[..n]
                    .iter()
                    .flat_map(|&v| self.largest_by_index(v, self.views[v].devices.len()))
                    .collect(),
            });
            if let Some(group) = self.first_fitting(attempts.collect()) {
                return Some(group);
            }
        }
        None
    }

    pub(super) fn cpu_offload(&mut self) -> Option<Chosen> {
        if !self.offload {
            if self.caps.cpu_offload {
                self.reject(Refused::Mode { mode: CpuOffload }, "CPU offloading is off");
            }
            return None;
        }
        let mut workers: Vec<usize> = (0..self.views.len())
            .filter(|&v| !self.views[v].devices.is_empty())
            .collect();
        workers.sort_by(|&a, &b| self.most_free_first(a, b));
        workers.truncate(MAX_OFFLOAD_WORKERS);
        let mut candidates = Vec::new();
        for v in workers {
            if let Some(candidate) = self.offload_on(v) {
                candidates.push(candidate);
            }
        }
        self.pick(candidates, true)
    }

    /// The most layers worker `v` takes with its k largest devices, growing k while it helps
    /// (by the counts of [`device_counts`], then back to the smallest k taking as many layers).
    fn offload_on(&mut self, v: usize) -> Option<Scored> {
        let mut best: Option<Scored> = None;
        let (mut tried, mut fewer) = (0, 0);
        for k in device_counts(1, self.views[v].one_process_devices) {
            let candidate = self.offload_candidate(v, k);
            match candidate {
                Some(c) if best.as_ref().is_some_and(|b| b.layers >= c.layers) => break,
                Some(c) => (fewer, best) = (tried, Some(c)),
                None => {}
            }
            tried = k;
        }
        let mut best = best?;
        let mut more = best.group.members.len();
        while more - fewer > 1 {
            let mid = fewer + (more - fewer) / 2;
            match self.offload_candidate(v, mid) {
                Some(c) if c.layers >= best.layers => (more, best) = (mid, c),
                _ => fewer = mid,
            }
        }
        Some(best)
    }

    /// Worker `v`'s k largest devices with the rest of the model in host memory, when at least
    /// one layer fits on them; refused otherwise.
    fn offload_candidate(&mut self, v: usize, k: usize) -> Option<Scored> {
        let group = Group {
            main: v,
            members: self.largest_by_index(v, k).into(),
        };
        let estimate = match self.fit(&group, self.views[v].host(), true) {
            Ok(estimate) => estimate,
            Err(e) => {
                self.reject_group(&group, 0, reason(&e));
                return None;
            }
        };
        let layers = match estimate.layout {
            Layout::Layers { offload_layers, .. } => offload_layers,
            _ => 0,
        };
        if layers == 0 {
            self.reject_group(&group, 0, "not one layer fits on the devices".into());
            return None;
        }
        let claims: Vec<u64> = estimate.devices.iter().map(|d| d.held()).collect();
        let score = self.score(&group, &claims, estimate.host.total());
        Some(Scored {
            group,
            score,
            layers,
        })
    }

    pub(super) fn cpu_only(&mut self) -> Option<Chosen> {
        if !self.caps.cpu_only {
            let reason = format!("{} needs an accelerator", self.req.backend.id());
            self.reject(Refused::Mode { mode: CpuOnly }, reason);
            return None;
        }
        if self.caps.cpu_offload && !self.offload {
            self.reject(Refused::Mode { mode: CpuOnly }, "CPU offloading is off");
            return None;
        }
        let hosts: Vec<Group> = (0..self.views.len())
            .map(|v| Group {
                main: v,
                members: Vec::new().into(),
            })
            .collect();
        if hosts.is_empty() {
            return None;
        }
        self.search_classes(vec![hosts], false)
    }

    /// Sorts each class of groups best first, probes it, and fits the best candidates exactly.
    fn search_classes(
        &mut self,
        mut buckets: Vec<Vec<Group>>,
        with_largest_host: bool,
    ) -> Option<Chosen> {
        for bucket in &mut buckets {
            self.sort_by_weakest_device(bucket);
        }
        let candidates = self.search_buckets(&buckets, with_largest_host);
        self.pick(candidates, false)
    }

    /// Devices chosen by hand: check them and size exactly that group.
    pub(super) fn manual(mut self) -> Result<Placement> {
        let group = self.selected_group()?;
        let workers = self.workers_of(&group);
        if workers > 1 && !self.distributed {
            return Err(Error::invalid_parameter(
                "device_selector",
                format!(
                    "the selected devices are on {workers} workers, but {} does not run across \
                     workers here (distributed inference is off or unsupported)",
                    self.req.backend.id()
                ),
            ));
        }
        if workers == 1 && group.members.len() > 1 && !self.caps.multi_device {
            return Err(Error::invalid_parameter(
                "device_selector",
                format!("{} runs on one device only", self.req.backend.id()),
            ));
        }
        let candidate = Scored {
            score: self.score(&group, &[], 0),
            group: group.clone(),
            layers: 0,
        };
        if let Some(chosen) = self.pick(vec![candidate], false) {
            return self.finish(chosen);
        }
        // What does not fit whole may still fit with part of the model in host memory.
        if self.offload {
            let candidate = Scored {
                score: 0.0,
                group,
                layers: 0,
            };
            if let Some(chosen) = self.pick(vec![candidate], true) {
                return self.finish(chosen);
            }
        }
        Err(self.nothing_fits())
    }

    fn selected_group(&self) -> Result<Group> {
        let mut members: Vec<(usize, usize)> = Vec::new();
        for id in &self.req.spec.device_selector {
            let worker = self.req.cluster.worker(&id.worker).ok_or_else(|| {
                Error::invalid_parameter(
                    "device_selector",
                    format!("worker {} not found", id.worker),
                )
            })?;
            let device = worker.device(id.index).ok_or_else(|| {
                Error::invalid_parameter("device_selector", format!("{id}: no such device"))
            })?;
            let refusal = self
                .worker_refusal(worker)
                .or_else(|| self.device_refusal(worker, device));
            if let Some(reason) = refusal {
                return Err(Error::invalid_parameter(
                    "device_selector",
                    format!("{id}: {reason}"),
                ));
            }
            let v = self
                .views
                .iter()
                .position(|view| view.worker.name == id.worker)
                .ok_or_else(|| Error::invalid_parameter("device_selector", id.to_string()))?;
            let d = self.views[v]
                .devices
                .iter()
                .position(|dv| dv.index == id.index)
                .ok_or_else(|| Error::invalid_parameter("device_selector", id.to_string()))?;
            if !members.contains(&(v, d)) {
                members.push((v, d));
            }
        }
        let main = main_of(&members);
        let (local, remote): (Vec<_>, Vec<_>) = members.into_iter().partition(|m| m.0 == main);
        let members = match self.caps.subordinates {
            SubordinateGrouping::PerRemoteDevice => remote.into_iter().chain(local).collect(),
            _ => local.into_iter().chain(remote).collect(),
        };
        Ok(Group { main, members })
    }
}

/// Device counts per worker to try, from `first` to `most`: one by one up to
/// [`LINEAR_DEVICE_COUNTS`] (GPUStack's order, on every real node), then doubling, so that a
/// worker with n devices costs O(log n) tries of at most n devices each.
fn device_counts(first: usize, most: usize) -> impl Iterator<Item = usize> {
    let next = move |&k: &usize| {
        let step = if k < LINEAR_DEVICE_COUNTS {
            k + 1
        } else {
            2 * k
        };
        (k < most).then(|| step.min(most))
    };
    std::iter::successors((first <= most).then_some(first), next)
}

/// The view index of the worker that runs the main process of a hand-picked group: the one
/// holding most selected devices, so that the fewest are reached over the network; ties go to
/// the worker listed first.
fn main_of(members: &[(usize, usize)]) -> usize {
    members
        .iter()
        .map(|&(v, _)| v)
        .max_by_key(|&v| {
            let count = members.iter().filter(|m| m.0 == v).count();
            let first = members.iter().position(|m| m.0 == v).unwrap_or(0);
            (count, std::cmp::Reverse(first))
        })
        .unwrap_or(0)
}
